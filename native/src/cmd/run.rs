//! `aether run`: generate from a prompt on the command line. Only the generated text goes to
//! stdout; load progress and the closing speed line go to stderr.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use aether_core::chat_template::{ChatTemplate, DateTime, Message, RenderOptions};
use aether_core::gguf::Gguf;
use aether_core::model::Model;
use aether_core::sample::SamplingParams;
use aether_core::session::{GenerateParams, Session};
use aether_core::tokenizer::Tokenizer;
use anyhow::{Context, Result};

use crate::exec::Pool;
use crate::model_file::{self, MappedFile};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The GGUF model (default: the default model).
    #[arg(short, long)]
    model: Option<PathBuf>,
    /// The prompt.
    #[arg(short, long)]
    prompt: String,
    /// Wrap the prompt as a user message in the model's chat template.
    #[arg(long)]
    chat: bool,
    /// System message for --chat.
    #[arg(long, requires = "chat")]
    system: Option<String>,
    /// Tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 128)]
    n_predict: usize,
    /// Temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    temp: f32,
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Context size in tokens (default: the model's, capped at 4096).
    #[arg(short = 'c', long)]
    ctx_size: Option<usize>,
    /// CPU threads (default: one per core).
    #[arg(short, long, default_value_t = 0)]
    threads: usize,
}

pub fn run(a: RunArgs) -> Result<()> {
    let path = model_file::resolve(a.model.as_deref())?;
    let file = MappedFile::open(&path)?;
    file.page_in();
    let g = Gguf::parse(file.bytes()).with_context(|| path.display().to_string())?;
    let model = Model::from_gguf(&g).with_context(|| path.display().to_string())?;
    let tokenizer = Tokenizer::from_metadata(g.metadata()).with_context(|| path.display().to_string())?;
    let pool = Pool::new(a.threads)?;

    let prompt = if a.chat {
        let template = ChatTemplate::from_metadata(g.metadata())?;
        if template.is_fallback() {
            eprintln!("note: the model has no chat template; using ChatML");
        }
        let mut messages = Vec::new();
        if let Some(system) = a.system {
            messages.push(Message { role: "system".into(), content: system });
        }
        messages.push(Message { role: "user".into(), content: a.prompt });
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let opts =
            RenderOptions { add_generation_prompt: true, now: DateTime::from_unix_seconds(now as i64) };
        template.render(&messages, &opts)?
    } else {
        a.prompt
    };
    let tokens = tokenizer.encode(&prompt, true, true)?;
    let n_ctx = a.ctx_size.unwrap_or(model.config.n_ctx_train.min(4096));
    anyhow::ensure!(
        tokens.len() < n_ctx,
        "the prompt is {} tokens, the context only {n_ctx}; raise --ctx-size",
        tokens.len()
    );
    let params = GenerateParams {
        max_tokens: a.n_predict,
        sampling: SamplingParams {
            temperature: a.temp,
            top_k: a.top_k,
            top_p: a.top_p,
            min_p: a.min_p,
            repeat_penalty: a.repeat_penalty,
            seed: a.seed,
            ..Default::default()
        },
        ..Default::default()
    };

    let mut session = Session::new(&model, &tokenizer, n_ctx);
    let t0 = Instant::now();
    session.start(&tokens, params, &pool)?;
    let prefill = t0.elapsed();
    let t1 = Instant::now();
    let mut out = std::io::stdout().lock();
    let reason = loop {
        let step = session.step(&pool)?;
        out.write_all(step.text.as_bytes())?;
        out.flush()?;
        if let Some(reason) = step.finish {
            break reason;
        }
    };
    let decode = t1.elapsed();
    if std::io::stdout().is_terminal() {
        writeln!(out)?;
    }
    let n_gen = session.n_generated();
    eprintln!(
        "prompt: {} tokens, {:.1} tok/s | generated: {n_gen} tokens, {:.1} tok/s | finish: {}",
        tokens.len(),
        tokens.len() as f64 / prefill.as_secs_f64(),
        n_gen as f64 / decode.as_secs_f64(),
        reason.as_str()
    );
    Ok(())
}
