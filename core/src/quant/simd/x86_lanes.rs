//! AVX2 dot products of Q4_1 and Q8_0 weights with Q8_1/Q8_0 activations, in the lane shape of
//! ggml's own AVX2 kernels that the reference (`vecdot.rs`) follows: one vector of eight f32 lanes
//! per (row, token), lane j accumulating, block after block, `fma(d, Σ_{e=4j}^{4j+3} w[e]·y[e])`
//! with `d = dx·dy`; for Q4_1 a scalar fused `m·s` sum beside it; at the end the lanes reduced in
//! `hsum_float_8`'s order (then `+ Σ m·s`). Every operation is the reference's, so the results are
//! the same bits.
//!
//! The integer sums are `madd(maddubs(a, b), 1)`: Q4_1 levels (0..15, unsigned) meet the signed
//! activations directly; Q8_0 weights as `maddubs(|w|, sign(y, w))` (|-128| = 128 fits u8, and no
//! activation level is -128, so nothing saturates).
//!
//! Rows go in bands of four, each band's token groups (up to 8 tokens) in turn while its rows
//! sit in L1. A pass takes `R` rows × `T` tokens (`R·T` ≤ 8 accumulators): several independent
//! FMA chains hide the latency of each, and a weight block, unpacked once, serves `T` tokens.

use std::arch::x86_64::*;

use super::x86::{f16_to_f32, load128, load256, read_f32, read_u16};

pub(super) const Q4_1: u8 = 0;
pub(super) const Q8_0: u8 = 1;

/// Bytes of a weight block.
const fn w_bytes(k: u8) -> usize {
    if k == Q4_1 { 20 } else { 34 }
}

/// Bytes of an activation block: Q8_1 (d, s, 32 quants) for Q4_1, Q8_0 (d, 32 quants) for Q8_0.
const fn a_bytes(k: u8) -> usize {
    if k == Q4_1 { 36 } else { 34 }
}

/// Rows per band: the rows a band's token groups share while they are in L1.
const BAND: usize = 4;

/// Tokens per pass: 8 for Q8_0; 4 for Q4_1, whose `m·s` sums take a register per (row, token)
/// beside the lane vectors (8 tokens spill).
const fn group(k: u8) -> usize {
    if k == Q4_1 { 4 } else { 8 }
}

/// out[r · n_tok + t] = row r · token t (see `super::dot_rows`); returns true (it handled them).
///
/// Safety: AVX2, F16C and FMA are present; `rows` holds `out.len() / n_tok` rows of `row_bytes`
/// (a multiple of the block size), `acts` holds `n_tok` rows of `act_row` bytes with as many
/// blocks, then the scale table: (d, s) as f32 for each of those blocks, token after token.
#[target_feature(enable = "avx2,f16c,fma")]
pub(super) unsafe fn dot_rows<const K: u8>(
    rows: &[u8],
    row_bytes: usize,
    acts: &[u8],
    act_row: usize,
    n_tok: usize,
    out: &mut [f32],
) -> bool {
    let (n_rows, nb) = (out.len() / n_tok, row_bytes / w_bytes(K));
    debug_assert!(rows.len() == n_rows * row_bytes && acts.len() == n_tok * (act_row + 8 * nb));
    debug_assert!(nb * a_bytes(K) == act_row);
    let (acts, table) = acts.split_at(n_tok * act_row);
    for r0 in (0..n_rows).step_by(BAND) {
        let band = Band { rows: &rows[r0 * row_bytes..], row_bytes, n: (n_rows - r0).min(BAND), nb };
        for t0 in (0..n_tok).step_by(group(K)) {
            let tn = (n_tok - t0).min(group(K));
            let at = Out { out: &mut *out, n_tok, r0, t0 };
            // SAFETY: tokens t0..t0 + tn < n_tok, each with nb blocks and nb table pairs.
            let (a, sc) = unsafe { (acts.as_ptr().add(t0 * act_row), table.as_ptr().add(t0 * nb * 8)) };
            // SAFETY: as for this function.
            unsafe {
                match (K == Q4_1, tn) {
                    (true, 1) => pass::<K, 4, 1>(&band, a, act_row, sc, at),
                    (true, 2) => pass::<K, 2, 2>(&band, a, act_row, sc, at),
                    (true, 3) => pass::<K, 1, 3>(&band, a, act_row, sc, at),
                    (true, _) => pass::<K, 1, 4>(&band, a, act_row, sc, at),
                    (false, 1) => pass::<K, 4, 1>(&band, a, act_row, sc, at),
                    (false, 2) => pass::<K, 4, 2>(&band, a, act_row, sc, at),
                    (false, 3) => pass::<K, 2, 3>(&band, a, act_row, sc, at),
                    (false, 4) => pass::<K, 2, 4>(&band, a, act_row, sc, at),
                    (false, 5) => pass::<K, 1, 5>(&band, a, act_row, sc, at),
                    (false, 6) => pass::<K, 1, 6>(&band, a, act_row, sc, at),
                    (false, 7) => pass::<K, 1, 7>(&band, a, act_row, sc, at),
                    (false, _) => pass::<K, 1, 8>(&band, a, act_row, sc, at),
                }
            }
        }
    }
    true
}

