//! The GPU pool of sequences (`GpuBackend::with_seqs` as a `BatchBackend`) against each sequence
//! alone on the GPU, on whatever adapter this machine has (lavapipe in CI):
//! - logits of SmolLM2 along three sequences advanced together in rounds (one decoding while
//!   others prefill chunks, one joining late) against each alone, evaluated in the same chunks:
//!   top-1 equal wherever the solo run's top-2 margin is not a near tie, and the mean KL within
//!   gpu_forward.rs's bound for GPU results (4× the GPU's own noise, the KL between the
//!   subgroup and workgroup-memory reductions of the same solo runs, or 1e-3). They are not
//!   bit-equal: a batch of decode tokens goes through the tiled matmul or the mat-vec over a few
//!   tokens (`MULTI_MAX`) where a lone token takes the one-token mat-vec, which for SmolLM2's
//!   Q4_1 sums in another order (the few-token integer kernels of Q4_K/Q6_K/Q8_0 sum alike). A near tie is a margin below NEAR_TIE or below
//!   twice what the other reduction order alone moves that row's top-2 gap (SmolLM2 is that
//!   sensitive: 0.05–0.46 logit on lavapipe);
//! - greedy text: four prompts of 16 tokens generated together (prefill chunks interleaved with
//!   decode, staggered starts) equal each prompt's text alone. The prompts are ones whose greedy
//!   path has no near tie (top-2 margin ≥ 0.2 on the CPU at every token, checked first): SmolLM2
//!   meets near ties often (" a wise and|old" after "Once upon a time, in a small village by the
//!   sea, there lived", margin 0.045), and there the order of a sum decides;
//! - a batched step (decode tokens of several sequences beside a prompt chunk) creates no GPU
//!   object and records one compute pass; a step of greedy decode tokens fed their own argmaxes
//!   is found already in flight, submitted ahead by the one before;
//! - runs that want a sample (`Want::Sample`, picked by `shaders/sample.wgsl`) get the token
//!   `sample::pick` takes from the logits of the same step, and sampled decoding runs one step
//!   ahead as greedy decoding does, picking the same tokens as without the step ahead.

use aether_core::cpu::Serial;
use aether_core::gguf::Gguf;
use aether_core::gpu::{Gpu, GpuBackend, GpuModel, GpuOptions};
use aether_core::model::Model;
use aether_core::sample::{Draw, Sampler, SamplingParams};
use aether_core::session::{Backend, BatchBackend, CpuBackend, GenerateParams, Output, Run, Want};
use aether_core::tokenizer::Tokenizer;
use aether_tests::batch::{generate_batched, generate_solo};
use aether_tests::default_model_bytes;
use aether_tests::gpu::test_gpu;
use aether_tests::logits::{argmax, margin};

/// Top-2 margins (logits) below which batched and solo top-1 may differ (as in gpu_forward.rs).
const NEAR_TIE: f32 = 0.05;
/// The smallest CPU top-2 margin along the text test's greedy paths.
const TEXT_MARGIN: f32 = 0.2;

/// Prompts whose 16 greedy tokens have no near tie (see the file's header).
const PROMPTS: [&str; 4] = ["1, 2, 3, 4,", "10, 20, 30,", "A, B, C, D,", "Q: What is 2+2?\nA:"];

/// Per sequence, the tokens each round evaluates (cycled), and the round it joins.
const CHUNKS: [(&[usize], usize); 3] = [(&[1], 0), (&[5, 1], 0), (&[3, 2, 1], 2)];

