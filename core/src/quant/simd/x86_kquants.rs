//! AVX2 dot products of the K-quants (Q2_K … Q6_K) with Q8_K activations, one weight row and up
//! to four tokens at a time.
//!
//! Per super-block the reference (`vecdot.rs`) forms eight i32 lanes (element `e` in lane
//! `e % 8`, each 16-element group weighted by its integer scale), adds `d · lane` into eight f32
//! lane sums (Q3_K–Q6_K) and subtracts a min term from a running f32 sum (Q4_K, Q5_K); Q2_K adds
//! one term per block instead. Here the weight bytes of each 32-element chunk are reordered by
//! `permute32` in registers to match the activations `prepare_activations` stored reordered, so
//! `maddubs` pairs elements `e` and `e + 8` (same lane, same group) and `madd` with the two
//! groups' scales yields exactly the reference's eight lanes; the f32 steps are the reference's.
//!
//! Levels enter `maddubs` unsigned (Q2_K, Q4_K, Q5_K) or, when signed (Q3_K: -4..3, Q6_K:
//! -32..31), as `maddubs(|w|, sign(a, w))`; no pair can saturate while activations avoid -128.

use std::arch::x86_64::*;

use super::x86::{f16_to_f32, hsum_i32, load256, permute32, read_f32, read_u16};
use crate::quant::GgmlType;

/// Tokens per pass over a row: each unpacked super-block serves this many.
const TOKENS: usize = 8;

/// Per-token state of one row's dot product: the reference's eight lane sums and running sum.
#[derive(Clone, Copy)]
struct Acc {
    lanes: __m256,
    sum: f32,
}

/// out[r · n_tok + t] = row r · token t (see `super::dot_rows`); returns true (it handled them).
///
/// Safety: AVX2 and F16C are present; `ty` is a K-quant; `rows` holds `out.len() / n_tok` rows of
/// `row_bytes` (whole blocks), `acts` `n_tok` rows of `act_row` bytes with as many Q8_K blocks,
/// their quants reordered by `permute32`.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn dot_rows(
    ty: GgmlType,
    rows: &[u8],
    row_bytes: usize,
    acts: &[u8],
    act_row: usize,
    n_tok: usize,
    out: &mut [f32],
) -> bool {
    let nb = row_bytes / ty.type_size();
    debug_assert!(nb * 292 == act_row && rows.len() * n_tok == out.len() * row_bytes);
    for (r, dst) in out.chunks_mut(n_tok).enumerate() {
        // SAFETY: row r and tokens t0..t0 + tn lie inside `rows` and `acts` (checked by the
        // caller); the kernels read nb blocks from each.
        let w = unsafe { rows.as_ptr().add(r * row_bytes) };
        let mut t0 = 0;
        while t0 < n_tok {
            let tn = (n_tok - t0).min(TOKENS);
            let a = unsafe { acts.as_ptr().add(t0 * act_row) };
            let mut res = [0f32; TOKENS];
            unsafe {
                match tn {
                    1 => row::<1>(ty, w, nb, a, act_row, &mut res),
                    2 => row::<2>(ty, w, nb, a, act_row, &mut res),
                    3 => row::<3>(ty, w, nb, a, act_row, &mut res),
                    4 => row::<4>(ty, w, nb, a, act_row, &mut res),
                    5 => row::<5>(ty, w, nb, a, act_row, &mut res),
                    6 => row::<6>(ty, w, nb, a, act_row, &mut res),
                    7 => row::<7>(ty, w, nb, a, act_row, &mut res),
                    _ => row::<8>(ty, w, nb, a, act_row, &mut res),
                }
            }
            dst[t0..t0 + tn].copy_from_slice(&res[..tn]);
            t0 += tn;
        }
    }
    true
}

