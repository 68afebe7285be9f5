//! AVX2 twin of the f16 dot product that attention uses (`dot_f16_rows` in `mod.rs`): one row at a
//! time, in the reference's 32 lanes (`F16Lanes`), which are ggml's own AVX2 accumulators — four
//! vectors of eight f32, element i of an aligned 32-element step in lane i.
//!
//! The products are exact in f32 (x holds f16 values: 11-bit significands), so a fused
//! multiply-add rounds once per lane exactly as the reference's scalar `+=` does. Elements before the
//! first aligned step (when `first % 32 != 0`) and after the last go through the same lanes one at
//! a time; the final reduction is `GGML_F32x8_REDUCE`'s order, in vectors.

use std::arch::x86_64::*;

use super::x86::f16_to_f32;

/// The reduced lanes of Σ_i x[i]·row[i], element i in lane (first + i) % 32.
///
/// Safety: AVX2, F16C and FMA are present; `row.len() >= x.len()`.
#[target_feature(enable = "avx2,f16c,fma")]
pub(super) unsafe fn dot_lanes(x: &[f32], row: &[u16], first: usize) -> f32 {
    debug_assert!(row.len() >= x.len());
    let n = x.len();
    // Elements 0..head go one by one until lane 0 comes round; then whole steps; then the rest.
    let head = ((32 - first % 32) % 32).min(n);
    let body = head + (n - head) / 32 * 32;
    let mut lanes = [0f32; 32];
    for i in 0..head {
        lanes[(first + i) % 32] += x[i] * f16_to_f32(row[i]);
    }
    // SAFETY: `lanes` holds 32 f32.
    let mut acc: [__m256; 4] = std::array::from_fn(|r| unsafe { _mm256_loadu_ps(lanes.as_ptr().add(8 * r)) });
    for i in (head..body).step_by(32) {
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: i + 8r + 8 <= body <= n elements of x and of row.
            let (xv, hv) = unsafe {
                (
                    _mm256_loadu_ps(x.as_ptr().add(i + 8 * r)),
                    _mm_loadu_si128(row.as_ptr().add(i + 8 * r) as *const __m128i),
                )
            };
            // The product is exact, so the fused form rounds exactly as mul-then-add would.
            *acc = _mm256_fmadd_ps(xv, _mm256_cvtph_ps(hv), *acc);
        }
    }
    if body < n {
        for (r, acc) in acc.iter().enumerate() {
            // SAFETY: as above.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr().add(8 * r), *acc) };
        }
        // Lane (first + i) % 32 = (i - head) % 32 from here on.
        for i in body..n {
            lanes[i - body] += x[i] * f16_to_f32(row[i]);
        }
        // SAFETY: as above.
        acc = std::array::from_fn(|r| unsafe { _mm256_loadu_ps(lanes.as_ptr().add(8 * r)) });
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
    let t = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let t = _mm_hadd_ps(t, t);
    _mm_cvtss_f32(_mm_hadd_ps(t, t))
}