fn softmax(l: &[f32]) -> Vec<f64> {
    let m = l.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let e: Vec<f64> = l.iter().map(|&x| (x as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

fn kl(p: &[f32], q: &[f32]) -> f64 {
    let (p, q) = (softmax(p), softmax(q));
    p.iter().zip(&q).filter(|(a, _)| **a > 0.0).map(|(a, b)| a * (a / b.max(1e-300)).ln()).sum()
}

/// Indices of the largest and second-largest logits.
fn top2(l: &[f32]) -> (usize, usize) {
    let a = argmax(l) as usize;
    let b = (0..l.len()).filter(|&i| i != a).max_by(|&i, &j| l[i].total_cmp(&l[j])).unwrap_or(a);
    (a, b)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The rounds of the logits test: per round, (sequence, first token, tokens) of each run.
fn rounds(lens: &[usize]) -> Vec<Vec<(usize, usize, usize)>> {
    let mut done = vec![0; lens.len()];
    let mut rounds = Vec::new();
    for round in 0.. {
        let mut runs = Vec::new();
        for (i, &(sizes, join)) in CHUNKS.iter().enumerate() {
            if round >= join && done[i] < lens[i] {
                let n = sizes[(round - join) % sizes.len()].min(lens[i] - done[i]);
                runs.push((i, done[i], n));
                done[i] += n;
            }
        }
        if runs.is_empty() {
            return rounds;
        }
        rounds.push(runs);
    }
    unreachable!()
}

/// Logits of every run of every round, the runs of a round evaluated together on a pool (`solo`:
/// each run on a backend of its own sequence instead, in the same chunks).
fn run_rounds(gpu: &Gpu, gm: &GpuModel, seqs: &[Vec<u32>], solo: bool) -> Vec<Vec<Vec<f32>>> {
    let logits = |o: Output<'_>| match o {
        Output::Logits(l) => l.to_vec(),
        other => panic!("asked for logits, got {other:?}"),
    };
    let mut pool = GpuBackend::with_seqs(gpu, gm, 64, seqs.len(), 64).expect("pool");
    let mut alone: Vec<GpuBackend<'_>> =
        seqs.iter().map(|_| GpuBackend::new(gpu, gm, 64, 64).expect("backend")).collect();
    let lens: Vec<usize> = seqs.iter().map(Vec::len).collect();
    let mut out = Vec::new();
    for round in rounds(&lens) {
        let runs: Vec<Run<'_>> = round
            .iter()
            .map(|&(i, t0, n)| Run { seq: i, tokens: &seqs[i][t0..t0 + n], want: Want::Logits })
            .collect();
        if solo {
            let each = runs
                .iter()
                .map(|r| logits(pollster::block_on(alone[r.seq].eval(r.tokens, r.want)).expect("eval")));
            out.push(each.collect());
        } else {
            let passes = pool.passes();
            let o = pollster::block_on(pool.eval_batch(&runs)).expect("eval_batch");
            out.push((0..runs.len()).map(|j| logits(o.get(j))).collect());
            assert_eq!(pool.passes() - passes, 1, "{round:?}: one compute pass for the whole batch");
        }
    }
    out
}

#[test]
fn batched_logits_match_each_sequence_alone() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let bytes = default_model_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    let model = Model::from_gguf(&g).unwrap();
    let tok = Tokenizer::from_metadata(g.metadata()).unwrap();
    let gm = GpuModel::upload(&gpu, &model, &mut |_, _| {}).expect("upload");
    // Each prompt, then a few tokens of another (teacher-forced: any tokens will do).
    let texts =
        ["The capital of France is", "Once upon a time, in a small village by the sea,", "def fibonacci(n):"];
    let seqs: Vec<Vec<u32>> = (0..3)
        .map(|i| {
            let mut t = tok.encode(texts[i], true, false).unwrap();
            t.extend(tok.encode(texts[(i + 1) % 3], false, false).unwrap().iter().take(4));
            t
        })
        .collect();
    let solo = run_rounds(&gpu, &gm, &seqs, true);
    let batched = run_rounds(&gpu, &gm, &seqs, false);
    let wg_gpu = test_gpu(GpuOptions { no_subgroups: true, ..Default::default() }).expect("adapter");
    let wg_gm = GpuModel::upload(&wg_gpu, &model, &mut |_, _| {}).expect("upload");
    // The noise reference: the runs alone, as `solo`, with the other reduction order. Alone,
    // most rows are one-token steps, whose kernels have both variants; a batched step's kernels
    // (the tiled matmul and prefill attention) have one, so two batched runs agree too closely
    // to tell the model's order noise.
    let noise = run_rounds(&wg_gpu, &wg_gm, &seqs, true);

    let (mut kls, mut noises, mut ties) = (Vec::new(), Vec::new(), 0);
    for (r, round) in rounds(&seqs.iter().map(Vec::len).collect::<Vec<_>>()).iter().enumerate() {
        for (j, &(i, t0, n)) in round.iter().enumerate() {
            let (want, got) = (&solo[r][j], &batched[r][j]);
            kls.push(kl(want, got));
            noises.push(kl(want, &noise[r][j]));
            let what = format!(
                "round {r}, sequence {i} after position {} (solo margin {:.4})",
                t0 + n - 1,
                margin(want)
            );
            // The row's own noise: how far the other reduction order alone moves the gap between
            // the solo top two (up to 0.46 logit on lavapipe); a margin within twice that is a tie.
            let (a, b) = top2(want);
            let shift = ((want[a] - want[b]) - (noise[r][j][a] - noise[r][j][b])).abs();
            if margin(want) >= NEAR_TIE.max(2.0 * shift) {
                assert_eq!(argmax(got), argmax(want), "{what}: top-1 differs (gap noise {shift:.4})");
            } else {
                ties += 1;
            }
        }
    }
    let bound = (4.0 * mean(&noises)).max(1e-3);
    eprintln!(
        "batched vs solo: {} logit rows, KL mean {:.2e} (max {:.2e}); solo with subgroups vs workgroup memory {:.2e}; {ties} near ties",
        kls.len(),
        mean(&kls),
        kls.iter().fold(0f64, |a, &b| a.max(b)),
        mean(&noises)
    );
    assert!(kls.len() >= 12, "only {} rows compared", kls.len());
    assert!(mean(&kls) <= bound, "KL(solo ‖ batched) mean {:.2e} over {bound:.2e}", mean(&kls));
}

#[test]
fn greedy_text_is_the_same_alone_and_among_others() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let bytes = default_model_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    let model = Model::from_gguf(&g).unwrap();
    let tok = Tokenizer::from_metadata(g.metadata()).unwrap();
    let prompts: Vec<Vec<u32>> = PROMPTS.iter().map(|p| tok.encode(p, true, false).unwrap()).collect();
    // The precondition: no near tie along the CPU's greedy paths.
    for (p, text) in prompts.iter().zip(PROMPTS) {
        let mut cpu = CpuBackend::new(&model, 64, &Serial);
        let mut next = p.clone();
        for k in 0..16 {
            let Output::Logits(l) = pollster::block_on(cpu.eval(&next, Want::Logits)).expect("eval") else {
                panic!("no logits")
            };
            assert!(
                margin(l) >= TEXT_MARGIN,
                "{text:?}: a near tie at token {k} on the CPU (margin {})",
                margin(l)
            );
            next = vec![argmax(l)];
        }
    }
    let gm = GpuModel::upload(&gpu, &model, &mut |_, _| {}).expect("upload");
    let params = GenerateParams { max_tokens: 16, sampling: SamplingParams::greedy(), ..Default::default() };
    let alone: Vec<String> = prompts
        .iter()
        .map(|p| generate_solo(GpuBackend::new(&gpu, &gm, 64, 64).expect("backend"), &tok, p, &params))
        .collect();
    let mut pool = GpuBackend::with_seqs(&gpu, &gm, 64, 4, 64).expect("pool");
    let together = generate_batched(&mut pool, &tok, &prompts, &params, 4, 1);
    eprintln!("{together:?}");
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        assert_eq!(t, a, "prompt {i} ({:?}) among others vs alone", PROMPTS[i]);
    }
}