/// One row (`w`, `nb` blocks) times `T` tokens, into `res[..T]`.
///
/// Safety: as for `dot_rows`, with `w` and `a` at the row and first token.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn row<const T: usize>(
    ty: GgmlType,
    w: *const u8,
    nb: usize,
    a: *const u8,
    act_row: usize,
    res: &mut [f32; TOKENS],
) {
    let mut acc = [Acc { lanes: _mm256_setzero_ps(), sum: 0.0 }; T];
    let mut y = [a; T];
    for (t, y) in y.iter_mut().enumerate() {
        // SAFETY: token t < T lies inside the activations.
        *y = unsafe { a.add(t * act_row) };
    }
    for b in 0..nb {
        // SAFETY: block b < nb of the row and of each token.
        unsafe {
            let x = w.add(b * ty.type_size());
            let y = y.map(|y| y.add(b * 292));
            match ty {
                GgmlType::Q2K => q2_k(x, &y, &mut acc),
                GgmlType::Q3K => q3_k(x, &y, &mut acc),
                GgmlType::Q4K => q4_k::<false, T>(x, &y, &mut acc),
                GgmlType::Q5K => q4_k::<true, T>(x, &y, &mut acc),
                _ => q6_k(x, &y, &mut acc),
            }
        }
    }
    for (r, acc) in res.iter_mut().zip(acc) {
        if ty == GgmlType::Q2K {
            // No lanes: adding their zeros could turn a -0.0 sum into +0.0.
            *r = acc.sum;
            continue;
        }
        // The reference adds the lanes into the running sum last, in order.
        let mut l = [0f32; 8];
        // SAFETY: `l` is 8 writable floats.
        unsafe { _mm256_storeu_ps(l.as_mut_ptr(), acc.lanes) };
        let mut s = acc.sum;
        for v in l {
            s += v;
        }
        *r = s;
    }
}

/// `acc.lanes += d · lanes` (the reference's `add_lanes`).
#[inline]
#[target_feature(enable = "avx2")]
fn add_lanes(acc: &mut Acc, d: f32, lanes: __m256i) {
    acc.lanes = _mm256_add_ps(acc.lanes, _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes)));
}

/// The activation quants of chunk `c` (elements 32c..32c+32, reordered) of the block at `y`.
///
/// Safety: AVX2; `y` starts a Q8_K block.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q8(y: *const u8, c: usize) -> __m256i {
    // SAFETY: bytes 4 + 32c .. 36 + 32c of the 292 (c < 8).
    unsafe { load256(y.add(4 + 32 * c)) }
}

/// The 16 i16 bsums of the block at `y`. Safety: AVX2; `y` starts a Q8_K block.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn bsums(y: *const u8) -> __m256i {
    // SAFETY: bytes 260..292.
    unsafe { load256(y.add(260)) }
}

/// Scale pairs for `madd`, one per chunk: 32-bit lane c of `pairs` holds chunk c's two i16
/// group scales (low half: group 2c, high half: group 2c + 1); `at(c)` broadcasts it.
#[derive(Clone, Copy)]
struct Pairs(__m256i);

impl Pairs {
    /// From sixteen i16 group scales (lane c is then the pair of chunk c as it stands).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn from_i16(scales: __m256i) -> Pairs {
        Pairs(scales)
    }

    /// From eight sub-block scales shared by both groups of a chunk (Q4_K/Q5_K), as i32 lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn from_shared(scales: __m256i) -> Pairs {
        Pairs(_mm256_or_si256(scales, _mm256_slli_epi32(scales, 16)))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn at(self, c: usize) -> __m256i {
        _mm256_permutevar8x32_epi32(self.0, _mm256_set1_epi32(c as i32))
    }
}

/// The bytes of `b` as a vector (bytes beyond 16 are zero).
#[inline]
#[target_feature(enable = "avx2")]
fn bytes16(b: [u8; 16]) -> __m128i {
    // SAFETY: `b` is 16 readable bytes.
    unsafe { _mm_loadu_si128(b.as_ptr() as *const __m128i) }
}

