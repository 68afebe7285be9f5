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
//! The state holds `n_seq` sequences, each a KV region of `n_ctx` positions. Tokens are processed
//! in batches of up to `max_batch`, each token carrying its own (sequence, position): a prompt
//! chunk of one sequence, one decode token of each of many, or both mixed. The matmuls read each
//! weight row once per batch, so prefill costs far less than one decode step per prompt token and
//! many sequences decode for little more than one. Every per-token value is computed the same way
//! whatever the batch (the projections row by row, rope from the token's own position, attention
//! over its own sequence's cache), so a batch and its tokens one by one give bit-identical logits.
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
use crate::error::Result;
use crate::model::{Config, FfnAct, Model};
use crate::session::{BatchPlan, Piece, Pool, Run, Want};

/// Run state: the KV cache of every sequence and every activation buffer, sized at creation;
/// nothing is allocated per token.
pub struct State {
    /// Positions of each sequence's cache.
    pub n_ctx: usize,
    n_seq: usize,
    /// [n_seq] tokens in each sequence's cache.
    n_past: Vec<usize>,
    max_batch: usize,
    /// [n_layer, n_seq, n_ctx, kv_dim] f16
    k_cache: Vec<f16>,
    /// [n_layer, n_seq, kv_dim, n_ctx] f16, transposed so a head dimension's history is contiguous
    v_cache: Vec<f16>,
    /// [max_batch] (sequence, position) of each token of the batch
    at: Vec<(usize, usize)>,
    /// [n_seq] (token row, output row) of the batch's tokens whose logits are computed
    outs: Vec<(usize, usize)>,
    /// The last evaluation's forward batches, and each run's want and output row
    plan: BatchPlan,
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
    /// [n_embd] residual stream of the last output token, before the output norm
    hidden: Vec<f32>,
    /// [n_seq, n_vocab] logits of the output tokens, one row per run that asked
    logits: Vec<f32>,
    /// [2, max_batch, n_rot / 2] (cos, sin) of each token's rotary angles: [0] for global layers,
    /// [1] for sliding-window layers (their own base, no scaling or factors)
    rope_cs: Vec<(f32, f32)>,
    /// base^(-2/n_rot) for global and sliding-window layers: the ratio between successive rotary
    /// frequencies
    theta_scale: [f32; 2],
}

impl State {
    /// One sequence of `n_ctx` positions, evaluated `max_batch` tokens at a time.
    pub fn new(c: &Config, n_ctx: usize, max_batch: usize) -> State {
        State::with_seqs(c, n_ctx, 1, max_batch)
    }

    /// `n_seq` sequences of `n_ctx` positions each, evaluated `max_batch` tokens at a time.
    pub fn with_seqs(c: &Config, n_ctx: usize, n_seq: usize, max_batch: usize) -> State {
        let (max_batch, n_seq) = (max_batch.max(1), n_seq.max(1));
        let cache = c.n_layer * n_seq * n_ctx * c.kv_dim();
        let widest = (2 * c.n_ff).max(c.q_dim() + 2 * c.kv_dim()).max(c.n_embd).max(c.n_vocab);
        let widest_input = c.n_ff.max(c.q_dim()).max(c.n_embd);
        State {
            n_ctx,
            n_seq,
            n_past: vec![0; n_seq],
            max_batch,
            k_cache: vec![f16::ZERO; cache],
            v_cache: vec![f16::ZERO; cache],
            at: vec![(0, 0); max_batch],
            outs: Vec::with_capacity(n_seq),
            plan: BatchPlan::default(),
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
            logits: vec![0.0; n_seq * c.n_vocab],
            rope_cs: vec![(0.0, 0.0); 2 * max_batch * (c.n_rot / 2)],
            theta_scale: [c.rope_base, c.swa.as_ref().map_or(c.rope_base, |w| w.rope_base)]
                .map(|base| base.powf(-2.0 / c.n_rot as f32)),
        }
    }

    pub fn n_seq(&self) -> usize {
        self.n_seq
    }

    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Tokens in sequence `seq`'s cache (0 past the last sequence).
    pub fn n_past(&self, seq: usize) -> usize {
        self.n_past.get(seq).copied().unwrap_or(0)
    }

