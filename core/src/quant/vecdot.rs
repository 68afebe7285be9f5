//! Dot products of a weight row with activations already converted to the weight type's
//! `vec_dot_type` (see `act.rs`), combined exactly as ggml's CPU kernels combine them:
//!
//! - Q4_1 and Q8_0 (the types of the default model) in the shape of ggml's x86 AVX2 kernels
//!   (`ggml_vec_dot_q4_1_q8_1`, `ggml_vec_dot_q8_0_q8_0` in `ggml-cpu/arch/x86/quants.c`), the
//!   build our llama.cpp goldens come from: per 32-element block, the integer products summed in
//!   eight i32 lanes of four consecutive elements (lane j: elements 4j..4j+4), each lane's sum
//!   times the block's `d = dx·dy` added into the lane's f32 sum with one rounding (a fused
//!   multiply-add); Q4_1 also accumulates `m·s` in one f32 sum, fused too. At the end the lanes
//!   are reduced as `hsum_float_8` does ([`hsum8`]), then `m·s` is added.
//! - The other legacy formats as ggml's portable scalar kernels (`ggml_vec_dot_*_generic` in
//!   `ggml-cpu/quants.c`), per block: an exact i32 sum of level products, then in f32 Q4_0
//!   `(sumi·dx)·dy`, Q5_0 `(dx·dy)·sumi`, Q5_1 `(dx·dy)·sumi + m·s`; the block terms added one
//!   after another into an f32 sum.
//! - K-quants, per 256-element super-block, as the scalar kernels: the i32 sums of
//!   `scale·level·q8` in eight lanes (element `e` in lane `e % 8`); Q3_K/Q4_K/Q5_K/Q6_K add
//!   `d·lane` into eight f32 lane sums across blocks and add the lanes in order at the end,
//!   Q4_K/Q5_K first subtracting `dmin·Σ bsums·min` block by block; Q2_K adds
//!   `dall·isum − dmin·summs` per block. Every `d` is the weight's f16 scale times the
//!   activations' f32 scale.
//! - Float types: products in f32 (exact for f16 and bf16 inputs), summed in f64, rounded to f32.
//!
//! The integer parts agree exactly with every ggml build; the f32 parts of the formats that follow
//! the scalar kernels differ from ggml's SIMD builds by a few ulps (those regroup the sums).

use super::act::vec_dot_type;
use super::kquants::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, q3k_scales, scale_min_k4};
use super::legacy::{BlockQ5_0, BlockQ5_1, q5};
use super::{GgmlType, QK_K, elements, field, float};
use crate::{Error, Result};

/// `row · acts` where `row` is whole blocks of `ty` and `acts` the same number of elements in
/// `vec_dot_type(ty)` (from [`super::quantize_activations`]). Allocates nothing.
pub fn dot_quantized(ty: GgmlType, row: &[u8], acts: &[u8]) -> Result<f32> {
    use GgmlType::*;
    let act = vec_dot_type(ty)?;
    let n = elements(ty, row.len(), ty.type_size(), ty.block_size())?;
    let n_act = elements(act, acts.len(), act.type_size(), act.block_size())?;
    if n_act != n {
        return Err(Error::LengthMismatch { what: "dot_quantized activations", expected: n, got: n_act });
    }
    Ok(match ty {
        F32 => float_dot::<4>(row, acts, |b| f32::from_le_bytes(*b)),
        F16 => float_dot::<2>(row, acts, |b| float::f16_to_f32(*b)),
        Bf16 => float_dot::<2>(row, acts, |b| float::bf16_to_f32(*b)),
        Q4_0 => block_sum(row, acts, q4_0_q8_0),
        Q4_1 => q4_1_q8_1(row, acts),
        Q5_0 => block_sum(row, acts, |w, a| q5_0_q8_0(&BlockQ5_0::read(w), a)),
        Q5_1 => block_sum(row, acts, |w, a| q5_1_q8_1(&BlockQ5_1::read(w), a)),
        Q8_0 => q8_0_q8_0(row, acts),
        Q2K => block_sum(row, acts, |w, a| q2_k_q8_k(&BlockQ2K::read(w), &Q8KView::new(a))),
        Q3K => lane_sum(row, acts, |w, a, sums| q3_k_q8_k(&BlockQ3K::read(w), &Q8KView::new(a), sums)),
        Q4K => lane_sum(row, acts, |w, a, sums| q4_k_q8_k(&BlockQ4K::read(w), &Q8KView::new(a), sums)),
        Q5K => lane_sum(row, acts, |w, a, sums| q5_k_q8_k(&BlockQ5K::read(w), &Q8KView::new(a), sums)),
        Q6K => lane_sum(row, acts, |w, a, sums| q6_k_q8_k(&BlockQ6K::read(w), &Q8KView::new(a), sums)),
        _ => return Err(Error::UnsupportedType { ty, op: "integer dot product" }),
    })
}

