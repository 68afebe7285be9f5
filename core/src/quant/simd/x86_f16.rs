//! AVX2 twin of the f16 dot product that attention uses (`dot_f16_rows` in `mod.rs`): for each
//! row, `Σ_i (x[i] · row[i]) as f64` in index order, rounded to f32 once.
//!
//! The products are exact in f32 (x holds f16 values: 11-bit significands), but the f64 sum is
//! sequential and its roundings depend on the order, so one row's sum cannot be split across
//! lanes. Instead eight rows run side by side, one f64 chain per lane: eight rows × eight elements
//! are converted and multiplied, transposed so that each vector holds one element index of all
//! eight rows, and added into the chains in index order.

use std::arch::x86_64::*;

use super::x86::load128;

/// out[j] = Σ_i (x[i] · m[j·stride + i]) as f64, as f32, for j in 0..8.
///
/// Safety: AVX2 and F16C are present; `m` holds at least `7·stride + x.len()` values.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn dot8(x: &[f32], m: &[u16], stride: usize, out: &mut [f32; 8]) {
    debug_assert!(m.len() >= 7 * stride + x.len());
    let n8 = x.len() / 8 * 8;
    let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    for i in (0..n8).step_by(8) {
        // SAFETY: x[i..i + 8] lies in x; row j's elements i..i + 8 lie in m (see above).
        let xv = unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) };
        let mut r = [_mm256_setzero_ps(); 8];
        for (j, r) in r.iter_mut().enumerate() {
            let h = unsafe { load128(m.as_ptr().add(j * stride + i) as *const u8) };
            *r = _mm256_mul_ps(_mm256_cvtph_ps(h), xv);
        }
        let c = transpose8(&r);
        for c in c {
            lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(c)));
            hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(c, 1)));
        }
    }
    let mut acc = [0f64; 8];
    // SAFETY: `acc` is 8 writable f64.
    unsafe {
        _mm256_storeu_pd(acc.as_mut_ptr(), lo);
        _mm256_storeu_pd(acc.as_mut_ptr().add(4), hi);
    }
    for (j, (o, acc)) in out.iter_mut().zip(&mut acc).enumerate() {
        for (i, &xi) in x.iter().enumerate().skip(n8) {
            *acc += (xi * super::x86::f16_to_f32(m[j * stride + i])) as f64;
        }
        *o = *acc as f32;
    }
}

/// Rows of an 8×8 matrix → its columns.
#[inline]
#[target_feature(enable = "avx2")]
fn transpose8(r: &[__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    // u_k: column k of rows 0-3 | column k + 4 of rows 0-3 (and v_k for rows 4-7).
    let u0 = _mm256_shuffle_ps(t0, t2, 0x44);
    let u1 = _mm256_shuffle_ps(t0, t2, 0xee);
    let u2 = _mm256_shuffle_ps(t1, t3, 0x44);
    let u3 = _mm256_shuffle_ps(t1, t3, 0xee);
    let v0 = _mm256_shuffle_ps(t4, t6, 0x44);
    let v1 = _mm256_shuffle_ps(t4, t6, 0xee);
    let v2 = _mm256_shuffle_ps(t5, t7, 0x44);
    let v3 = _mm256_shuffle_ps(t5, t7, 0xee);
    [
        _mm256_permute2f128_ps(u0, v0, 0x20),
        _mm256_permute2f128_ps(u1, v1, 0x20),
        _mm256_permute2f128_ps(u2, v2, 0x20),
        _mm256_permute2f128_ps(u3, v3, 0x20),
        _mm256_permute2f128_ps(u0, v0, 0x31),
        _mm256_permute2f128_ps(u1, v1, 0x31),
        _mm256_permute2f128_ps(u2, v2, 0x31),
        _mm256_permute2f128_ps(u3, v3, 0x31),
    ]
}
