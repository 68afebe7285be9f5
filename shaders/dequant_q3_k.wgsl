// dequant_q3_k.wgsl — the Q3_K decoder of the tiled kernels (matmul.wgsl, get_rows.wgsl): row
// elements straight from the tensor's GGUF bytes. CPU reference: quant::dequantize
// (BlockQ3K::dequantize), in the same arithmetic order.
//
// Layout: 110-byte blocks of 256: hmask[32], qs[64], scales[12], f16 d. Element
// e = 128h + 32j + l: bits 2j.. of qs[32h + l], minus 4 unless bit 4h + j of hmask[l] is set;
// sub-block e / 16 has a 6-bit scale biased by 32 (low nibbles in scales[0..8], high bit pairs
// in scales[8..12]); y = (d * sc) * q. Blocks start on 2-byte boundaries.
//
// Decoder interface: shaders/dequant_common.wgsl, which comes first in a pipeline's source.

const BLOCK: u32 = 256u;
const BLOCK_BYTES: u32 = 110u;

fn dequant4(row_byte: u32, i: u32) -> vec4<f32> {
    let blk = row_byte + BLOCK_BYTES * (i / BLOCK);
    let e = i % BLOCK;
    let h = e / 128u;
    let j = (e % 128u) / 32u;
    let l = e % 32u;
    let lo = (dq_load_u32(blk + 32u + 32u * h + l) >> (2u * j)) & 0x03030303u;
    let hb = (dq_load_u32(blk + l) >> (4u * h + j)) & 0x01010101u;
    // A set hmask bit adds 4 back: low + 4 - 4; a clear one leaves low - 4.
    let q = vec4<f32>(unpack4xU8(lo | (hb << 2u))) - 4.0;
    let k = e / 16u;
    let sc_lo = (dq_u8(blk + 96u + k % 8u) >> (4u * (k / 8u))) & 15u;
    let sc_hi = (dq_u8(blk + 104u + k % 4u) >> (2u * (k / 4u))) & 3u;
    let sc = f32(i32(sc_lo | (sc_hi << 4u)) - 32);
    return (dq_f16_at(blk + 108u) * sc) * q;
}
