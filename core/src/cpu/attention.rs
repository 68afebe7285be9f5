//! Causal attention of one query head over an f16 KV cache, in two steps that mirror llama.cpp's
//! default CPU graph (flash attention off, as llama-cpp-python 0.3.36 configures it), with the
//! summation orders of ggml's x86 AVX2 build (the reference the goldens come from):
//!
//! 1. [`attn_probs`]: `kq = K·q` with q rounded to f16 (the `vec_dot_type` of the f16 cache),
//!    summed as [`dot_f16`] does (ggml's lanes, `simd::dot_f16_rows`, then a tail in f64); then `ggml_soft_max_ext`: `w = kq·scale` in f32,
//!    `e = exp(w − max)` with ggml's vectorised `ggml_v_expf` (not libm's `expf`: they differ in
//!    the last bit), `Σe` in f32 per aligned group of 8 cache cells and in f64 across groups, every
//!    `e` multiplied by `(1/Σe)` rounded to f32. The probabilities are rounded to f16, because the
//!    next product's `vec_dot_type` is f16 again.
//! 2. [`attn_values`]: `out[d] = Σ_t p[t]·V[d, t]` over the transposed V cache, summed in
//!    ggml's lanes along the cache's cells.
//!
//! Cells are positions (one sequence, filled from 0), and llama.cpp's rows span a multiple of 256
//! cells, the ones not attended masked to −∞ (probability 0): so the groups of 8 and the lanes of
//! the f16 dot are aligned to cell 0, and positions outside the range add exact zeros. Both
//! functions take `first`, the cell of their first position, to keep that alignment when a
//! sliding window starts later.
//!
//! Layouts: K cache [n_ctx, kv_dim] f16 per layer; V cache [kv_dim, n_ctx] f16 per layer
//! (transposed, as llama.cpp stores it without flash attention, so step 2 reads contiguous rows).

use half::f16;

use super::expf::exp_shifted;
use crate::quant::f16_bits_to_f32;
#[cfg(test)]
use crate::quant::simd::F16Lanes;
use crate::quant::simd::{self, dot_f16_rows};

/// An f16 as f32 (exact; the table-free conversion the quant kernels use, faster than `half`'s
/// portable fallback).
#[inline(always)]
fn widen(h: f16) -> f32 {
    f16_bits_to_f32(h.to_bits())
}

/// Σ a[i]·b[i] over f16 values (kept as f32 in `a`) as the AVX2 `ggml_vec_dot_f16` sums them:
/// the first `len - len % 32` products in [`F16Lanes`], the rest added to that in f64. The
/// reference for [`attn_probs`]'s dots.
#[cfg(test)]
fn dot_f16(a: &[f32], b: &[f16]) -> f32 {
    let n = a.len().min(b.len());
    let whole = n - n % 32;
    let mut lanes = F16Lanes::default();
    for i in 0..whole {
        lanes.add(i, a[i] * widen(b[i]));
    }
    let mut sum = lanes.reduce() as f64;
    for i in whole..n {
        sum += (a[i] * widen(b[i])) as f64;
    }
    sum as f32
}

/// p[t] = softmax_t(scale · q·K[t]) for t in 0..p.len(), each rounded to f16 (kept as f32).
///
/// q: [head_dim] f16 values (kept as f32); k_cache: [n, kv_dim] f16 from the cell of p[0] on
/// (this layer); kv_off: the head's offset in a cached row; first: the cell of p[0].
pub fn attn_probs(
    p: &mut [f32],
    q: &[f32],
    k_cache: &[f16],
    kv_dim: usize,
    kv_off: usize,
    scale: f32,
    first: usize,
) {
    kq(p, q, k_cache, kv_dim, kv_off, scale);
    let max = p.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    exp_shifted(p, max);
    // Σ over groups of 8 cells aligned to cell 0, each summed in f32 as the AVX2 loop does:
    // ((v0+v4) + (v2+v6)) + ((v1+v5) + (v3+v7)).
    let mut sum = 0f64;
    let mut group = [0f32; 8];
    for (t, &e) in p.iter().enumerate() {
        let cell = first + t;
        group[cell % 8] = e;
        if cell % 8 == 7 || t + 1 == p.len() {
            let g = &group;
            sum += (((g[0] + g[4]) + (g[2] + g[6])) + ((g[1] + g[5]) + (g[3] + g[7]))) as f64;
            group = [0.0; 8];
        }
    }
    let inv = (1.0 / sum) as f32;
    for s in p.iter_mut() {
        *s = widen(f16::from_f32(*s * inv));
    }
}

