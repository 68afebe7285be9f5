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
//! their bits and that block's lanes redone with `mul_add` (rare: exact ties of small products,
//! or one sum in about 2^29). Lanes stay f64 in registers, always holding f32 values, so the
//! next step needs no conversion. Every value here is either 0 or at least 2^-71 in magnitude
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
    let t: Lanes = std::array::from_fn(|i| f64x2_add(acc[i], f64x2_mul(dd, c[i])));
    let (low, half) = (i64x2_splat(0x1fff_ffff), i64x2_splat(0x1000_0000));
    let tie = |v: v128| i64x2_eq(v128_and(v, low), half);
    if v128_any_true(v128_or(v128_or(tie(t[0]), tie(t[1])), v128_or(tie(t[2]), tie(t[3])))) {
        fma_lanes_exact(acc, d, sums);
        return;
    }
    *acc = t.map(|t| f64x2_promote_low_f32x4(f32x4_demote_f64x2_zero(t)));
}

/// `fma_lanes` by the reference's own `mul_add`, lane by lane.
#[cold]
#[inline(never)]
fn fma_lanes_exact(acc: &mut Lanes, d: f32, sums: [v128; 2]) {
    let s = [
        i32x4_extract_lane::<0>(sums[0]),
        i32x4_extract_lane::<1>(sums[0]),
        i32x4_extract_lane::<2>(sums[0]),
        i32x4_extract_lane::<3>(sums[0]),
        i32x4_extract_lane::<0>(sums[1]),
        i32x4_extract_lane::<1>(sums[1]),
        i32x4_extract_lane::<2>(sums[1]),
        i32x4_extract_lane::<3>(sums[1]),
    ];
    let mut l = lanes_f32(acc);
    for (l, s) in l.iter_mut().zip(s) {
        *l = d.mul_add(s as f32, *l);
    }
    for (i, a) in acc.iter_mut().enumerate() {
        *a = f64x2(l[2 * i] as f64, l[2 * i + 1] as f64);
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

/// `a.mul_add(b, c)` for f32 `a`, `b` whose product is exact in f64 (any two f32 values), by
/// the f64 route of the module doc.
#[inline(always)]
pub(super) fn fma_f32(a: f32, b: f32, c: f32) -> f32 {
    let t = c as f64 + a as f64 * b as f64;
    if t.to_bits() & 0x1fff_ffff == 0x1000_0000 { a.mul_add(b, c) } else { t as f32 }
}