/// Live GPU objects of each kind that a step could create.
fn live_objects(gpu: &Gpu) -> [isize; 5] {
    let c = gpu.device().get_internal_counters().hal;
    [
        c.buffers.read(),
        c.bind_groups.read(),
        c.compute_pipelines.read(),
        c.shader_modules.read(),
        c.query_sets.read(),
    ]
}

/// A tiny synthetic llama (Q4_K weights, Q6_K output) as GGUF bytes.
fn tiny_llama(seed: u64) -> Vec<u8> {
    tiny_llama_of(seed, aether_core::quant::GgmlType::Q4K, aether_core::quant::GgmlType::Q6K)
}

fn tiny_llama_of(
    seed: u64,
    weights: aether_core::quant::GgmlType,
    output: aether_core::quant::GgmlType,
) -> Vec<u8> {
    use aether_core::model::Arch;
    use aether_core::synth::{Shape, Spec, Synth};
    let shape = Shape::named("tiny", Arch::Llama).expect("tiny");
    let spec = Spec { arch: Arch::Llama, shape, weights, output, seed };
    Synth::new(&spec).and_then(|s| s.to_bytes()).expect("synth")
}

/// Exact numerics take one token a step, so an evaluation of several sequences' runs is several
/// forward batches: every run's output comes back, each the CPU's for its sequence bit for bit
/// (the host kept only one step's outputs once: the second sequence's read past them).
#[test]
fn exact_numerics_evaluate_several_sequences_one_token_a_step() {
    use aether_core::quant::GgmlType::Q8_0;
    let Some(gpu) = test_gpu(GpuOptions { exact: true, ..Default::default() }) else { return };
    let bytes = tiny_llama_of(5, Q8_0, Q8_0);
    let g = Gguf::parse(&bytes).expect("parse");
    let model = Model::from_gguf(&g).expect("model");
    let gm = GpuModel::upload(&gpu, &model, &mut |_, _| {}).expect("upload");
    let mut b = GpuBackend::with_seqs(&gpu, &gm, 64, 3, 16).expect("pool");
    let mut cpu = CpuBackend::with_seqs(&model, 64, 3, 16, &Serial);
    let (a, c, d) = ([1u32, 2, 3], [4u32], [5u32, 6]);
    for want in [Want::Logits, Want::Argmax] {
        let runs = [
            Run { seq: 0, tokens: &a, want },
            Run { seq: 1, tokens: &c, want },
            Run { seq: 2, tokens: &d, want },
        ];
        let got = pollster::block_on(b.eval_batch(&runs)).expect("GPU");
        let got: Vec<String> = (0..3).map(|j| format!("{:?}", got.get(j))).collect();
        let want_cpu = pollster::block_on(cpu.eval_batch(&runs)).expect("CPU");
        for (j, g) in got.iter().enumerate() {
            assert_eq!(g, &format!("{:?}", want_cpu.get(j)), "{want:?}: run {j}");
        }
    }
}

