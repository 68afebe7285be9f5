// dequant_q4_1.wgsl — the Q4_1 decoder of the tiled kernels (matmul.wgsl, get_rows.wgsl): row
// elements straight from the tensor's GGUF bytes. CPU reference: quant::dequantize
// (BlockQ4_1::dequantize), in the same arithmetic order.
//
// Layout: 20-byte blocks of 32: f16 d, f16 m, qs[16]; nibbles as Q4_0; y = q * d + m. Blocks
// start on word boundaries.
//
// Decoder interface: shaders/dequant_common.wgsl, which comes first in a pipeline's source.

const BLOCK: u32 = 32u;
const BLOCK_BYTES: u32 = 20u;

fn dequant4(row_byte: u32, i: u32) -> vec4<f32> {
    let wb = (row_byte + BLOCK_BYTES * (i / BLOCK)) >> 2u;
    let j = i % BLOCK;
    let dm = unpack2x16float(w[wb]);
    let q = w[wb + 1u + (j % 16u) / 4u] >> (4u * (j / 16u));
    return vec4<f32>(unpack4xU8(q & 0x0F0F0F0Fu)) * dm.x + dm.y;
}