/// p[t] = dot_f16(q, K[t]) · scale: the lanes of the whole 32-element steps (aligned to the
/// row's start) through the selected kernel set, then the tail in f64.
fn kq(p: &mut [f32], q: &[f32], k_cache: &[f16], kv_dim: usize, kv_off: usize, scale: f32) {
    let hd = q.len();
    let whole = hd - hd % 32;
    if dot_f16_rows(simd::selected(), &q[..whole], &k_cache[kv_off..], kv_dim, 0, p).is_err() {
        p.fill(f32::NAN);
    }
    for (t, s) in p.iter_mut().enumerate() {
        let mut sum = *s as f64;
        if whole < hd {
            let k = &k_cache[t * kv_dim + kv_off..][..hd];
            for i in whole..hd {
                sum += (q[i] * widen(k[i])) as f64;
            }
        }
        *s = sum as f32 * scale;
    }
}

/// out[d] = Σ_t p[t] · V[kv_off + d, t] for one head.
///
/// p: [n] probabilities from [`attn_probs`] (f16 values, so each product with a cached f16 is
/// exact in f32); v_cache_t: [kv_dim, n_ctx] f16 (this layer), each row read from the cell of p[0]
/// on; first: the cell of p[0]; out: [head_dim].
pub fn attn_values(out: &mut [f32], p: &[f32], v_cache_t: &[f16], n_ctx: usize, kv_off: usize, first: usize) {
    if dot_f16_rows(simd::selected(), p, &v_cache_t[kv_off * n_ctx..], n_ctx, first, out).is_err() {
        out.fill(f32::NAN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_f16_sums_like_ggml_lanes() {
        // 40 elements: 32 in lanes, 8 left over; values chosen so that the order shows.
        let a: Vec<f16> = (0..40)
            .map(|i| f16::from_f32(if i % 7 == 0 { 1024.0 } else { 0.0009765625 * i as f32 }))
            .collect();
        let b: Vec<f16> = (0..40).map(|i| f16::from_f32(1.0 + i as f32 / 64.0)).collect();
        let mut lanes = [0f32; 32];
        for i in 0..32 {
            lanes[i] += widen(a[i]) * widen(b[i]);
        }
        let x: Vec<f32> =
            (0..8).map(|l| (lanes[l] + lanes[16 + l]) + (lanes[8 + l] + lanes[24 + l])).collect();
        let head = ((x[0] + x[4]) + (x[1] + x[5])) + ((x[2] + x[6]) + (x[3] + x[7]));
        let tail: f64 = (32..40).map(|i| (widen(a[i]) * widen(b[i])) as f64).sum();
        let a: Vec<f32> = a.iter().map(|&v| widen(v)).collect();
        assert_eq!(dot_f16(&a, &b), (head as f64 + tail) as f32);
    }

    #[test]
    fn kq_is_dot_f16_for_every_head_size() {
        // Head sizes with and without a tail; 13 cached rows of a 3-head cache.
        let mut seed = 7u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            f16::from_f32((seed >> 8) as f32 / (1u32 << 24) as f32 * 8.0 - 4.0)
        };
        for hd in [16, 40, 64, 72, 128] {
            let kv_dim = 3 * hd;
            let k: Vec<f16> = (0..13 * kv_dim).map(|_| next()).collect();
            let q: Vec<f32> = (0..hd).map(|_| widen(next())).collect();
            let mut p = vec![0f32; 13];
            kq(&mut p, &q, &k, kv_dim, hd, 0.125);
            for (t, &got) in p.iter().enumerate() {
                let want = dot_f16(&q, &k[t * kv_dim + hd..][..hd]) * 0.125;
                assert_eq!(got.to_bits(), want.to_bits(), "head_dim {hd}, row {t}: {got} vs {want}");
            }
        }
    }
}
