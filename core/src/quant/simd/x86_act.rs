//! AVX2 twins of `act.rs`'s activation quantizers, byte for byte the same blocks (Q8_K's quants
//! then reordered by `permute32` for the K-quant kernels).
//!
//! Identity with the scalar code: the extreme |x| is a maximum (exact in any order; `maxps`
//! returns its second operand when the first is NaN, as `f32::max` skips NaNs); the scale is
//! computed by the same scalar division; each level is the same f32 product rounded to nearest
//! even. The conversion to i8 reproduces Rust's `as` casts on every input: NaN becomes 0, Q8_0/Q8_1
//! levels saturate (`as i8` from f32), and Q8_K levels go through i32 (`as i32` saturates, `min(127)`,
//! then `as i8` keeps the low byte) — cases that real activations never reach (they need a block
//! extreme below about 4e-37), kept identical anyway.

use std::arch::x86_64::*;

use super::x86::permute32;
use crate::quant::{GgmlType, QK_K};

/// Fills `out` (whole `act` blocks) from `x`, and for Q8_0/Q8_1 `table` with each block's `d`
/// and `s` (0 for Q8_0) as f32, the values of its f16 fields. Safety: AVX2 and F16C are present;
/// `act` is Q8_0, Q8_1 or Q8_K and `out` holds exactly `x.len() / block_size` blocks of it.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn quantize(act: GgmlType, x: &[f32], out: &mut [u8], table: &mut [u8]) {
    let table = table.as_chunks_mut::<8>().0;
    match act {
        GgmlType::Q8_0 => {
            let blocks = out.as_chunks_mut::<34>().0;
            for ((x, o), t) in x.as_chunks::<32>().0.iter().zip(blocks).zip(table) {
                let (d, qs, _) = q8_x86(x);
                let d = half::f16::from_f32(d);
                o[..2].copy_from_slice(&d.to_le_bytes());
                store32(&mut o[2..], qs);
                t[..4].copy_from_slice(&d.to_f32().to_le_bytes());
                t[4..].copy_from_slice(&0f32.to_le_bytes());
            }
        }
        GgmlType::Q8_1 => {
            let blocks = out.as_chunks_mut::<36>().0;
            for ((x, o), t) in x.as_chunks::<32>().0.iter().zip(blocks).zip(table) {
                let (d, qs, sum) = q8_x86(x);
                let (dh, sh) = (half::f16::from_f32(d), half::f16::from_f32(d * sum as f32));
                o[..2].copy_from_slice(&dh.to_le_bytes());
                o[2..4].copy_from_slice(&sh.to_le_bytes());
                store32(&mut o[4..], qs);
                t[..4].copy_from_slice(&dh.to_f32().to_le_bytes());
                t[4..].copy_from_slice(&sh.to_f32().to_le_bytes());
            }
        }
        GgmlType::Q8K => {
            for (x, o) in x.as_chunks::<QK_K>().0.iter().zip(out.as_chunks_mut::<292>().0) {
                q8_k(x, o);
            }
        }
        _ => debug_assert!(false, "not an activation type: {act}"),
    }
}

/// Writes the 32 bytes of `v` to the start of `o` (at least 32 long).
#[inline]
#[target_feature(enable = "avx2")]
fn store32(o: &mut [u8], v: __m256i) {
    let mut b = [0u8; 32];
    // SAFETY: `b` is 32 writable bytes; storeu has no alignment needs.
    unsafe { _mm256_storeu_si256(b.as_mut_ptr() as *mut __m256i, v) };
    o[..32].copy_from_slice(&b);
}

/// The 32 elements of `x` as four vectors.
#[inline]
#[target_feature(enable = "avx2")]
fn load_block(x: &[f32; 32]) -> [__m256; 4] {
    // SAFETY: each load reads 8 of the 32 floats of `x`.
    unsafe { [0, 8, 16, 24].map(|i| _mm256_loadu_ps(x.as_ptr().add(i))) }
}

#[inline]
#[target_feature(enable = "avx2")]
fn abs(v: __m256) -> __m256 {
    _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff)))
}

