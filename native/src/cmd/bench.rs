//! `aether bench`: prefill and decode speed as llama-bench measures them (pp: a prompt of N
//! tokens in one go; tg: N tokens generated one at a time), median of repeated runs, on the GPU
//! or (`--cpu`, or no adapter) the CPU. Both go through the session's `Backend`, as `aether run`
//! does: pp is one `eval(prompt, Want::Argmax)`, so its time includes reading the answer back;
//! tg is one `eval(&[token], Want::Argmax)` per token, a greedy decode. `--concurrent 1,4,16`
//! adds greedy decode with that many sequences together, as the server's pool runs them: one
//! `eval_batch` per step with one token of each sequence, reported as aggregate tokens/s; each
//! sequence first holds its own random prompt of `-p` tokens (untimed), as llama-batched-bench's
//! `-npp`, so attention reads the same context lengths.
//!
//! On the GPU it also measures the adapter's read bandwidth with the streaming-read kernel and
//! reports decode's share of the roofline: (weight bytes a decode step reads × tokens/s) /
//! bandwidth. The figures belong in docs/PERF.md with the device, the command and the date.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aether_core::gguf::Gguf;
use aether_core::gpu::{Gpu, ProfileRow, StreamRead};
use aether_core::model::Model;
use aether_core::quant::simd;
use aether_core::sample::{Rng, Sampler, SamplingParams, pick};
use aether_core::session::{AnyBackend, Backend, BatchBackend, Output, Run, Want};
use anyhow::{Context, Result, bail};
use pollster::block_on;

use crate::backend::{Device, DeviceArgs};
use crate::model_file::{self, MappedFile};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// The GGUF model (default: the default model).
    #[arg(short, long)]
    model: Option<PathBuf>,
    /// Prompt length for the prefill test (0 skips it).
    #[arg(short = 'p', long, default_value_t = 512)]
    n_prompt: usize,
    /// Tokens generated in the decode test (0 skips it).
    #[arg(short = 'n', long, default_value_t = 128)]
    n_gen: usize,
    /// Repetitions; the median is reported.
    #[arg(short, long, default_value_t = 3)]
    reps: usize,
    #[command(flatten)]
    device: DeviceArgs,
    /// CPU kernel set: `scalar` (the reference) or one this CPU supports, e.g. `avx2` (default:
    /// the fastest). Results are identical; only the speed differs.
    #[arg(long)]
    isa: Option<String>,
    /// GPU only: after the tests, the GPU time of one decode step per kernel family, from
    /// timestamps between its dispatches (they serialize the step a little); with --concurrent,
    /// also of one decode step of each row's sequences.
    #[arg(long)]
    profile: bool,
    /// With --profile: the step's token count (more than 1: a batch's kernels, after one token;
    /// at most -p).
    #[arg(long, default_value_t = 1)]
    profile_tokens: usize,
    /// Also decode with this many sequences at once, one batched step for all (a list:
    /// `--concurrent 1,4,16`); each row gives the aggregate tokens/s of `-n` steps after a
    /// prompt of `-p` tokens in each sequence.
    #[arg(long, value_delimiter = ',')]
    concurrent: Vec<usize>,
    /// Also decode with sampling (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05), twice: the
    /// backend picking each token with the sampler's draw (on the GPU: one id read back), and the
    /// logits read back for the CPU to pick from; then both again with a repeat penalty of 1.1
    /// and a presence penalty of 0.1 over the last 64 tokens, and with those penalties at
    /// temperature 0 (greedy).
    #[arg(long)]
    sampled: bool,
}

/// Prompt tokens per GPU submission, as in `aether run`.
const GPU_BATCH: usize = 512;

/// The bandwidth probe reads this much (or the adapter's binding limit, if smaller)...
const PROBE_BYTES: u64 = 1 << 30;
/// ...with this many workgroups of 256 (a grid-stride loop: enough to fill a large GPU).
const PROBE_GROUPS: u32 = 4096;
/// Timed probe runs; the median counts.
const PROBE_RUNS: usize = 10;

