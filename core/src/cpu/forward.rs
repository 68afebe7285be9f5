//! The llama-family forward pass over a KV cache allocated once for the whole context.
//!
//! Tokens are processed in batches of up to `max_batch`: the matmuls decode each weight row once
//! per batch, so prefill costs far less than one decode step per prompt token.

use super::Exec;
use super::ops::{attend, matmul, rmsnorm, rope, silu};
use crate::error::{Error, Result};
use crate::model::{Config, Model};

/// Run state: the KV cache and every activation buffer, sized at creation; nothing is allocated
/// per token.
pub struct State {
    pub n_ctx: usize,
    /// Tokens already in the cache.
    pub n_past: usize,
    max_batch: usize,
    /// [n_layer, n_ctx, kv_dim]
    k_cache: Vec<f32>,
    /// [n_layer, n_ctx, kv_dim]
    v_cache: Vec<f32>,
    /// [max_batch, n_embd] residual stream
    x: Vec<f32>,
    /// [max_batch, n_embd] normed input of a sub-layer
    xn: Vec<f32>,
    /// [max_batch, q_dim]
    q: Vec<f32>,
    /// [max_batch, kv_dim]
    k: Vec<f32>,
    /// [max_batch, kv_dim]
    v: Vec<f32>,
    /// [max_batch, q_dim] attention output
    att: Vec<f32>,
    /// [max_batch, n_embd] output of a projection back to the residual width
    proj: Vec<f32>,
    /// [max_batch, n_ff]
    gate: Vec<f32>,
    /// [max_batch, n_ff]
    up: Vec<f32>,
    /// [max(n_ff, q_dim, n_vocab) * max_batch] transposed matmul results
    scratch: Vec<f32>,
    /// [n_vocab] logits of the last token processed
    logits: Vec<f32>,
    /// [n_rot / 2] rope inverse frequencies
    inv_freq: Vec<f32>,
}

impl State {
    pub fn new(c: &Config, n_ctx: usize, max_batch: usize) -> State {
        let max_batch = max_batch.max(1);
        let widest = c.n_ff.max(c.q_dim()).max(c.n_embd).max(c.n_vocab);
        let inv_freq = (0..c.n_rot / 2).map(|i| c.rope_base.powf(-2.0 * i as f32 / c.n_rot as f32)).collect();
        State {
            n_ctx,
            n_past: 0,
            max_batch,
            k_cache: vec![0.0; c.n_layer * n_ctx * c.kv_dim()],
            v_cache: vec![0.0; c.n_layer * n_ctx * c.kv_dim()],
            x: vec![0.0; max_batch * c.n_embd],
            xn: vec![0.0; max_batch * c.n_embd],
            q: vec![0.0; max_batch * c.q_dim()],
            k: vec![0.0; max_batch * c.kv_dim()],
            v: vec![0.0; max_batch * c.kv_dim()],
            att: vec![0.0; max_batch * c.q_dim()],
            proj: vec![0.0; max_batch * c.n_embd],
            gate: vec![0.0; max_batch * c.n_ff],
            up: vec![0.0; max_batch * c.n_ff],
            scratch: vec![0.0; widest * max_batch],
            logits: vec![0.0; c.n_vocab],
            inv_freq,
        }
    }

    /// Forgets the cached tokens from position `n` on.
    pub fn truncate(&mut self, n: usize) {
        self.n_past = self.n_past.min(n);
    }

    pub fn logits(&self) -> &[f32] {
        &self.logits
    }
}

/// The forward pass of one model.
pub struct Forward<'m, 'a> {
    pub model: &'m Model<'a>,
}

