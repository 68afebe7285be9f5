//! `shaders/argmax.wgsl` against its CPU twin (`gpu::argmax_cpu`, which agrees with
//! `sample::argmax`, the greedy sampler): both reductions (subgroups, and workgroup memory with
//! subgroups forced off), counts around the workgroup and partial boundaries up to 262147, an
//! offset, many ties (lowest index wins), NaN (never chosen), -inf, and rows of nothing but NaN
//! or -inf (0); and many rows in one dispatch, fewer encoded than it was made for.

use aether_core::gpu::{Argmax, GpuOptions, Step, StepBuffer, argmax_cpu};
use aether_core::sample;
use aether_tests::gpu::{Rng, buffer, read_all_u32, run_step, test_gpu};

fn rows(rng: &mut Rng) -> Vec<(String, Vec<f32>)> {
    let mut out = Vec::new();
    for n in [1, 7, 255, 1024, 1025, 4097, 151_936, 262_147] {
        out.push((format!("n={n} random"), rng.vec(n)));
        // Few levels: the maximum is tied many times.
        out.push((format!("n={n} ties"), (0..n).map(|_| (rng.f32() * 3.0).round()).collect()));
        let mut v = rng.vec(n);
        for i in (0..n).step_by(3) {
            v[i] = f32::NAN;
        }
        v[n - 1] = if n > 1 { f32::NAN } else { v[n - 1] };
        out.push((format!("n={n} NaN"), v));
        let mut v = vec![f32::NEG_INFINITY; n];
        v[n - 1] = -1e30;
        out.push((format!("n={n} max last"), v));
    }
    out.push(("all NaN".into(), vec![f32::NAN; 3000]));
    out.push(("all -inf".into(), vec![f32::NEG_INFINITY; 3000]));
    out.push(("NaN then -inf".into(), vec![f32::NAN, f32::NEG_INFINITY, f32::NEG_INFINITY]));
    out.push(("-MAX ties".into(), vec![f32::NEG_INFINITY, -f32::MAX, f32::NAN, -f32::MAX]));
    out
}

fn check(opts: GpuOptions, label: &str) {
    let Some(gpu) = test_gpu(opts) else { return };
    let step = StepBuffer::new(&gpu).expect("step buffer");
    let suffix = if gpu.caps().subgroups { "_sg" } else { "_wg" };
    let mut rng = Rng::new(17);
    for (name, v) in rows(&mut rng) {
        let what = format!("{label} {name}");
        let want = argmax_cpu(&v);
        let cand: Vec<(u32, f32)> = v.iter().enumerate().map(|(i, &x)| (i as u32, x)).collect();
        assert_eq!(want, sample::argmax(&cand), "{what}: the twin disagrees with the sampler");
        let off = 5;
        let mut logits = vec![1e38f32; off];
        logits.extend(&v);
        logits.push(1e38);
        let lb = buffer(&gpu, "logits", &logits);
        let ob = buffer(&gpu, "out", &[u32::MAX; 4]);
        let am = Argmax::new(&gpu, (&lb, off as u64), v.len() as u32, (&ob, 2), 1)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(am.key().ends_with(suffix), "{what}: ran {}", am.key());
        run_step(&gpu, &step, Step::new(0, 1), |pass| am.encode(pass, 1))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let got = read_all_u32(&gpu, &ob);
        assert_eq!(got, [u32::MAX, u32::MAX, want, u32::MAX], "{what}: want index {want}");
    }
}

#[test]
fn argmax_matches_cpu_with_the_best_reduction() {
    check(GpuOptions::default(), "default");
}

#[test]
fn argmax_matches_cpu_with_subgroups_forced_off() {
    check(GpuOptions { no_subgroups: true, ..Default::default() }, "no-subgroups");
}

/// Rows of a step's logits end to end, each its own argmax: made for 9 rows, 7 encoded (the
/// step's outputs), whose indices land at out_off.. and leave the rest of `out` alone. Row r's
/// maximum sits where no other row's does, and row 3 is tied throughout.
#[test]
fn argmax_of_many_rows_in_one_dispatch() {
    for opts in [GpuOptions::default(), GpuOptions { no_subgroups: true, ..Default::default() }] {
        let Some(gpu) = test_gpu(opts) else { return };
        let step = StepBuffer::new(&gpu).expect("step buffer");
        let mut rng = Rng::new(29);
        for n in [1000usize, 151_936] {
            let (made, encoded, off, out_off) = (9usize, 7usize, 3usize, 1usize);
            let mut logits = vec![1e38f32; off];
            let mut want = Vec::new();
            for r in 0..made {
                let mut v = rng.vec(n);
                if r == 3 {
                    v = vec![0.5; n];
                } else {
                    v[(r * 7919 + 13) % n] = 10.0 + r as f32;
                }
                want.push(argmax_cpu(&v));
                logits.extend(&v);
            }
            let lb = buffer(&gpu, "logits", &logits);
            let ob = buffer(&gpu, "out", &[u32::MAX; 12]);
            let am = Argmax::new(&gpu, (&lb, off as u64), n as u32, (&ob, out_off as u64), made as u32)
                .unwrap_or_else(|e| panic!("n={n}: {e}"));
            run_step(&gpu, &step, Step::new(0, 1), |pass| am.encode(pass, encoded as u32))
                .unwrap_or_else(|e| panic!("n={n}: {e}"));
            let got = read_all_u32(&gpu, &ob);
            let mut expect = vec![u32::MAX; 12];
            expect[out_off..out_off + encoded].copy_from_slice(&want[..encoded]);
            assert_eq!(got, expect, "n={n}: {encoded} of {made} rows");
        }
    }
}