pub fn run(a: BenchArgs) -> Result<()> {
    let path = model_file::resolve(a.model.as_deref())?;
    let file = MappedFile::open(&path)?;
    file.page_in();
    let g = Gguf::parse(file.bytes()).with_context(|| path.display().to_string())?;
    let model = Model::from_gguf(&g).with_context(|| path.display().to_string())?;
    if let Some(name) = &a.isa {
        let isa = simd::Isa::by_name(name).with_context(|| {
            let have: Vec<_> = simd::Isa::available().iter().map(|i| i.name()).collect();
            format!("kernel set `{name}` is not available on this CPU (available: {})", have.join(", "))
        })?;
        simd::select(isa);
    }
    let backends = Device::open(&a.device)?.load(&model)?;
    let n_ctx = (a.n_prompt + a.n_gen).max(1);
    let mut backend = backends.backend(&model, n_ctx, a.n_prompt.clamp(1, GPU_BATCH))?;
    let mut rng = Rng::new(42);
    let vocab = model.config.n_vocab as u64;
    let mut random_tokens =
        |n: usize| -> Vec<u32> { (0..n).map(|_| (rng.next_u64() % vocab) as u32).collect() };

    println!("model: {} ({})", path.display(), model.config.arch.name());
    println!("backend: {}", backends.describe());
    // Bytes a decode step reads, and what this adapter can read per second.
    let roofline = match backends.gpu() {
        Some((gpu, weights)) => {
            let bandwidth = read_bandwidth(gpu)?;
            let per_token = weights.bytes_per_token();
            println!("bandwidth: {:.1} GB/s", bandwidth / 1e9);
            println!("weights per token: {:.1} MB", per_token as f64 / 1e6);
            Some((per_token as f64, bandwidth))
        }
        None => None,
    };
    let reps = a.reps.max(1);
    println!();
    println!("| test | tok/s (median of {reps}) | ms/token | roofline |");
    println!("|---|---|---|---|");
    // One untimed warm-up of each test pages the weights in and builds what is built lazily.
    if a.n_prompt > 0 {
        let prompt = random_tokens(a.n_prompt);
        let times = timed(reps, || {
            backend.truncate(0);
            block_on(backend.eval(&prompt, Want::Argmax))?;
            Ok(())
        })?;
        report(&format!("pp{}", a.n_prompt), a.n_prompt, times, None);
    }
    if a.n_gen > 0 {
        let tokens = random_tokens(a.n_gen);
        let times = timed(reps, || decode(&mut backend, &tokens))?;
        report(&format!("tg{}", a.n_gen), a.n_gen, times, roofline);
        if backends.gpu().is_some() {
            // The same steps queued without waiting for each: the GPU starts a step while the CPU
            // records the next, as a decode loop that keeps the sampled token on the GPU would.
            let mut record = Vec::new();
            let times = timed(reps, || {
                record.push(queued(&mut backend, &tokens)?);
                Ok(())
            })?;
            report(&format!("tg{} queued", a.n_gen), a.n_gen, times, roofline);
            // The CPU's share: recording and submitting the queued steps, before the final wait.
            // Where it approaches the queued time per token, the CPU bounds decode, not the GPU.
            record.sort();
            let per_step = record[record.len() / 2].as_secs_f64() * 1e3 / (a.n_gen.max(2) - 1) as f64;
            println!("| record (CPU, per step) | | {per_step:.2} | |");
        }
        if a.sampled {
            let plain = SamplingParams { seed: 42, ..Default::default() };
            let penalised = SamplingParams { repeat_penalty: 1.1, presence_penalty: 0.1, ..plain.clone() };
            // Greedy with penalties: the argmax of the adjusted logits, picked in the backend too.
            let greedy = SamplingParams { temperature: 0.0, ..penalised.clone() };
            for (params, chain) in
                [(&plain, ""), (&penalised, " with penalties"), (&greedy, " greedy with penalties")]
            {
                for (on_device, what) in [(true, "draw in the backend"), (false, "logits to the CPU")] {
                    let times = timed(reps, || sampled(&mut backend, &tokens, params, on_device))?;
                    report(&format!("tg{} sampled{chain}, {what}", a.n_gen), a.n_gen, times, roofline);
                }
            }
        }
    }
    for &n_seq in &a.concurrent {
        if n_seq == 0 || a.n_gen == 0 {
            continue;
        }
        let chunk = a.n_prompt.clamp(1, GPU_BATCH).max(n_seq);
        let mut pool = backends.pool(&model, a.n_prompt + a.n_gen, n_seq, chunk)?;
        let prompts: Vec<Vec<u32>> = (0..n_seq).map(|_| random_tokens(a.n_prompt + 1)).collect();
        let times = timed_after(
            reps,
            &mut pool,
            |pool| prefill_all(pool, &prompts, chunk),
            |pool| together(pool, &prompts, a.n_gen),
        )?;
        // Weights are read once per step, whatever the sequences: the roofline counts steps.
        let per_step = roofline.map(|(bytes, bw)| (bytes / n_seq as f64, bw));
        report(&format!("tg{} ×{n_seq} (aggregate)", a.n_gen), a.n_gen * n_seq, times, per_step);
        if a.profile {
            // One decode step of all the sequences, each after its prompt: the step the
            // aggregate row times.
            prefill_all(&mut pool, &prompts, chunk)?;
            let last: Vec<[u32; 1]> = prompts.iter().map(|p| [p[p.len() - 1]]).collect();
            let runs: Vec<(usize, &[u32])> = last.iter().enumerate().map(|(s, t)| (s, &t[..])).collect();
            let AnyBackend::Gpu(gpu) = &mut pool else { anyhow::bail!("--profile needs the GPU backend") };
            block_on(gpu.profile_runs(&runs))?;
            prefill_all(&mut pool, &prompts, chunk)?;
            let AnyBackend::Gpu(gpu) = &mut pool else { unreachable!("checked above") };
            let kinds = block_on(gpu.profile_runs(&runs))?;
            print_profile(
                &format!("one decode step of {n_seq} sequences at position {}", a.n_prompt + 1),
                &kinds,
            );
        }
    }
    if a.profile {
        // A step of several tokens (the kernels of a batch of that size) follows one token.
        let n_past = if a.profile_tokens > 1 { 1 } else { a.n_prompt.max(1) };
        profile(&mut backend, n_past, a.profile_tokens.max(1))?;
    }
    Ok(())
}