/// The 16 bytes at `p` as an array. Safety: they are readable.
#[inline]
unsafe fn read16(p: *const u8) -> [u8; 16] {
    let mut b = [0u8; 16];
    // SAFETY: the caller guarantees the read; `b` is 16 writable bytes.
    unsafe { std::ptr::copy_nonoverlapping(p, b.as_mut_ptr(), 16) };
    b
}

/// The 12 packed scale bytes of a Q4_K/Q5_K block unpacked to eight scales and eight mins (as
/// `scale_min_k4` gives them), four per u32 little-endian: `[sc0-3, sc4-7, m0-3, m4-7]`.
#[inline]
fn k4_scales_mins(s: &[u8]) -> [u32; 4] {
    let w = |i: usize| u32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]);
    let (a, b, c) = (w(0), w(1), w(2));
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const TOP2: u32 = 0x0303_0303;
    // Sub-blocks 0-3: low six bits of bytes 0-3 (scales) and 4-7 (mins). Sub-blocks 4-7: a
    // nibble of bytes 8-11, topped by the two spare bits of bytes 0-3 (scales) or 4-7 (mins).
    [a & LOW6, (c & LOW4) | (((a >> 6) & TOP2) << 4), b & LOW6, ((c >> 4) & LOW4) | (((b >> 6) & TOP2) << 4)]
}

/// The 12 packed scale bytes of a Q3_K block unpacked to its sixteen 6-bit scales (biased by
/// 32, as `q3k_scales` reads them before subtracting), one per byte.
#[inline]
fn k3_scales(s: &[u8]) -> [u8; 16] {
    let w = |i: usize| u32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]);
    let (a, b, c) = (w(0), w(1), w(2));
    const LOW4: u32 = 0x0f0f_0f0f;
    const TOP2: u32 = 0x0303_0303;
    // Scale k: a nibble of byte k % 8 (low for k < 8), topped by bits 2(k/4).. of byte 8 + k % 4.
    let words = [
        (a & LOW4) | ((c & TOP2) << 4),
        (b & LOW4) | (((c >> 2) & TOP2) << 4),
        ((a >> 4) & LOW4) | (((c >> 4) & TOP2) << 4),
        ((b >> 4) & LOW4) | (((c >> 6) & TOP2) << 4),
    ];
    let mut out = [0u8; 16];
    for (o, w) in out.chunks_exact_mut(4).zip(words) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// Eight i32 lanes of Σ scale·level·q8 over one super-block: `lv[c]` the reordered levels of
/// chunk c (unsigned, or signed with `SIGNED`), `sc` the chunks' group scale pairs.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn lanes<const SIGNED: bool>(lv: &[__m256i; 8], sc: Pairs, y: *const u8) -> __m256i {
    let mut acc = _mm256_setzero_si256();
    for (c, &w) in lv.iter().enumerate() {
        // SAFETY: chunk c < 8 of the block at y.
        let q = unsafe { q8(y, c) };
        let pairs = if SIGNED {
            _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(q, w))
        } else {
            _mm256_maddubs_epi16(w, q)
        };
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, sc.at(c)));
    }
    acc
}

/// (v >> n) for each 16-bit lane (n < 16), the byte masks applied by the callers.
#[inline]
#[target_feature(enable = "avx2")]
fn shr(v: __m256i, n: i32) -> __m256i {
    _mm256_srl_epi16(v, _mm_cvtsi32_si128(n))
}

/// Bit `b` of each byte of `v` moved to bit `to` (the other bits cleared).
#[inline]
#[target_feature(enable = "avx2")]
fn bit_to(v: __m256i, b: i32, to: i32) -> __m256i {
    let moved = if b >= to { shr(v, b - to) } else { _mm256_sll_epi16(v, _mm_cvtsi32_si128(to - b)) };
    _mm256_and_si256(moved, _mm256_set1_epi8(1 << to))
}