/// Up to `BAND` consecutive weight rows: `n` rows of `row_bytes` (`nb` blocks) from `rows`.
struct Band<'r> {
    rows: &'r [u8],
    row_bytes: usize,
    n: usize,
    nb: usize,
}

/// Where a band's results go: out[(r0 + i) · n_tok + t0 + t] for row i of the band, token t of
/// the group.
struct Out<'o> {
    out: &'o mut [f32],
    n_tok: usize,
    r0: usize,
    t0: usize,
}

/// The band's rows, `R` at a time (a short last step repeats the band's last row; those lanes
/// are computed and dropped), times `T` consecutive tokens (`a`, rows `act_row` apart; `sc` their
/// blocks' (d, s) as f32, token after token, `nb` per token), into `at`.
///
/// Safety: AVX2, F16C and FMA; `a` holds `T` rows of `nb` activation blocks, `sc` `T · nb` pairs.
#[inline]
#[target_feature(enable = "avx2,f16c,fma")]
unsafe fn pass<const K: u8, const R: usize, const T: usize>(
    band: &Band<'_>,
    a: *const u8,
    act_row: usize,
    sc: *const u8,
    at: Out<'_>,
) {
    let (wb, ab, nb) = (w_bytes(K), a_bytes(K), band.nb);
    let ones = _mm256_set1_epi16(1);
    for i0 in (0..band.n).step_by(R) {
        let rows: [*const u8; R] =
            std::array::from_fn(|i| band.rows[(i0 + i).min(band.n - 1) * band.row_bytes..].as_ptr());
        let mut acc = [[_mm256_setzero_ps(); T]; R];
        let mut summs = [[0f32; T]; R];
        for k in 0..nb {
            for (i, w) in rows.iter().enumerate() {
                // Two bands ahead, the same block of the same row of its band: the streams the
                // next passes read (interleaved row streams defeat the hardware prefetcher). A
                // hint never faults, even past the end.
                _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(2 * BAND * band.row_bytes + k * wb) as *const i8);
                // SAFETY (this loop): block k < nb of each row (whole rows of the band) and of
                // each token's activations, and its (d, s) pair in the table.
                let w = unsafe { w.add(k * wb) };
                let dw = _mm256_set1_ps(unsafe { f16_to_f32(read_u16(w)) });
                let (qx, mw) = if K == Q4_1 {
                    (unsafe { nibbles(load128(w.add(4))) }, unsafe { f16_to_f32(read_u16(w.add(2))) })
                } else {
                    (unsafe { load256(w.add(2)) }, 0.0)
                };
                let ax = if K == Q4_1 { qx } else { _mm256_sign_epi8(qx, qx) };
                for t in 0..T {
                    let y = unsafe { load256(a.add(t * act_row + k * ab + ab - 32)) };
                    let ysc = unsafe { sc.add((t * nb + k) * 8) };
                    let sy = if K == Q4_1 { y } else { _mm256_sign_epi8(y, qx) };
                    let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), ones));
                    let d = _mm256_mul_ps(dw, _mm256_set1_ps(unsafe { read_f32(ysc) }));
                    acc[i][t] = _mm256_fmadd_ps(d, sums, acc[i][t]);
                    if K == Q4_1 {
                        summs[i][t] = mw.mul_add(unsafe { read_f32(ysc.add(4)) }, summs[i][t]);
                    }
                }
            }
        }
        for (i, (acc, summs)) in acc.iter().zip(&summs).enumerate().take(band.n - i0) {
            let o = &mut at.out[(at.r0 + i0 + i) * at.n_tok + at.t0..][..T];
            for (o, (&v, &m)) in o.iter_mut().zip(acc.iter().zip(summs)) {
                let h = hsum8(v);
                *o = if K == Q4_1 { h + m } else { h };
            }
        }
    }
}

/// ggml's AVX2 `hsum_float_8`: the halves added, then lanes 0 + 2 and 1 + 3, then those two.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum8(v: __m256) -> f32 {
    let h = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)))
}

/// Elements 0..16 from the low nibbles of `qs`, 16..32 from the high nibbles.
#[inline]
#[target_feature(enable = "avx2")]
fn nibbles(qs: __m128i) -> __m256i {
    let both = _mm256_set_m128i(_mm_srli_epi16(qs, 4), qs);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0f))
}