    /// Forgets sequence `seq`'s cached tokens from position `n` on.
    pub fn truncate(&mut self, seq: usize, n: usize) {
        if let Some(p) = self.n_past.get_mut(seq) {
            *p = (*p).min(n);
        }
    }

    /// The logits of output row `row` of the last evaluation (the first run that asked for an
    /// output is row 0): [n_vocab].
    pub fn logits(&self, row: usize) -> &[f32] {
        let n = self.logits.len() / self.n_seq;
        self.logits.get(row * n..(row + 1) * n).unwrap_or(&[])
    }

    /// Every output row: [n_seq, n_vocab], rows past the last evaluation's outputs stale.
    pub fn logits_rows(&self) -> &[f32] {
        &self.logits
    }

    /// Per run of the last [`Forward::eval_runs`]: its want and output row.
    pub fn rows(&self) -> &[(Want, usize)] {
        &self.plan.rows
    }

    /// The last output token's residual stream after the final layer, before the output norm
    /// (llama.cpp names it `l_out-{n_layer-1}`): [n_embd].
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
    /// Appends `tokens` to sequence 0 and returns the logits after the last one.
    pub fn eval<'s>(&self, s: &'s mut State, tokens: &[u32], exec: &dyn Exec) -> Result<&'s [f32]> {
        self.eval_runs(s, &[Run { seq: 0, tokens, want: Want::Logits }], exec)?;
        Ok(s.logits(0))
    }

    /// Appends each run's tokens to its sequence, all runs in shared batches of up to `max_batch`
    /// tokens, and computes the logits of every run that wants an output (`State::logits(row)`,
    /// rows in `State::rows`). Nothing is evaluated if a run is invalid.
    pub fn eval_runs(&self, s: &mut State, runs: &[Run<'_>], exec: &dyn Exec) -> Result<()> {
        let c = &self.model.config;
        let pool = Pool {
            n_seq: s.n_seq,
            n_ctx: s.n_ctx,
            n_vocab: c.n_vocab,
            seq_len: &s.n_past,
            max_batch: s.max_batch,
        };
        let mut plan = std::mem::take(&mut s.plan);
        let mut result = plan.plan(runs, pool);
        if result.is_ok() {
            // Inside the executor, so each parallel loop starts without a hand-over between threads.
            exec.run(&mut || {
                result = (0..plan.len()).try_for_each(|i| self.batch(s, runs, plan.batch(i), exec));
            });
        }
        s.plan = plan;
        result?;
        for r in runs {
            s.n_past[r.seq] += r.tokens.len();
        }
        Ok(())
    }

    /// One forward batch: the tokens of `pieces` (of `runs`), each at its own sequence and
    /// position.
    fn batch(&self, s: &mut State, runs: &[Run<'_>], pieces: &[Piece], exec: &dyn Exec) -> Result<()> {
        let (c, w) = (&self.model.config, &self.model.weights);
        let (d, qd, kvd, ff) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff);
        let half = c.n_rot / 2;
        s.outs.clear();
        let mut n = 0;
        for p in pieces {
            for (i, pos) in (p.pos0..p.pos0 + p.len()).enumerate() {
                s.at[n + i] = (p.seq, pos);
            }
            n += p.len();
            if let Some(row) = p.output {
                s.outs.push((n - 1, row));
            }
        }
        let tokens = pieces.iter().flat_map(|p| &runs[p.run].tokens[p.start..p.end]);

        let global = RopeFreqs {
            theta_scale: s.theta_scale[0],
            freq_scale: c.rope_freq_scale,
            attn_factor: c.rope_attn_factor,
            factors: w.rope_factors(c, s.n_ctx),
        };
        let local = RopeFreqs { theta_scale: s.theta_scale[1], freq_scale: 1.0, factors: None, ..global };
        let cs_len = s.max_batch * half;
        for (b, &t) in tokens.enumerate() {
            let pos = s.at[b].1;
            let x = &mut s.x[b * d..(b + 1) * d];
            w.token_embd.dequantize_row(t as usize, x)?;
            if let Some(scale) = c.embd_scale {
                x.iter_mut().for_each(|v| *v *= scale);
            }
            rope_angles(&mut s.rope_cs[b * half..(b + 1) * half], pos, &global);
            if c.swa.is_some() {
                rope_angles(&mut s.rope_cs[cs_len + b * half..cs_len + (b + 1) * half], pos, &local);
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
                self.store_kv(s, l, b);
            }
            self.attention(s, l, n, exec);
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

        // Logits only for the tokens that end a run wanting an output: their rows gathered.
        let (Some(&(last, _)), Some(&(_, row0))) = (s.outs.last(), s.outs.first()) else { return Ok(()) };
        s.hidden.copy_from_slice(&s.x[last * d..(last + 1) * d]);
        for (j, &(b, _)) in s.outs.iter().enumerate() {
            rmsnorm(&mut s.xn[j * d..(j + 1) * d], &s.x[b * d..(b + 1) * d], &w.output_norm, c.rms_eps);
        }
        let (n_out, v) = (s.outs.len(), c.n_vocab);
        let logits = &mut s.logits[row0 * v..(row0 + n_out) * v];
        matmul(exec, &w.output, &s.xn[..n_out * d], logits, n_out, &mut s.acts, &mut s.scratch)?;
        add_bias(logits, w.output_b.as_deref());
        if let Some(cap) = c.final_logit_softcap {
            softcap(logits, cap);
        }
        Ok(())
    }

    /// Writes token `b`'s keys and values (after rope) into layer `l`'s cache of its sequence, at
    /// its position, as f16.
    fn store_kv(&self, s: &mut State, l: usize, b: usize) {
        let kvd = self.model.config.kv_dim();
        let (seq, pos) = s.at[b];
        let region = (l * s.n_seq + seq) * s.n_ctx * kvd;
        let k_row = region + pos * kvd;
        for (kc, &k) in s.k_cache[k_row..k_row + kvd].iter_mut().zip(&s.k[b * kvd..(b + 1) * kvd]) {
            *kc = f16::from_f32(k);
        }
        for (i, &v) in s.v[b * kvd..(b + 1) * kvd].iter().enumerate() {
            s.v_cache[region + i * s.n_ctx + pos] = f16::from_f32(v);
        }
    }

    /// The attention output (all heads) of the batch's `n` tokens, each at its own position over
    /// its own sequence's cache of layer `l`, into `s.att`: one parallel task per head, each
    /// taking the tokens in turn (one parallel loop per layer rather than two per token).
    fn attention(&self, s: &mut State, l: usize, n: usize, exec: &dyn Exec) {
        let c = &self.model.config;
        let (qd, kvd, hd, n_ctx) = (c.q_dim(), c.kv_dim(), c.head_dim, s.n_ctx);
        let group = c.n_head / c.n_head_kv;
        let scale = c.kq_scale;
        for (h, &q) in s.q16[..n * qd].iter_mut().zip(&s.q[..n * qd]) {
            *h = f16::from_f32(q).to_f32();
        }
        let stride = attn_stride(n_ctx, s.max_batch, hd);
        let layer = l * s.n_seq * n_ctx * kvd..(l + 1) * s.n_seq * n_ctx * kvd;
        let (q16, at, k_cache, v_cache) = (&s.q16, &s.at, &s.k_cache[layer.clone()], &s.v_cache[layer]);
        exec.chunks(&mut s.probs[..c.n_head * stride], stride, &|h, work| {
            let (p, out) = work.split_at_mut(n_ctx);
            let kv_off = (h / group) * hd;
            for (b, &(seq, pos)) in at[..n].iter().enumerate() {
                // This sequence's region: [n_ctx, kv_dim] of K, [kv_dim, n_ctx] of V.
                let region = seq * n_ctx * kvd;
                let (k_cache, v_cache) = (&k_cache[region..], &v_cache[region..]);
                // Positions start..=pos; a sliding-window layer sees the last `window` of them.
                // The masked positions would contribute exact zeros in llama.cpp's masked softmax.
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
