//! The activation rounding kernel (`shaders/act_quant.wgsl`) against its CPU twin (the CPU's own
//! activation quantizers, dequantized): every activation format, rows not a multiple of the
//! workgroup, blocks with ties for the extreme, all-zero blocks, several tokens at offsets.

use aether_core::gpu::{
    ActQuant, GpuOptions, Step, StepBuffer, act_pack_cpu, act_quant_cpu, packed_stride, rmsnorm_cpu,
};
use aether_core::quant::GgmlType;
use aether_tests::gpu::{Rng, assert_nmse, buffer, read_all_f32, run_step, test_gpu};

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
        // Packed levels at word 4 (offsets are whole 16-byte vectors); NaN bits mark the unwritten.
        let q_words = 4 + n_tokens * packed_stride(cols as u32) as usize;
        let qb = buffer(&gpu, "xq", &vec![f32::NAN; q_words]);
        let k = ActQuant::new(
            &gpu,
            &step,
            ty,
            (&xb, off as u64),
            (&yb, off as u64),
            (&qb, 4),
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
        // The Q8 formats: the levels and scales as the CPU's quantizer makes them, bit for bit
        // (the padding of each row is never written).
        if matches!(ty, Q4_0 | Q4_1 | Q8_0 | Q4K | Q6K) {
            let got: Vec<u32> = read_all_f32(&gpu, &qb)[4..].iter().map(|v| v.to_bits()).collect();
            let want = act_pack_cpu(ty, &x, cols).unwrap();
            let used = cols / 4 + cols / 32;
            for (t, (g, w)) in
                got.chunks(want.len() / n_tokens).zip(want.chunks(want.len() / n_tokens)).enumerate()
            {
                // A zero scale may differ in sign.
                let same = |(a, b): (&u32, &u32)| a == b || (a | b) == 0x8000_0000;
                let bad = g[..used].iter().zip(&w[..used]).position(|p| !same(p));
                assert!(
                    bad.is_none(),
                    "{ty} packed row {t}: word {:?} got {:08x?} want {:08x?}",
                    bad,
                    &g[..8],
                    &w[..8]
                );
            }
        }
    }
    assert!(
        ActQuant::new(
            &gpu,
            &step,
            F32,
            (&buffer(&gpu, "a", &[0f32; 4]), 0),
            (&buffer(&gpu, "b", &[0f32; 4]), 0),
            (&buffer(&gpu, "c", &[0f32; 4]), 0),
            4,
            1
        )
        .unwrap()
        .is_none()
    );
}

/// The conversion with the layer's RMSNorm fused in: the same values as the CPU's norm followed
/// by its quantizer, up to the norm's summation order — so compared within a tolerance on the
/// f32 values and on the levels (a level may move by one where the sum's rounding tips it).
#[test]
fn normed_conversion_matches_norm_then_quantize() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let step = StepBuffer::new(&gpu).unwrap();
    let mut rng = Rng::new(9);
    use GgmlType::*;
    for (ty, cols) in [(Q8_0, 576), (Q4K, 2304), (Q4_1, 1056), (Q4_1, 576), (F16, 96)] {
        let n_tokens = 5;
        let x: Vec<f32> = rng.vec(n_tokens * cols).iter().map(|v| v * 3.0).collect();
        let nw: Vec<f32> = rng.vec(cols).iter().map(|v| 1.0 + v).collect();
        let eps = 1e-5;
        let mut normed = vec![0.0; x.len()];
        rmsnorm_cpu(&x, &nw, &mut normed, eps);
        let xb = buffer(&gpu, "x", &x);
        let yb = buffer(&gpu, "y", &vec![f32::NAN; x.len()]);
        let qb = buffer(&gpu, "xq", &vec![0u32; n_tokens * packed_stride(cols as u32) as usize]);
        let wb = buffer(&gpu, "norm", &nw);
        let k =
            ActQuant::new_normed(&gpu, &step, ty, (&xb, 0), (&yb, 0), (&qb, 0), (&wb, eps), cols as u32, 5)
                .unwrap()
                .expect("a conversion");
        run_step(&gpu, &step, Step::new(0, n_tokens as u32), |p| k.encode(p, n_tokens as u32)).unwrap();
        let got = read_all_f32(&gpu, &yb);
        let want = act_quant_cpu(ty, &normed).unwrap();
        let nmse = assert_nmse(&got, &want, 1e-5, &format!("{ty} normed conversion"));
        eprintln!("{ty}: NMSE {nmse:.1e}");
    }
}

