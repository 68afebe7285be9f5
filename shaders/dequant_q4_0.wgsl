// dequant_q4_0.wgsl — the Q4_0 decoder of the tiled kernels (matmul.wgsl, get_rows.wgsl): row
// elements straight from the tensor's GGUF bytes. CPU reference: quant::dequantize
// (BlockQ4_0::dequantize), in the same arithmetic order.
//
// Layout: 18-byte blocks of 32: f16 d, qs[16]; element j is the low nibble of qs[j], element
// j + 16 the high one; y = (q - 8) * d. Blocks start on 2-byte boundaries.
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

const BLOCK: u32 = 32u;
const BLOCK_BYTES: u32 = 18u;

fn dequant4(row_byte: u32, i: u32) -> vec4<f32> {
    let blk = row_byte + BLOCK_BYTES * (i / BLOCK);
    let j = i % BLOCK;
    let q = dq_load_u32(blk + 2u + j % 16u) >> (4u * (j / 16u));
    return (vec4<f32>(unpack4xU8(q & 0x0F0F0F0Fu)) - 8.0) * dq_f16_at(blk);
}
