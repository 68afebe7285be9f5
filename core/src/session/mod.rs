//! A generation session: prompt tokens in, a stream of text pieces out, ending with a finish
//! reason. The caller drives it one [`Session::step`] at a time, so the same API serves a CLI
//! loop, a server's request pool and a browser worker that yields between tokens; the caller
//! keeps time (the core has no clock).

mod stop;

pub use stop::{Released, StopMatcher};

use crate::cpu::{Exec, Forward, State};
use crate::error::Result;
use crate::model::Model;
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
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_tokens: 256,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            ignore_eos: false,
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
}

pub struct Session<'m, 'a> {
    model: &'m Model<'a>,
    tokenizer: &'m Tokenizer,
    state: State,
    /// Every token in the context, prompt first. The last one may await evaluation.
    tokens: Vec<u32>,
    n_prompt: usize,
    n_generated: usize,
    /// A sampled token not yet fed through the model.
    unevaluated: Option<u32>,
    sampler: Sampler,
    decoder: StreamDecoder<'m>,
    stop: StopMatcher,
    params: GenerateParams,
    finished: Option<FinishReason>,
}

/// Tokens processed per forward batch during prefill.
const PREFILL_BATCH: usize = 64;

impl<'m, 'a> Session<'m, 'a> {
    pub fn new(model: &'m Model<'a>, tokenizer: &'m Tokenizer, n_ctx: usize) -> Session<'m, 'a> {
        Session {
            model,
            tokenizer,
            state: State::new(&model.config, n_ctx, PREFILL_BATCH),
            tokens: Vec::new(),
            n_prompt: 0,
            n_generated: 0,
            unevaluated: None,
            sampler: Sampler::new(SamplingParams::default()),
            decoder: tokenizer.stream_decoder(false),
            stop: StopMatcher::default(),
            params: GenerateParams::default(),
            finished: None,
        }
    }

    pub fn n_ctx(&self) -> usize {
        self.state.n_ctx
    }

    pub fn n_prompt(&self) -> usize {
        self.n_prompt
    }

    pub fn n_generated(&self) -> usize {
        self.n_generated
    }

    /// Evaluates `prompt` (reusing whatever prefix of it is already in the KV cache) and prepares
    /// to generate. Returns the number of prompt tokens actually evaluated.
    pub fn start(&mut self, prompt: &[u32], params: GenerateParams, exec: &dyn Exec) -> Result<usize> {
        let n = self.begin(prompt, params)?;
        self.prefill(usize::MAX, exec)?;
        Ok(n)
    }

    /// Sets up generation from `prompt` without evaluating it yet: the prefix already in the KV
    /// cache is kept, the rest is left for [`Session::prefill`]. Returns how many prompt tokens
    /// remain to evaluate.
    pub fn begin(&mut self, prompt: &[u32], params: GenerateParams) -> Result<usize> {
        if prompt.is_empty() {
            return Err(crate::Error::EmptyPrompt);
        }
        if prompt.len() >= self.state.n_ctx {
            return Err(crate::Error::ContextFull { n_ctx: self.state.n_ctx });
        }
        let cached = self.state.n_past.min(self.tokens.len());
        let common = self.tokens[..cached].iter().zip(prompt).take_while(|(a, b)| a == b).count();
        // At least the last prompt token is evaluated, to get its logits.
        let keep = common.min(prompt.len() - 1);
        self.state.truncate(keep);
        self.tokens.clear();
        self.tokens.extend_from_slice(prompt);
        self.n_prompt = prompt.len();
        self.n_generated = 0;
        self.unevaluated = None;
        self.sampler = Sampler::new(params.sampling.clone());
        self.decoder = self.tokenizer.stream_decoder(false);
        self.stop = StopMatcher::new(params.stop.iter().cloned());
        self.params = params;
        self.finished = None;
        Ok(prompt.len() - keep)
    }

    /// Evaluates up to `budget` more prompt tokens; `true` once the whole prompt is in the cache.
    /// A server interleaves these chunks with other sequences' decode steps.
    pub fn prefill(&mut self, budget: usize, exec: &dyn Exec) -> Result<bool> {
        let done = self.state.n_past;
        if done < self.n_prompt {
            let end = self.n_prompt.min(done.saturating_add(budget.max(1)));
            Forward { model: self.model }.eval(&mut self.state, &self.tokens[done..end], exec)?;
        }
        Ok(self.state.n_past >= self.n_prompt)
    }

    /// Samples the next token and returns the text it releases.
    pub fn step(&mut self, exec: &dyn Exec) -> Result<Step> {
        if let Some(reason) = self.finished {
            return Ok(Step { token: None, text: String::new(), finish: Some(reason) });
        }
        if self.state.n_past < self.n_prompt {
            self.prefill(usize::MAX, exec)?;
        }
        if let Some(t) = self.unevaluated.take() {
            if self.state.n_past >= self.state.n_ctx {
                return Ok(self.finish(None, String::new(), FinishReason::Length));
            }
            Forward { model: self.model }.eval(&mut self.state, &[t], exec)?;
        }
        let token = self.sampler.sample(self.state.logits(), &self.tokens);
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
            return Ok(Step { token: Some(token), text: released.text, finish: Some(FinishReason::Stop) });
        }
        if self.n_generated >= self.params.max_tokens {
            return Ok(self.finish(Some(token), released.text, FinishReason::Length));
        }
        Ok(Step { token: Some(token), text: released.text, finish: None })
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
        Step { token, text, finish: Some(reason) }
    }
}