/// `Σ (w·a as f32) as f64` over scalars of `S` bytes: ggml's `ggml_float` accumulation.
fn float_dot<const S: usize>(row: &[u8], acts: &[u8], decode: impl Fn(&[u8; S]) -> f32) -> f32 {
    let mut sum = 0f64;
    for (w, a) in row.as_chunks::<S>().0.iter().zip(acts.as_chunks::<S>().0) {
        sum += (decode(w) * decode(a)) as f64;
    }
    sum as f32
}

/// Adds `term(weight block, activation block)` over the row into one f32 sum.
fn block_sum<const W: usize, const A: usize>(
    row: &[u8],
    acts: &[u8],
    term: impl Fn(&[u8; W], &[u8; A]) -> f32,
) -> f32 {
    let mut sum = 0f32;
    for (w, a) in row.as_chunks::<W>().0.iter().zip(acts.as_chunks::<A>().0) {
        sum += term(w, a);
    }
    sum
}

/// The K-quant shape: `step` adds each super-block's `d·lane` terms into eight f32 lane sums and
/// returns what it subtracts outside the lanes (the min term, or 0); the lanes are added last.
fn lane_sum<const W: usize>(
    row: &[u8],
    acts: &[u8],
    step: impl Fn(&[u8; W], &[u8; 292], &mut [f32; 8]) -> f32,
) -> f32 {
    let mut lanes = [0f32; 8];
    let mut sum = 0f32;
    for (w, a) in row.as_chunks::<W>().0.iter().zip(acts.as_chunks::<292>().0) {
        sum -= step(w, a, &mut lanes);
    }
    for l in lanes {
        sum += l;
    }
    sum
}

/// The f16 at byte `at` of a block, as f32.
#[inline(always)]
fn f16_at<const N: usize>(b: &[u8; N], at: usize) -> f32 {
    float::f16_to_f32([b[at], b[at + 1]])
}

/// The 32 signed quants of a Q8_0 (`at` = 2) or Q8_1 (`at` = 4) block, read in place: these
/// kernels run once per weight block, so they avoid copying blocks into structs.
#[inline(always)]
fn q8<const N: usize>(a: &[u8; N], at: usize) -> &[u8; 32] {
    a[at..].first_chunk().unwrap_or(&[0; 32])
}

/// Σ w[j]·y[j] over a block of 32 levels: the integer core of every legacy kernel, written as one
/// fixed-length loop so it vectorises (kept out of line: inlined into the block loop, LLVM
/// unrolls it into scalar code instead).
#[inline(never)]
fn dot32(w: &[i8; 32], y: &[u8; 32]) -> i32 {
    let mut sum = 0i32;
    for j in 0..32 {
        sum += w[j] as i32 * y[j] as i8 as i32;
    }
    sum
}

/// The 32 four-bit levels of a Q4 block minus `offset`: element `j` in the low nibble of `qs[j]`,
/// element `j + 16` in the high nibble.
#[inline(always)]
fn nibbles(qs: &[u8], offset: i8) -> [i8; 32] {
    let mut l = [0i8; 32];
    for j in 0..16 {
        l[j] = (qs[j] & 0xf) as i8 - offset;
        l[j + 16] = (qs[j] >> 4) as i8 - offset;
    }
    l
}

fn q4_0_q8_0(w: &[u8; 18], a: &[u8; 34]) -> f32 {
    let sumi = dot32(&nibbles(&w[2..18], 8), q8(a, 2));
    sumi as f32 * f16_at(w, 0) * f16_at(a, 0)
}

/// Q4_1 as ggml's AVX2 kernel: the lanes of [`add_lanes4`], `m·s` fused into one sum, then
/// `hsum8(lanes) + Σ m·s`.
fn q4_1_q8_1(row: &[u8], acts: &[u8]) -> f32 {
    let (mut lanes, mut summs) = ([0f32; 8], 0f32);
    for (w, a) in row.as_chunks::<20>().0.iter().zip(acts.as_chunks::<36>().0) {
        add_lanes4(&mut lanes, f16_at(w, 0) * f16_at(a, 0), &nibbles(&w[4..20], 0), q8(a, 4));
        summs = f16_at(w, 2).mul_add(f16_at(a, 2), summs);
    }
    hsum8(&lanes) + summs
}

