//! Quant formats: block layouts, CPU reference dequantize and dot product, and quantizers.
//!
//! A tensor row (`ne[0]` elements) is a run of fixed-size blocks, each `block_size` elements in
//! `type_size` bytes, exactly as ggml lays them out (`ggml-common.h`); plain float types are blocks
//! of one element. Every block type is a `#[repr(C)]` struct whose size is pinned by a const assert,
//! read from and written to the raw little-endian GGUF bytes with `from_le_bytes` — never cast in
//! place — so the same bytes can be uploaded unchanged for the GPU kernels to decode.
//!
//! Dequantization mirrors ggml's arithmetic order operation for operation (for example Q4_K is
//! `(d*sc)*q - (dmin*m)`, never fused), so results match llama.cpp and gguf-py bit for bit; the
//! golden test `tests/tests/quant_goldens.rs` holds us to that.
//!
//! Matmuls do not use `dot`: like ggml's CPU backend they convert each activation row once to the
//! weight type's `vec_dot_type` (Q8_0, Q8_1, Q8_K blocks or f16/bf16, `act.rs`) and take integer
//! dot products with the weight rows, combined in f32 as ggml's kernels do (`vecdot.rs`: Q4_1 and
//! Q8_0 as its x86 AVX2 kernels, the other types as its scalar ones).
//!
//! Layout: `float.rs` (F32, F16, BF16), `legacy.rs` (Q4_0 … Q8_0), `kquants.rs` (Q2_K … Q6_K),
//! `quantize.rs` (quantizers; the K-quant scale search lives in `kquantize.rs`), `act.rs`
//! (activation formats Q8_1, Q8_K and their quantizers), `vecdot.rs` (`dot_quantized`), `simd/`
//! (the fast twins of `act.rs` and `vecdot.rs` that matmuls use, bit-identical to them).

mod act;
mod float;
mod kquantize;
mod kquants;
mod legacy;
mod quantize;
pub mod simd;
mod types;
mod vecdot;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vecdot_tests;

pub use act::{BlockQ8_1, BlockQ8K, quantize_activations, vec_dot_type};
pub use float::f16_bits_to_f32;
pub use kquants::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K};
pub use legacy::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0};
pub use quantize::quantize;
pub use types::{GgmlType, QK_K};
pub use vecdot::dot_quantized;

use crate::{Error, Result};

/// Decodes `src` (whole blocks of `ty`) into `dst`.
///
/// `dst.len()` must equal the element count `src` encodes. Types without a decoder here (the IQ
/// family, TQ*, MXFP4, integer types) return [`Error::UnsupportedType`].
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    use GgmlType::*;
    match ty {
        F32 => each_block::<4, 1>(ty, src, dst, |b, y| y[0] = f32::from_le_bytes(*b)),
        F16 => each_block::<2, 1>(ty, src, dst, |b, y| y[0] = float::f16_to_f32(*b)),
        Bf16 => each_block::<2, 1>(ty, src, dst, |b, y| y[0] = float::bf16_to_f32(*b)),
        Q4_0 => each_block(ty, src, dst, |b, y| BlockQ4_0::read(b).dequantize(y)),
        Q4_1 => each_block(ty, src, dst, |b, y| BlockQ4_1::read(b).dequantize(y)),
        Q5_0 => each_block(ty, src, dst, |b, y| BlockQ5_0::read(b).dequantize(y)),
        Q5_1 => each_block(ty, src, dst, |b, y| BlockQ5_1::read(b).dequantize(y)),
        Q8_0 => each_block(ty, src, dst, |b, y| BlockQ8_0::read(b).dequantize(y)),
        Q8_1 => each_block(ty, src, dst, |b, y| BlockQ8_1::read(b).dequantize(y)),
        Q8K => each_block(ty, src, dst, |b, y| BlockQ8K::read(b).dequantize(y)),
        Q2K => each_block(ty, src, dst, |b, y| BlockQ2K::read(b).dequantize(y)),
        Q3K => each_block(ty, src, dst, |b, y| BlockQ3K::read(b).dequantize(y)),
        Q4K => each_block(ty, src, dst, |b, y| BlockQ4K::read(b).dequantize(y)),
        Q5K => each_block(ty, src, dst, |b, y| BlockQ5K::read(b).dequantize(y)),
        Q6K => each_block(ty, src, dst, |b, y| BlockQ6K::read(b).dequantize(y)),
        _ => Err(Error::UnsupportedType { ty, op: "dequantize" }),
    }
}

