// dequant_bf16.wgsl — the BF16 decoder of the tiled kernels (matmul.wgsl, get_rows.wgsl): row
// elements straight from the tensor's GGUF bytes. CPU reference: quant::dequantize.
//
// Layout: bfloat16 (the top 16 bits of an f32); rows of an odd length start on 2-byte boundaries.
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

fn dq_bf16x2(v: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(v << 16u), bitcast<f32>(v & 0xFFFF0000u));
}

const BLOCK: u32 = 1u;
const BLOCK_BYTES: u32 = 2u;

fn dequant4(row_byte: u32, i: u32) -> vec4<f32> {
    let at = row_byte + 2u * i;
    return vec4<f32>(dq_bf16x2(dq_load_u32(at)), dq_bf16x2(dq_load_u32(at + 4u)));
}