/// Q2_K: `sum += dall·isum − dmin·summs` per block (`block_sum` in the reference).
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn q2_k<const T: usize>(x: *const u8, y: &[*const u8; T], acc: &mut [Acc; T]) {
    // Layout: scales[16] (scale low nibble, min high), qs[64], d, dmin.
    // SAFETY (this function): reads inside the 84-byte block at x and the Q8_K blocks at y.
    let s = bytes16(unsafe { read16(x) });
    let low4 = _mm_set1_epi8(0x0f);
    let sc = Pairs::from_i16(_mm256_cvtepu8_epi16(_mm_and_si128(s, low4)));
    let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), low4));
    let (d, dmin) = unsafe { (f16_to_f32(read_u16(x.add(80))), f16_to_f32(read_u16(x.add(82)))) };
    let mut lv = [_mm256_setzero_si256(); 8];
    for h in 0..2 {
        let q = permute32(unsafe { load256(x.add(16 + 32 * h)) });
        for j in 0..4 {
            lv[4 * h + j] = _mm256_and_si256(shr(q, 2 * j as i32), _mm256_set1_epi8(3));
        }
    }
    for (acc, &y) in acc.iter_mut().zip(y) {
        let isum = hsum_i32(unsafe { lanes::<false>(&lv, sc, y) });
        let summs = hsum_i32(_mm256_madd_epi16(unsafe { bsums(y) }, mins));
        let yd = unsafe { read_f32(y) };
        let (dall, dmin) = (yd * d, yd * dmin);
        acc.sum += dall * isum as f32 - dmin * summs as f32;
    }
}

/// Q3_K: `lanes += (d·yd)·lanes`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn q3_k<const T: usize>(x: *const u8, y: &[*const u8; T], acc: &mut [Acc; T]) {
    // Layout: hmask[32], qs[64], scales[12], d.
    // SAFETY (this function): reads inside the 110-byte block at x and the Q8_K blocks at y.
    let mut s = [0u8; 12];
    unsafe { std::ptr::copy_nonoverlapping(x.add(96), s.as_mut_ptr(), 12) };
    let biased = bytes16(k3_scales(&s));
    let sc = Pairs::from_i16(_mm256_cvtepi8_epi16(_mm_sub_epi8(biased, _mm_set1_epi8(32))));
    let d = f16_to_f32(unsafe { read_u16(x.add(108)) });
    let hm = permute32(unsafe { load256(x) });
    let mut lv = [_mm256_setzero_si256(); 8];
    for h in 0..2 {
        let q = permute32(unsafe { load256(x.add(32 + 32 * h)) });
        for j in 0..4 {
            // low two bits | the hmask bit as bit 2, minus 4: set means no offset.
            let low = _mm256_and_si256(shr(q, 2 * j as i32), _mm256_set1_epi8(3));
            let raw = _mm256_or_si256(low, bit_to(hm, (4 * h + j) as i32, 2));
            lv[4 * h + j] = _mm256_sub_epi8(raw, _mm256_set1_epi8(4));
        }
    }
    for (acc, &y) in acc.iter_mut().zip(y) {
        let l = unsafe { lanes::<true>(&lv, sc, y) };
        add_lanes(acc, d * unsafe { read_f32(y) }, l);
    }
}

