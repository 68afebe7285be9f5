//! f32 → quantized bytes.
//!
//! The legacy block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) and the float types reproduce ggml's
//! reference quantizers (`quantize_row_*_ref` in `ggml-quants.c`, which gguf-py mirrors) bit for
//! bit: the scale comes from the block's extreme values in f32, levels are truncated after adding
//! the 0.5 rounding bias (Q8_0: `roundf`, half away from zero), and the scale is stored as f16 only
//! afterwards. The golden test compares our bytes with gguf-py's. The K-quants use the scale search
//! in `kquantize.rs`.

use half::f16;

use super::kquantize::{quantize_q4_k, quantize_q5_k, quantize_q6_k};
use super::legacy::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0};
use super::{GgmlType, float};
use crate::{Error, Result};

/// Quantizes `src` (a whole number of blocks of `ty`) to `ty`'s bytes.
///
/// Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K; other types return
/// [`Error::UnsupportedType`].
pub fn quantize(ty: GgmlType, src: &[f32]) -> Result<Vec<u8>> {
    use GgmlType::*;
    match ty {
        F32 => each_block::<1, 4>(ty, src, |x| x[0].to_le_bytes()),
        F16 => each_block::<1, 2>(ty, src, |x| float::f32_to_f16(x[0])),
        Bf16 => each_block::<1, 2>(ty, src, |x| float::f32_to_bf16(x[0])),
        Q4_0 => each_block(ty, src, |x| quantize_q4_0(x).write()),
        Q4_1 => each_block(ty, src, |x| quantize_q4_1(x).write()),
        Q5_0 => each_block(ty, src, |x| quantize_q5_0(x).write()),
        Q5_1 => each_block(ty, src, |x| quantize_q5_1(x).write()),
        Q8_0 => each_block(ty, src, |x| quantize_q8_0(x).write()),
        Q4K => each_block(ty, src, |x| quantize_q4_k(x).write()),
        Q5K => each_block(ty, src, |x| quantize_q5_k(x).write()),
        Q6K => each_block(ty, src, |x| quantize_q6_k(x).write()),
        _ => Err(Error::UnsupportedType { ty, op: "quantize" }),
    }
}

/// Encodes every `Q`-element chunk of `src` as one `B`-byte block.
fn each_block<const Q: usize, const B: usize>(
    ty: GgmlType,
    src: &[f32],
    encode: impl Fn(&[f32; Q]) -> [u8; B],
) -> Result<Vec<u8>> {
    debug_assert_eq!((B, Q), (ty.type_size(), ty.block_size()), "{ty}");
    let (blocks, rest) = src.as_chunks::<Q>();
    if !rest.is_empty() {
        return Err(Error::PartialBlockElements { ty, len: src.len(), block_elems: Q });
    }
    let mut out = Vec::with_capacity(blocks.len() * B);
    for x in blocks {
        out.extend_from_slice(&encode(x));
    }
    Ok(out)
}

/// The signed value of largest magnitude (the first, on ties), as ggml picks it.
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            (amax, max) = (v.abs(), v);
        }
    }
    max
}

fn min_max(x: &[f32]) -> (f32, f32) {
    x.iter().fold((f32::MAX, -f32::MAX), |(lo, hi), &v| {
        (if v < lo { v } else { lo }, if v > hi { v } else { hi })
    })
}

/// `1/d`, or 0 for an all-zero block.
fn inverse(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// Truncates a non-negative biased level to `0..=max` (C's `MIN(max, (int8_t)v)`; `as` saturates).
fn level(v: f32, max: i8) -> u8 {
    (v as i8).min(max) as u8
}

/// Packs 32 levels of 4 (or the low 4 of 5) bits: element `j` low nibble, `j + 16` high.
fn nibbles(q: &[u8; 32]) -> [u8; 16] {
    std::array::from_fn(|j| (q[j] & 0xf) | ((q[j + 16] & 0xf) << 4))
}

/// Bit 4 of each of 32 levels, element `j` at bit `j`, as the little-endian bytes of a u32.
fn high_bits(q: &[u8; 32]) -> [u8; 4] {
    q.iter().enumerate().fold(0u32, |h, (j, &q)| h | (((q >> 4) & 1) as u32) << j).to_le_bytes()
}

pub(super) fn quantize_q4_0(x: &[f32; 32]) -> BlockQ4_0 {
    let d = signed_absmax(x) / -8.0;
    let id = inverse(d);
    let q = x.map(|v| level(v * id + 8.5, 15));
    BlockQ4_0 { d: f16::from_f32(d), qs: nibbles(&q) }
}

pub(super) fn quantize_q4_1(x: &[f32; 32]) -> BlockQ4_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inverse(d);
    let q = x.map(|v| level((v - min) * id + 0.5, 15));
    BlockQ4_1 { d: f16::from_f32(d), m: f16::from_f32(min), qs: nibbles(&q) }
}

pub(super) fn quantize_q5_0(x: &[f32; 32]) -> BlockQ5_0 {
    let d = signed_absmax(x) / -16.0;
    let id = inverse(d);
    let q = x.map(|v| level(v * id + 16.5, 31));
    BlockQ5_0 { d: f16::from_f32(d), qh: high_bits(&q), qs: nibbles(&q) }
}

pub(super) fn quantize_q5_1(x: &[f32; 32]) -> BlockQ5_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inverse(d);
    let q = x.map(|v| level((v - min) * id + 0.5, 31));
    BlockQ5_1 { d: f16::from_f32(d), m: f16::from_f32(min), qh: high_bits(&q), qs: nibbles(&q) }
}

pub(super) fn quantize_q8_0(x: &[f32; 32]) -> BlockQ8_0 {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = inverse(d);
    BlockQ8_0 { d: f16::from_f32(d), qs: x.map(|v| (v * id).round() as i8) }
}
