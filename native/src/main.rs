//! `aether`: the native binary. Subcommands: `inspect`, `tokenize` (more as the engine grows).
//! Errors print one clear line to stderr and exit 1; nothing a user passes can make it panic.

mod cmd;
mod model_file;

use std::path::PathBuf;
use std::process::ExitCode;

use aether_core::gguf::Gguf;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use model_file::MappedFile;

#[derive(Parser)]
#[command(name = "aether", version, about = "Run GGUF language models on any GPU (and the CPU).")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