/// Dot product of one row of `ty` (whole blocks) with `x`, which must hold as many elements as the
/// row encodes.
///
/// Decodes one block at a time into a stack buffer and accumulates in f32; it allocates nothing.
/// The sum order differs from `dequantize` followed by a plain loop, so the two agree to rounding,
/// not bit for bit.
pub fn dot(ty: GgmlType, row: &[u8], x: &[f32]) -> Result<f32> {
    use GgmlType::*;
    match ty {
        F32 => float::dot_scalar::<4>(ty, row, x, |b| f32::from_le_bytes(*b)),
        F16 => float::dot_scalar::<2>(ty, row, x, |b| float::f16_to_f32(*b)),
        Bf16 => float::dot_scalar::<2>(ty, row, x, |b| float::bf16_to_f32(*b)),
        Q4_0 => dot_blocks(ty, row, x, |b, y| BlockQ4_0::read(b).dequantize(y)),
        Q4_1 => dot_blocks(ty, row, x, |b, y| BlockQ4_1::read(b).dequantize(y)),
        Q5_0 => dot_blocks(ty, row, x, |b, y| BlockQ5_0::read(b).dequantize(y)),
        Q5_1 => dot_blocks(ty, row, x, |b, y| BlockQ5_1::read(b).dequantize(y)),
        Q8_0 => dot_blocks(ty, row, x, |b, y| BlockQ8_0::read(b).dequantize(y)),
        Q8_1 => dot_blocks(ty, row, x, |b, y| BlockQ8_1::read(b).dequantize(y)),
        Q8K => dot_blocks(ty, row, x, |b, y| BlockQ8K::read(b).dequantize(y)),
        Q2K => dot_blocks(ty, row, x, |b, y| BlockQ2K::read(b).dequantize(y)),
        Q3K => dot_blocks(ty, row, x, |b, y| BlockQ3K::read(b).dequantize(y)),
        Q4K => dot_blocks(ty, row, x, |b, y| BlockQ4K::read(b).dequantize(y)),
        Q5K => dot_blocks(ty, row, x, |b, y| BlockQ5K::read(b).dequantize(y)),
        Q6K => dot_blocks(ty, row, x, |b, y| BlockQ6K::read(b).dequantize(y)),
        _ => Err(Error::UnsupportedType { ty, op: "dot" }),
    }
}

/// The element count `len` bytes of `ty` encode, or [`Error::PartialBlock`].
fn elements(ty: GgmlType, len: usize, block_bytes: usize, block_elems: usize) -> Result<usize> {
    debug_assert_eq!((block_bytes, block_elems), (ty.type_size(), ty.block_size()), "{ty}");
    if !len.is_multiple_of(block_bytes) {
        return Err(Error::PartialBlock { ty, len, block_bytes });
    }
    Ok(len / block_bytes * block_elems)
}

/// Decodes every `B`-byte block of `src` into the next `Q` elements of `dst`.
fn each_block<const B: usize, const Q: usize>(
    ty: GgmlType,
    src: &[u8],
    dst: &mut [f32],
    decode: impl Fn(&[u8; B], &mut [f32; Q]),
) -> Result<()> {
    let n = elements(ty, src.len(), B, Q)?;
    if dst.len() != n {
        return Err(Error::LengthMismatch { what: "dequantize output", expected: n, got: dst.len() });
    }
    let (blocks, _) = src.as_chunks::<B>();
    let (outs, _) = dst.as_chunks_mut::<Q>();
    for (b, y) in blocks.iter().zip(outs) {
        decode(b, y);
    }
    Ok(())
}

/// `Σ decode(row)·x`, one `B`-byte block of `Q` elements at a time through a stack buffer.
fn dot_blocks<const B: usize, const Q: usize>(
    ty: GgmlType,
    row: &[u8],
    x: &[f32],
    decode: impl Fn(&[u8; B], &mut [f32; Q]),
) -> Result<f32> {
    let n = elements(ty, row.len(), B, Q)?;
    if x.len() != n {
        return Err(Error::LengthMismatch { what: "dot input x", expected: n, got: x.len() });
    }
    let (blocks, _) = row.as_chunks::<B>();
    let (xs, _) = x.as_chunks::<Q>();
    let mut buf = [0f32; Q];
    let mut sum = 0f32;
    for (b, x) in blocks.iter().zip(xs) {
        decode(b, &mut buf);
        sum += float::dot_f32(&buf, x);
    }
    Ok(sum)
}

/// `N` bytes of `b` from `at`. Callers read fixed-size blocks whose field offsets are constants
/// inside the block, so the range always holds (the const size asserts pin the layouts).
#[inline(always)]
fn field<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut f = [0u8; N];
    f.copy_from_slice(&b[at..at + N]);
    f
}

/// Writes `src` into the block `b` at `at` (a constant field offset, as for [`field`]).
#[inline(always)]
fn put(b: &mut [u8], at: usize, src: &[u8]) {
    b[at..at + src.len()].copy_from_slice(src);
}
