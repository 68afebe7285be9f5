//! A generation session: prompt tokens in, a stream of text pieces out, ending with a finish
//! reason. The caller drives it one [`Session::step`] at a time, so the same API serves a CLI
//! loop and a browser worker that yields between tokens; the caller keeps time (the core has no
//! clock). The model runs on a [`Backend`] (CPU or GPU), whose evaluations are async (see
//! `backend.rs`): natively the host blocks on `step`, the browser awaits it.
//!
//! Layout: `sequence.rs` is one sequence's generation without a model ([`Sequence`]: sampling,
//! stop strings, text); [`Session`] pairs one with a backend of its own. `batch.rs` is the
//! multi-sequence side: a [`BatchBackend`] evaluates the pending tokens of many sequences in one
//! forward pass, which is how a server's request pool advances all its streams at once.

mod backend;
mod batch;
mod logprobs;
mod sequence;
mod stop;

#[cfg(feature = "gpu")]
pub use backend::AnyBackend;
pub use backend::{Backend, CPU_BATCH, CpuBackend, Output, Want};
pub use batch::{BatchBackend, BatchPlan, Outputs, Piece, Pool, Run};
pub use logprobs::{TokenLogprobs, token_logprobs};
pub use sequence::Sequence;
pub use stop::{Released, StopMatcher};

use crate::error::Result;
use crate::sample::SamplingParams;
use crate::tokenizer::Tokenizer;

#[derive(Clone, Debug, PartialEq)]
pub struct GenerateParams {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Text that ends generation; it is not emitted.
    pub stop: Vec<String>,
    /// Keep going past end-of-generation tokens.
    pub ignore_eos: bool,
    /// Report each generated token's log-probability and this many alternatives
    /// ([`Step::logprobs`]); `None` skips the work (and keeps greedy decoding on the backend's
    /// argmax).
    pub logprobs: Option<usize>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_tokens: 256,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            ignore_eos: false,
            logprobs: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens` reached, or the context is full.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// One step's result: the token sampled (if any), the text it released, and whether generation
/// has finished.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub token: Option<u32>,
    pub text: String,
    pub finish: Option<FinishReason>,
    /// The token's log-probabilities, when [`GenerateParams::logprobs`] asked for them.
    pub logprobs: Option<TokenLogprobs>,
}

/// One sequence over a backend of its own: [`Sequence`]'s generation driven one evaluation at a
/// time (a CLI loop, a browser worker). A server with many sequences drives [`Sequence`]s over
/// one [`BatchBackend`] instead.
pub struct Session<'m, B> {
    backend: B,
    seq: Sequence<'m>,
}

impl<'m, B: Backend> Session<'m, B> {
    pub fn new(backend: B, tokenizer: &'m Tokenizer) -> Session<'m, B> {
        let n_ctx = backend.n_ctx();
        Session { backend, seq: Sequence::new(tokenizer, n_ctx) }
    }

    pub fn n_ctx(&self) -> usize {
        self.backend.n_ctx()
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn n_prompt(&self) -> usize {
        self.seq.n_prompt()
    }

    pub fn n_generated(&self) -> usize {
        self.seq.n_generated()
    }

    /// Evaluates `prompt` (reusing whatever prefix of it is already in the KV cache) and prepares
    /// to generate. Returns the number of prompt tokens actually evaluated.
    pub async fn start(&mut self, prompt: &[u32], params: GenerateParams) -> Result<usize> {
        let n = self.begin(prompt, params)?;
        self.prefill(usize::MAX).await?;
        Ok(n)
    }

    /// Sets up generation from `prompt` without evaluating it yet: the prefix already in the KV
    /// cache is kept, the rest is left for [`Session::prefill`]. Returns how many prompt tokens
    /// remain to evaluate.
    pub fn begin(&mut self, prompt: &[u32], params: GenerateParams) -> Result<usize> {
        let keep = self.seq.begin(prompt, params, self.backend.n_past())?;
        self.backend.truncate(keep);
        Ok(prompt.len() - keep)
    }

    /// Evaluates up to `budget` more prompt tokens; `true` once the whole prompt is in the cache.
    /// A host that yields between chunks (the browser's worker) keeps its page responsive. The
    /// last chunk leaves the first generated token sampled, ready for [`Session::step`].
    pub async fn prefill(&mut self, budget: usize) -> Result<bool> {
        if self.seq.is_prefilling() {
            self.eval(budget).await?;
        }
        Ok(!self.seq.is_prefilling())
    }

    /// Samples the next token and returns the text it releases.
    pub async fn step(&mut self) -> Result<Step> {
        while !self.seq.pending(usize::MAX).is_empty() {
            self.eval(usize::MAX).await?;
        }
        self.seq.emit()
    }

    /// Evaluates up to `budget` pending tokens and hands the sequence the output.
    async fn eval(&mut self, budget: usize) -> Result<()> {
        let tokens = self.seq.pending(budget);
        let (n, want) = (tokens.len(), self.seq.want(tokens.len()));
        let out = self.backend.eval(tokens, want).await?;
        self.seq.accept(n, out)
    }
}