/// A Q4_K model's batches take its integer kernels (the few-token mat-vec below `TILE_MIN` tokens,
/// the tiles of `matmul_int_q4_k.wgsl` from there), whose sums are the one-token mat-vec's
/// integer sums in another float order: the logits of three sequences advanced together in
/// rounds (steps of 2–9 tokens) match each alone far more closely than through the f32 matmul
/// (`tile_max` 1; lavapipe: KL ≤ 1.6e-12 against 7.8e-5) — and top-1 agrees wherever the margin
/// is not a float-order tie.
#[test]
fn q4_k_batches_match_each_sequence_alone_through_the_tiled_kernel() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let bytes = tiny_llama(5);
    let g = Gguf::parse(&bytes).expect("parse");
    let model = Model::from_gguf(&g).expect("model");
    let gm = GpuModel::upload(&gpu, &model, &mut |_, _| {}).expect("upload");
    let seqs: Vec<Vec<u32>> =
        (0..3u32).map(|i| (0..11).map(|k| (37 * i + 11 * k + 5) % 200).collect()).collect();
    let solo = run_rounds(&gpu, &gm, &seqs, true);
    let batched = run_rounds(&gpu, &gm, &seqs, false);
    let mat_gpu = test_gpu(GpuOptions { tile_max: Some(1), ..Default::default() }).expect("adapter");
    let mat_gm = GpuModel::upload(&mat_gpu, &model, &mut |_, _| {}).expect("upload");
    let through_matmul = run_rounds(&mat_gpu, &mat_gm, &seqs, false);
    let (mut tiled, mut matmul) = (Vec::new(), Vec::new());
    for (r, round) in solo.iter().enumerate() {
        for (j, want) in round.iter().enumerate() {
            tiled.push(kl(want, &batched[r][j]));
            matmul.push(kl(want, &through_matmul[r][j]));
            if margin(want) >= 1e-3 {
                assert_eq!(argmax(&batched[r][j]), argmax(want), "round {r}, run {j}: top-1 differs");
            }
        }
    }
    eprintln!(
        "Q4_K batched vs solo: {} rows, KL mean {:.2e} tiled, {:.2e} through the matmul",
        tiled.len(),
        mean(&tiled),
        mean(&matmul)
    );
    assert!(tiled.len() >= 12, "only {} rows compared", tiled.len());
    assert!(mean(&tiled) <= 1e-8, "tiled KL mean {:.2e}", mean(&tiled));
    assert!(
        mean(&tiled) * 10.0 <= mean(&matmul),
        "tiled {:.2e} vs matmul {:.2e}",
        mean(&tiled),
        mean(&matmul)
    );
}