/// Empties every sequence of the pool and evaluates its prompt (all but the last token of
/// `prompts[s]`), one sequence at a time in chunks of `chunk` tokens: the untimed part of a
/// concurrent run, as llama-batched-bench fills its sequences before timing their decode. Waits
/// for the GPU to finish them: steps that want no output return once submitted, and the timed
/// decode would otherwise start behind seconds of queued prefill.
fn prefill_all(pool: &mut AnyBackend<'_>, prompts: &[Vec<u32>], chunk: usize) -> Result<()> {
    for (s, p) in prompts.iter().enumerate() {
        pool.seq_truncate(s, 0);
        for part in p[..p.len() - 1].chunks(chunk) {
            block_on(pool.eval_batch(&[Run { seq: s, tokens: part, want: Want::Nothing }]))?;
        }
    }
    if let AnyBackend::Gpu(gpu) = pool {
        gpu.sync()?;
    }
    Ok(())
}

/// Greedy decoding of the pool's sequences together, `n_gen` steps of one `eval_batch` each:
/// sequence s starts from the last token of `prompts[s]`, then each step's argmaxes are fed
/// back, as the server's pool decodes greedy requests.
fn together(pool: &mut AnyBackend<'_>, prompts: &[Vec<u32>], n_gen: usize) -> Result<()> {
    let mut next: Vec<u32> = prompts.iter().map(|p| p[p.len() - 1]).collect();
    for _ in 0..n_gen {
        let tokens: Vec<[u32; 1]> = next.iter().map(|&t| [t]).collect();
        let runs: Vec<Run<'_>> =
            tokens.iter().enumerate().map(|(s, t)| Run { seq: s, tokens: t, want: Want::Argmax }).collect();
        let out = block_on(pool.eval_batch(&runs))?;
        for (s, t) in next.iter_mut().enumerate() {
            *t = match out.get(s) {
                Output::Argmax(id) => id,
                _ => bail!("a greedy step returned no argmax"),
            };
        }
    }
    Ok(())
}

/// Prints the GPU time of one step of `n_tokens` after `n_past` tokens, per kernel family.
fn profile(backend: &mut AnyBackend<'_>, n_past: usize, n_tokens: usize) -> Result<()> {
    let AnyBackend::Gpu(gpu) = backend else { anyhow::bail!("--profile needs the GPU backend") };
    gpu.truncate(0);
    block_on(gpu.eval(&vec![1; n_past], Want::Nothing))?;
    // The first profiled step builds nothing new, but warms the timestamp path.
    block_on(gpu.profile_step(&vec![2; n_tokens]))?;
    gpu.truncate(n_past);
    let kinds = block_on(gpu.profile_step(&vec![3; n_tokens]))?;
    print_profile(&format!("one step of {n_tokens} token(s) at position {}", n_past + 1), &kinds);
    Ok(())
}

/// A profile's tables: GPU time per kernel family and its share of the step, then per row of the
/// profile (a projection by its tensor's role and kernel) with its op count.
fn print_profile(what: &str, rows: &[ProfileRow]) {
    let total: f64 = rows.iter().map(|r| r.ns).sum();
    let mut kinds: Vec<(&str, f64)> = Vec::new();
    for r in rows {
        match kinds.iter_mut().find(|(k, _)| *k == r.kind) {
            Some((_, ns)) => *ns += r.ns,
            None => kinds.push((r.kind, r.ns)),
        }
    }
    println!();
    println!("GPU time of {what}: {:.3} ms", total / 1e6);
    println!("| kernels | µs | share |");
    println!("|---|---|---|");
    for (kind, ns) in &kinds {
        println!("| {kind} | {:.1} | {:.1}% |", ns / 1e3, 100.0 * ns / total);
    }
    println!();
    println!("| op | ops | µs | µs each |");
    println!("|---|---|---|---|");
    for r in rows {
        println!("| {} | {} | {:.1} | {:.1} |", r.label, r.count, r.ns / 1e3, r.ns / 1e3 / r.count as f64);
    }
}

