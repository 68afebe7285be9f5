//! `aether bench`: prefill and decode speed, as llama-bench measures them (pp: a prompt of N
//! tokens in one go; tg: N tokens generated one at a time), median of repeated runs. The figures
//! belong in docs/PERF.md with the device, the command and the date.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aether_core::cpu::{Forward, State};
use aether_core::gguf::Gguf;
use aether_core::model::Model;
use aether_core::quant::simd;
use aether_core::sample::Rng;
use anyhow::{Context, Result};

use crate::exec::Pool;
use crate::model_file::{self, MappedFile};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// The GGUF model (default: the default model).
    #[arg(short, long)]
    model: Option<PathBuf>,
    /// Prompt length for the prefill test (0 skips it).
    #[arg(short = 'p', long, default_value_t = 64)]
    n_prompt: usize,
    /// Tokens generated in the decode test (0 skips it).
    #[arg(short = 'n', long, default_value_t = 32)]
    n_gen: usize,
    /// Repetitions; the median is reported.
    #[arg(short, long, default_value_t = 3)]
    reps: usize,
    /// CPU threads (default: one per core).
    #[arg(short, long, default_value_t = 0)]
    threads: usize,
    /// CPU kernel set: `scalar` (the reference) or one this CPU supports, e.g. `avx2` (default:
    /// the fastest). Results are identical; only the speed differs.
    #[arg(long)]
    isa: Option<String>,
}

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
    let pool = Pool::new(a.threads)?;
    let threads =
        if a.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { a.threads };
    let forward = Forward { model: &model };
    let n_ctx = (a.n_prompt + a.n_gen).max(1);
    let mut state = State::new(&model.config, n_ctx, a.n_prompt.clamp(1, 512));
    let mut rng = Rng::new(42);
    let vocab = model.config.n_vocab as u64;
    let mut random_tokens =
        |n: usize| -> Vec<u32> { (0..n).map(|_| (rng.next_u64() % vocab) as u32).collect() };

    println!("model: {} ({})", path.display(), model.config.arch.name());
    println!("backend: cpu, {threads} threads, {} kernels", simd::selected().name());
    println!("| test | tok/s (median of {}) | ms/token |", a.reps.max(1));
    println!("|---|---|---|");
    // One untimed warm-up of each test pages the weights in.
    if a.n_prompt > 0 {
        let prompt = random_tokens(a.n_prompt);
        let mut times = Vec::new();
        for rep in 0..=a.reps.max(1) {
            state.truncate(0);
            let t = Instant::now();
            forward.eval(&mut state, &prompt, &pool)?;
            if rep > 0 {
                times.push(t.elapsed());
            }
        }
        report(&format!("pp{}", a.n_prompt), a.n_prompt, &mut times);
    }
    if a.n_gen > 0 {
        let tokens = random_tokens(a.n_gen);
        let mut times = Vec::new();
        for rep in 0..=a.reps.max(1) {
            state.truncate(0);
            let t = Instant::now();
            for &tok in &tokens {
                forward.eval(&mut state, &[tok], &pool)?;
            }
            if rep > 0 {
                times.push(t.elapsed());
            }
        }
        report(&format!("tg{}", a.n_gen), a.n_gen, &mut times);
    }
    Ok(())
}

fn report(name: &str, n: usize, times: &mut [Duration]) {
    times.sort();
    let median = times[times.len() / 2].as_secs_f64();
    println!("| {name} | {:.1} | {:.2} |", n as f64 / median, median * 1e3 / n as f64);
}
