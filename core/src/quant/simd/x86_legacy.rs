//! AVX2 dot products of the 32-element formats that follow ggml's scalar kernels (Q4_0, Q5_0,
//! Q5_1; Q4_1 and Q8_0 follow its AVX2 kernels instead, in `x86_lanes.rs`) with Q8_0/Q8_1
//! activations, eight weight rows at a time.
//!
//! The reference (`vecdot.rs`) computes, per (row, token), `sum += term(block)` block after block,
//! where `term` combines the block's exact integer sum with f16 scales in f32. Here vector lane `i`
//! is row `i` of a group of eight: for block `k` the eight integer sums are reduced into one
//! vector, the eight terms computed with the reference's operations in its order, and added into
//! the lane's running sum — each lane performs exactly the reference's sequence of f32
//! operations. A weight block is unpacked once per group of up to `TOKENS` tokens, and the next
//! groups' rows are prefetched (eight interleaved row streams defeat the hardware prefetcher).
//!
//! Integer products use `maddubs` (u8 × i8 → i16 pairs, saturating): unsigned levels (Q5_1:
//! 0..31) go in directly; small signed ones (Q4_0, Q5_0: -16..15) as `maddubs(|a|, sign(w, a))`.
//! None can saturate as long as no activation level is -128, which `prepare_activations`
//! guarantees. Q4_0 puts two rows in one vector (row j in the low half, row j + 4 in the high half) and meet each half of
//! the activations broadcast to both halves; their small products leave room to sum in i16, so the
//! eight rows reduce in three `hadd`s and one `madd` instead of eight `madd`s and six `hadd`s.

use std::arch::x86_64::*;

use super::x86::{gather_f16_pairs, load128, load256, read_f32, read_u32, reduce8};

pub(super) const Q4_0: u8 = 0;
pub(super) const Q5_0: u8 = 1;
pub(super) const Q5_1: u8 = 2;

/// Tokens per pass over a group of rows: each unpacked weight block serves this many.
const TOKENS: usize = 8;

/// Bytes of a weight block.
const fn w_bytes(k: u8) -> usize {
    [18, 22, 24][k as usize]
}

/// Bytes of an activation block: Q8_1 (d, s, 32 quants) for Q5_1, else Q8_0.
const fn a_bytes(k: u8) -> usize {
    if k == Q5_1 { 36 } else { 34 }
}

/// out[r · n_tok + t] = row r · token t (see `super::dot_rows`); returns true (it handled them).
///
/// Safety: AVX2 and F16C are present; `rows` holds `out.len() / n_tok` rows of `row_bytes` (a
/// multiple of the block size), `acts` holds `n_tok` rows of `act_row` bytes with as many blocks,
/// then the scale table: (d, s) as f32 for each of those blocks.
#[target_feature(enable = "avx2,f16c")]
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
    let (acts, table) = acts.split_at(n_tok * act_row);
    debug_assert!(nb * a_bytes(K) == act_row);
    for g in (0..n_rows).step_by(8) {
        let nr = (n_rows - g).min(8);
        // A short last group repeats its last row; those lanes are computed and dropped.
        let mut p = [rows.as_ptr(); 8];
        for (i, p) in p.iter_mut().enumerate() {
            // SAFETY: row g + min(i, nr - 1) < n_rows starts inside `rows`.
            *p = unsafe { rows.as_ptr().add((g + i.min(nr - 1)) * row_bytes) };
        }
        let mut t0 = 0;
        while t0 < n_tok {
            let tn = (n_tok - t0).min(TOKENS);
            // SAFETY: tokens t0..t0 + tn < n_tok, rows as above, nb blocks each.
            let a = unsafe { acts.as_ptr().add(t0 * act_row) };
            let sc = unsafe { table.as_ptr().add(t0 * nb * 8) };
            let mut sums = [[0f32; 8]; TOKENS];
            unsafe {
                match tn {
                    1 => group::<K, 1>(&p, nb, a, act_row, sc, &mut sums),
                    2 => group::<K, 2>(&p, nb, a, act_row, sc, &mut sums),
                    3 => group::<K, 3>(&p, nb, a, act_row, sc, &mut sums),
                    4 => group::<K, 4>(&p, nb, a, act_row, sc, &mut sums),
                    5 => group::<K, 5>(&p, nb, a, act_row, sc, &mut sums),
                    6 => group::<K, 6>(&p, nb, a, act_row, sc, &mut sums),
                    7 => group::<K, 7>(&p, nb, a, act_row, sc, &mut sums),
                    _ => group::<K, 8>(&p, nb, a, act_row, sc, &mut sums),
                }
            }
            for (j, s) in sums[..tn].iter().enumerate() {
                for (i, &v) in s[..nr].iter().enumerate() {
                    out[(g + i) * n_tok + t0 + j] = v;
                }
            }
            t0 += tn;
        }
    }
    true
}