/// Feeds `tokens` one at a time from an empty context, waiting only for the last; returns the
/// time taken to record and submit all but the last (the CPU's part).
fn queued(backend: &mut AnyBackend<'_>, tokens: &[u32]) -> Result<Duration> {
    backend.truncate(0);
    let (last, rest) = tokens.split_last().context("no tokens")?;
    let t0 = Instant::now();
    for &tok in rest {
        block_on(backend.eval(&[tok], Want::Nothing))?;
    }
    let record = t0.elapsed();
    block_on(backend.eval(&[*last], Want::Argmax))?;
    Ok(record)
}

/// Greedy decoding from an empty context: the first of `tokens`, then each step's argmax fed
/// back, `tokens.len()` steps in all — what `aether run` does at temperature 0.
fn decode(backend: &mut AnyBackend<'_>, tokens: &[u32]) -> Result<()> {
    backend.truncate(0);
    let mut tok = *tokens.first().context("no tokens")?;
    for _ in tokens {
        tok = match block_on(backend.eval(&[tok], Want::Argmax))? {
            Output::Argmax(t) => t,
            _ => bail!("a greedy step returned no argmax"),
        };
    }
    Ok(())
}

/// One untimed run of `f`, then `reps` timed ones.
/// Sampled decoding from an empty context, `tokens.len()` steps from the first of `tokens`, with
/// the chain `params` (seeded): each step's token picked by the backend with the sampler's draw
/// (`on_device`: `Want::Sample`), or from the logits it returns (`Want::Logits`, what every
/// sampled step did before the GPU had a sampler).
fn sampled(
    backend: &mut AnyBackend<'_>,
    tokens: &[u32],
    params: &SamplingParams,
    on_device: bool,
) -> Result<()> {
    backend.truncate(0);
    let mut sampler = Sampler::new(params.clone());
    let mut tok = *tokens.first().context("no tokens")?;
    let mut history = Vec::with_capacity(tokens.len());
    for _ in tokens {
        history.push(tok);
        let draw = sampler.draw(&history).context("the chain has a draw")?;
        tok = if on_device {
            match block_on(backend.eval(&[tok], Want::Sample(draw)))? {
                Output::Sampled(t) => t,
                _ => bail!("a sampled step returned no token"),
            }
        } else {
            match block_on(backend.eval(&[tok], Want::Logits))? {
                Output::Logits(l) => pick(l, &draw),
                _ => bail!("a step returned no logits"),
            }
        };
        sampler.drew();
    }
    Ok(())
}

fn timed(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<Duration>> {
    f()?;
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f()?;
            Ok(t.elapsed())
        })
        .collect()
}

/// [`timed`] on `state` with an untimed `setup` of it before each run (the warm-up run
/// included).
fn timed_after<T>(
    reps: usize,
    state: &mut T,
    mut setup: impl FnMut(&mut T) -> Result<()>,
    mut f: impl FnMut(&mut T) -> Result<()>,
) -> Result<Vec<Duration>> {
    setup(state)?;
    f(state)?;
    (0..reps)
        .map(|_| {
            setup(state)?;
            let t = Instant::now();
            f(state)?;
            Ok(t.elapsed())
        })
        .collect()
}

fn median(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64()
}

/// A table row; `roofline` = (weight bytes per token, bandwidth in bytes/s) for a decode test.
fn report(name: &str, n: usize, times: Vec<Duration>, roofline: Option<(f64, f64)>) {
    let secs = median(times);
    let tok_s = n as f64 / secs;
    let share = roofline.map_or("—".into(), |(bytes, bw)| format!("{:.1}%", 100.0 * bytes * tok_s / bw));
    println!("| {name} | {tok_s:.1} | {:.2} | {share} |", secs * 1e3 / n as f64);
}

/// The adapter's read bandwidth in bytes/s: the median of [`PROBE_RUNS`] reads of one buffer,
/// each its own submission waited on, after one untimed read.
fn read_bandwidth(gpu: &Gpu) -> Result<f64> {
    let probe = StreamRead::new(gpu, PROBE_BYTES, PROBE_GROUPS, |i| i as u32)?;
    gpu.wait(None, "filling the bandwidth probe")?;
    let times = timed(PROBE_RUNS, || {
        let mut encoder = gpu.device().create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            probe.encode(&mut pass);
        }
        let done = gpu.submit(encoder, "the bandwidth probe")?;
        gpu.wait(Some(done), "the bandwidth probe")?;
        Ok(())
    })?;
    Ok(probe.bytes() as f64 / median(times))
}