#[test]
fn a_batched_step_creates_nothing_and_records_one_pass() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let bytes = tiny_llama(3);
    let g = Gguf::parse(&bytes).expect("parse");
    let model = Model::from_gguf(&g).expect("model");
    let gm = GpuModel::upload(&gpu, &model, &mut |_, _| {}).expect("upload");
    let mut b = GpuBackend::with_seqs(&gpu, &gm, 64, 3, 16).expect("pool");
    let step = |b: &mut GpuBackend<'_>, wants: [Want; 3]| {
        let (a, c) = ([1, 2, 3, 4], [7]);
        let runs = [
            Run { seq: 0, tokens: &a[..1], want: wants[0] },
            Run { seq: 1, tokens: &a, want: wants[1] },
            Run { seq: 2, tokens: &c, want: wants[2] },
        ];
        pollster::block_on(b.eval_batch(&runs)).map(|_| ()).expect("step");
    };
    // Warm-up: pipelines and buffers exist from here on (a greedy step of all three, its step
    // ahead discarded by the next call).
    step(&mut b, [Want::Argmax, Want::Logits, Want::Argmax]);
    let toks = [[1u32], [2], [3]];
    let greedy: Vec<Run<'_>> = (0..3).map(|s| Run { seq: s, tokens: &toks[s], want: Want::Argmax }).collect();
    pollster::block_on(b.eval_batch(&greedy)).expect("greedy step");
    step(&mut b, [Want::Argmax, Want::Logits, Want::Argmax]);
    gpu.wait(None, "the first steps").expect("wait");
    let before = live_objects(&gpu);
    assert!(before[0] > 0 && before[1] > 0, "wgpu's counters are off: {before:?}");
    let mut counts = Vec::new();
    let draw = Want::Sample(Draw {
        temperature: 0.8,
        top_k: 40,
        top_p: 0.95,
        min_p: 0.05,
        r: 0.5,
        ..Default::default()
    });
    for wants in [
        [Want::Argmax; 3],
        [Want::Logits, Want::Nothing, Want::Argmax],
        [Want::Nothing; 3],
        [Want::Logits; 3],
        [draw, Want::Argmax, draw],
    ] {
        let p = b.passes();
        step(&mut b, wants);
        counts.push(b.passes() - p);
    }
    // Greedy steps of the three, each fed its own argmaxes: the first submits the next ahead
    // (two passes), the others find theirs in flight and submit one more (one pass each).
    let mut toks = [[9u32], [8], [7]];
    for _ in 0..3 {
        let runs: Vec<Run<'_>> =
            (0..3).map(|s| Run { seq: s, tokens: &toks[s], want: Want::Argmax }).collect();
        let p = b.passes();
        let out = pollster::block_on(b.eval_batch(&runs)).expect("greedy step");
        let next: Vec<u32> = (0..3)
            .map(|j| match out.get(j) {
                Output::Argmax(t) => t,
                other => panic!("expected an argmax, got {other:?}"),
            })
            .collect();
        counts.push(b.passes() - p);
        toks = [[next[0]], [next[1]], [next[2]]];
    }
    gpu.wait(None, "batched steps").expect("wait");
    assert_eq!(live_objects(&gpu), before, "batched steps left GPU objects behind");
    // A step whose runs all want their token picked on the GPU (argmax or sample; a prompt chunk
    // among them) submits the next ahead, which the next call discards: two passes, else one.
    assert_eq!(counts, [2, 1, 1, 1, 2, 2, 1, 1], "compute passes per call");
    // Three warm-up calls, five steps, three greedy steps (the step ahead not counted).
    assert_eq!((b.seq_len(0), b.seq_len(1), b.seq_len(2)), (1 + 1 + 1 + 5 + 3, 4 + 1 + 4 + 20 + 3, 11));
}

