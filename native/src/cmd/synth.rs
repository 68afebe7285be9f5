//! `aether synth`: synthetic GGUF models with the real shapes and random, well-formed weights,
//! for architecture tests and GPU benchmarks where no real model of that size can be fetched.
//! The model itself is made by `aether_core::synth` (so tests can regenerate the same bytes);
//! this command parses names, streams the file to disk and shows progress.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use aether_core::model::Arch;
use aether_core::quant::GgmlType;
use aether_core::synth::{SHAPES, Shape, Spec, Synth};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Args)]
pub struct SynthArgs {
    /// Where to write the model.
    out: PathBuf,
    /// Architecture: llama, qwen2, qwen3, phi3, gemma3.
    #[arg(long, default_value = "llama")]
    arch: String,
    /// Shape: tiny, smollm2-135m, llama3-1b, llama3-8b.
    #[arg(long, default_value = "tiny")]
    shape: String,
    /// Type of the weight matrices: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k.
    #[arg(long, default_value = "q4_k")]
    quant: String,
    /// Type of the output matrix (default: q6_k for k-quants, else as --quant).
    #[arg(long)]
    output_quant: Option<String>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn parse_type(name: &str) -> Result<GgmlType> {
    GgmlType::ALL
        .into_iter()
        .find(|t| t.name().eq_ignore_ascii_case(name))
        .with_context(|| format!("unknown tensor type `{name}`"))
}

pub fn run(a: SynthArgs) -> Result<()> {
    let arch = Arch::from_name(&a.arch)?;
    let shape = Shape::named(&a.shape, arch)
        .with_context(|| format!("unknown shape `{}` ({})", a.shape, SHAPES.join(", ")))?;
    let weights = parse_type(&a.quant)?;
    let output = match &a.output_quant {
        Some(q) => parse_type(q)?,
        None => Spec::default_output(weights),
    };
    let synth = Synth::new(&Spec { arch, shape, weights, output, seed: a.seed })?;

    let total = synth.tensor_bytes();
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("writing {}", a.out.display()));
    let file = File::create(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut out = BufWriter::with_capacity(1 << 22, file);
    synth.write(&mut out, |n| bar.inc(n))?;
    std::io::Write::flush(&mut out)?;
    bar.finish_and_clear();
    eprintln!(
        "wrote {} ({} tensors, {:.2} GB of tensor data)",
        a.out.display(),
        synth.n_tensors(),
        total as f64 / 1e9
    );
    Ok(())
}
