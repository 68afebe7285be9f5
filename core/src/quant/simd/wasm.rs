//! wasm32 `simd128` building blocks shared by the kernels: loads from byte arrays, the integer
//! quad sums of the legacy lanes, and the fused multiply-add that simd128 lacks.
//!
//! The fused multiply-add: the reference adds `d · s` into an f32 lane with one rounding
//! (`f32::mul_add`, which on wasm32 is a call to the soft `fmaf`, simd128 having no FMA). Here
//! `d · s` is formed in f64, where it is exact (`d` has 24 significant bits and every integer `s`
//! the kernels pass fits in 17), and the lane added in f64, rounding once to `t`; `t` rounded to
//! f32 is then the correctly rounded fused result unless `t` sits exactly halfway between two f32
//! values (the only place a second rounding can land differently: any other f32 rounding boundary
//! between the exact sum and `t` would be a nearer f64 than `t`). Halfway values are spotted by
//! their bits; where the f64 add was inexact (its error, by two-sum, is not 0), `t` is moved one
//! f64 step towards the exact sum first, off the halfway point. Exact halfway sums are common
//! (f16 scales have 11 bits, so products are short), inexact ones rare. Lanes stay f64 in
//! registers, always holding f32 values, so the next step needs no conversion. Every value here is either 0 or at least 2^-71 in magnitude
//! (products of f16 and f32 scales and integers), far from f32's subnormals, where the halfway
//! pattern would differ.

use core::arch::wasm32::*;

/// The 16 bytes of `b`.
#[inline(always)]
pub(super) fn load16(b: &[u8; 16]) -> v128 {
    // SAFETY: `b` is 16 readable bytes; wasm loads have no alignment needs.
    unsafe { v128_load(b.as_ptr() as *const v128) }
}

/// The 16 bytes at `b[at..]`.
#[inline(always)]
pub(super) fn load_at<const N: usize>(b: &[u8; N], at: usize) -> v128 {
    load16(b[at..].first_chunk().unwrap_or(&[0; 16]))
}

/// [Σ w·y over elements 0-3, 4-7, 8-11, 12-15] of 16 signed bytes each: the products (|w·y| ≤
/// 128·127, within i16), summed in pairs, then the pairs in pairs. Exact.
#[inline(always)]
pub(super) fn quads(w: v128, y: v128) -> v128 {
    let lo = i32x4_extadd_pairwise_i16x8(i16x8_extmul_low_i8x16(w, y));
    let hi = i32x4_extadd_pairwise_i16x8(i16x8_extmul_high_i8x16(w, y));
    i32x4_add(i32x4_shuffle::<0, 2, 4, 6>(lo, hi), i32x4_shuffle::<1, 3, 5, 7>(lo, hi))
}

/// Eight f32 lanes as four f64x2 vectors (lane 2i + j in vector i, half j).
pub(super) type Lanes = [v128; 4];

pub(super) const ZERO_LANES: Lanes = [f64x2(0.0, 0.0); 4];

/// lanes[j] = fma(d, sums[j], lanes[j]) rounded once to f32, for `sums` = lanes 0-3 and 4-7 as
/// i32 with |sum| ≤ 2^17 (see the module doc).
#[inline(always)]
pub(super) fn fma_lanes(acc: &mut Lanes, d: f32, sums: [v128; 2]) {
    let dd = f64x2_splat(d as f64);
    let c = [
        f64x2_convert_low_i32x4(sums[0]),
        f64x2_convert_low_i32x4(i32x4_shuffle::<2, 3, 2, 3>(sums[0], sums[0])),
        f64x2_convert_low_i32x4(sums[1]),
        f64x2_convert_low_i32x4(i32x4_shuffle::<2, 3, 2, 3>(sums[1], sums[1])),
    ];
    let p: Lanes = c.map(|c| f64x2_mul(dd, c));
    let mut t: Lanes = std::array::from_fn(|i| f64x2_add(acc[i], p[i]));
    if v128_any_true(v128_or(v128_or(halfway(t[0]), halfway(t[1])), v128_or(halfway(t[2]), halfway(t[3])))) {
        break_ties(acc, &p, &mut t);
    }
    *acc = t.map(|t| f64x2_promote_low_f32x4(f32x4_demote_f64x2_zero(t)));
}

/// All ones in the f64 lanes of `t` that lie exactly halfway between two f32 values.
#[inline(always)]
fn halfway(t: v128) -> v128 {
    i64x2_eq(v128_and(t, i64x2_splat(0x1fff_ffff)), i64x2_splat(0x1000_0000))
}

/// For each halfway lane of `t = a + p` that is not the exact sum, moves `t` one f64 step
/// towards the exact sum, off the halfway point to the side the exact sum lies on (the error of
/// the f64 add is Knuth's two-sum). Exact halfway sums stay: they round to even, as the fused
/// operation does.
#[inline(never)]
fn break_ties(a: &Lanes, p: &Lanes, t: &mut Lanes) {
    for i in 0..4 {
        let (a, p, s) = (a[i], p[i], t[i]);
        let b = f64x2_sub(s, a);
        let err = f64x2_add(f64x2_sub(a, f64x2_sub(s, b)), f64x2_sub(p, b));
        let fix = v128_and(halfway(s), f64x2_ne(err, f64x2_splat(0.0)));
        // +1 (away from zero) where the error has the sign of the sum, else −1.
        let step = v128_or(i64x2_shr(v128_xor(err, s), 63), i64x2_splat(1));
        t[i] = i64x2_add(s, v128_and(fix, step));
    }
}

/// The eight lanes as f32 (exact: they hold f32 values).
#[inline(always)]
pub(super) fn lanes_f32(acc: &Lanes) -> [f32; 8] {
    std::array::from_fn(|j| {
        let v = acc[j / 2];
        (if j % 2 == 0 { f64x2_extract_lane::<0>(v) } else { f64x2_extract_lane::<1>(v) }) as f32
    })
}

/// `a.mul_add(b, c)` for f32 `a`, `b`, `c` (whose product is exact in f64), by the f64 route
/// of the module doc.
#[inline(always)]
pub(super) fn fma_f32(a: f32, b: f32, c: f32) -> f32 {
    let (p, c) = (a as f64 * b as f64, c as f64);
    let t = c + p;
    // Branch-free: with f16 operands exact halfway sums are frequent, and a branch would guess.
    let b = t - c;
    let err = (c - (t - b)) + (p - b);
    let fix = ((t.to_bits() & 0x1fff_ffff == 0x1000_0000) & (err != 0.0)) as u64;
    let step = if (err < 0.0) == (t < 0.0) { 1 } else { u64::MAX };
    let t = f64::from_bits(t.to_bits().wrapping_add(fix.wrapping_mul(step)));
    t as f32
}