fn q5_0_q8_0(x: &BlockQ5_0, a: &[u8; 34]) -> f32 {
    let qh = u32::from_le_bytes(x.qh);
    let sumi = dot32(&std::array::from_fn(|j| (q5(&x.qs, qh, j) - 16) as i8), q8(a, 2));
    (x.d.to_f32() * f16_at(a, 0)) * sumi as f32
}

fn q5_1_q8_1(x: &BlockQ5_1, a: &[u8; 36]) -> f32 {
    let qh = u32::from_le_bytes(x.qh);
    let sumi = dot32(&std::array::from_fn(|j| q5(&x.qs, qh, j) as i8), q8(a, 4));
    (x.d.to_f32() * f16_at(a, 0)) * sumi as f32 + x.m.to_f32() * f16_at(a, 2)
}

/// Q8_0 as ggml's AVX2 kernel: the lanes of [`add_lanes4`], then `hsum8(lanes)`.
fn q8_0_q8_0(row: &[u8], acts: &[u8]) -> f32 {
    let mut lanes = [0f32; 8];
    for (w, a) in row.as_chunks::<34>().0.iter().zip(acts.as_chunks::<34>().0) {
        add_lanes4(&mut lanes, f16_at(w, 0) * f16_at(a, 0), &q8(w, 2).map(|q| q as i8), q8(a, 2));
    }
    hsum8(&lanes)
}

/// lanes[j] = fma(d, Σ_{e=4j}^{4j+3} w[e]·y[e], lanes[j]) for one block: ggml's AVX2
/// `mul_sum_*_pairs_float` (products summed in pairs, then pairs of pairs: exact) and
/// `_mm256_fmadd_ps(d, sums, acc)`.
#[inline(always)]
fn add_lanes4(lanes: &mut [f32; 8], d: f32, w: &[i8; 32], y: &[u8; 32]) {
    for (j, lane) in lanes.iter_mut().enumerate() {
        let s: i32 = (4 * j..4 * j + 4).map(|e| w[e] as i32 * y[e] as i8 as i32).sum();
        *lane = d.mul_add(s as f32, *lane);
    }
}

/// ggml's AVX2 `hsum_float_8`: the two halves added (lane l + 4 to lane l), then lanes 0 + 2 and
/// 1 + 3, then those two.
pub(super) fn hsum8(v: &[f32; 8]) -> f32 {
    let h: [f32; 4] = std::array::from_fn(|l| v[l + 4] + v[l]);
    (h[0] + h[2]) + (h[1] + h[3])
}

/// A Q8_K activation block (see [`super::BlockQ8K`] for the layout), its quants left as bytes.
struct Q8KView {
    d: f32,
    qs: [u8; QK_K],
    bsums: [i16; 16],
}

impl Q8KView {
    fn new(a: &[u8; 292]) -> Self {
        let bsums = std::array::from_fn(|j| i16::from_le_bytes(field(a, 4 + QK_K + 2 * j)));
        Q8KView { d: f32::from_le_bytes(field(a, 0)), qs: field(a, 4), bsums }
    }
}

/// `Σ_{e ≡ l (mod 8)} scale[e/16] · level[e] · q8[e]` for each lane `l`: the integer part of every
/// K-quant kernel. Exact in i32 (|term| ≤ 127·63·128 per element).
fn lanes(level: &[i8; QK_K], scale: &[i32; 16], q8: &[u8; QK_K]) -> [i32; 8] {
    let mut lanes = [0i32; 8];
    for (s, (lv, q)) in level.as_chunks::<16>().0.iter().zip(q8.as_chunks::<16>().0).enumerate() {
        for e in 0..16 {
            lanes[e % 8] += scale[s] * (lv[e] as i32 * q[e] as i8 as i32);
        }
    }
    lanes
}

/// `Σ_j bsums[j] · min[j/16 → sub-block]` with `min` given per 16-element group.
fn min_sum(bsums: &[i16; 16], min: &[i32; 16]) -> i32 {
    bsums.iter().zip(min).map(|(&b, &m)| b as i32 * m).sum()
}