/// Eight rows (`p`) times `T` consecutive tokens (`a`, rows `act_row` apart; `sc` their blocks'
/// (d, s) as f32, token after token), into `sums[t][row]`.
///
/// Safety: AVX2 and F16C; each `p[i]` starts `nb` weight blocks, `a` starts `T` rows of `nb`
/// activation blocks, `sc` `T · nb` scale pairs.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn group<const K: u8, const T: usize>(
    p: &[*const u8; 8],
    nb: usize,
    a: *const u8,
    act_row: usize,
    sc: *const u8,
    sums: &mut [[f32; 8]; TOKENS],
) {
    let (wb, ab) = (w_bytes(K), a_bytes(K));
    let mut acc = [_mm256_setzero_ps(); T];
    // Two groups ahead of this one (p[7] is the last row, or a repeat of it): what to prefetch,
    // 8 blocks' worth per block step (the rows are contiguous; a hint never faults).
    let next = p[7].wrapping_add(nb * wb + 8 * nb * wb);
    for k in 0..nb {
        // SAFETY (this loop): block k < nb of each row and of each token's activations.
        let lv = unsafe { unpack::<K>(p, k * wb) };
        for off in (0..8 * wb).step_by(64) {
            _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(k * 8 * wb + off) as *const i8);
        }
        // d (and m for the `_1` kinds) of the eight blocks; for the others the second value is
        // quant bytes, unused.
        let (dw, mw) = unsafe { gather_f16_pairs(p, k * wb) };
        for (t, acc) in acc.iter_mut().enumerate() {
            let y = unsafe { a.add(t * act_row + k * ab) };
            let yd = unsafe { sc.add((t * nb + k) * 8) };
            let da = _mm256_set1_ps(unsafe { read_f32(yd) });
            let s = unsafe { int_sums::<K>(&lv, y.add(ab - 32)) };
            let s = _mm256_cvtepi32_ps(s);
            // The reference's term, operation for operation (`vecdot.rs`).
            let term = match K {
                Q4_0 => _mm256_mul_ps(_mm256_mul_ps(s, dw), da),
                Q5_0 => _mm256_mul_ps(_mm256_mul_ps(dw, da), s),
                _ => {
                    let sa = _mm256_set1_ps(unsafe { read_f32(yd.add(4)) });
                    _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(dw, da), s), _mm256_mul_ps(mw, sa))
                }
            };
            *acc = _mm256_add_ps(*acc, term);
        }
    }
    for (s, acc) in sums.iter_mut().zip(acc) {
        // SAFETY: `s` is 8 writable floats.
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), acc) };
    }
}

