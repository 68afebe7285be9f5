// dequant_common.wgsl — what every decoder (dequant_<type>.wgsl) shares: the weight binding and
// the byte readers. A pipeline's source is this file, then one decoder, then a kernel that works
// on any type (matmul.wgsl, get_rows.wgsl): gpu::shaders::with_decoder.
//
// Decoder interface (the same in every dequant_*.wgsl; see README.md): binding 0 `w`, the piece's
// bytes as array<u32> (declared here); `const BLOCK` (elements per block) and `const BLOCK_BYTES`;
// and `fn dequant4(row_byte, i) -> vec4<f32>`, elements i..i + 4 (i a multiple of 4) of the row
// that starts at byte `row_byte` of w. Other names of decoders and of this file start with `dq_`.
// This file alone, and this file followed by a decoder, are valid modules with no entry point,
// which is how naga checks them.

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