/// The conversion with the GLU fused in gives exactly what the GLU kernel followed by the plain
/// conversion gives (the same activation code, spliced from glu.wgsl): every Q8 format, both
/// activations, several tokens.
#[test]
fn glu_conversion_equals_glu_then_conversion() {
    use aether_core::gpu::Glu;
    use aether_core::model::FfnAct;
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let step = StepBuffer::new(&gpu).unwrap();
    let mut rng = Rng::new(21);
    use GgmlType::*;
    for (ty, cols, act) in
        [(Q8_0, 1536, FfnAct::Silu), (Q4K, 768, FfnAct::Silu), (Q4_1, 96, FfnAct::GeluTanh)]
    {
        let n_tokens = 3;
        let gate: Vec<f32> = rng.vec(n_tokens * cols).iter().map(|v| v * 6.0).collect();
        let up = rng.vec(n_tokens * cols);
        let words = n_tokens * packed_stride(cols as u32) as usize;
        let (gb, ub) = (buffer(&gpu, "gate", &gate), buffer(&gpu, "up", &up));
        let (y_fused, q_fused) =
            (buffer(&gpu, "y", &vec![f32::NAN; gate.len()]), buffer(&gpu, "q", &vec![0u32; words]));
        let (y_plain, q_plain) =
            (buffer(&gpu, "y", &vec![f32::NAN; gate.len()]), buffer(&gpu, "q", &vec![0u32; words]));
        let n = n_tokens as u32;
        let gelu = act == FfnAct::GeluTanh;
        let fused = ActQuant::new_glu(
            &gpu,
            &step,
            ty,
            (&gb, 0),
            (&y_fused, 0),
            (&q_fused, 0),
            (&ub, 0),
            gelu,
            cols as u32,
            n,
        )
        .unwrap()
        .expect("a conversion");
        let glu = Glu::new(&gpu, &step, (&gb, 0), (&ub, 0), cols as u32, act).unwrap();
        let plain = ActQuant::new(&gpu, &step, ty, (&gb, 0), (&y_plain, 0), (&q_plain, 0), cols as u32, n)
            .unwrap()
            .expect("a conversion");
        // The fused conversion first: it must not need the GLU's in-place result.
        run_step(&gpu, &step, Step::new(0, n), |p| {
            fused.encode(p, n);
            glu.encode(p, n);
            plain.encode(p, n);
        })
        .unwrap();
        let bits = |b| read_all_f32(&gpu, b).iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
        let (yf, yp) = (bits(&y_fused), bits(&y_plain));
        let differ = yf.iter().zip(&yp).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 0, "{ty} {act:?}: {differ} of {} values differ", yf.len());
        assert_eq!(bits(&q_fused), bits(&q_plain), "{ty} {act:?}: packed levels differ");
    }
}

/// The rounding to f16 (F16 weights' activations, and every Q8 format's scales) is the CPU's,
/// ties to even, at the edges of f16's range: halfway values, subnormals, the largest finite
/// value and past it, signed zeros and infinities.
#[test]
fn f16_rounding_is_the_cpus_at_the_edges() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let step = StepBuffer::new(&gpu).unwrap();
    let ulp = |v: f32| f32::from_bits(v.to_bits() + 1);
    let mut x = vec![
        1.0 + 1.0 / 2048.0,      // a tie: down to even (1.0)
        1.0 + 3.0 / 2048.0,      // a tie: up to even
        ulp(1.0 + 1.0 / 2048.0), // just past the tie: up
        65504.0,                 // the largest finite f16
        65519.0,                 // rounds down to it
        65520.0,                 // a tie: to ∞
        -70000.0,
        6.0e-8,                      // subnormals
        f32::from_bits(0x3300_0000), // 2⁻²⁵, half the smallest subnormal: a tie, to even (0)
        3.0e-8,                      // just past it: up
        -2.98e-8,
        1.0e-5,
        6.1e-5, // below the smallest normal, rounds to it
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.3333333,
        -1234.5678,
    ];
    x.resize(32, 0.7);
    let xb = buffer(&gpu, "x", &x);
    let yb = buffer(&gpu, "y", &vec![f32::NAN; x.len()]);
    let qb = buffer(&gpu, "xq", &[0u32; 16]);
    let k = ActQuant::new(&gpu, &step, GgmlType::F16, (&xb, 0), (&yb, 0), (&qb, 0), x.len() as u32, 1)
        .unwrap()
        .expect("a conversion");
    run_step(&gpu, &step, Step::new(0, 1), |p| k.encode(p, 1)).unwrap();
    let got = read_all_f32(&gpu, &yb);
    let want = act_quant_cpu(GgmlType::F16, &x).unwrap();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "x = {:e}: got {g:e}, want {w:e}", x[i]);
    }
}
