// dequant_q5_0.wgsl — the Q5_0 decoder of the tiled kernels (matmul.wgsl, get_rows.wgsl): row
// elements straight from the tensor's GGUF bytes. CPU reference: quant::dequantize
// (BlockQ5_0::dequantize), in the same arithmetic order.
//
// Layout: 22-byte blocks of 32: f16 d, u32 qh, qs[16]; nibbles as Q4_0, bit j of qh is bit 4 of
// element j; y = (q - 16) * d. Blocks start on 2-byte boundaries.
//
// Decoder interface: shaders/dequant_common.wgsl, which comes first in a pipeline's source.

// Bits 0..4 of b moved to bit 4 of bytes 0..4.
fn dq_bit4(b: u32) -> u32 {
    return ((b & 1u) | ((b & 2u) << 7u) | ((b & 4u) << 14u) | ((b & 8u) << 21u)) << 4u;
}

const BLOCK: u32 = 32u;
const BLOCK_BYTES: u32 = 22u;

fn dequant4(row_byte: u32, i: u32) -> vec4<f32> {
    let blk = row_byte + BLOCK_BYTES * (i / BLOCK);
    let j = i % BLOCK;
    let lo = (dq_load_u32(blk + 6u + j % 16u) >> (4u * (j / 16u))) & 0x0F0F0F0Fu;
    let q = lo | dq_bit4((dq_load_u32(blk + 2u) >> j) & 15u);
    return (vec4<f32>(unpack4xU8(q)) - 16.0) * dq_f16_at(blk);
}
