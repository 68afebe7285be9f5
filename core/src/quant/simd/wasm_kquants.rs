//! simd128 dot products of K-quant weights (Q2_K … Q6_K) with Q8_K activations, in the shape of
//! the reference (`vecdot.rs`): per 256-element super-block, eight i32 lanes of
//! `scale · level · q8` (element `e` in lane `e % 8`), then in f32 exactly the reference's
//! operations — `lanes += d · lane` and the min term subtracted for Q3_K … Q6_K (lanes added in
//! order at the end), `dall · isum − dmin · summs` added per super-block for Q2_K.
//!
//! A weight super-block is first unpacked into 16 groups of 16 signed levels (the group of
//! elements `16g..16g + 16` in one vector) with the group's scale. Per group, the products with
//! the activations (|level| ≤ 32, |q8| ≤ 128) are formed in i16, the low and high eight added —
//! element `16g + i` and `16g + 8 + i` both go to lane `i` — and then multiplied by the scale into
//! i32: everything exact, so grouped at will. The unpacked block serves up to `GROUP` tokens.

use core::arch::wasm32::*;

use super::wasm::load_at;
use crate::quant::kquants::{q3k_scales, scale_min_k4};
use crate::quant::{GgmlType, QK_K, f16_bits_to_f32};

/// Tokens that share one unpacked weight block.
const GROUP: usize = 4;

/// Q8_K activation block bytes: d (f32), 256 quants, 16 i16 group sums.
const Y: usize = 4 + QK_K + 32;

/// How the f32 part combines the lanes (see the module doc).
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// Q3_K, Q6_K: `lanes += d · lane`.
    Lanes,
    /// Q4_K, Q5_K: as `Lanes`, and `sum −= dmin · yd · Σ bsums · min`.
    LanesMin,
    /// Q2_K: `sum += dall · isum − dmin · Σ bsums · min`.
    Sum,
}

/// One weight super-block unpacked: groups of 16 levels, their scales and mins, the f16 scales.
struct Unpacked {
    levels: [v128; 16],
    scales: [i16; 16],
    mins: [i32; 16],
    d: f32,
    dmin: f32,
}

/// out[r · n_tok + t] = row r · token t (see `super::dot_rows`); false for types it lacks.
pub(super) fn dot_rows(
    ty: GgmlType,
    rows: &[u8],
    row_bytes: usize,
    acts: &[u8],
    act_row: usize,
    n_tok: usize,
    out: &mut [f32],
) -> bool {
    use GgmlType::*;
    let (r, a) = (rows, acts);
    match ty {
        Q2K => run::<84>(r, row_bytes, a, act_row, n_tok, out, q2_k, Shape::Sum),
        Q3K => run::<110>(r, row_bytes, a, act_row, n_tok, out, q3_k, Shape::Lanes),
        Q4K => run::<144>(r, row_bytes, a, act_row, n_tok, out, q4_k, Shape::LanesMin),
        Q5K => run::<176>(r, row_bytes, a, act_row, n_tok, out, q5_k, Shape::LanesMin),
        Q6K => run::<210>(r, row_bytes, a, act_row, n_tok, out, q6_k, Shape::Lanes),
        _ => return false,
    }
    true
}

/// Per token: the f32 lanes (two f32x4) and the sum beside them.
#[derive(Clone, Copy)]
struct State {
    lanes: [v128; 2],
    sum: f32,
}

