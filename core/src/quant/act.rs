//! Activation formats for integer matmuls: what ggml's CPU backend converts the f32 input row of a
//! matmul to before dotting it with the weight rows (the weight type's `vec_dot_type`).
//!
//! | weight type             | activations | block                                     |
//! |-------------------------|-------------|-------------------------------------------|
//! | F32                     | F32         | —                                         |
//! | F16 / BF16              | F16 / BF16  | round to nearest even                     |
//! | Q4_0, Q5_0, Q8_0        | Q8_0        | f16 `d`, 32 × i8                          |
//! | Q4_1, Q5_1              | Q8_1        | f16 `d`, f16 `s = d·Σq`, 32 × i8 (36 B)   |
//! | Q2_K … Q6_K             | Q8_K        | f32 `d`, 256 × i8, 16 × i16 `bsums` (292 B)|
//!
//! Q8_0 and Q8_1 follow ggml's x86 quantizer (`quantize_row_q8_{0,1}` in `arch/x86/quants.c`), the
//! code that made our llama.cpp goldens: `d = amax/127` stored as f16, levels
//! `round_ties_even(x · (127/amax))`. ggml's portable reference (`quantize_row_q8_0_ref`) multiplies
//! by `1/d` and rounds half away from zero instead; the two differ only when `x·id` lands within an
//! ulp of a half-integer, which is rare and moves one level by one. Q8_K is ggml's reference on
//! every architecture: the signed extreme `max` gives `iscale = -127/max`, levels
//! `min(127, round_ties_even(iscale·x))`, `d = 1/iscale` (so `d` is negative when `max` is
//! positive and `d·q` still restores the sign), and `bsums[j]` is the sum of levels `16j..16j+16`.
//!
//! The byte layouts are ggml's (`block_q8_1`, `block_q8_K` in `ggml-common.h`), so the same bytes
//! could be handed to a GPU kernel.

use half::f16;

use super::legacy::BlockQ8_0;
use super::{GgmlType, QK_K, field, float, put};
use crate::{Error, Result};

/// 8-bit quants with a scale and the scaled sum of the quants: `y = q*d`, `s = d*Σq`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ8_1 {
    pub d: f16,
    /// `d * Σ qs`, rounded to f16: the `_1` weight formats add `m·s` for their offset.
    pub s: f16,
    pub qs: [i8; 32],
}

/// 8-bit quants of a 256-element super-block with an f32 scale and the sums of each 16 quants
/// (the K-quant dot products need them for their min terms).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}

const _: () = assert!(size_of::<BlockQ8_1>() == 36 && GgmlType::Q8_1.type_size() == 36);
const _: () = assert!(size_of::<BlockQ8K>() == 292 && GgmlType::Q8K.type_size() == 292);

impl BlockQ8_1 {
    pub fn read(b: &[u8; 36]) -> Self {
        let qs: [u8; 32] = field(b, 4);
        Self {
            d: f16::from_le_bytes(field(b, 0)),
            s: f16::from_le_bytes(field(b, 2)),
            qs: qs.map(|q| q as i8),
        }
    }

    pub fn write(&self) -> [u8; 36] {
        let mut b = [0; 36];
        put(&mut b, 0, &self.d.to_le_bytes());
        put(&mut b, 2, &self.s.to_le_bytes());
        put(&mut b, 4, &self.qs.map(|q| q as u8));
        b
    }

    pub fn dequantize(&self, y: &mut [f32; 32]) {
        let d = self.d.to_f32();
        for (y, &q) in y.iter_mut().zip(&self.qs) {
            *y = q as f32 * d;
        }
    }
}

impl BlockQ8K {
    pub fn read(b: &[u8; 292]) -> Self {
        let qs: [u8; QK_K] = field(b, 4);
        let sums: [u8; 32] = field(b, 4 + QK_K);
        Self {
            d: f32::from_le_bytes(field(b, 0)),
            qs: qs.map(|q| q as i8),
            bsums: std::array::from_fn(|j| i16::from_le_bytes([sums[2 * j], sums[2 * j + 1]])),
        }
    }

    pub fn write(&self) -> [u8; 292] {
        let mut b = [0; 292];
        put(&mut b, 0, &self.d.to_le_bytes());
        put(&mut b, 4, &self.qs.map(|q| q as u8));
        for (j, s) in self.bsums.iter().enumerate() {
            put(&mut b, 4 + QK_K + 2 * j, &s.to_le_bytes());
        }
        b
    }