fn q2_k_q8_k(x: &BlockQ2K, y: &Q8KView) -> f32 {
    let mut level = [0i8; QK_K];
    for (e, l) in level.iter_mut().enumerate() {
        let (h, j, i) = (e / 128, e % 128 / 32, e % 32);
        *l = ((x.qs[32 * h + i] >> (2 * j)) & 3) as i8;
    }
    let scale = x.scales.map(|s| (s & 0xf) as i32);
    let min = x.scales.map(|s| (s >> 4) as i32);
    let isum: i32 = lanes(&level, &scale, &y.qs).iter().sum();
    let summs = min_sum(&y.bsums, &min);
    let dall = y.d * x.d.to_f32();
    let dmin = y.d * x.dmin.to_f32();
    dall * isum as f32 - dmin * summs as f32
}

/// Adds `d · lanes` into the f32 lane sums (the Q3_K/Q4_K/Q5_K/Q6_K pattern).
fn add_lanes(sums: &mut [f32; 8], d: f32, lanes: [i32; 8]) {
    for (s, l) in sums.iter_mut().zip(lanes) {
        *s += d * l as f32;
    }
}

fn q3_k_q8_k(x: &BlockQ3K, y: &Q8KView, sums: &mut [f32; 8]) -> f32 {
    let mut level = [0i8; QK_K];
    for (e, l) in level.iter_mut().enumerate() {
        let (h, j, i) = (e / 128, e % 128 / 32, e % 32);
        let low = ((x.qs[32 * h + i] >> (2 * j)) & 3) as i8;
        let high_clear = (x.hmask[i] >> (4 * h + j)) & 1 == 0;
        *l = low - if high_clear { 4 } else { 0 };
    }
    add_lanes(sums, x.d.to_f32() * y.d, lanes(&level, &q3k_scales(&x.scales), &y.qs));
    0.0
}

/// Scales and mins of a Q4_K/Q5_K block, repeated for each 16-element half of a sub-block.
fn k4_scales_mins(s: &[u8; 12]) -> ([i32; 16], [i32; 16]) {
    let sm: [(u8, u8); 8] = std::array::from_fn(|j| scale_min_k4(s, j));
    (std::array::from_fn(|k| sm[k / 2].0 as i32), std::array::from_fn(|k| sm[k / 2].1 as i32))
}

fn q4_k_q8_k(x: &BlockQ4K, y: &Q8KView, sums: &mut [f32; 8]) -> f32 {
    let mut level = [0i8; QK_K];
    for (e, l) in level.iter_mut().enumerate() {
        let (p, j, i) = (e / 64, e / 32, e % 32);
        *l = ((x.qs[32 * p + i] >> (4 * (j % 2))) & 0xf) as i8;
    }
    let (scale, min) = k4_scales_mins(&x.scales);
    add_lanes(sums, x.d.to_f32() * y.d, lanes(&level, &scale, &y.qs));
    x.dmin.to_f32() * y.d * min_sum(&y.bsums, &min) as f32
}

fn q5_k_q8_k(x: &BlockQ5K, y: &Q8KView, sums: &mut [f32; 8]) -> f32 {
    let mut level = [0i8; QK_K];
    for (e, l) in level.iter_mut().enumerate() {
        let (p, j, i) = (e / 64, e / 32, e % 32);
        let low = (x.qs[32 * p + i] >> (4 * (j % 2))) & 0xf;
        *l = (low | (((x.qh[i] >> j) & 1) << 4)) as i8;
    }
    let (scale, min) = k4_scales_mins(&x.scales);
    add_lanes(sums, x.d.to_f32() * y.d, lanes(&level, &scale, &y.qs));
    x.dmin.to_f32() * y.d * min_sum(&y.bsums, &min) as f32
}

fn q6_k_q8_k(x: &BlockQ6K, y: &Q8KView, sums: &mut [f32; 8]) -> f32 {
    let mut level = [0i8; QK_K];
    for (e, l) in level.iter_mut().enumerate() {
        let (h, k, i) = (e / 128, e % 128 / 32, e % 32);
        let low = (x.ql[64 * h + 32 * (k % 2) + i] >> (4 * (k / 2))) & 0xf;
        let high = (x.qh[32 * h + i] >> (2 * k)) & 3;
        *l = (low | (high << 4)) as i8 - 32;
    }
    let scale = x.scales.map(|s| s as i32);
    add_lanes(sums, x.d.to_f32() * y.d, lanes(&level, &scale, &y.qs));
    0.0
}
