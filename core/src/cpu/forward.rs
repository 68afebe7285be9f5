//! The forward pass of every supported architecture over a KV cache allocated once for the whole
//! context. The architectures share one layer loop; where they differ it reads a field of the
//! `Config` or an optional weight, each in one place and named for what it is:
//!
//! - embeddings scaled (Gemma 3: `embd_scale`);
//! - q/k/v biases (Qwen 2), q/k per-head RMS norms before rope (Qwen 3, Gemma 3);
//! - rope pairing (llama: adjacent pairs, the others NeoX halves), frequency divisors (Llama 3's
//!   `rope_freqs`, Phi-3's LongRoPE factors), and for sliding-window layers their own base;
//! - q scaled before the KQ product (Phi-3, Gemma 3) or the scores scaled in the softmax (others);
//! - sliding-window layers attend to the last `window` positions only (Gemma 3);
//! - RMS norms of the attention and FFN outputs before each residual add (Gemma 3);
//! - SwiGLU or GeGLU; an output bias (Qwen 2); final logit soft-capping (Gemma 3, when set).
//!
//! Tokens are processed in batches of up to `max_batch`: the matmuls read each weight row once per
//! batch, so prefill costs far less than one decode step per prompt token. Every per-token value
//! is computed the same way whatever the batch, so a batch and its tokens one by one give
//! bit-identical logits.
//!
//! Numerics follow llama.cpp's CPU backend with its default settings (see `ops.rs` and
//! `attention.rs`): integer matmuls on Q8-quantized activations, an f16 KV cache, attention without
//! flash attention.

use half::f16;

use super::Exec;
use super::attention::{attn_probs, attn_values};
use super::ops::{
    RopeFreqs, geglu, matmul, matmuls, rmsnorm, rmsnorm_heads, rope, rope_angles, softcap, swiglu,
};
use crate::error::{Error, Result};
use crate::model::{Config, FfnAct, Model};

/// Run state: the KV cache and every activation buffer, sized at creation; nothing is allocated
/// per token.
pub struct State {
    pub n_ctx: usize,
    /// Tokens already in the cache.
    pub n_past: usize,
    max_batch: usize,
    /// [n_layer, n_ctx, kv_dim] f16
    k_cache: Vec<f16>,
    /// [n_layer, kv_dim, n_ctx] f16, transposed so a head dimension's history is contiguous
    v_cache: Vec<f16>,
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
    /// [max_batch, q_dim] the queries rounded to f16 (kept as f32), as the KQ product reads them
    q16: Vec<f32>,
    /// [n_head, attn_stride]: per head, one token's attention probabilities (f16 values,
    /// [n_ctx]) then the head's output for each token of the batch ([max_batch, head_dim])
    probs: Vec<f32>,
    /// [max_batch, q_dim] attention output
    att: Vec<f32>,
    /// [max_batch, n_embd] output of a projection back to the residual width
    proj: Vec<f32>,
    /// [max_batch, n_ff]
    gate: Vec<f32>,
    /// [max_batch, n_ff]
    up: Vec<f32>,
    /// [max_batch, act_row_bytes] a matmul's input in its weight's `vec_dot_type`; capacity for
    /// the widest input at 4 bytes per element (f32, the largest activation format)
    acts: Vec<u8>,
    /// [widest * max_batch] transposed matmul results (widest: the most rows one parallel
    /// matmul produces, q, k and v or gate and up together)
    scratch: Vec<f32>,
    /// [n_embd] residual stream of the last token processed, before the output norm
    hidden: Vec<f32>,
    /// [n_vocab] logits of the last token processed
    logits: Vec<f32>,
    /// [2, max_batch, n_rot / 2] (cos, sin) of each token's rotary angles: [0] for global layers,
    /// [1] for sliding-window layers (their own base, no scaling or factors)
    rope_cs: Vec<(f32, f32)>,
    /// base^(-2/n_rot) for global and sliding-window layers: the ratio between successive rotary
    /// frequencies
    theta_scale: [f32; 2],
}