impl Forward<'_, '_> {
    /// Appends `tokens` to the context and returns the logits after the last one.
    pub fn eval<'s>(&self, s: &'s mut State, tokens: &[u32], exec: &dyn Exec) -> Result<&'s [f32]> {
        let c = &self.model.config;
        if s.n_past + tokens.len() > s.n_ctx {
            return Err(Error::ContextFull { n_ctx: s.n_ctx });
        }
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= c.n_vocab) {
            return Err(Error::TokenOutOfRange { id, n_vocab: c.n_vocab });
        }
        for batch in tokens.chunks(s.max_batch) {
            self.batch(s, batch, exec)?;
        }
        Ok(&s.logits)
    }

    fn batch(&self, s: &mut State, tokens: &[u32], exec: &dyn Exec) -> Result<()> {
        let (c, w) = (&self.model.config, &self.model.weights);
        let (d, qd, kvd, ff, hd) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff, c.head_dim);
        let n = tokens.len();
        let pos0 = s.n_past;

        for (b, &t) in tokens.iter().enumerate() {
            w.token_embd.dequantize_row(t as usize, &mut s.x[b * d..(b + 1) * d])?;
        }

        for (l, lw) in w.layers.iter().enumerate() {
            // Attention block.
            for b in 0..n {
                rmsnorm(&mut s.xn[b * d..(b + 1) * d], &s.x[b * d..(b + 1) * d], &lw.attn_norm, c.rms_eps);
            }
            matmul(exec, &lw.attn_q, &s.xn, &mut s.q, n, &mut s.scratch);
            matmul(exec, &lw.attn_k, &s.xn, &mut s.k, n, &mut s.scratch);
            matmul(exec, &lw.attn_v, &s.xn, &mut s.v, n, &mut s.scratch);
            let layer_cache = l * s.n_ctx * kvd;
            for b in 0..n {
                let pos = pos0 + b;
                rope(&mut s.q[b * qd..(b + 1) * qd], hd, pos, &s.inv_freq, c.rope_kind);
                rope(&mut s.k[b * kvd..(b + 1) * kvd], hd, pos, &s.inv_freq, c.rope_kind);
                let at = layer_cache + pos * kvd;
                s.k_cache[at..at + kvd].copy_from_slice(&s.k[b * kvd..(b + 1) * kvd]);
                s.v_cache[at..at + kvd].copy_from_slice(&s.v[b * kvd..(b + 1) * kvd]);
            }
            let (kc, vc) = (&s.k_cache[layer_cache..], &s.v_cache[layer_cache..]);
            let q = &s.q;
            let group = c.n_head / c.n_head_kv;
            // One piece per (token, head): [n, n_head, head_dim].
            exec.chunks(&mut s.att[..n * qd], hd, &|i, out| {
                let (b, h) = (i / c.n_head, i % c.n_head);
                let qh = &q[b * qd + h * hd..][..hd];
                attend(out, qh, kc, vc, kvd, (h / group) * hd, pos0 + b);
            });
            matmul(exec, &lw.attn_output, &s.att, &mut s.proj, n, &mut s.scratch);
            s.x[..n * d].iter_mut().zip(&s.proj).for_each(|(x, p)| *x += p);

            // Feed-forward block (SwiGLU).
            for b in 0..n {
                rmsnorm(&mut s.xn[b * d..(b + 1) * d], &s.x[b * d..(b + 1) * d], &lw.ffn_norm, c.rms_eps);
            }
            matmul(exec, &lw.ffn_gate, &s.xn, &mut s.gate, n, &mut s.scratch);
            matmul(exec, &lw.ffn_up, &s.xn, &mut s.up, n, &mut s.scratch);
            s.gate[..n * ff].iter_mut().zip(&s.up).for_each(|(g, u)| *g = silu(*g) * u);
            matmul(exec, &lw.ffn_down, &s.gate, &mut s.proj, n, &mut s.scratch);
            s.x[..n * d].iter_mut().zip(&s.proj).for_each(|(x, p)| *x += p);
        }

        // Only the last token's logits are needed.
        let last = (n - 1) * d;
        rmsnorm(&mut s.xn[..d], &s.x[last..last + d], &w.output_norm, c.rms_eps);
        matmul(exec, &w.output, &s.xn[..d], &mut s.logits, 1, &mut s.scratch);
        s.n_past += n;
        Ok(())
    }
}
