// dequant_q5_1.wgsl — the Q5_1 decoder of the tiled kernels (matmul.wgsl, get_rows.wgsl): row
// elements straight from the tensor's GGUF bytes. CPU reference: quant::dequantize
// (BlockQ5_1::dequantize), in the same arithmetic order.
//
// Layout: 24-byte blocks of 32: f16 d, f16 m, u32 qh, qs[16]; bits as Q5_0; y = q * d + m.
// Blocks start on word boundaries.
//
// Decoder interface: shaders/dequant_common.wgsl, which comes first in a pipeline's source.

// Bits 0..4 of b moved to bit 4 of bytes 0..4.
fn dq_bit4(b: u32) -> u32 {
    return ((b & 1u) | ((b & 2u) << 7u) | ((b & 4u) << 14u) | ((b & 8u) << 21u)) << 4u;
}

const BLOCK: u32 = 32u;
const BLOCK_BYTES: u32 = 24u;

fn dequant4(row_byte: u32, i: u32) -> vec4<f32> {
    let wb = (row_byte + BLOCK_BYTES * (i / BLOCK)) >> 2u;
    let j = i % BLOCK;
    let dm = unpack2x16float(w[wb]);
    let lo = (w[wb + 2u + (j % 16u) / 4u] >> (4u * (j / 16u))) & 0x0F0F0F0Fu;
    let q = lo | dq_bit4((w[wb + 1u] >> j) & 15u);
    return vec4<f32>(unpack4xU8(q)) * dm.x + dm.y;
}
