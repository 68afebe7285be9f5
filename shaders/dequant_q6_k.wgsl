// dequant_q6_k.wgsl — the Q6_K decoder of the tiled kernels (matmul.wgsl, get_rows.wgsl): row
// elements straight from the tensor's GGUF bytes. CPU reference: quant::dequantize
// (BlockQ6K::dequantize), in the same arithmetic order.
//
// Layout: 210-byte blocks of 256: ql[128], qh[64], i8 scales[16], f16 d. Element
// e = 128h + 32k + l: low nibble of ql[64h + 32(k % 2) + l] (high nibble for k >= 2), top two
// bits from bits 2k.. of qh[32h + l]; y = (d * sc) * (q - 32) with sc = scales[e / 16]. Blocks
// start on 2-byte boundaries.
//
// Decoder interface: shaders/dequant_common.wgsl, which comes first in a pipeline's source.

const BLOCK: u32 = 256u;
const BLOCK_BYTES: u32 = 210u;

fn dequant4(row_byte: u32, i: u32) -> vec4<f32> {
    let blk = row_byte + BLOCK_BYTES * (i / BLOCK);
    let e = i % BLOCK;
    let h = e / 128u;
    let k = (e % 128u) / 32u;
    let l = e % 32u;
    let lo = (dq_load_u32(blk + 64u * h + 32u * (k % 2u) + l) >> (4u * (k / 2u))) & 0x0F0F0F0Fu;
    let hi = (dq_load_u32(blk + 128u + 32u * h + l) >> (2u * k)) & 0x03030303u;
    let sc = f32(bitcast<i32>(dq_u8(blk + 192u + e / 16u) << 24u) >> 24u);
    return (dq_f16_at(blk + 208u) * sc) * (vec4<f32>(unpack4xU8(lo | (hi << 4u))) - 32.0);
}
