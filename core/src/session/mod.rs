//! A generation session: prompt tokens in, a stream of text pieces out, ending with a finish
//! reason. The caller drives it one [`Session::step`] at a time, so the same API serves a CLI
//! loop, a server's request pool and a browser worker that yields between tokens; the caller
//! keeps time (the core has no clock). The model runs on a [`Backend`] (CPU or GPU), whose
//! evaluations are async (see `backend.rs`): natively the host blocks on `step`, the browser
//! awaits it.

mod backend;
mod logprobs;
mod stop;

#[cfg(feature = "gpu")]
pub use backend::AnyBackend;
pub use backend::{Backend, CPU_BATCH, CpuBackend, Output, Want};
pub use logprobs::{TokenLogprobs, token_logprobs};
pub use stop::{Released, StopMatcher};

use crate::error::Result;
use crate::sample::{Sampler, SamplingParams};
use crate::tokenizer::{StreamDecoder, Tokenizer};

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

pub struct Session<'m, B> {
    backend: B,
    tokenizer: &'m Tokenizer,
    /// Every token in the context, prompt first. The last one may await evaluation.
    tokens: Vec<u32>,
    n_prompt: usize,
    n_generated: usize,
    /// A sampled token not yet fed through the model.
    unevaluated: Option<u32>,
    /// The token sampled from the last evaluation, not yet returned by `step`.
    next: Option<u32>,
    /// `next`'s log-probabilities, when asked for.
    next_logprobs: Option<TokenLogprobs>,
    sampler: Sampler,
    decoder: StreamDecoder<'m>,
    stop: StopMatcher,
    params: GenerateParams,
    finished: Option<FinishReason>,
}

impl<'m, B: Backend> Session<'m, B> {
    pub fn new(backend: B, tokenizer: &'m Tokenizer) -> Session<'m, B> {
        Session {
            backend,
            tokenizer,
            tokens: Vec::new(),
            n_prompt: 0,
            n_generated: 0,
            unevaluated: None,
            next: None,
            next_logprobs: None,
            sampler: Sampler::new(SamplingParams::default()),
            decoder: tokenizer.stream_decoder(false),
            stop: StopMatcher::default(),
            params: GenerateParams::default(),
            finished: None,
        }
    }

    pub fn n_ctx(&self) -> usize {
        self.backend.n_ctx()
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn n_prompt(&self) -> usize {
        self.n_prompt
    }

    pub fn n_generated(&self) -> usize {
        self.n_generated
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
        if prompt.is_empty() {
            return Err(crate::Error::EmptyPrompt);
        }
        let n_ctx = self.backend.n_ctx();
        if prompt.len() >= n_ctx {
            return Err(crate::Error::ContextFull { n_ctx });
        }
        let cached = self.backend.n_past().min(self.tokens.len());
        let common = self.tokens[..cached].iter().zip(prompt).take_while(|(a, b)| a == b).count();
        // At least the last prompt token is evaluated, to get its logits.
        let keep = common.min(prompt.len() - 1);
        self.backend.truncate(keep);
        self.tokens.clear();
        self.tokens.extend_from_slice(prompt);
        self.n_prompt = prompt.len();
        self.n_generated = 0;
        self.unevaluated = None;
        self.next = None;
        self.next_logprobs = None;
        self.sampler = Sampler::new(params.sampling.clone());
        self.decoder = self.tokenizer.stream_decoder(false);
        self.stop = StopMatcher::new(params.stop.iter().cloned());
        self.params = params;
        self.finished = None;
        Ok(prompt.len() - keep)
    }

    /// Evaluates up to `budget` more prompt tokens; `true` once the whole prompt is in the cache.
    /// A server interleaves these chunks with other sequences' decode steps. The last chunk
    /// leaves the first generated token sampled, ready for [`Session::step`].
    pub async fn prefill(&mut self, budget: usize) -> Result<bool> {
        let done = self.backend.n_past();
        if done < self.n_prompt {
            let end = self.n_prompt.min(done.saturating_add(budget.max(1)));
            let want = if end == self.n_prompt { self.want() } else { Want::Nothing };
            let out = self.backend.eval(&self.tokens[done..end], want).await?;
            (self.next, self.next_logprobs) =
                pick(&mut self.sampler, out, &self.tokens, self.params.logprobs);
        }
        Ok(self.backend.n_past() >= self.n_prompt)
    }

    /// What the backend must return for the sampler: the argmax alone when that is the sample.
    fn want(&self) -> Want {
        if self.sampler.is_argmax() && self.params.logprobs.is_none() { Want::Argmax } else { Want::Logits }
    }

    /// Samples the next token and returns the text it releases.
    pub async fn step(&mut self) -> Result<Step> {
        if let Some(reason) = self.finished {
            return Ok(Step { token: None, text: String::new(), finish: Some(reason), logprobs: None });
        }
        if self.backend.n_past() < self.n_prompt {
            self.prefill(usize::MAX).await?;
        }
        if let Some(t) = self.unevaluated.take() {
            if self.backend.n_past() >= self.backend.n_ctx() {
                return Ok(self.finish(None, String::new(), FinishReason::Length));
            }
            let want = self.want();
            let out = self.backend.eval(&[t], want).await?;
            (self.next, self.next_logprobs) =
                pick(&mut self.sampler, out, &self.tokens, self.params.logprobs);
        }
        let token = self.next.take().ok_or(crate::Error::NothingSampled)?;
        let logprobs = self.next_logprobs.take();
        if self.tokenizer.is_eog(token) && !self.params.ignore_eos {
            return Ok(self.finish(Some(token), String::new(), FinishReason::Stop));
        }
        self.tokens.push(token);
        self.n_generated += 1;
        self.unevaluated = Some(token);
        let piece = self.decoder.push(token)?;
        let released = self.stop.push(&piece);
        if released.stopped {
            self.finished = Some(FinishReason::Stop);
            let finish = Some(FinishReason::Stop);
            return Ok(Step { token: Some(token), text: released.text, finish, logprobs });
        }
        if self.n_generated >= self.params.max_tokens {
            let mut step = self.finish(Some(token), released.text, FinishReason::Length);
            step.logprobs = logprobs;
            return Ok(step);
        }
        Ok(Step { token: Some(token), text: released.text, finish: None, logprobs })
    }

    /// Ends generation, releasing held text (a partial stop string, an incomplete character).
    fn finish(&mut self, token: Option<u32>, mut text: String, reason: FinishReason) -> Step {
        let tail = self.decoder.finish();
        text += &self.stop.finish();
        let released = self.stop.push(&tail);
        text += &released.text;
        if !released.stopped {
            text += &self.stop.finish();
        }
        self.finished = Some(reason);
        Step { token, text, finish: Some(reason), logprobs: None }
    }
}

/// The next token from an evaluation's output: the backend's argmax, or a sample of its logits
/// (with its log-probabilities when `logprobs` asks for them).
fn pick(
    sampler: &mut Sampler,
    out: Output<'_>,
    history: &[u32],
    logprobs: Option<usize>,
) -> (Option<u32>, Option<TokenLogprobs>) {
    match out {
        Output::Nothing => (None, None),
        Output::Argmax(t) => (Some(t), None),
        Output::Logits(logits) => {
            let t = sampler.sample(logits, history);
            (Some(t), logprobs.map(|k| token_logprobs(logits, t, k)))
        }
    }
}
