//! `shaders/sample.wgsl` against its CPU twin (`gpu::sample_cpu`, i.e. `sample::pick`, the
//! chain `Sampler::sample` runs): a step of several output rows, each with its own draw or none
//! (left alone), at vocabulary sizes around the workgroup and up to 151,936, with logits at an
//! offset, with few distinct levels so that the k-th place is tied (the lowest ids are kept, as
//! the CPU's sort keeps them), and spread so wide that the kernel's short list (the logits within
//! 32 of the maximum) cannot hold the top k and its exact radix path runs.
//!
//! Some draws also adjust logits first (logit bias, a ban, repeat/frequency/presence penalties on
//! tokens counted in a window, an id past the vocabulary, and, as a step run ahead does, the
//! row's fed token counted in), which the kernel does in place: the logits are uploaded again
//! before every step.
//!
//! The GPU sums the same terms in the same order as the CPU, but its `exp` is not the CPU's, so a
//! draw whose r lies within rounding of a boundary of the cumulative mass may fall on either
//! side: a case counts only where the CPU picks the same token for r ± 1e-5, and nearly every case
//! must count.

use aether_core::gpu::{GpuOptions, Sample, Step, StepBuffer, sample_cpu};
use aether_core::sample::{Adjust, Adjustments, DRAW_ADJUST_MAX, DRAW_TOP_K_MAX, Draw};
use aether_tests::gpu::{Rng, buffer, read_all_u32, run_step, test_gpu};

/// Rows of one step: 3 sampled, 1 not.
const ROWS: usize = 4;
const UNTOUCHED: u32 = 0xdead_beef;

fn draws(rng: &mut Rng, n: usize) -> Vec<Draw> {
    let mut out = Vec::new();
    for (temperature, top_k, top_p, min_p) in [
        (0.8, 40, 0.95, 0.05),
        (1.0, 1, 1.0, 0.0),
        (1.0, DRAW_TOP_K_MAX as u32, 1.0, 0.0),
        (1.5, 200, 0.9, 0.0),
        (0.3, 7, 0.5, 0.0),
        (1.0, 64, 1.0, 0.2),
        (2.0, 3, 0.999, 0.01),
        (0.7, (n as u32).min(DRAW_TOP_K_MAX as u32), 1.0, 0.0),
    ] {
        for r in [0.0, (rng.f32() + 1.0) / 2.0, 0.999_99] {
            out.push(Draw { temperature, top_k, top_p, min_p, r, ..Default::default() });
            if top_k > 1 {
                let adjust = adjustments(rng, n);
                out.push(Draw { temperature, top_k, top_p, min_p, r, adjust, ..Default::default() });
            }
        }
    }
    out
}

/// Biases (a boost, a ban, a zero) and penalised counts on random tokens of a vocabulary of `n`
/// (each id once), one id past it, up to DRAW_ADJUST_MAX entries.
fn adjustments(rng: &mut Rng, n: usize) -> Adjustments {
    let mut a = Adjustments {
        repeat_penalty: 1.3,
        frequency_penalty: 0.25,
        presence_penalty: -0.1,
        windowed: true,
        count_fed: rng.f32() > 0.0,
        ..Default::default()
    };
    let mut ids: Vec<u32> =
        (0..DRAW_ADJUST_MAX - 1).map(|_| ((rng.f32() + 1.0) / 2.0 * n as f32) as u32 % n as u32).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.push(n as u32 + 5);
    for (i, &id) in ids.iter().enumerate() {
        let (biased, bias) = match i % 4 {
            0 => (true, 8.0),
            1 => (true, f32::NEG_INFINITY),
            2 => (true, 0.0),
            _ => (false, 0.0),
        };
        a.tokens[i] = Adjust { id, biased, bias, n: (i % 3) as u32 };
    }
    a.len = ids.len() as u32;
    a
}

/// The CPU's token (`fed` the row's fed token), and whether r ± 1e-5 picks the same (r is not at
/// a boundary).
fn reference(logits: &[f32], d: &Draw, fed: u32) -> (u32, bool) {
    let want = sample_cpu(logits, d, fed);
    let near = |r: f32| sample_cpu(logits, &Draw { r: r.clamp(0.0, 0.999_999), ..*d }, fed);
    (want, near(d.r - 1e-5) == want && near(d.r + 1e-5) == want)
}

/// Row i's fed token: any id, sometimes one the draw adjusts.
fn fed_token(i: usize, n: usize) -> u32 {
    ((i * 7919 + 3) % n) as u32
}