impl State {
    pub fn new(c: &Config, n_ctx: usize, max_batch: usize) -> State {
        let max_batch = max_batch.max(1);
        let widest = (2 * c.n_ff).max(c.q_dim() + 2 * c.kv_dim()).max(c.n_embd).max(c.n_vocab);
        let widest_input = c.n_ff.max(c.q_dim()).max(c.n_embd);
        State {
            n_ctx,
            n_past: 0,
            max_batch,
            k_cache: vec![f16::ZERO; c.n_layer * n_ctx * c.kv_dim()],
            v_cache: vec![f16::ZERO; c.n_layer * c.kv_dim() * n_ctx],
            x: vec![0.0; max_batch * c.n_embd],
            xn: vec![0.0; max_batch * c.n_embd],
            q: vec![0.0; max_batch * c.q_dim()],
            k: vec![0.0; max_batch * c.kv_dim()],
            v: vec![0.0; max_batch * c.kv_dim()],
            q16: vec![0.0; max_batch * c.q_dim()],
            probs: vec![0.0; c.n_head * attn_stride(n_ctx, max_batch, c.head_dim)],
            att: vec![0.0; max_batch * c.q_dim()],
            proj: vec![0.0; max_batch * c.n_embd],
            gate: vec![0.0; max_batch * c.n_ff],
            up: vec![0.0; max_batch * c.n_ff],
            acts: Vec::with_capacity(max_batch * widest_input * 4),
            scratch: vec![0.0; widest * max_batch],
            hidden: vec![0.0; c.n_embd],
            logits: vec![0.0; c.n_vocab],
            rope_cs: vec![(0.0, 0.0); 2 * max_batch * (c.n_rot / 2)],
            theta_scale: [c.rope_base, c.swa.as_ref().map_or(c.rope_base, |w| w.rope_base)]
                .map(|base| base.powf(-2.0 / c.n_rot as f32)),
        }
    }

    /// Forgets the cached tokens from position `n` on.
    pub fn truncate(&mut self, n: usize) {
        self.n_past = self.n_past.min(n);
    }

    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// The last token's residual stream after the final layer, before the output norm (llama.cpp
    /// names it `l_out-{n_layer-1}`): [n_embd].
    pub fn hidden(&self) -> &[f32] {
        &self.hidden
    }
}

