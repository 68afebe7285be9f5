//! What a session's model runs on: the CPU reference ([`CpuBackend`]) or the GPU engine
//! (`gpu::GpuBackend`). Both keep one sequence's KV cache and append tokens to it.
//!
//! Evaluation is async because the GPU's results come back through a buffer map, which the
//! browser completes from its event loop; natively the host blocks on the future, and the CPU's
//! future is ready at once. The caller says what it needs from a step ([`Want`]): a prompt chunk
//! before the last needs nothing, a greedy step only the argmax — which the GPU computes itself,
//! so a decode step reads back four bytes instead of the logits.
//!
//! `Session<B>` is generic over its backend; a host that picks CPU or GPU at run time holds an
//! [`AnyBackend`] (feature `gpu`), which forwards each call to the one it was given.

use crate::cpu::{Exec, Forward, State};
use crate::error::Result;
use crate::model::Model;

/// What an evaluation must produce for the last token it appends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    Nothing,
    Logits,
    Argmax,
}

/// The last token's output, as asked for.
#[derive(Debug, PartialEq)]
pub enum Output<'a> {
    Nothing,
    Logits(&'a [f32]),
    /// Index of the largest logit, the lowest on ties.
    Argmax(u32),
}

/// Runs a model over one sequence's KV cache.
// The hosts block on the future (native) or await it on one thread (the browser's worker), so
// it needs no `Send` bound.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// Positions the KV cache holds.
    fn n_ctx(&self) -> usize;
    /// Tokens in the KV cache.
    fn n_past(&self) -> usize;
    /// Forgets the cached tokens from position `n` on.
    fn truncate(&mut self, n: usize);
    /// Appends `tokens` to the context and returns `want` for the last of them.
    async fn eval(&mut self, tokens: &[u32], want: Want) -> Result<Output<'_>>;
}

/// The CPU forward pass as a [`Backend`].
pub struct CpuBackend<'m, 'a> {
    model: &'m Model<'a>,
    state: State,
    exec: &'m dyn Exec,
}

/// Tokens processed per forward batch during prefill on the CPU.
pub const CPU_BATCH: usize = 64;

impl<'m, 'a> CpuBackend<'m, 'a> {
    pub fn new(model: &'m Model<'a>, n_ctx: usize, exec: &'m dyn Exec) -> CpuBackend<'m, 'a> {
        CpuBackend { model, state: State::new(&model.config, n_ctx, CPU_BATCH), exec }
    }
}

impl Backend for CpuBackend<'_, '_> {
    fn n_ctx(&self) -> usize {
        self.state.n_ctx
    }

    fn n_past(&self) -> usize {
        self.state.n_past
    }

    fn truncate(&mut self, n: usize) {
        self.state.truncate(n);
    }

    async fn eval(&mut self, tokens: &[u32], want: Want) -> Result<Output<'_>> {
        let logits = Forward { model: self.model }.eval(&mut self.state, tokens, self.exec)?;
        Ok(match want {
            Want::Nothing => Output::Nothing,
            Want::Logits => Output::Logits(logits),
            Want::Argmax => Output::Argmax(crate::sample::argmax_logits(logits)),
        })
    }
}

/// The CPU or the GPU backend, chosen at run time; every call goes to the one inside.
// One per sequence, made once and never moved per token: boxing would only add a pointer hop.
#[cfg(feature = "gpu")]
#[allow(clippy::large_enum_variant)]
pub enum AnyBackend<'m> {
    Cpu(CpuBackend<'m, 'm>),
    Gpu(crate::gpu::GpuBackend<'m>),
}

#[cfg(feature = "gpu")]
impl Backend for AnyBackend<'_> {
    fn n_ctx(&self) -> usize {
        match self {
            AnyBackend::Cpu(b) => b.n_ctx(),
            AnyBackend::Gpu(b) => b.n_ctx(),
        }
    }

    fn n_past(&self) -> usize {
        match self {
            AnyBackend::Cpu(b) => b.n_past(),
            AnyBackend::Gpu(b) => b.n_past(),
        }
    }

    fn truncate(&mut self, n: usize) {
        match self {
            AnyBackend::Cpu(b) => b.truncate(n),
            AnyBackend::Gpu(b) => b.truncate(n),
        }
    }

    async fn eval(&mut self, tokens: &[u32], want: Want) -> Result<Output<'_>> {
        match self {
            AnyBackend::Cpu(b) => b.eval(tokens, want).await,
            AnyBackend::Gpu(b) => b.eval(tokens, want).await,
        }
    }
}
