//! `shaders/add.wgsl` against its CPU twin (`gpu::add_cpu`): the residual add and the broadcast
//! bias add, for every token of a step, only its last, and a fixed row count; odd widths, offsets,
//! and a dispatch sized for more tokens than the step holds.

use aether_core::gpu::{Add, GpuOptions, Rows, Step, StepBuffer, add_cpu};
use aether_tests::gpu::{Rng, assert_nmse, assert_untouched, buffer, read_all_f32, run_step, test_gpu};

#[test]
fn add_matches_cpu() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let step = StepBuffer::new(&gpu).expect("step buffer");
    let mut rng = Rng::new(9);
    for (width, n_tok) in [(1, 1), (3, 5), (577, 3), (4099, 9)] {
        for broadcast in [false, true] {
            for rows in [Rows::Step, Rows::Last, Rows::Fixed(2)] {
                let what = format!("width={width} tokens={n_tok} broadcast={broadcast} {rows:?}");
                let (y_off, x_off) = (4, 1);
                let y = rng.vec(y_off + n_tok * width + 3);
                let x = rng.vec(x_off + n_tok * width + 2);
                let (yb, xb) = (buffer(&gpu, "y", &y), buffer(&gpu, "x", &x));
                let add = Add::new(
                    &gpu,
                    &step,
                    (&yb, y_off as u64),
                    (&xb, x_off as u64),
                    width as u32,
                    broadcast,
                    rows,
                )
                .unwrap_or_else(|e| panic!("{what}: {e}"));
                run_step(&gpu, &step, Step::new(0, n_tok as u32), |pass| add.encode(pass, n_tok as u32 + 3))
                    .unwrap_or_else(|e| panic!("{what}: {e}"));

                let (n_rows, src) = match rows {
                    Rows::Step => (n_tok, &x[x_off..]),
                    Rows::Last if broadcast => (1, &x[x_off..]),
                    Rows::Last => (1, &x[x_off + (n_tok - 1) * width..]),
                    Rows::Fixed(n) => (n as usize, &x[x_off..]),
                };
                let mut want = y[y_off..y_off + n_rows * width].to_vec();
                add_cpu(&mut want, src, width, broadcast);
                let got = read_all_f32(&gpu, &yb);
                assert_nmse(&got[y_off..y_off + want.len()], &want, 1e-6, &what);
                assert_untouched(&got, &y, y_off..y_off + want.len(), &what);
            }
        }
    }
}
