// dequant_q4_0.wgsl — the Q4_0 decoder of the tiled kernels (matmul.wgsl, get_rows.wgsl): row
// elements straight from the tensor's GGUF bytes. CPU reference: quant::dequantize
// (BlockQ4_0::dequantize), in the same arithmetic order.
//
// Layout: 18-byte blocks of 32: f16 d, qs[16]; element j is the low nibble of qs[j], element
// j + 16 the high one; y = (q - 8) * d. Blocks start on 2-byte boundaries.
//
// Decoder interface: shaders/dequant_common.wgsl, which comes first in a pipeline's source.

const BLOCK: u32 = 32u;
const BLOCK_BYTES: u32 = 18u;

fn dequant4(row_byte: u32, i: u32) -> vec4<f32> {
    let blk = row_byte + BLOCK_BYTES * (i / BLOCK);
    let j = i % BLOCK;
    let q = dq_load_u32(blk + 2u + j % 16u) >> (4u * (j / 16u));
    return (vec4<f32>(unpack4xU8(q & 0x0F0F0F0Fu)) - 8.0) * dq_f16_at(blk);
}