/// Q4_K (and Q5_K with `FIVE`): `lanes += (d·yd)·lanes`, `sum -= (dmin·yd)·Σ bsums·min`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn q4_k<const FIVE: bool, const T: usize>(x: *const u8, y: &[*const u8; T], acc: &mut [Acc; T]) {
    // Layout: d, dmin, scales[12], (Q5_K: qh[32]), qs[128].
    // SAFETY (this function): reads inside the 144- or 176-byte block at x and the Q8_K blocks.
    let mut s = [0u8; 12];
    unsafe { std::ptr::copy_nonoverlapping(x.add(4), s.as_mut_ptr(), 12) };
    let [sc0, sc1, m0, m1] = k4_scales_mins(&s);
    let sc = Pairs::from_shared(_mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, sc1 as i32, sc0 as i32)));
    // One min per 32-element sub-block, against the bsums summed in pairs.
    let mins = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, m1 as i32, m0 as i32));
    let (d, dmin) = unsafe { (f16_to_f32(read_u16(x)), f16_to_f32(read_u16(x.add(2)))) };
    let qs = if FIVE { 48 } else { 16 };
    let qh = if FIVE { permute32(unsafe { load256(x.add(16)) }) } else { _mm256_setzero_si256() };
    let mut lv = [_mm256_setzero_si256(); 8];
    for p in 0..4 {
        let q = permute32(unsafe { load256(x.add(qs + 32 * p)) });
        lv[2 * p] = _mm256_and_si256(q, _mm256_set1_epi8(0x0f));
        lv[2 * p + 1] = _mm256_and_si256(shr(q, 4), _mm256_set1_epi8(0x0f));
        if FIVE {
            lv[2 * p] = _mm256_or_si256(lv[2 * p], bit_to(qh, 2 * p as i32, 4));
            lv[2 * p + 1] = _mm256_or_si256(lv[2 * p + 1], bit_to(qh, 2 * p as i32 + 1, 4));
        }
    }
    for (acc, &y) in acc.iter_mut().zip(y) {
        let l = unsafe { lanes::<false>(&lv, sc, y) };
        let yd = unsafe { read_f32(y) };
        add_lanes(acc, d * yd, l);
        let b = unsafe { bsums(y) };
        let pair_sums = _mm_hadd_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
        let m = hsum_i32(_mm256_zextsi128_si256(_mm_madd_epi16(pair_sums, mins)));
        acc.sum -= dmin * yd * m as f32;
    }
}

/// Q6_K: `lanes += (d·yd)·lanes`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn q6_k<const T: usize>(x: *const u8, y: &[*const u8; T], acc: &mut [Acc; T]) {
    // Layout: ql[128], qh[64], scales[16] (i8), d.
    // SAFETY (this function): reads inside the 210-byte block at x and the Q8_K blocks at y.
    let sc = Pairs::from_i16(_mm256_cvtepi8_epi16(bytes16(unsafe { read16(x.add(192)) })));
    let d = f16_to_f32(unsafe { read_u16(x.add(208)) });
    let mut lv = [_mm256_setzero_si256(); 8];
    let (low4, high2) = (_mm256_set1_epi8(0x0f), _mm256_set1_epi8(0x30));
    for h in 0..2 {
        let (ql0, ql1, qh) = unsafe {
            (
                permute32(load256(x.add(64 * h))),
                permute32(load256(x.add(64 * h + 32))),
                permute32(load256(x.add(128 + 32 * h))),
            )
        };
        // Chunk k: low nibble of ql[32(k%2)..] (k < 2) or its high nibble, bits 2k.. of qh as
        // bits 4-5.
        let lo = [
            _mm256_and_si256(ql0, low4),
            _mm256_and_si256(ql1, low4),
            _mm256_and_si256(shr(ql0, 4), low4),
            _mm256_and_si256(shr(ql1, 4), low4),
        ];
        let hi = [
            _mm256_and_si256(_mm256_slli_epi16(qh, 4), high2),
            _mm256_and_si256(_mm256_slli_epi16(qh, 2), high2),
            _mm256_and_si256(qh, high2),
            _mm256_and_si256(shr(qh, 2), high2),
        ];
        for k in 0..4 {
            lv[4 * h + k] = _mm256_sub_epi8(_mm256_or_si256(lo[k], hi[k]), _mm256_set1_epi8(32));
        }
    }
    for (acc, &y) in acc.iter_mut().zip(y) {
        let l = unsafe { lanes::<true>(&lv, sc, y) };
        add_lanes(acc, d * unsafe { read_f32(y) }, l);
    }
}
