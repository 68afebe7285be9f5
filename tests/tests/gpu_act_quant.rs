//! The activation rounding kernel (`shaders/act_quant.wgsl`) against its CPU twin (the CPU's own
//! activation quantizers, dequantized): every activation format, rows not a multiple of the
//! workgroup, blocks with ties for the extreme, all-zero blocks, several tokens at offsets.

use aether_core::gpu::{ActQuant, GpuOptions, Step, StepBuffer, act_quant_cpu};
use aether_core::quant::GgmlType;
use aether_tests::gpu::{Rng, buffer, read_all_f32, run_step, test_gpu};

#[test]
fn every_format_matches_the_cpu() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let step = StepBuffer::new(&gpu).unwrap();
    let mut rng = Rng::new(7);
    use GgmlType::*;
    // (weight type, cols): Q8_0 (Q4_0), Q8_1 (Q4_1), Q8_K (Q4_K), f16, bf16.
    for (ty, cols) in [(Q4_0, 576), (Q4_1, 96), (Q8_0, 1056), (Q4K, 768), (Q6K, 256), (F16, 34), (Bf16, 578)]
    {
        let n_tokens = 3;
        let mut x: Vec<f32> = rng.vec(n_tokens * cols).iter().map(|v| v * 4.0).collect();
        // A zero block, and a block whose extreme appears twice with both signs.
        x[..32].iter_mut().for_each(|v| *v = 0.0);
        x[cols + 5] = 9.0;
        x[cols + 9] = -9.0;
        let off = 5;
        let padded: Vec<f32> = std::iter::repeat_n(0.0, off).chain(x.iter().copied()).collect();
        let xb = buffer(&gpu, "x", &padded);
        let yb = buffer(&gpu, "y", &vec![f32::NAN; off + x.len()]);
        let k = ActQuant::new(
            &gpu,
            &step,
            ty,
            (&xb, off as u64),
            (&yb, off as u64),
            cols as u32,
            n_tokens as u32,
        )
        .unwrap()
        .expect("a conversion");
        run_step(&gpu, &step, Step::new(0, n_tokens as u32), |p| k.encode(p, n_tokens as u32)).unwrap();
        let got = &read_all_f32(&gpu, &yb)[off..];
        let want = act_quant_cpu(ty, &x).unwrap();
        // Equal values (a zero may differ in sign); NaN is never equal.
        let diffs: Vec<_> = got.iter().zip(&want).enumerate().filter(|(_, (g, w))| g != w).collect();
        assert!(
            diffs.is_empty(),
            "{ty}: {} of {} values differ, first {:?}",
            diffs.len(),
            x.len(),
            &diffs[..diffs.len().min(4)]
        );
    }
    assert!(
        ActQuant::new(
            &gpu,
            &step,
            F32,
            (&buffer(&gpu, "a", &[0f32; 4]), 0),
            (&buffer(&gpu, "b", &[0f32; 4]), 0),
            4,
            1
        )
        .unwrap()
        .is_none()
    );
}
