//! `shaders/softcap.wgsl` against its CPU twin (`gpu::softcap_cpu`: the CPU's `softcap`): odd
//! counts up to a 262144-entry vocabulary, an offset, logits far past the cap (where tanh
//! saturates, and a sinh/cosh tanh would give NaN), caps of Gemma 2 / 3 (30, 50).

use aether_core::gpu::{GpuOptions, Softcap, Step, StepBuffer, softcap_cpu};
use aether_tests::gpu::{Rng, assert_nmse, assert_untouched, buffer, read_all_f32, run_step, test_gpu};

#[test]
fn softcap_matches_cpu() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let step = StepBuffer::new(&gpu).expect("step buffer");
    let mut rng = Rng::new(13);
    for (n, cap) in [(1, 30.0), (1007, 50.0), (262_147, 30.0)] {
        let what = format!("n={n} cap={cap}");
        let off = 6;
        let mut y: Vec<f32> = (0..off + n + 2).map(|_| rng.f32() * 60.0).collect();
        for i in (off..off + n).step_by(31) {
            y[i] = rng.f32() * 1e6;
        }
        let yb = buffer(&gpu, "y", &y);
        let sc =
            Softcap::new(&gpu, (&yb, off as u64), n as u32, cap).unwrap_or_else(|e| panic!("{what}: {e}"));
        run_step(&gpu, &step, Step::new(0, 1), |pass| sc.encode(pass, 1))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut want = y[off..off + n].to_vec();
        softcap_cpu(&mut want, cap);
        let got = read_all_f32(&gpu, &yb);
        let nmse = assert_nmse(&got[off..off + n], &want, 1e-6, &what);
        assert_untouched(&got, &y, off..off + n, &what);
        eprintln!("{what}: NMSE {nmse:.2e}");
    }
}
