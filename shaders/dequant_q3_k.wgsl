// dequant_q3_k.wgsl — the Q3_K decoder of the tiled kernels (matmul.wgsl, get_rows.wgsl): row
// elements straight from the tensor's GGUF bytes. CPU reference: quant::dequantize
// (BlockQ3K::dequantize), in the same arithmetic order.
//
// Layout: 110-byte blocks of 256: hmask[32], qs[64], scales[12], f16 d. Element
// e = 128h + 32j + l: bits 2j.. of qs[32h + l], minus 4 unless bit 4h + j of hmask[l] is set;
// sub-block e / 16 has a 6-bit scale biased by 32 (low nibbles in scales[0..8], high bit pairs
// in scales[8..12]); y = (d * sc) * q. Blocks start on 2-byte boundaries.
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
