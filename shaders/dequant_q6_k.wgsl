// dequant_q6_k.wgsl — the Q6_K decoder of the tiled kernels (matmul.wgsl, get_rows.wgsl): row
// elements straight from the tensor's GGUF bytes. CPU reference: quant::dequantize
// (BlockQ6K::dequantize), in the same arithmetic order.
//
// Layout: 210-byte blocks of 256: ql[128], qh[64], i8 scales[16], f16 d. Element
// e = 128h + 32k + l: low nibble of ql[64h + 32(k % 2) + l] (high nibble for k >= 2), top two
// bits from bits 2k.. of qh[32h + l]; y = (d * sc) * (q - 32) with sc = scales[e / 16]. Blocks
// start on 2-byte boundaries.
//
// Decoder interface (the same in every dequant_*.wgsl; see README.md): binding 0 `w`, the piece's
// bytes as array<u32>; `const BLOCK` (elements per block) and `const BLOCK_BYTES`; and
// `fn dequant4(row_byte, i) -> vec4<f32>`, elements i..i + 4 (i a multiple of 4) of the row that
// starts at byte `row_byte` of w. Other names here start with `dq_`. A kernel file is appended to
// this one to make a pipeline's source (gpu::shaders::with_decoder); alone it is a valid module
// with no entry point, which is how naga checks it.

@group(0) @binding(0) var<storage, read> w: array<u32>;  // [n_rows, row_bytes] bytes, padded to 4

// The u32 at byte `byte` (even) of w: blocks whose size is not a multiple of 4 start on 2-byte
// boundaries.
fn dq_load_u32(byte: u32) -> u32 {
    let i = byte >> 2u;
    let sh = (byte & 3u) * 8u;
    if sh == 0u {
        return w[i];
    }
    return (w[i] >> sh) | (w[i + 1u] << (32u - sh));
}

// The f16 at byte `byte` (even) of w, as f32.
fn dq_f16_at(byte: u32) -> f32 {
    return unpack2x16float(w[byte >> 2u] >> ((byte & 2u) * 8u)).x;
}

fn dq_u8(byte: u32) -> u32 {
    return (w[byte >> 2u] >> ((byte & 3u) * 8u)) & 0xFFu;
}

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
