//! AVX2 building blocks shared by the kernels: unaligned loads, the chunk permutation of Q8_K
//! activations, the reduction of eight integer vectors, f16 scale gathers.
//!
//! Every function here is `#[inline]` with the kernels' target features, so it is inlined into
//! them. Loads take raw pointers; each caller states why its reads lie inside its slices.
//!
//! The chunk permutation `permute32`: the K-quant reference keeps eight i32 lanes, element `e` of
//! a super-block in lane `e % 8`, and scales each 16-element group separately. `maddubs` adds
//! *adjacent* byte products, so in natural order it would mix lanes. Within each 32-byte chunk
//! (two 16-element groups g0, g1) we reorder bytes so that position `16h + 4l + q` holds element
//! `8q + 4h + l` (h = half, l = 0..4, q = 0..4): each adjacent pair is then `(e, e + 8)` of one
//! group — the same lane and the same scale — and after `maddubs` the i16 values of half `h`
//! read `[g0 lane 4h, g1 lane 4h, g0 lane 4h+1, g1 lane 4h+1, …]`, so `madd` with the scale pair
//! `(s_g0, s_g1)` yields lanes `0..8` in order. Activations are stored permuted once per matmul;
//! weights are permuted in registers (`vpermd` + `pshufb`).

use std::arch::x86_64::*;

/// 32 bytes at `p`. Safety: `p..p + 32` is readable.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn load256(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees the 32 bytes are readable; loadu has no alignment needs.
    unsafe { _mm256_loadu_si256(p as *const __m256i) }
}

/// 16 bytes at `p`. Safety: `p..p + 16` is readable.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn load128(p: *const u8) -> __m128i {
    // SAFETY: as for `load256`.
    unsafe { _mm_loadu_si128(p as *const __m128i) }
}

/// The little-endian u16 at `p`. Safety: `p..p + 2` is readable.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn read_u16(p: *const u8) -> u16 {
    // SAFETY: as for `load256`.
    u16::from_le(unsafe { (p as *const u16).read_unaligned() })
}

/// The little-endian u32 at `p`. Safety: `p..p + 4` is readable.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn read_u32(p: *const u8) -> u32 {
    // SAFETY: as for `load256`.
    u32::from_le(unsafe { (p as *const u32).read_unaligned() })
}

/// The f32 at `p`. Safety: `p..p + 4` is readable.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn read_f32(p: *const u8) -> f32 {
    f32::from_bits(unsafe { read_u32(p) })
}

/// An f16 as f32, exactly (F16C; the same value as `f16_bits_to_f32`).
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) fn f16_to_f32(h: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
}

/// The chunk permutation of the module doc, applied to one 32-byte chunk.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn permute32(v: __m256i) -> __m256i {
    // Dwords [0,2,4,6] hold elements 0-3, 8-11, 16-19, 24-27: half 0 of the result; the odd
    // dwords hold half 1. The byte shuffle is then a 4×4 transpose inside each half.
    let d = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    _mm256_shuffle_epi8(
        d,
        _mm256_setr_epi8(
            0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, //
            0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
        ),
    )
}

/// The element that `permute32` puts at byte `pos` of a chunk (for the scalar twin in tests).
#[cfg(test)]
pub(super) fn permute32_source(pos: usize) -> usize {
    let (h, l, q) = (pos / 16, pos % 16 / 4, pos % 4);
    8 * q + 4 * h + l
}

/// [Σ v0, Σ v1, …, Σ v7]: the eight i32 sums of eight vectors.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn reduce8(v: &[__m256i; 8]) -> __m256i {
    // hadd of hadds leaves [Σlo v0..v3 | Σhi v0..v3] per quartet; the two halves are then added.
    let a = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    let b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31))
}

/// The sum of the eight i32 of `v`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// The two f16 at offsets 0 and 2 of the eight blocks at `p[i] + off`, as f32 vectors (lane i is
/// block i's). Safety: `p[i] + off .. + 4` is readable for every i.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn gather_f16_pairs(p: &[*const u8; 8], off: usize) -> (__m256, __m256) {
    // SAFETY: the caller guarantees each 4-byte read.
    let u = unsafe {
        _mm256_setr_epi32(
            read_u32(p[0].add(off)) as i32,
            read_u32(p[1].add(off)) as i32,
            read_u32(p[2].add(off)) as i32,
            read_u32(p[3].add(off)) as i32,
            read_u32(p[4].add(off)) as i32,
            read_u32(p[5].add(off)) as i32,
            read_u32(p[6].add(off)) as i32,
            read_u32(p[7].add(off)) as i32,
        )
    };
    // lo = [a0 b0 a1 b1 a2 b2 a3 b3], hi = [a4 b4 … a7 b7]; even / odd picks give
    // [a0 a1 a4 a5 | a2 a3 a6 a7], which the 64-bit permute puts in order.
    let lo = _mm256_cvtph_ps(_mm256_castsi256_si128(u));
    let hi = _mm256_cvtph_ps(_mm256_extracti128_si256(u, 1));
    (in_order(_mm256_shuffle_ps(lo, hi, 0b10_00_10_00)), in_order(_mm256_shuffle_ps(lo, hi, 0b11_01_11_01)))
}

/// [x0 x1 x4 x5 | x2 x3 x6 x7] → [x0 … x7].
#[inline]
#[target_feature(enable = "avx2")]
fn in_order(v: __m256) -> __m256 {
    _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0b11_01_10_00))
}
