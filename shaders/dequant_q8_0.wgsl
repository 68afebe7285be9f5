// dequant_q8_0.wgsl — the Q8_0 decoder of the tiled kernels (matmul.wgsl, get_rows.wgsl): row
// elements straight from the tensor's GGUF bytes. CPU reference: quant::dequantize
// (BlockQ8_0::dequantize), in the same arithmetic order.
//
// Layout: 34-byte blocks of 32: f16 d, i8 qs[32]; y = q * d. Blocks start on 2-byte boundaries.
//
// Decoder interface: shaders/dequant_common.wgsl, which comes first in a pipeline's source.

const BLOCK: u32 = 32u;
const BLOCK_BYTES: u32 = 34u;

fn dequant4(row_byte: u32, i: u32) -> vec4<f32> {
    let blk = row_byte + BLOCK_BYTES * (i / BLOCK);
    return vec4<f32>(unpack4xI8(dq_load_u32(blk + 2u + i % BLOCK))) * dq_f16_at(blk);
}
