//! What a session's model runs on: the CPU reference ([`CpuBackend`]) or the GPU engine
//! (`gpu::GpuBackend`). Each holds a pool of sequences' KV caches ([`BatchBackend`], see
//! `batch.rs`); as a [`Backend`] it is one sequence (the pool's sequence 0) appending tokens to
//! its cache, which is all a CLI, a benchmark or the browser needs.
//!
//! Evaluation is async because the GPU's results come back through a buffer map, which the
//! browser completes from its event loop; natively the host blocks on the future, and the CPU's
//! future is ready at once. The caller says what it needs from a step ([`Want`]): a prompt chunk
//! before the last needs nothing, a greedy step only the argmax — which the GPU computes itself,
//! so a decode step reads back four bytes instead of the logits.
//!
//! `Session<B>` is generic over its backend; a host that picks CPU or GPU at run time holds an
//! [`AnyBackend`] (feature `gpu`), which forwards each call to the one it was given.

use super::batch::{BatchBackend, Outputs, Run};
use crate::cpu::{Exec, Forward, State};
use crate::error::Result;
use crate::model::Model;
use crate::sample::Draw;

/// What an evaluation must produce for the last token it appends.
// A draw carries its logit adjustments inline (~1 KB): a `Want` is copied a few times per run and
// step, which costs less than allocating them every step would.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    Nothing,
    Logits,
    Argmax,
    /// The token this draw picks from the logits ([`crate::sample::pick`]), picked by the
    /// backend: the GPU reads back its id instead of the logits.
    Sample(Draw),
}

/// The last token's output, as asked for.
#[derive(Debug, PartialEq)]
pub enum Output<'a> {
    Nothing,
    Logits(&'a [f32]),
    /// Index of the largest logit, the lowest on ties.
    Argmax(u32),
    /// The token a [`Want::Sample`] draw picked.
    Sampled(u32),
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

/// The CPU forward pass as a [`Backend`] (one sequence) or a [`BatchBackend`] (a pool of them).
pub struct CpuBackend<'m, 'a> {
    model: &'m Model<'a>,
    state: State,
    exec: &'m dyn Exec,
    /// Argmax of each output row of the last evaluation (rows that asked for it).
    argmax: Vec<u32>,
}

/// Tokens processed per forward batch during prefill on the CPU.
pub const CPU_BATCH: usize = 64;

impl<'m, 'a> CpuBackend<'m, 'a> {
    /// One sequence of `n_ctx` positions.
    pub fn new(model: &'m Model<'a>, n_ctx: usize, exec: &'m dyn Exec) -> CpuBackend<'m, 'a> {
        CpuBackend::with_seqs(model, n_ctx, 1, CPU_BATCH, exec)
    }

    /// `n_seq` sequences of `n_ctx` positions each, evaluated up to `max_batch` tokens per
    /// forward batch.
    pub fn with_seqs(
        model: &'m Model<'a>,
        n_ctx: usize,
        n_seq: usize,
        max_batch: usize,
        exec: &'m dyn Exec,
    ) -> CpuBackend<'m, 'a> {
        let state = State::with_seqs(&model.config, n_ctx, n_seq, max_batch);
        CpuBackend { model, argmax: vec![0; state.n_seq()], state, exec }
    }
}

impl Backend for CpuBackend<'_, '_> {
    fn n_ctx(&self) -> usize {
        self.state.n_ctx
    }

    fn n_past(&self) -> usize {
        self.state.n_past(0)
    }

    fn truncate(&mut self, n: usize) {
        self.state.truncate(0, n);
    }

    async fn eval(&mut self, tokens: &[u32], want: Want) -> Result<Output<'_>> {
        Ok(self.eval_batch(&[Run { seq: 0, tokens, want }]).await?.get(0))
    }
}

impl BatchBackend for CpuBackend<'_, '_> {
    fn n_seq(&self) -> usize {
        self.state.n_seq()
    }

    fn seq_len(&self, seq: usize) -> usize {
        self.state.n_past(seq)
    }

    fn seq_truncate(&mut self, seq: usize, n: usize) {
        self.state.truncate(seq, n);
    }

    async fn eval_batch(&mut self, runs: &[Run<'_>]) -> Result<Outputs<'_>> {
        Forward { model: self.model }.eval_runs(&mut self.state, runs, self.exec)?;
        for &(want, row) in self.state.rows() {
            match want {
                Want::Argmax => self.argmax[row] = crate::sample::argmax_logits(self.state.logits(row)),
                Want::Sample(draw) => self.argmax[row] = crate::sample::pick(self.state.logits(row), &draw),
                Want::Nothing | Want::Logits => {}
            }
        }
        let n_vocab = self.model.config.n_vocab;
        Ok(Outputs::new(self.state.rows(), self.state.logits_rows(), &self.argmax, n_vocab))
    }
}

/// The CPU or the GPU backend, chosen at run time; every call goes to the one inside.
// One per pool, made once and never moved per token: boxing would only add a pointer hop.
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

#[cfg(feature = "gpu")]
impl BatchBackend for AnyBackend<'_> {
    fn n_seq(&self) -> usize {
        match self {
            AnyBackend::Cpu(b) => b.n_seq(),
            AnyBackend::Gpu(b) => b.n_seq(),
        }
    }

    fn seq_len(&self, seq: usize) -> usize {
        match self {
            AnyBackend::Cpu(b) => b.seq_len(seq),
            AnyBackend::Gpu(b) => b.seq_len(seq),
        }
    }

    fn seq_truncate(&mut self, seq: usize, n: usize) {
        match self {
            AnyBackend::Cpu(b) => b.seq_truncate(seq, n),
            AnyBackend::Gpu(b) => b.seq_truncate(seq, n),
        }
    }

    async fn eval_batch(&mut self, runs: &[Run<'_>]) -> Result<Outputs<'_>> {
        match self {
            AnyBackend::Cpu(b) => b.eval_batch(runs).await,
            AnyBackend::Gpu(b) => b.eval_batch(runs).await,
        }
    }
}