/// Sampled decoding runs one step ahead as greedy decoding does: three sequences sampling with
/// their own seeded samplers (one of them greedy) take one pass per step after the first, and
/// pick the very tokens they pick when every step ahead is discarded (each call first forgets
/// nothing, which drops the step in flight).
#[test]
fn sampled_decode_runs_one_step_ahead() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let bytes = tiny_llama(5);
    let g = Gguf::parse(&bytes).expect("parse");
    let model = Model::from_gguf(&g).expect("model");
    let gm = GpuModel::upload(&gpu, &model, &mut |_, _| {}).expect("upload");
    let decode = |ahead: bool| {
        let mut b = GpuBackend::with_seqs(&gpu, &gm, 64, 3, 16).expect("pool");
        let mut samplers: Vec<Sampler> = [0.8, 1.2, 0.0]
            .iter()
            .enumerate()
            .map(|(s, &temperature)| {
                Sampler::new(SamplingParams { temperature, top_k: 40, seed: s as u64, ..Default::default() })
            })
            .collect();
        let mut toks = [[3u32, 4], [5, 6], [7, 8]].map(|t| t.to_vec());
        let (mut picked, mut passes) = (Vec::new(), Vec::new());
        for _ in 0..12 {
            if !ahead {
                for s in 0..3 {
                    b.seq_truncate(s, b.seq_len(s));
                }
            }
            let wants: Vec<Want> = samplers
                .iter()
                .map(|sm| match sm.draw(&[]) {
                    Some(d) => Want::Sample(d),
                    None => Want::Argmax,
                })
                .collect();
            let runs: Vec<Run<'_>> =
                (0..3).map(|s| Run { seq: s, tokens: &toks[s], want: wants[s] }).collect();
            let p = b.passes();
            let out = pollster::block_on(b.eval_batch(&runs)).expect("step");
            let next: Vec<u32> = (0..3)
                .map(|s| match out.get(s) {
                    Output::Sampled(t) => {
                        samplers[s].drew();
                        t
                    }
                    Output::Argmax(t) => t,
                    other => panic!("sequence {s}: {other:?}"),
                })
                .collect();
            passes.push(b.passes() - p);
            picked.push(next.clone());
            toks = [vec![next[0]], vec![next[1]], vec![next[2]]];
        }
        (picked, passes)
    };
    let (with, passes) = decode(true);
    let (without, _) = decode(false);
    assert_eq!(passes[0], 2, "the first step and the one ahead");
    assert!(passes[1..].iter().all(|&p| p == 1), "each later step found in flight: {passes:?}");
    assert_eq!(with, without, "tokens with and without the step ahead");
}

