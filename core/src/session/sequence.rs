//! One sequence's generation without the model: the tokens of its context, how many of them its
//! KV cache holds, the sampler, the stop strings and the text decoder. [`super::Session`] drives
//! one over a backend of its own; a server drives many over one [`super::BatchBackend`]: it
//! gathers each sequence's [`Sequence::pending`] tokens into one batch, hands each sequence the
//! output of its run ([`Sequence::accept`]) and, once a sequence has nothing pending, takes the
//! sampled token and its text ([`Sequence::emit`]).
//!
//! The cycle per generated token: the prompt is evaluated (in chunks, if the caller wants), its
//! last token's output sampled; `emit` releases that token, which becomes pending; its
//! evaluation yields the next sample; and so on until a stop, `max_tokens` or a full context.

use super::stop::StopMatcher;
use super::{FinishReason, GenerateParams, Output, Step, TokenLogprobs, Want, token_logprobs};
use crate::error::Result;
use crate::sample::{Sampler, SamplingParams};
use crate::tokenizer::{StreamDecoder, Tokenizer};

pub struct Sequence<'m> {
    tokenizer: &'m Tokenizer,
    n_ctx: usize,
    /// Every token in the context, prompt first; those from `n_past` on await evaluation.
    tokens: Vec<u32>,
    /// Tokens of `tokens` in the KV cache.
    n_past: usize,
    n_prompt: usize,
    n_generated: usize,
    /// The token sampled from the last evaluation, not yet emitted.
    next: Option<u32>,
    /// `next`'s log-probabilities, when asked for.
    next_logprobs: Option<TokenLogprobs>,
    sampler: Sampler,
    decoder: StreamDecoder<'m>,
    stop: StopMatcher,
    params: GenerateParams,
    finished: Option<FinishReason>,
}

impl<'m> Sequence<'m> {
    /// An idle sequence over a KV cache of `n_ctx` positions.
    pub fn new(tokenizer: &'m Tokenizer, n_ctx: usize) -> Sequence<'m> {
        Sequence {
            tokenizer,
            n_ctx,
            tokens: Vec::new(),
            n_past: 0,
            n_prompt: 0,
            n_generated: 0,
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
        self.n_ctx
    }

    pub fn n_prompt(&self) -> usize {
        self.n_prompt
    }

    pub fn n_generated(&self) -> usize {
        self.n_generated
    }

    /// The context: the prompt, then the tokens emitted since (those from [`Sequence::n_past`]
    /// on not yet in the cache).
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Tokens in the KV cache.
    pub fn n_past(&self) -> usize {
        self.n_past
    }

    /// The prompt is not all in the cache yet.
    pub fn is_prefilling(&self) -> bool {
        self.n_past < self.n_prompt
    }

    pub fn finished(&self) -> Option<FinishReason> {
        self.finished
    }

    /// Sets up generation from `prompt`. `cached` is how many tokens the sequence's KV cache
    /// holds (of this sequence's previous context); the prefix they share with `prompt` is kept,
    /// except the prompt's last token, which is evaluated again for its output. Returns how many
    /// cached tokens are kept: the caller truncates the cache to that.
    pub fn begin(&mut self, prompt: &[u32], params: GenerateParams, cached: usize) -> Result<usize> {
        if prompt.is_empty() {
            return Err(crate::Error::EmptyPrompt);
        }
        if prompt.len() >= self.n_ctx {
            return Err(crate::Error::ContextFull { n_ctx: self.n_ctx });
        }
        let cached = cached.min(self.n_past).min(self.tokens.len());
        let common = self.tokens[..cached].iter().zip(prompt).take_while(|(a, b)| a == b).count();
        let keep = common.min(prompt.len() - 1);
        self.tokens.clear();
        self.tokens.extend_from_slice(prompt);
        self.n_past = keep;
        self.n_prompt = prompt.len();
        self.n_generated = 0;
        self.next = None;
        self.next_logprobs = None;
        self.sampler = Sampler::new(params.sampling.clone());
        self.decoder = self.tokenizer.stream_decoder(false);
        self.stop = StopMatcher::new(params.stop.iter().cloned());
        self.params = params;
        self.finished = None;
        Ok(keep)
    }

    /// The tokens to evaluate next: up to `budget` (at least one) prompt tokens while the prompt
    /// is not all in the cache, else the last emitted token; empty when [`Sequence::emit`] can
    /// run (a token is sampled, generation has finished, or the context is full).
    pub fn pending(&self, budget: usize) -> &[u32] {
        if self.finished.is_some() {
            return &[];
        }
        if self.n_past < self.n_prompt {
            let end = self.n_prompt.min(self.n_past.saturating_add(budget.max(1)));
            return &self.tokens[self.n_past..end];
        }
        if self.n_past < self.n_ctx { &self.tokens[self.n_past..] } else { &[] }
    }

    /// What the backend must return after evaluating the first `n` pending tokens: nothing for a
    /// prompt chunk before the last, else what the sampler needs. With no log-probabilities asked
    /// for, that is the argmax alone when it is the sample, or the token the backend picks with
    /// the sampler's draw when the sampler has one for it ([`Sampler::draw`]); else the logits.
    pub fn want(&self, n: usize) -> Want {
        if self.n_past + n < self.tokens.len() {
            return Want::Nothing;
        }
        if self.params.logprobs.is_none() {
            if self.sampler.is_argmax() {
                return Want::Argmax;
            }
            if let Some(draw) = self.sampler.draw(&self.tokens) {
                return Want::Sample(draw);
            }
        }
        Want::Logits
    }

    /// Records that the first `n` pending tokens were evaluated, `out` being the output asked for
    /// by [`Sequence::want`]`(n)`; after the last of them, samples the next token.
    pub fn accept(&mut self, n: usize, out: Output<'_>) -> Result<()> {
        self.n_past = (self.n_past + n).min(self.tokens.len());
        if self.n_past == self.tokens.len() {
            (self.next, self.next_logprobs) = match out {
                Output::Nothing => (None, None),
                Output::Argmax(t) => (Some(t), None),
                Output::Sampled(t) => {
                    self.sampler.drew();
                    (Some(t), None)
                }
                Output::Logits(logits) => {
                    let t = self.sampler.sample(logits, &self.tokens);
                    (Some(t), self.params.logprobs.map(|k| token_logprobs(logits, t, k)))
                }
            };
        }
        Ok(())
    }

    /// Releases the sampled token and the text it completes (with its log-probabilities when
    /// asked for); finishes on an end-of-generation token, a stop string, `max_tokens`, or a
    /// context with no room for the next token. Call it when nothing is [`Sequence::pending`].
    pub fn emit(&mut self) -> Result<Step> {
        if let Some(reason) = self.finished {
            return Ok(Step { token: None, text: String::new(), finish: Some(reason), logprobs: None });
        }
        if self.n_past < self.tokens.len() && self.n_past >= self.n_ctx {
            return Ok(self.finish(None, String::new(), FinishReason::Length));
        }
        let token = self.next.take().ok_or(crate::Error::NothingSampled)?;
        let logprobs = self.next_logprobs.take();
        if self.tokenizer.is_eog(token) && !self.params.ignore_eos {
            return Ok(self.finish(Some(token), String::new(), FinishReason::Stop));
        }
        self.tokens.push(token);
        self.n_generated += 1;
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
