//! `aether`: the native binary. Subcommands: `run`, `serve`, `bench`, `inspect`, `tokenize`,
//! `synth`. Errors print one clear line to stderr and exit 1; nothing a user passes can make it
//! panic.

use std::path::PathBuf;
use std::process::ExitCode;

use aether_core::gguf::Gguf;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use aether::model_file::{self, MappedFile};
use aether::{cmd, server};

#[derive(Parser)]
#[command(name = "aether", version, about = "Run GGUF language models on any GPU (and the CPU).")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a prompt (the generated text alone goes to stdout).
    Run(cmd::run::RunArgs),
    /// Serve an OpenAI-compatible HTTP API.
    Serve(server::ServeArgs),
    /// Measure prefill and decode speed (median of repeated runs).
    Bench(cmd::bench::BenchArgs),
    /// Write a synthetic model: real shapes, random well-formed weights.
    Synth(cmd::synth::SynthArgs),
    /// Print the token ids of a text, space-separated.
    Tokenize(cmd::tokenize::TokenizeArgs),
    /// Print what a GGUF file holds: architecture, sizes, tensor types, tokenizer, template.
    Inspect {
        /// The GGUF file (default: the default model).
        model: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(a) => cmd::run::run(a),
        Command::Tokenize(a) => cmd::tokenize::run(a),
        Command::Synth(a) => cmd::synth::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Serve(a) => tokio::runtime::Runtime::new()?.block_on(server::serve(a)),
        Command::Inspect { model } => {
            let path = model_file::resolve(model.as_deref())?;
            let file = MappedFile::open(&path)?;
            let g = Gguf::parse(file.bytes()).with_context(|| format!("{}", path.display()))?;
            println!("{:<18} {}", "file", path.display());
            print!("{}", cmd::inspect::summary(&g, file.bytes().len() as u64));
            Ok(())
        }
    }
}
