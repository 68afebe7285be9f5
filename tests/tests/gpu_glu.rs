//! `shaders/glu.wgsl` against its CPU twin (`gpu::glu_cpu`: the CPU's `swiglu` / `geglu`): both
//! activations, odd widths and token counts, offsets, inputs past GELU's ±10 cut-offs and large
//! enough for SiLU's exp to overflow, and a dispatch sized for more tokens than the step holds.

use aether_core::gpu::{Glu, GpuOptions, Step, StepBuffer, glu_cpu};
use aether_core::model::FfnAct;
use aether_tests::gpu::{Rng, assert_nmse, assert_untouched, buffer, read_all_f32, run_step, test_gpu};

#[test]
fn glu_matches_cpu() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let step = StepBuffer::new(&gpu).expect("step buffer");
    let mut rng = Rng::new(5);
    for act in [FfnAct::Silu, FfnAct::GeluTanh] {
        for (width, n_tok) in [(1, 1), (259, 3), (1537, 7), (8960, 2)] {
            let what = format!("{act:?} width={width} tokens={n_tok}");
            let (g_off, u_off) = (7, 2);
            let n = width * n_tok;
            // Mostly within ±12, a few far out (exp(-x) overflows at x < -88).
            let mut gate: Vec<f32> = (0..g_off + n + 5).map(|_| rng.f32() * 12.0).collect();
            for i in (g_off..g_off + n).step_by(97) {
                gate[i] = rng.f32() * 200.0;
            }
            let up: Vec<f32> = (0..u_off + n).map(|_| rng.f32() * 3.0).collect();
            let gb = buffer(&gpu, "gate", &gate);
            let ub = buffer(&gpu, "up", &up);
            let glu = Glu::new(&gpu, &step, (&gb, g_off as u64), (&ub, u_off as u64), width as u32, act)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            run_step(&gpu, &step, Step::new(3, n_tok as u32), |pass| glu.encode(pass, n_tok as u32 + 1))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let mut want = gate[g_off..g_off + n].to_vec();
            glu_cpu(&mut want, &up[u_off..u_off + n], act);
            let got = read_all_f32(&gpu, &gb);
            let nmse = assert_nmse(&got[g_off..g_off + n], &want, 1e-6, &what);
            assert_untouched(&got, &gate, g_off..g_off + n, &what);
            eprintln!("{what}: NMSE {nmse:.2e}");
        }
    }
}
