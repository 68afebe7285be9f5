//! Causal attention of one query head over an f16 KV cache, in two steps that mirror llama.cpp's
//! default CPU graph (flash attention off, as llama-cpp-python 0.3.36 configures it):
//!
//! 1. [`attn_probs`]: `kq = K·q` with q rounded to f16 (the `vec_dot_type` of the f16 cache) and
//!    each product of two f16 values exact in f32, summed in f64 (`ggml_vec_dot_f16`); then
//!    `ggml_soft_max_ext`: `w = kq·scale` in f32, `e = exp(w − max)` in f32, `Σe` in f64, every
//!    `e` multiplied by `(1/Σe)` rounded to f32. The probabilities are rounded to f16, because the
//!    next product's `vec_dot_type` is f16 again.
//! 2. [`attn_values`]: `out[d] = Σ_t p[t]·V[d, t]` over the transposed V cache, again exact f16
//!    products summed in f64.
//!
//! Layouts: K cache [n_ctx, kv_dim] f16 per layer; V cache [kv_dim, n_ctx] f16 per layer (transposed,
//! as llama.cpp stores it without flash attention, so step 2 reads contiguous rows).

use half::f16;

use crate::quant::f16_bits_to_f32;
use crate::quant::simd::{self, dot_f16_rows};

/// The longest head for which the query is widened on the stack; longer ones take the scalar
/// path (same results).
const MAX_HEAD_DIM: usize = 1024;

/// An f16 as f32 (exact; the table-free conversion the quant kernels use, faster than `half`'s
/// portable fallback).
#[inline(always)]
fn widen(h: f16) -> f32 {
    f16_bits_to_f32(h.to_bits())
}

/// p[t] = softmax_t(scale · q·K[t]) for t in 0..p.len(), each rounded to f16 (kept as f32).
///
/// q: [head_dim], rounded here to f16; k_cache: [n_ctx, kv_dim] f16 (this layer); kv_off: the
/// head's offset in a cached row; p: [n_kv] (positions 0..n_kv). Each `q·K[t]` is
/// `Σ (q_i·k_i) as f64` in index order, rounded to f32 (`simd::dot_f16_rows`, ggml's
/// `ggml_vec_dot_f16`).
pub fn attn_probs(p: &mut [f32], q: &[f32], k_cache: &[f16], kv_dim: usize, kv_off: usize, scale: f32) {
    let hd = q.len();
    if hd <= MAX_HEAD_DIM {
        let mut qf = [0f32; MAX_HEAD_DIM];
        qf.iter_mut().zip(q).for_each(|(f, &v)| *f = widen(f16::from_f32(v)));
        if dot_f16_rows(simd::selected(), &qf[..hd], &k_cache[kv_off..], kv_dim, p).is_err() {
            p.fill(f32::NAN);
        }
    } else {
        for (t, s) in p.iter_mut().enumerate() {
            let k = &k_cache[t * kv_dim + kv_off..][..hd];
            let dot =
                q.iter().zip(k).fold(0f64, |sum, (&a, &b)| sum + (widen(f16::from_f32(a)) * widen(b)) as f64);
            *s = dot as f32;
        }
    }
    for s in p.iter_mut() {
        *s *= scale;
    }
    let max = p.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0f64;
    for s in p.iter_mut() {
        *s = (*s - max).exp();
        sum += *s as f64;
    }
    let inv = (1.0 / sum) as f32;
    for s in p.iter_mut() {
        *s = widen(f16::from_f32(*s * inv));
    }
}

/// out[d] = Σ_t p[t] · V[kv_off + d, t] for one head.
///
/// p: [n_kv] probabilities from [`attn_probs`] (f16 values, so each product with a cached f16 is
/// exact in f32, as in `ggml_vec_dot_f16`); v_cache_t: [kv_dim, n_ctx] f16 (this layer);
/// out: [head_dim].
pub fn attn_values(out: &mut [f32], p: &[f32], v_cache_t: &[f16], n_ctx: usize, kv_off: usize) {
    if dot_f16_rows(simd::selected(), p, &v_cache_t[kv_off * n_ctx..], n_ctx, out).is_err() {
        out.fill(f32::NAN);
    }
}
