//! `aether tokenize`: the token ids of a text, space-separated on one line.

use std::path::PathBuf;

use aether_core::gguf::Gguf;
use aether_core::tokenizer::Tokenizer;
use anyhow::{Context, Result};

use crate::model_file::{self, MappedFile};

#[derive(clap::Args)]
pub struct TokenizeArgs {
    /// The GGUF file (a vocab-only file is enough; default: the default model).
    #[arg(short, long)]
    model: Option<PathBuf>,
    /// The text (or use --file).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    text: Option<String>,
    /// Read the text from a file; the whole file is one text.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Leave out the BOS (and EOS) tokens the model would add.
    #[arg(long)]
    no_bos: bool,
    /// Parse special tokens written in the text (`<|im_start|>` …) as single tokens.
    #[arg(long)]
    special: bool,
}

pub fn run(a: TokenizeArgs) -> Result<()> {
    let path = model_file::resolve(a.model.as_deref())?;
    let file = MappedFile::open(&path)?;
    let g = Gguf::parse(file.bytes()).with_context(|| path.display().to_string())?;
    let tokenizer = Tokenizer::from_metadata(g.metadata()).with_context(|| path.display().to_string())?;
    // clap makes text and --file exclusive and requires one of them.
    let text = match a.file {
        Some(f) => {
            let bytes = std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?;
            String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", f.display()))?
        }
        None => a.text.unwrap_or_default(),
    };
    let ids = tokenizer.encode(&text, !a.no_bos, a.special)?;
    let line: Vec<String> = ids.iter().map(u32::to_string).collect();
    println!("{}", line.join(" "));
    Ok(())
}
