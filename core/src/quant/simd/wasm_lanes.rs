//! simd128 dot products of Q4_1 and Q8_0 weights with Q8_1/Q8_0 activations, in the reference's
//! lane shape (`vecdot.rs`, after ggml's AVX2 kernels): per (row, token) eight f32 lanes, lane j
//! accumulating, block after block, `fma(d, Σ_{e=4j}^{4j+3} w[e]·y[e])` with `d = dx·dy`; for
//! Q4_1 a fused `m·s` sum beside it; at the end `hsum8(lanes)` (then `+ Σ m·s`).
//!
//! The integer sums are `wasm::quads` of the 16-byte halves; the fused adds `wasm::fma_lanes`
//! (in f64, halfway sums settled by their two-sum error). A weight block is
//! unpacked once for `T` tokens (up to 4) that follow it through the row.

use core::arch::wasm32::*;

use super::wasm::{Lanes, ZERO_LANES, fma_f32, fma_lanes, lanes_f32, load_at, quads};
use crate::quant::f16_bits_to_f32;
use crate::quant::vecdot::hsum8;

pub(super) const Q4_1: u8 = 0;
pub(super) const Q8_0: u8 = 1;

/// out[r · n_tok + t] = row r · token t (see `super::dot_rows`): `rows` holds `out.len() / n_tok`
/// rows of `row_bytes`, `acts` `n_tok` rows of `act_row` bytes (as many blocks), `table` the
/// (d, s) f32 pairs of those blocks, token after token.
pub(super) fn dot_rows<const K: u8>(
    rows: &[u8],
    row_bytes: usize,
    acts: &[u8],
    act_row: usize,
    table: &[u8],
    n_tok: usize,
    out: &mut [f32],
) {
    let nb = act_row / if K == Q4_1 { 36 } else { 34 };
    for (r, dst) in out.chunks_mut(n_tok).enumerate() {
        let row = &rows[r * row_bytes..][..row_bytes];
        let mut t0 = 0;
        while t0 < n_tok {
            let (a, sc) = (&acts[t0 * act_row..], &table[t0 * nb * 8..]);
            let t = match n_tok - t0 {
                1 => pass::<K, 1>(row, a, act_row, sc, nb, &mut dst[t0..]),
                2 | 3 => pass::<K, 2>(row, a, act_row, sc, nb, &mut dst[t0..]),
                _ => pass::<K, 4>(row, a, act_row, sc, nb, &mut dst[t0..]),
            };
            t0 += t;
        }
    }
}

/// One row times `T` tokens (`a`: their activation rows, `act_row` apart; `sc`: their tables),
/// into `dst[..T]`; returns `T`.
#[inline(always)]
fn pass<const K: u8, const T: usize>(
    row: &[u8],
    a: &[u8],
    act_row: usize,
    sc: &[u8],
    nb: usize,
    dst: &mut [f32],
) -> usize {
    let mut acc: [Lanes; T] = [ZERO_LANES; T];
    let mut summs = [0f32; T];
    let acts: [&[u8]; T] = std::array::from_fn(|t| &a[t * act_row..][..act_row]);
    let tables: [&[[u8; 8]]; T] =
        std::array::from_fn(|t| &sc[t * nb * 8..][..nb * 8].as_chunks::<8>().0[..nb]);
    let f32_at = |b: &[u8; 8], at: usize| f32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    if K == Q4_1 {
        for (k, w) in row.as_chunks::<20>().0.iter().enumerate() {
            let dw = f16_bits_to_f32(u16::from_le_bytes([w[0], w[1]]));
            let mw = f16_bits_to_f32(u16::from_le_bytes([w[2], w[3]]));
            let qs = load_at(w, 4);
            let (lo, hi) = (v128_and(qs, u8x16_splat(0x0f)), u8x16_shr(qs, 4));
            for t in 0..T {
                let y: &[u8; 36] = acts[t][k * 36..].first_chunk().unwrap_or(&[0; 36]);
                let s = &tables[t][k];
                let sums = [quads(lo, load_at(y, 4)), quads(hi, load_at(y, 20))];
                fma_lanes(&mut acc[t], dw * f32_at(s, 0), sums);
                summs[t] = fma_f32(mw, f32_at(s, 4), summs[t]);
            }
        }
    } else {
        for (k, w) in row.as_chunks::<34>().0.iter().enumerate() {
            let dw = f16_bits_to_f32(u16::from_le_bytes([w[0], w[1]]));
            let (w0, w1) = (load_at(w, 2), load_at(w, 18));
            for t in 0..T {
                let y: &[u8; 34] = acts[t][k * 34..].first_chunk().unwrap_or(&[0; 34]);
                let sums = [quads(w0, load_at(y, 2)), quads(w1, load_at(y, 18))];
                fma_lanes(&mut acc[t], dw * f32_at(&tables[t][k], 0), sums);
            }
        }
    }
    for t in 0..T {
        let h = hsum8(&lanes_f32(&acc[t]));
        dst[t] = if K == Q4_1 { h + summs[t] } else { h };
    }
    T
}