/// max(0, |v| for every non-NaN lane of every vector).
#[inline]
#[target_feature(enable = "avx2")]
fn amax(v: &[__m256]) -> f32 {
    let mut m = _mm256_setzero_ps();
    for &v in v {
        m = _mm256_max_ps(abs(v), m);
    }
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
}

/// round_ties_even(v · s) with NaN made 0, as f32.
#[inline]
#[target_feature(enable = "avx2")]
fn scaled_levels(v: __m256, s: __m256) -> __m256 {
    let p = _mm256_mul_ps(v, s);
    let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(p);
    _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(p, p))
}

/// ggml's x86 Q8_0/Q8_1 quantizer (`act.rs`, `q8_scale_and_levels`): the scale `d`, the levels in
/// element order and their sum.
#[inline]
#[target_feature(enable = "avx2")]
fn q8_x86(x: &[f32; 32]) -> (f32, __m256i, i32) {
    let v = load_block(x);
    let amax = amax(&v);
    let d = amax / 127.0;
    let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
    // `as i8` saturates: clamp in f32 first, after which the conversions and packs are exact.
    let (lo, hi) = (_mm256_set1_ps(-128.0), _mm256_set1_ps(127.0));
    let i = v.map(|v| _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(scaled_levels(v, id), lo), hi)));
    let q = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
    // The packs interleave the 128-bit halves: dwords hold elements 0-3, 8-11, 16-19, 24-27,
    // 4-7, …; put them back in order.
    let q = _mm256_permutevar8x32_epi32(q, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    let pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
    let sum = super::x86::hsum_i32(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
    (d, q, sum)
}

/// ggml's `quantize_row_q8_K_ref` (`act.rs`, `quantize_q8_k`) into the 292 bytes of `o`, the
/// quants of each 32-element chunk reordered by `permute32`.
#[inline]
#[target_feature(enable = "avx2")]
fn q8_k(x: &[f32; QK_K], o: &mut [u8; 292]) {
    let mut v = [_mm256_setzero_ps(); 32];
    for (c, v) in v.iter_mut().enumerate() {
        // SAFETY: reads elements 8c..8c+8 of the 256 in `x`.
        *v = unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * c)) };
    }
    let amax = amax(&v);
    if amax == 0.0 {
        o.fill(0);
        return;
    }
    // The signed extreme: the first element whose magnitude is the maximum.
    let target = _mm256_set1_ps(amax);
    let mut max = 0f32;
    for (c, &v) in v.iter().enumerate() {
        let hit = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(abs(v), target));
        if hit != 0 {
            max = x[8 * c + hit.trailing_zeros() as usize];
            break;
        }
    }
    let iscale = -127.0 / max;
    o[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    let s = _mm256_set1_ps(iscale);
    let (byte, top) = (_mm256_set1_epi32(0xff), _mm256_set1_ps(127.0));
    let mut bsums = [0i16; 16];
    for (c, v) in v.as_chunks::<4>().0.iter().enumerate() {
        // `as i32` (cvtps gives i32::MIN out of range; only +inf and beyond need the min, which
        // `.min(127)` applies anyway), then `as i8` keeps the low byte: mask, then unsigned packs
        // that cannot saturate.
        let i =
            v.map(|v| _mm256_and_si256(_mm256_cvtps_epi32(_mm256_min_ps(scaled_levels(v, s), top)), byte));
        let q = _mm256_packus_epi16(_mm256_packus_epi32(i[0], i[1]), _mm256_packus_epi32(i[2], i[3]));
        let q = _mm256_permutevar8x32_epi32(q, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        // Sums of each 16 levels: bytes → pairs → quads, then the two groups' quads.
        let quads = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(1));
        let mut s4 = [0i32; 8];
        // SAFETY: `s4` is 32 writable bytes.
        unsafe { _mm256_storeu_si256(s4.as_mut_ptr() as *mut __m256i, quads) };
        bsums[2 * c] = (s4[0] + s4[1] + s4[2] + s4[3]) as i16;
        bsums[2 * c + 1] = (s4[4] + s4[5] + s4[6] + s4[7]) as i16;
        store32(&mut o[4 + 32 * c..], permute32(q));
    }
    for (j, s) in bsums.iter().enumerate() {
        o[4 + QK_K + 2 * j..][..2].copy_from_slice(&s.to_le_bytes());
    }
}