/// Logit bias and penalties are drawn on the GPU too: a greedy sequence with repetition
/// penalties and one with a logit bias (temperature 0, so each pick is the argmax of the adjusted
/// logits: `Sampler::draw`'s greedy draw, top-k 1) pick, step after step, what their samplers
/// pick from the logits of the same
/// steps, with every step after the first run ahead — the penalised one's window counting the
/// token it was fed on the GPU — and found in flight (one pass). The adjustments change the
/// text: plain greedy decoding differs.
#[test]
fn adjusted_draws_pick_what_their_samplers_pick() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let bytes = tiny_llama(7);
    let g = Gguf::parse(&bytes).expect("parse");
    let model = Model::from_gguf(&g).expect("model");
    let gm = GpuModel::upload(&gpu, &model, &mut |_, _| {}).expect("upload");
    let params = [
        SamplingParams {
            temperature: 0.0,
            // Negative penalties: the tiny model seldom repeats a token, so favour repeats instead.
            repeat_penalty: 0.5,
            presence_penalty: -1.0,
            frequency_penalty: -0.5,
            penalty_last_n: 8,
            ..Default::default()
        },
        SamplingParams {
            temperature: 0.0,
            logit_bias: vec![(9, 4.0), (11, 3.5), (13, -2.0)],
            ..Default::default()
        },
    ];
    // `draw`: the GPU picks with the sampler's draw; else the logits come back and the sampler
    // picks. Also the compute passes of each step.
    let decode = |draw: bool, params: &[SamplingParams]| {
        let mut b = GpuBackend::with_seqs(&gpu, &gm, 64, 2, 16).expect("pool");
        let mut samplers: Vec<Sampler> = params.iter().map(|p| Sampler::new(p.clone())).collect();
        let mut history: Vec<Vec<u32>> = vec![vec![3, 4], vec![5, 6]];
        let mut fed: Vec<Vec<u32>> = history.clone();
        let mut passes = Vec::new();
        for _ in 0..12 {
            let wants: Vec<Want> = (0..2)
                .map(|s| match (draw, samplers[s].draw(&history[s])) {
                    (true, Some(d)) => Want::Sample(d),
                    (true, None) => panic!("sequence {s} has no draw"),
                    (false, _) => Want::Logits,
                })
                .collect();
            let runs: Vec<Run<'_>> =
                (0..2).map(|s| Run { seq: s, tokens: &fed[s], want: wants[s] }).collect();
            let p = b.passes();
            let out = pollster::block_on(b.eval_batch(&runs)).expect("step");
            let next: Vec<u32> = (0..2)
                .map(|s| match out.get(s) {
                    Output::Sampled(t) => {
                        samplers[s].drew();
                        t
                    }
                    Output::Logits(l) => samplers[s].sample(l, &history[s]),
                    other => panic!("sequence {s}: {other:?}"),
                })
                .collect();
            passes.push(b.passes() - p);
            for s in 0..2 {
                history[s].push(next[s]);
                fed[s] = vec![next[s]];
            }
        }
        (history, passes)
    };
    let (drawn, passes) = decode(true, &params);
    let (sampled, _) = decode(false, &params);
    assert_eq!(drawn, sampled, "tokens drawn on the GPU and sampled from the logits");
    // Two passes for the first step (it and the one ahead), then each found in flight.
    assert!(passes[0] == 2 && passes[1..].iter().all(|&p| p == 1), "{passes:?}");
    let plain: Vec<SamplingParams> =
        params.iter().map(|p| SamplingParams { seed: p.seed, ..SamplingParams::greedy() }).collect();
    let (greedy, _) = decode(true, &plain);
    for s in 0..2 {
        assert_ne!(greedy[s], sampled[s], "sequence {s}: the adjustments changed nothing");
    }
}

