//! `shaders/rmsnorm.wgsl` against its CPU twin (`gpu::rmsnorm_cpu`, i.e. `cpu::ops::rmsnorm` per
//! row): out of place and in place, with subgroups and with them forced off, layer-norm rows
//! (groups = 1, widths up to 8192 and odd) and per-head rows (groups = n_head), every token of a
//! step or only its last, offsets on both sides, and a dispatch sized for more tokens than the
//! step holds. Elements outside the rows written must stay as they were.

use aether_core::gpu::{GpuOptions, RmsNorm, Rows, Step, StepBuffer, rmsnorm_cpu};
use aether_tests::gpu::{Rng, assert_nmse, assert_untouched, buffer, read_all_f32, run_step, test_gpu};

const EPS: f32 = 1e-6;

/// (width, groups, tokens in the step, tokens the dispatch is sized for)
const CASES: &[(usize, usize, usize, usize)] = &[
    (1, 1, 1, 1),
    (7, 3, 2, 2),
    (64, 9, 5, 8),
    (128, 4, 13, 13),
    (255, 1, 3, 3),
    (576, 1, 7, 16),
    (4097, 1, 2, 2),
    (8192, 1, 3, 3),
];

fn check(opts: GpuOptions, label: &str) {
    let Some(gpu) = test_gpu(opts) else { return };
    eprintln!("{label}: {}", gpu.describe());
    let step = StepBuffer::new(&gpu).expect("step buffer");
    let suffix = if gpu.caps().subgroups { "_sg" } else { "_wg" };
    let mut rng = Rng::new(11);
    for &(width, groups, n_tok, n_dispatch) in CASES {
        for inplace in [false, true] {
            for rows in [Rows::Step, Rows::Last] {
                let what = format!(
                    "{label} width={width} groups={groups} tokens={n_tok} inplace={inplace} {rows:?}"
                );
                let (x_off, y_off) = (3, if inplace { 3 } else { 5 });
                let row = width * groups;
                // Rows of different magnitudes: the scale must come out per row.
                let mut x = vec![0f32; x_off + n_tok * row + 2];
                for (r, chunk) in x[x_off..x_off + n_tok * row].chunks_mut(width).enumerate() {
                    let mag = [1.0, 30.0, 0.01][r % 3];
                    chunk.iter_mut().for_each(|v| *v = rng.f32() * mag);
                }
                let w = rng.vec(width);
                let y_init = vec![77.0f32; y_off + n_tok * row + 4];
                let xb = buffer(&gpu, "x", &x);
                let wb = buffer(&gpu, "w", &w);
                let yb = buffer(&gpu, "y", &y_init);
                let y = (!inplace).then_some((&yb, y_off as u64));
                let norm = RmsNorm::new(
                    &gpu,
                    &step,
                    (&xb, x_off as u64),
                    &wb,
                    y,
                    width as u32,
                    groups as u32,
                    EPS,
                    rows,
                )
                .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(norm.key().ends_with(suffix), "{what}: ran {}", norm.key());
                assert_eq!(norm.key().contains("inplace"), inplace, "{what}: ran {}", norm.key());
                run_step(&gpu, &step, Step::new(40, n_tok as u32), |pass| {
                    norm.encode(pass, n_dispatch as u32)
                })
                .unwrap_or_else(|e| panic!("{what}: {e}"));

                // The input rows read, and what they become.
                let src = match rows {
                    Rows::Last => &x[x_off + (n_tok - 1) * row..x_off + n_tok * row],
                    _ => &x[x_off..x_off + n_tok * row],
                };
                let mut want = vec![0f32; src.len()];
                rmsnorm_cpu(src, &w, &mut want, EPS);
                let (out, before, at) = if inplace {
                    (read_all_f32(&gpu, &xb), &x, x_off)
                } else {
                    (read_all_f32(&gpu, &yb), &y_init, y_off)
                };
                assert_nmse(&out[at..at + want.len()], &want, 1e-6, &what);
                assert_untouched(&out, before, at..at + want.len(), &what);
                if !inplace {
                    assert_untouched(&read_all_f32(&gpu, &xb), &x, 0..0, &format!("{what} (x)"));
                }
            }
        }
    }
}

#[test]
fn rmsnorm_matches_cpu_with_the_best_reduction() {
    check(GpuOptions::default(), "default");
}

#[test]
fn rmsnorm_matches_cpu_with_subgroups_forced_off() {
    check(GpuOptions { no_subgroups: true, ..Default::default() }, "no-subgroups");
}