/// The levels of block `off / w_bytes` of the eight rows `p`. For Q5_0, Q5_1: vector i holds
/// row i's 32 levels in element order (offset to signed for Q5_0). For Q4_0: vector j < 4 holds
/// the low-nibble levels (elements 0..16) of rows j and j + 4, vector j + 4 their high-nibble
/// levels (16..32), row j in the low half, offset to signed.
///
/// Safety: AVX2; each `p[i] + off` starts a whole block of kind `K`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn unpack<const K: u8>(p: &[*const u8; 8], off: usize) -> [__m256i; 8] {
    let mut lv = [_mm256_setzero_si256(); 8];
    // SAFETY: every read below lies inside a block (sizes in `w_bytes`).
    unsafe {
        if K == Q4_0 {
            let qs = off + 2;
            for j in 0..4 {
                let both =
                    _mm256_loadu2_m128i(p[j + 4].add(qs) as *const __m128i, p[j].add(qs) as *const __m128i);
                let lo = _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
                let hi = _mm256_and_si256(_mm256_srli_epi16(both, 4), _mm256_set1_epi8(0x0f));
                (lv[j], lv[j + 4]) =
                    (_mm256_sub_epi8(lo, _mm256_set1_epi8(8)), _mm256_sub_epi8(hi, _mm256_set1_epi8(8)));
            }
            return lv;
        }
        for (lv, p) in lv.iter_mut().zip(p) {
            let b = p.add(off);
            *lv = match K {
                Q5_0 => _mm256_sub_epi8(
                    _mm256_or_si256(nibbles(load128(b.add(6))), high_bits(read_u32(b.add(2)))),
                    _mm256_set1_epi8(16),
                ),
                _ => _mm256_or_si256(nibbles(load128(b.add(8))), high_bits(read_u32(b.add(4)))),
            };
        }
    }
    lv
}

/// The eight rows' integer block sums Σ level·q against the 32 activation quants at `q`.
///
/// Safety: AVX2; `q..q + 32` is readable; `lv` from `unpack::<K>`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn int_sums<const K: u8>(lv: &[__m256i; 8], q: *const u8) -> __m256i {
    let ones = _mm256_set1_epi16(1);
    let mut prod = [_mm256_setzero_si256(); 8];
    if K == Q4_0 {
        // Each i16 sums four products here and sixteen after two rounds of pair sums
        // (≤ 16·15·127, within i16); `madd` finishes in i32 with the rows in order.
        // SAFETY: the two 16-byte halves of the 32 readable bytes.
        let (qlo, qhi) = unsafe {
            (_mm256_broadcastsi128_si256(load128(q)), _mm256_broadcastsi128_si256(load128(q.add(16))))
        };
        for (j, pv) in prod[..4].iter_mut().enumerate() {
            *pv = _mm256_add_epi16(
                _mm256_maddubs_epi16(_mm256_abs_epi8(qlo), _mm256_sign_epi8(lv[j], qlo)),
                _mm256_maddubs_epi16(_mm256_abs_epi8(qhi), _mm256_sign_epi8(lv[j + 4], qhi)),
            );
        }
        let h = _mm256_hadd_epi16(_mm256_hadd_epi16(prod[0], prod[1]), _mm256_hadd_epi16(prod[2], prod[3]));
        return _mm256_madd_epi16(h, ones);
    }
    // SAFETY: the 32 readable bytes.
    let q = unsafe { load256(q) };
    for (pr, &w) in prod.iter_mut().zip(lv) {
        let pairs = match K {
            Q5_0 => _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(w, q)),
            _ => _mm256_maddubs_epi16(w, q),
        };
        *pr = _mm256_madd_epi16(pairs, ones);
    }
    reduce8(&prod)
}

/// Elements 0..16 from the low nibbles of `qs`, 16..32 from the high nibbles.
#[inline]
#[target_feature(enable = "avx2")]
fn nibbles(qs: __m128i) -> __m256i {
    let both = _mm256_set_m128i(_mm_srli_epi16(qs, 4), qs);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0f))
}

/// 0x10 in byte `j` where bit `j` of `qh` is set (bit 4 of the Q5 levels).
#[inline]
#[target_feature(enable = "avx2")]
fn high_bits(qh: u32) -> __m256i {
    // Byte j takes byte j/8 of qh; OR-ing every bit but bit j%8 leaves all ones iff bit j is set.
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(qh as i32),
        _mm256_setr_epi64x(0, 0x0101_0101_0101_0101, 0x0202_0202_0202_0202, 0x0303_0303_0303_0303),
    );
    let set = _mm256_cmpeq_epi8(
        _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe_u64 as i64)),
        _mm256_set1_epi8(-1),
    );
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}