    pub fn dequantize(&self, y: &mut [f32; QK_K]) {
        for (y, &q) in y.iter_mut().zip(&self.qs) {
            *y = self.d * q as f32;
        }
    }
}

/// The type ggml converts a matmul's f32 input to for weights of type `ty`.
pub fn vec_dot_type(ty: GgmlType) -> Result<GgmlType> {
    use GgmlType::*;
    Ok(match ty {
        F32 => F32,
        F16 => F16,
        Bf16 => Bf16,
        Q4_0 | Q5_0 | Q8_0 => Q8_0,
        Q4_1 | Q5_1 => Q8_1,
        Q2K | Q3K | Q4K | Q5K | Q6K => Q8K,
        _ => return Err(Error::UnsupportedType { ty, op: "integer dot product" }),
    })
}

/// Converts `x` (one or more rows of whole blocks) to `vec_dot_type(ty_weight)`'s bytes in `out`,
/// replacing its contents. `out` keeps its allocation, so a buffer reserved once is never grown.
pub fn quantize_activations(ty_weight: GgmlType, x: &[f32], out: &mut Vec<u8>) -> Result<()> {
    use GgmlType::*;
    let act = vec_dot_type(ty_weight)?;
    let bs = act.block_size();
    if !x.len().is_multiple_of(bs) {
        return Err(Error::PartialBlockElements { ty: act, len: x.len(), block_elems: bs });
    }
    out.clear();
    out.reserve(x.len() / bs * act.type_size());
    match act {
        F32 => x.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        F16 => x.iter().for_each(|&v| out.extend_from_slice(&float::f32_to_f16(v))),
        Bf16 => x.iter().for_each(|&v| out.extend_from_slice(&float::f32_to_bf16(v))),
        Q8_0 => x.as_chunks().0.iter().for_each(|b| out.extend_from_slice(&quantize_q8_0_act(b).write())),
        Q8_1 => x.as_chunks().0.iter().for_each(|b| out.extend_from_slice(&quantize_q8_1_act(b).write())),
        Q8K => x.as_chunks().0.iter().for_each(|b| out.extend_from_slice(&quantize_q8_k(b).write())),
        other => return Err(Error::UnsupportedType { ty: other, op: "activation quantization" }),
    }
    Ok(())
}

/// The f16 scale and the levels of ggml's x86 Q8 quantizer (see the module doc).
fn q8_scale_and_levels(x: &[f32; 32]) -> (f32, [i8; 32]) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    // |x·id| ≤ 127 up to rounding, and `as` saturates besides.
    (d, x.map(|v| (v * id).round_ties_even() as i8))
}

/// One 32-element block of activations as ggml's x86 `quantize_row_q8_0` makes it.
pub(super) fn quantize_q8_0_act(x: &[f32; 32]) -> BlockQ8_0 {
    let (d, qs) = q8_scale_and_levels(x);
    BlockQ8_0 { d: f16::from_f32(d), qs }
}

/// One 32-element block of activations as ggml's x86 `quantize_row_q8_1` makes it.
pub(super) fn quantize_q8_1_act(x: &[f32; 32]) -> BlockQ8_1 {
    let (d, qs) = q8_scale_and_levels(x);
    let sum: i32 = qs.iter().map(|&q| q as i32).sum();
    BlockQ8_1 { d: f16::from_f32(d), s: f16::from_f32(d * sum as f32), qs }
}

/// One 256-element super-block as ggml's `quantize_row_q8_K_ref` makes it.
pub(super) fn quantize_q8_k(x: &[f32; QK_K]) -> BlockQ8K {
    // The signed value of largest magnitude, the first on ties.
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            (amax, max) = (v.abs(), v);
        }
    }
    if amax == 0.0 {
        return BlockQ8K { d: 0.0, qs: [0; QK_K], bsums: [0; QK_K / 16] };
    }
    let iscale = -127.0 / max;
    let qs = x.map(|v| ((iscale * v).round_ties_even() as i32).min(127) as i8);
    let bsums = std::array::from_fn(|j| qs[16 * j..16 * j + 16].iter().map(|&q| q as i16).sum());
    BlockQ8K { d: 1.0 / iscale, qs, bsums }
}
