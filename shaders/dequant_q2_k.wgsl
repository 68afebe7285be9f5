// dequant_q2_k.wgsl — the Q2_K decoder of the tiled kernels (matmul.wgsl, get_rows.wgsl): row
// elements straight from the tensor's GGUF bytes. CPU reference: quant::dequantize
// (BlockQ2K::dequantize), in the same arithmetic order.
//
// Layout: 84-byte blocks of 256: scales[16] (scale low nibble, min high), qs[64], f16 d,
// f16 dmin. Element e = 128h + 32j + l is bits 2j.. of qs[32h + l], in sub-block e / 16;
// y = (d * sc) * q - (dmin * m). Blocks start on word boundaries.
//
// Decoder interface: shaders/dequant_common.wgsl, which comes first in a pipeline's source.

const BLOCK: u32 = 256u;
const BLOCK_BYTES: u32 = 84u;

fn dequant4(row_byte: u32, i: u32) -> vec4<f32> {
    let blk = row_byte + BLOCK_BYTES * (i / BLOCK);
    let e = i % BLOCK;
    let h = e / 128u;
    let j = (e % 128u) / 32u;
    let q = (w[(blk + 16u + 32u * h + e % 32u) >> 2u] >> (2u * j)) & 0x03030303u;
    let sm = dq_u8(blk + e / 16u);
    let dm = unpack2x16float(w[(blk + 80u) >> 2u]);
    let dl = dm.x * f32(sm & 15u);
    let ml = dm.y * f32(sm >> 4u);
    return dl * vec4<f32>(unpack4xU8(q)) - ml;
}