/// Floats of one head's attention workspace in `State::probs`.
fn attn_stride(n_ctx: usize, max_batch: usize, head_dim: usize) -> usize {
    n_ctx + max_batch * head_dim
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
        // Inside the executor, so each parallel loop starts without a hand-over between threads.
        let mut result = Ok(());
        exec.run(&mut || {
            result = tokens.chunks(s.max_batch).try_for_each(|batch| self.batch(s, batch, exec));
        });
        result?;
        Ok(&s.logits)
    }

    fn batch(&self, s: &mut State, tokens: &[u32], exec: &dyn Exec) -> Result<()> {
        let (c, w) = (&self.model.config, &self.model.weights);
        let (d, qd, kvd, ff) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff);
        let (n, half) = (tokens.len(), c.n_rot / 2);
        let pos0 = s.n_past;

        let global = RopeFreqs {
            theta_scale: s.theta_scale[0],
            freq_scale: c.rope_freq_scale,
            attn_factor: c.rope_attn_factor,
            factors: w.rope_factors(c, s.n_ctx),
        };
        let local = RopeFreqs { theta_scale: s.theta_scale[1], freq_scale: 1.0, factors: None, ..global };
        let cs_len = s.max_batch * half;
        for (b, &t) in tokens.iter().enumerate() {
            let x = &mut s.x[b * d..(b + 1) * d];
            w.token_embd.dequantize_row(t as usize, x)?;
            if let Some(scale) = c.embd_scale {
                x.iter_mut().for_each(|v| *v *= scale);
            }
            rope_angles(&mut s.rope_cs[b * half..(b + 1) * half], pos0 + b, &global);
            if c.swa.is_some() {
                rope_angles(&mut s.rope_cs[cs_len + b * half..cs_len + (b + 1) * half], pos0 + b, &local);
            }
        }

        for (l, lw) in w.layers.iter().enumerate() {
            // Attention block.
            for b in 0..n {
                rmsnorm(&mut s.xn[b * d..(b + 1) * d], &s.x[b * d..(b + 1) * d], &lw.attn_norm, c.rms_eps);
            }
            let qkv = [&lw.attn_q, &lw.attn_k, &lw.attn_v];
            matmuls(exec, &qkv, &s.xn, &mut [&mut s.q, &mut s.k, &mut s.v], n, &mut s.acts, &mut s.scratch)?;
            add_bias(&mut s.q[..n * qd], lw.attn_q_b.as_deref());
            add_bias(&mut s.k[..n * kvd], lw.attn_k_b.as_deref());
            add_bias(&mut s.v[..n * kvd], lw.attn_v_b.as_deref());
            if let Some(norm) = &lw.attn_q_norm {
                rmsnorm_heads(&mut s.q[..n * qd], norm, c.rms_eps);
            }
            if let Some(norm) = &lw.attn_k_norm {
                rmsnorm_heads(&mut s.k[..n * kvd], norm, c.rms_eps);
            }
            let cs_off = if c.is_swa(l) { cs_len } else { 0 };
            for b in 0..n {
                let cs = &s.rope_cs[cs_off + b * half..cs_off + (b + 1) * half];
                let q = &mut s.q[b * qd..(b + 1) * qd];
                rope(q, c.head_dim, cs, c.rope_kind);
                if c.q_scale != 1.0 {
                    q.iter_mut().for_each(|v| *v *= c.q_scale);
                }
                rope(&mut s.k[b * kvd..(b + 1) * kvd], c.head_dim, cs, c.rope_kind);
                self.store_kv(s, l, b, pos0 + b);
            }
            self.attention(s, l, n, pos0, exec);
            matmul(exec, &lw.attn_output, &s.att, &mut s.proj, n, &mut s.acts, &mut s.scratch)?;
            add_bias(&mut s.proj[..n * d], lw.attn_output_b.as_deref());
            add_residual(s, n, d, lw.attn_post_norm.as_deref(), c.rms_eps);

            // Feed-forward block: act(gate) · up, then down.
            for b in 0..n {
                rmsnorm(&mut s.xn[b * d..(b + 1) * d], &s.x[b * d..(b + 1) * d], &lw.ffn_norm, c.rms_eps);
            }
            let gate_up = [&lw.ffn_gate, &lw.ffn_up];
            matmuls(exec, &gate_up, &s.xn, &mut [&mut s.gate, &mut s.up], n, &mut s.acts, &mut s.scratch)?;
            match c.ffn_act {
                FfnAct::Silu => swiglu(&mut s.gate[..n * ff], &s.up[..n * ff]),
                FfnAct::GeluTanh => geglu(&mut s.gate[..n * ff], &s.up[..n * ff]),
            }
            matmul(exec, &lw.ffn_down, &s.gate, &mut s.proj, n, &mut s.acts, &mut s.scratch)?;
            add_residual(s, n, d, lw.ffn_post_norm.as_deref(), c.rms_eps);
        }

        // Only the last token's logits are needed.
        let last = (n - 1) * d;
        s.hidden.copy_from_slice(&s.x[last..last + d]);
        rmsnorm(&mut s.xn[..d], &s.hidden, &w.output_norm, c.rms_eps);
        matmul(exec, &w.output, &s.xn[..d], &mut s.logits, 1, &mut s.acts, &mut s.scratch)?;
        add_bias(&mut s.logits, w.output_b.as_deref());
        if let Some(cap) = c.final_logit_softcap {
            softcap(&mut s.logits, cap);
        }
        s.n_past += n;
        Ok(())
    }

    /// Writes token `b`'s keys and values (after rope) into layer `l`'s cache at `pos`, as f16.
    fn store_kv(&self, s: &mut State, l: usize, b: usize, pos: usize) {
        let kvd = self.model.config.kv_dim();
        let k_row = (l * s.n_ctx + pos) * kvd;
        for (kc, &k) in s.k_cache[k_row..k_row + kvd].iter_mut().zip(&s.k[b * kvd..(b + 1) * kvd]) {
            *kc = f16::from_f32(k);
        }
        let v_layer = l * kvd * s.n_ctx;
        for (i, &v) in s.v[b * kvd..(b + 1) * kvd].iter().enumerate() {
            s.v_cache[v_layer + i * s.n_ctx + pos] = f16::from_f32(v);
        }
    }

    /// The attention output (all heads) of the batch's `n` tokens, at positions `pos0..pos0 + n`,
    /// over layer `l`'s cache, into `s.att`: one parallel task per head, each taking the tokens
    /// in turn (one parallel loop per layer rather than two per token).
    fn attention(&self, s: &mut State, l: usize, n: usize, pos0: usize, exec: &dyn Exec) {
        let c = &self.model.config;
        let (qd, kvd, hd, n_ctx) = (c.q_dim(), c.kv_dim(), c.head_dim, s.n_ctx);
        let group = c.n_head / c.n_head_kv;
        let scale = c.kq_scale;
        for (h, &q) in s.q16[..n * qd].iter_mut().zip(&s.q[..n * qd]) {
            *h = f16::from_f32(q).to_f32();
        }
        let stride = attn_stride(n_ctx, s.max_batch, hd);
        let (q16, k_cache) = (&s.q16, &s.k_cache[l * n_ctx * kvd..(l + 1) * n_ctx * kvd]);
        let v_cache = &s.v_cache[l * kvd * n_ctx..(l + 1) * kvd * n_ctx];
        exec.chunks(&mut s.probs[..c.n_head * stride], stride, &|h, work| {
            let (p, out) = work.split_at_mut(n_ctx);
            let kv_off = (h / group) * hd;
            for b in 0..n {
                // Positions start..=pos; a sliding-window layer sees the last `window` of them.
                // The masked positions would contribute exact zeros in llama.cpp's masked softmax.
                let pos = pos0 + b;
                let start = c.window(l).map_or(0, |w| (pos + 1).saturating_sub(w));
                let p = &mut p[..pos + 1 - start];
                let q = &q16[b * qd + h * hd..][..hd];
                attn_probs(p, q, &k_cache[start * kvd..], kvd, kv_off, scale, start);
                // Rows of the transposed cache still n_ctx apart, each read from `start` on.
                attn_values(&mut out[b * hd..][..hd], p, &v_cache[start..], n_ctx, kv_off, start);
            }
        });
        for b in 0..n {
            for h in 0..c.n_head {
                let out = &s.probs[h * stride + n_ctx + b * hd..][..hd];
                s.att[b * qd + h * hd..][..hd].copy_from_slice(out);
            }
        }
    }
}

/// y[b, :] += bias for every row of y, when there is a bias.
fn add_bias(y: &mut [f32], bias: Option<&[f32]>) {
    if let Some(bias) = bias {
        for row in y.chunks_mut(bias.len()) {
            row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        }
    }
}

/// x += proj for the first `n` tokens, with proj RMS-normed first when the layer has a post-norm.
fn add_residual(s: &mut State, n: usize, d: usize, post_norm: Option<&[f32]>, eps: f32) {
    let add = match post_norm {
        Some(w) => {
            for b in 0..n {
                rmsnorm(&mut s.xn[b * d..(b + 1) * d], &s.proj[b * d..(b + 1) * d], w, eps);
            }
            &s.xn
        }
        None => &s.proj,
    };
    s.x[..n * d].iter_mut().zip(add).for_each(|(x, p)| *x += p);
}
