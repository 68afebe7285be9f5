//! simd128 twin of attention's f16 row products (`super::F16Lanes`): element i of a row goes to
//! lane `(first + i) % 32`, kept as eight f32x4 vectors; the ragged ends before the first and
//! after the last whole 32-lane step go through the reference's own lanes. Each lane gets the same
//! products (f32 `x · f16`, then an f32 add) in the same order, so the sums are the reference's.
//!
//! f16 → f32 has no simd128 instruction: the bits shifted into an f32's place and multiplied by
//! 2^112 give every finite value exactly (subnormals included: wasm keeps f32 subnormals);
//! infinities and NaNs (exponent 31) are built by bits, quieted as `f16_bits_to_f32` does.

use core::arch::wasm32::*;

use super::F16Lanes;
use crate::quant::f16_bits_to_f32;

/// Σ x[i] · h[i] as `F16Lanes` sums it, lane `(first + i) % 32`.
pub(super) fn dot_lanes(x: &[f32], h: &[u16], first: usize) -> f32 {
    let n = x.len().min(h.len());
    let mut lanes = F16Lanes::default();
    let head = ((32 - first % 32) % 32).min(n);
    for i in 0..head {
        lanes.add(first + i, x[i] * f16_bits_to_f32(h[i]));
    }
    let steps = (n - head) / 32;
    if steps > 0 {
        // The lanes carry on from the head's sums, as the reference's do.
        let l = &lanes.0;
        let mut acc: [v128; 8] =
            std::array::from_fn(|v| f32x4(l[4 * v], l[4 * v + 1], l[4 * v + 2], l[4 * v + 3]));
        for (xs, hs) in x[head..].as_chunks::<32>().0.iter().zip(h[head..].as_chunks::<32>().0).take(steps) {
            for (v, (x8, h8)) in xs.as_chunks::<8>().0.iter().zip(hs.as_chunks::<8>().0).enumerate() {
                // SAFETY: `h8` is 16 readable bytes, each half of `x8` 16; wasm loads have no
                // alignment needs.
                let (h, x0, x1) = unsafe {
                    let p = x8.as_ptr() as *const v128;
                    (v128_load(h8.as_ptr() as *const v128), v128_load(p), v128_load(p.add(1)))
                };
                acc[2 * v] = f32x4_add(acc[2 * v], f32x4_mul(x0, f16x4_to_f32(u32x4_extend_low_u16x8(h))));
                acc[2 * v + 1] =
                    f32x4_add(acc[2 * v + 1], f32x4_mul(x1, f16x4_to_f32(u32x4_extend_high_u16x8(h))));
            }
        }
        for (v, acc) in acc.iter().enumerate() {
            let s = [
                f32x4_extract_lane::<0>(*acc),
                f32x4_extract_lane::<1>(*acc),
                f32x4_extract_lane::<2>(*acc),
                f32x4_extract_lane::<3>(*acc),
            ];
            lanes.0[4 * v..4 * v + 4].copy_from_slice(&s);
        }
    }
    for i in head + 32 * steps..n {
        lanes.add(first + i, x[i] * f16_bits_to_f32(h[i]));
    }
    lanes.reduce()
}

/// Four f16 bit patterns (the low 16 bits of each u32 lane) as f32 values, exactly as
/// `f16_bits_to_f32`.
#[inline(always)]
fn f16x4_to_f32(u: v128) -> v128 {
    let em = v128_and(u, u32x4_splat(0x7fff));
    let sign = i32x4_shl(v128_and(u, u32x4_splat(0x8000)), 16);
    let finite = f32x4_mul(i32x4_shl(em, 13), f32x4_splat(f32::from_bits(0x7780_0000))); // 2^112
    let payload = v128_or(u32x4_splat(0x7f80_0000), i32x4_shl(v128_and(em, u32x4_splat(0x3ff)), 13));
    let special = v128_or(payload, v128_and(u32x4_gt(em, u32x4_splat(0x7c00)), u32x4_splat(0x40_0000)));
    v128_or(sign, v128_bitselect(special, finite, u32x4_ge(em, u32x4_splat(0x7c00))))
}