#[allow(clippy::too_many_arguments)] // the dot_rows arguments, plus the type's two parts
#[inline(always)]
fn run<const W: usize>(
    rows: &[u8],
    row_bytes: usize,
    acts: &[u8],
    act_row: usize,
    n_tok: usize,
    out: &mut [f32],
    unpack: fn(&[u8; W], &mut Unpacked),
    shape: Shape,
) {
    let mut u = Unpacked { levels: [i8x16_splat(0); 16], scales: [0; 16], mins: [0; 16], d: 0.0, dmin: 0.0 };
    for (r, dst) in out.chunks_mut(n_tok).enumerate() {
        let row = &rows[r * row_bytes..][..row_bytes];
        for t0 in (0..n_tok).step_by(GROUP) {
            let tn = (n_tok - t0).min(GROUP);
            let mut st = [State { lanes: [f32x4_splat(0.0); 2], sum: 0.0 }; GROUP];
            for (k, w) in row.as_chunks::<W>().0.iter().enumerate() {
                unpack(w, &mut u);
                for (t, st) in st.iter_mut().enumerate().take(tn) {
                    let y: &[u8; Y] = acts[(t0 + t) * act_row + k * Y..].first_chunk().unwrap_or(&[0; Y]);
                    step(&u, y, shape, st);
                }
            }
            for (d, st) in dst[t0..t0 + tn].iter_mut().zip(&st) {
                *d = if shape == Shape::Sum {
                    st.sum
                } else {
                    let l = [st.lanes[0], st.lanes[1]];
                    let mut sum = st.sum;
                    for v in l {
                        sum += f32x4_extract_lane::<0>(v);
                        sum += f32x4_extract_lane::<1>(v);
                        sum += f32x4_extract_lane::<2>(v);
                        sum += f32x4_extract_lane::<3>(v);
                    }
                    sum
                };
            }
        }
    }
}

/// One super-block of one token into `st`.
#[inline(always)]
fn step(u: &Unpacked, y: &[u8; Y], shape: Shape, st: &mut State) {
    let yd = f32::from_le_bytes([y[0], y[1], y[2], y[3]]);
    let (mut l0, mut l1) = (i32x4_splat(0), i32x4_splat(0));
    for (g, (&lv, &sc)) in u.levels.iter().zip(&u.scales).enumerate() {
        let q = load_at(y, 4 + 16 * g);
        let p = i16x8_add(i16x8_extmul_low_i8x16(lv, q), i16x8_extmul_high_i8x16(lv, q));
        let s = i16x8_splat(sc);
        l0 = i32x4_add(l0, i32x4_extmul_low_i16x8(p, s));
        l1 = i32x4_add(l1, i32x4_extmul_high_i16x8(p, s));
    }
    let min_sum = || -> i32 {
        let b = |j: usize| i16::from_le_bytes([y[4 + QK_K + 2 * j], y[4 + QK_K + 2 * j + 1]]) as i32;
        (0..16).map(|j| b(j) * u.mins[j]).sum()
    };
    if shape == Shape::Sum {
        let l = i32x4_add(l0, l1);
        let isum = i32x4_extract_lane::<0>(l)
            + i32x4_extract_lane::<1>(l)
            + i32x4_extract_lane::<2>(l)
            + i32x4_extract_lane::<3>(l);
        let (dall, dmin) = (yd * u.d, yd * u.dmin);
        st.sum += dall * isum as f32 - dmin * min_sum() as f32;
        return;
    }
    let d = f32x4_splat(u.d * yd);
    st.lanes[0] = f32x4_add(st.lanes[0], f32x4_mul(d, f32x4_convert_i32x4(l0)));
    st.lanes[1] = f32x4_add(st.lanes[1], f32x4_mul(d, f32x4_convert_i32x4(l1)));
    st.sum -= if shape == Shape::LanesMin { u.dmin * yd * min_sum() as f32 } else { 0.0 };
}

