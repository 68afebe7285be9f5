// dequant_f32.wgsl — the F32 decoder of the tiled kernels (matmul.wgsl, get_rows.wgsl): row
// elements straight from the tensor's GGUF bytes. CPU reference: quant::dequantize.
//
// Layout: plain little-endian f32; rows start on word boundaries.
//
// Decoder interface (the same in every dequant_*.wgsl; see README.md): binding 0 `w`, the piece's
// bytes as array<u32>; `const BLOCK` (elements per block) and `const BLOCK_BYTES`; and
// `fn dequant4(row_byte, i) -> vec4<f32>`, elements i..i + 4 (i a multiple of 4) of the row that
// starts at byte `row_byte` of w. Other names here start with `dq_`. A kernel file is appended to
// this one to make a pipeline's source (gpu::shaders::with_decoder); alone it is a valid module
// with no entry point, which is how naga checks it.

@group(0) @binding(0) var<storage, read> w: array<u32>;  // [n_rows, row_bytes] bytes, padded to 4

const BLOCK: u32 = 1u;
const BLOCK_BYTES: u32 = 4u;

fn dequant4(row_byte: u32, i: u32) -> vec4<f32> {
    let k = (row_byte >> 2u) + i;
    return bitcast<vec4<f32>>(vec4<u32>(w[k], w[k + 1u], w[k + 2u], w[k + 3u]));
}
