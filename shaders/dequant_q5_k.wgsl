// dequant_q5_k.wgsl — the Q5_K decoder of the tiled kernels (matmul.wgsl, get_rows.wgsl): row
// elements straight from the tensor's GGUF bytes. CPU reference: quant::dequantize
// (BlockQ5K::dequantize), in the same arithmetic order.
//
// Layout: 176-byte blocks of 256: f16 d, f16 dmin, scales[12], qh[32], qs[128]. As Q4_K, with
// bit u of qh[l] as bit 4 of element l of sub-block u; y = (d * sc) * q - (dmin * m). Blocks
// start on word boundaries.
//
// Decoder interface: shaders/dequant_common.wgsl, which comes first in a pipeline's source.

// The 6-bit scale (x) and min (y) of sub-block j (0..8) from the 12 packed bytes at byte `sb`
// (quant/kquants.rs `scale_min_k4`): sub-blocks 0..4 keep theirs in the low 6 bits of bytes j and
// j + 4; sub-blocks 4..8 their low nibbles in byte j + 4 and their top two bits in the spare top
// bits of bytes j - 4 (scale) and j (min).
fn dq_scale_min(sb: u32, j: u32) -> vec2<f32> {
    if j < 4u {
        return vec2<f32>(f32(dq_u8(sb + j) & 63u), f32(dq_u8(sb + j + 4u) & 63u));
    }
    let b = dq_u8(sb + j + 4u);
    let sc = (b & 15u) | ((dq_u8(sb + j - 4u) >> 6u) << 4u);
    let m = (b >> 4u) | ((dq_u8(sb + j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(m));
}

const BLOCK: u32 = 256u;
const BLOCK_BYTES: u32 = 176u;

fn dequant4(row_byte: u32, i: u32) -> vec4<f32> {
    let blk = row_byte + BLOCK_BYTES * (i / BLOCK);
    let e = i % BLOCK;
    let sub = e / 32u;
    let l = e % 32u;
    let lo = (w[(blk + 48u + 32u * (sub / 2u) + l) >> 2u] >> (4u * (sub % 2u))) & 0x0F0F0F0Fu;
    let hi = (w[(blk + 16u + l) >> 2u] >> sub) & 0x01010101u;
    let dm = unpack2x16float(w[blk >> 2u]);
    let sm = dq_scale_min(blk + 4u, sub);
    return (dm.x * sm.x) * vec4<f32>(unpack4xU8(lo | (hi << 4u))) - dm.y * sm.y;
}