fn f16_at<const N: usize>(b: &[u8; N], at: usize) -> f32 {
    f16_bits_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// Group g = elements 16g..16g + 16: half h = g / 8 of the block, 32-element part j = g % 8 / 2
/// of it, bytes i0 = 16 · (g % 2) onwards of that part's 32.
fn parts(g: usize) -> (usize, usize, usize) {
    (g / 8, g % 8 / 2, 16 * (g % 2))
}

/// Q2_K (scales 0, qs 16, d 80, dmin 82): level = (qs[32h + i] >> 2j) & 3.
fn q2_k(w: &[u8; 84], u: &mut Unpacked) {
    for g in 0..16 {
        let (h, j, i0) = parts(g);
        u.levels[g] = v128_and(u8x16_shr(load_at(w, 16 + 32 * h + i0), 2 * j as u32), u8x16_splat(3));
        u.scales[g] = (w[g] & 0xf) as i16;
        u.mins[g] = (w[g] >> 4) as i32;
    }
    (u.d, u.dmin) = (f16_at(w, 80), f16_at(w, 82));
}

/// Q3_K (hmask 0, qs 32, scales 96, d 108): level = ((qs[32h + i] >> 2j) & 3) − 4 unless bit
/// 4h + j of hmask[i] is set.
fn q3_k(w: &[u8; 110], u: &mut Unpacked) {
    let scales = q3k_scales(w[96..108].first_chunk().unwrap_or(&[0; 12]));
    for (g, &scale) in scales.iter().enumerate() {
        let (h, j, i0) = parts(g);
        let low = v128_and(u8x16_shr(load_at(w, 32 + 32 * h + i0), 2 * j as u32), u8x16_splat(3));
        let high = v128_and(u8x16_shr(load_at(w, i0), (4 * h + j) as u32), u8x16_splat(1));
        u.levels[g] = i8x16_sub(v128_or(low, i8x16_shl(high, 2)), i8x16_splat(4));
        u.scales[g] = scale as i16;
    }
    u.d = f16_at(w, 108);
}

/// Q4_K (d 0, dmin 2, scales 4, qs 16).
fn q4_k(w: &[u8; 144], u: &mut Unpacked) {
    let sc: &[u8; 12] = w[4..16].first_chunk().unwrap_or(&[0; 12]);
    for g in 0..16 {
        let (s, i0) = (g / 2, 16 * (g % 2));
        let q = load_at(w, 16 + 32 * (s / 2) + i0);
        u.levels[g] = if s % 2 == 0 { v128_and(q, u8x16_splat(0xf)) } else { u8x16_shr(q, 4) };
        let (scale, min) = scale_min_k4(sc, s);
        (u.scales[g], u.mins[g]) = (scale as i16, min as i32);
    }
    (u.d, u.dmin) = (f16_at(w, 0), f16_at(w, 2));
}

/// Q5_K (d 0, dmin 2, scales 4, qh 16, qs 48): Q4_K's levels plus bit s of qh[i] as 16.
fn q5_k(w: &[u8; 176], u: &mut Unpacked) {
    let sc: &[u8; 12] = w[4..16].first_chunk().unwrap_or(&[0; 12]);
    for g in 0..16 {
        let (s, i0) = (g / 2, 16 * (g % 2));
        let q = load_at(w, 48 + 32 * (s / 2) + i0);
        let low = if s % 2 == 0 { v128_and(q, u8x16_splat(0xf)) } else { u8x16_shr(q, 4) };
        let high = v128_and(u8x16_shr(load_at(w, 16 + i0), s as u32), u8x16_splat(1));
        u.levels[g] = v128_or(low, i8x16_shl(high, 4));
        let (scale, min) = scale_min_k4(sc, s);
        (u.scales[g], u.mins[g]) = (scale as i16, min as i32);
    }
    (u.d, u.dmin) = (f16_at(w, 0), f16_at(w, 2));
}

/// Q6_K (ql 0, qh 128, scales 192, d 208): level = ((ql[64h + 32(j % 2) + i] >> 4(j / 2)) & 15
/// | ((qh[32h + i] >> 2j) & 3) << 4) − 32, one i8 scale per group.
fn q6_k(w: &[u8; 210], u: &mut Unpacked) {
    for g in 0..16 {
        let (h, j, i0) = parts(g);
        let ql = u8x16_shr(load_at(w, 64 * h + 32 * (j % 2) + i0), 4 * (j / 2) as u32);
        let qh = v128_and(u8x16_shr(load_at(w, 128 + 32 * h + i0), 2 * j as u32), u8x16_splat(3));
        let level = v128_or(v128_and(ql, u8x16_splat(0xf)), i8x16_shl(qh, 4));
        u.levels[g] = i8x16_sub(level, i8x16_splat(32));
        u.scales[g] = w[192 + g] as i8 as i16;
    }
    u.d = f16_at(w, 208);
}