/// Runs that want a sample get the token their draw picks from the logits the same step gives
/// (`sample::pick`), beside runs that want the argmax, the logits or nothing, over several steps
/// of a pool: each step is evaluated for the logits, forgotten, and evaluated again with the
/// draws. Only draws whose r is not within 1e-5 of a boundary of the cumulative mass count (the
/// GPU's exp is not the CPU's), and nearly all must.
#[test]
fn sampled_runs_pick_what_their_logits_pick() {
    use aether_core::sample::pick;
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let bytes = default_model_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    let model = Model::from_gguf(&g).unwrap();
    let tok = Tokenizer::from_metadata(g.metadata()).unwrap();
    let gm = GpuModel::upload(&gpu, &model, &mut |_, _| {}).expect("upload");
    let mut b = GpuBackend::with_seqs(&gpu, &gm, 64, 3, 64).expect("pool");
    let prompts: Vec<Vec<u32>> = PROMPTS[..3].iter().map(|p| tok.encode(p, true, false).unwrap()).collect();
    let draws = [
        Draw { temperature: 0.8, top_k: 40, top_p: 0.95, min_p: 0.05, r: 0.0, ..Default::default() },
        Draw { temperature: 1.3, top_k: 256, top_p: 1.0, min_p: 0.0, r: 0.0, ..Default::default() },
        Draw { temperature: 0.5, top_k: 8, top_p: 0.6, min_p: 0.0, r: 0.0, ..Default::default() },
    ];
    let mut r = 0.137f32;
    let mut next: Vec<Vec<u32>> = prompts.clone();
    let (mut counted, mut cases) = (0, 0);
    for step in 0..6 {
        // Sequence 1 wants the argmax on odd steps; the others sample.
        let wants: Vec<Want> = (0..3)
            .map(|s| {
                r = (r * 7.31 + 0.29).fract();
                if s == 1 && step % 2 == 1 { Want::Argmax } else { Want::Sample(Draw { r, ..draws[s] }) }
            })
            .collect();
        let lens: Vec<usize> = (0..3).map(|s| b.seq_len(s)).collect();
        let logits: Vec<Vec<f32>> = {
            let runs: Vec<Run<'_>> =
                (0..3).map(|s| Run { seq: s, tokens: &next[s], want: Want::Logits }).collect();
            let out = pollster::block_on(b.eval_batch(&runs)).expect("logits step");
            (0..3)
                .map(|s| match out.get(s) {
                    Output::Logits(l) => l.to_vec(),
                    other => panic!("expected logits, got {other:?}"),
                })
                .collect()
        };
        for (s, &n) in lens.iter().enumerate() {
            b.seq_truncate(s, n);
        }
        let runs: Vec<Run<'_>> = (0..3).map(|s| Run { seq: s, tokens: &next[s], want: wants[s] }).collect();
        let out = pollster::block_on(b.eval_batch(&runs)).expect("sampled step");
        let mut picked = Vec::new();
        for s in 0..3 {
            let got = match (out.get(s), wants[s]) {
                (Output::Sampled(t), Want::Sample(d)) => {
                    let want = pick(&logits[s], &d);
                    let near = |dr: f32| pick(&logits[s], &Draw { r: (d.r + dr).clamp(0.0, 0.999_999), ..d });
                    cases += 1;
                    if near(-1e-5) == want && near(1e-5) == want {
                        counted += 1;
                        assert_eq!(t, want, "step {step} sequence {s}: {d:?}");
                    }
                    t
                }
                (Output::Argmax(t), Want::Argmax) => {
                    assert_eq!(t, argmax(&logits[s]), "step {step} sequence {s}: argmax");
                    t
                }
                (other, want) => panic!("step {step} sequence {s}: asked {want:?}, got {other:?}"),
            };
            picked.push(vec![got]);
        }
        next = picked;
    }
    eprintln!("{counted} of {cases} draws away from a boundary, all equal to pick's");
    assert!(counted * 10 >= cases * 9, "only {counted} of {cases} draws could be compared");
}
