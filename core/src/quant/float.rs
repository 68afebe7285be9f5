//! Plain float element types — F32, F16 (IEEE binary16) and BF16 (the high 16 bits of an f32) —
//! stored little-endian, one element per "block" — plus the f32 dot kernel every type shares.
//!
//! Conversions follow ggml: F16 through the `half` crate (exact widening, round-to-nearest-even
//! narrowing, like numpy's `astype(float16)`), BF16 by shifting the bits into the high half of an
//! f32 and narrowing with round-to-nearest-even and NaNs forced quiet (`ggml_compute_fp32_to_bf16`).

use super::{GgmlType, elements};
use crate::{Error, Result};

pub(super) fn f16_to_f32(b: [u8; 2]) -> f32 {
    f16_bits_to_f32(u16::from_le_bytes(b))
}

/// IEEE binary16 bits → f32, exactly, with the same results as `half::f16::to_f32` (NaNs made
/// quiet, payload kept). The integer dot products convert several f16 scales per block, so this
/// is hot: normal numbers take one shift and one add (rebias the exponent from 15 to 127) and
/// subnormals are `m · 2^-24`, exact in f32; only the rare inf/NaN case branches.
#[inline(always)]
pub fn f16_bits_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let em = (h & 0x7fff) as u32;
    let magnitude = if em >= 0x7c00 {
        // Infinity, or NaN made quiet.
        0x7f80_0000 | if em > 0x7c00 { 0x40_0000 | (em & 0x3ff) << 13 } else { 0 }
    } else if em >= 0x0400 {
        (em << 13) + ((127 - 15) << 23)
    } else {
        (em as f32 * (1.0 / 16_777_216.0)).to_bits()
    };
    f32::from_bits(sign | magnitude)
}

pub(super) fn bf16_to_f32(b: [u8; 2]) -> f32 {
    f32::from_bits((u16::from_le_bytes(b) as u32) << 16)
}

pub(super) fn f32_to_f16(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_le_bytes()
}

/// f32 → bf16 rounding to nearest, ties to even; a NaN keeps its sign and top payload bits and is
/// made quiet so truncation cannot turn it into an infinity.
pub(super) fn f32_to_bf16(x: f32) -> [u8; 2] {
    let n = x.to_bits();
    let h = if n & 0x7fff_ffff > 0x7f80_0000 {
        (n >> 16) | 0x40
    } else {
        // n ≤ 0xff80_0000 here, so adding at most 0x8000 cannot overflow.
        (n + 0x7fff + ((n >> 16) & 1)) >> 16
    };
    (h as u16).to_le_bytes()
}

/// Σ a[i]·b[i] over two equal-length blocks, in 8 independent lanes so the loop vectorises; the
/// lanes are added pairwise at the end.
#[inline]
pub(super) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (a8, a_tail) = a.as_chunks::<8>();
    let (b8, b_tail) = b.as_chunks::<8>();
    for (a, b) in a8.iter().zip(b8) {
        for l in 0..8 {
            acc[l] += a[l] * b[l];
        }
    }
    let mut tail = 0f32;
    for (a, b) in a_tail.iter().zip(b_tail) {
        tail += a * b;
    }
    lanes_sum(acc) + tail
}

fn lanes_sum(acc: [f32; 8]) -> f32 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Dot product of a row of `S`-byte scalars with `x`, decoding 32 elements at a time into a
/// stack buffer.
pub(super) fn dot_scalar<const S: usize>(
    ty: GgmlType,
    row: &[u8],
    x: &[f32],
    decode: impl Fn(&[u8; S]) -> f32,
) -> Result<f32> {
    let n = elements(ty, row.len(), S, 1)?;
    if x.len() != n {
        return Err(Error::LengthMismatch { what: "dot input x", expected: n, got: x.len() });
    }
    let (vals, _) = row.as_chunks::<S>();
    let mut buf = [0f32; 32];
    let mut sum = 0f32;
    for (v, x) in vals.chunks(32).zip(x.chunks(32)) {
        let buf = &mut buf[..v.len()];
        for (y, b) in buf.iter_mut().zip(v) {
            *y = decode(b);
        }
        sum += dot_f32(buf, x);
    }
    Ok(sum)
}