#[test]
fn sample_matches_cpu() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let step = StepBuffer::new(&gpu).expect("step buffer");
    let mut rng = Rng::new(29);
    let (mut counted, mut cases) = (0, 0);
    for n in [1usize, 7, 255, 257, 1000, 49_157, 151_936] {
        // Spread 6: the top k within 32 logits of the maximum (the kernel's short list); ties;
        // spread 400: fewer than k that near (its exact path, as ties at large n).
        for (ties, scale) in [(false, 6.0), (true, 1.0), (false, 400.0)] {
            // One step's rows, with a few leading values the kernel must not read.
            let off = 3;
            let mut logits = vec![1e30f32; off];
            for _ in 0..ROWS {
                let row = rng.vec(n);
                // Few levels: many logits equal at the k-th place.
                logits.extend(row.iter().map(|&x| if ties { (x * 4.0).round() } else { x * scale }));
            }
            let lb = buffer(&gpu, "logits", &logits);
            let tb = buffer(&gpu, "tokens", &[UNTOUCHED; 1 + ROWS]);
            let fed: Vec<u32> = (0..ROWS).map(|i| fed_token(i, n)).collect();
            let ib = buffer(&gpu, "ids", &fed);
            let mut kernel =
                Sample::new(&gpu, &step, (&lb, off as u64), n as u32, (&tb, 1), &ib, ROWS as u32)
                    .unwrap_or_else(|e| panic!("n={n}: {e}"));
            let all = draws(&mut rng, n);
            for chunk in all.chunks(ROWS - 1) {
                // Row 1 does not sample; the others take the chunk's draws in turn.
                let mut rows: Vec<Option<&Draw>> = chunk.iter().map(Some).collect();
                rows.insert(1.min(rows.len()), None);
                assert!(kernel.write(&gpu, rows.iter().copied()));
                gpu.queue().write_buffer(&tb, 0, bytemuck::cast_slice(&[UNTOUCHED; 1 + ROWS]));
                gpu.queue().write_buffer(&lb, 0, bytemuck::cast_slice(&logits));
                run_step(&gpu, &step, Step::new(0, rows.len() as u32), |pass| {
                    kernel.encode(pass, ROWS as u32)
                })
                .unwrap_or_else(|e| panic!("n={n}: {e}"));
                let got = read_all_u32(&gpu, &tb);
                assert_eq!(got[0], UNTOUCHED, "n={n}: the word before the tokens was written");
                for (i, d) in rows.iter().enumerate() {
                    let what = format!("n={n} ties={ties} spread {scale} row {i} {d:?}");
                    let Some(d) = d else {
                        assert_eq!(got[1 + i], UNTOUCHED, "{what}: a row without a draw was written");
                        continue;
                    };
                    let row = &logits[off + i * n..off + (i + 1) * n];
                    let (want, clear) = reference(row, d, fed[i]);
                    cases += 1;
                    assert!((got[1 + i] as usize) < n, "{what}: token {} out of the vocabulary", got[1 + i]);
                    if clear {
                        counted += 1;
                        assert_eq!(got[1 + i], want, "{what}");
                    }
                }
                for i in rows.len()..ROWS {
                    assert_eq!(got[1 + i], UNTOUCHED, "n={n}: row {i} past the step was written");
                }
            }
        }
    }
    eprintln!("{counted} of {cases} draws away from a boundary, all equal to the CPU's");
    assert!(counted * 100 >= cases * 95, "only {counted} of {cases} draws could be compared");
}

/// A draw of top-k 1 is the argmax whatever r and temperature, and a row whose logits put all the
/// mass on one token picks it.
#[test]
fn sample_top_k_one_is_the_argmax() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let step = StepBuffer::new(&gpu).expect("step buffer");
    let mut rng = Rng::new(31);
    let n = 32_000;
    let mut logits = rng.vec(n);
    logits[12_345] = 40.0;
    logits.extend(rng.vec(n));
    let lb = buffer(&gpu, "logits", &logits);
    let tb = buffer(&gpu, "tokens", &[UNTOUCHED; 2]);
    let ib = buffer(&gpu, "ids", &[0u32; 2]);
    let mut kernel = Sample::new(&gpu, &step, (&lb, 0), n as u32, (&tb, 0), &ib, 2).expect("sample");
    let greedy = aether_core::gpu::argmax_cpu(&logits[n..]);
    let d0 = Draw { temperature: 1.0, top_k: 40, top_p: 0.95, min_p: 0.05, r: 0.999, ..Default::default() };
    let d1 = Draw { temperature: 5.0, top_k: 1, top_p: 1.0, min_p: 0.0, r: 0.7, ..Default::default() };
    kernel.write(&gpu, [Some(&d0), Some(&d1)]);
    run_step(&gpu, &step, Step::new(0, 2), |pass| kernel.encode(pass, 2)).expect("step");
    assert_eq!(read_all_u32(&gpu, &tb), [12_345, greedy]);
}
