// dequant_q5_1.wgsl — the Q5_1 decoder of the tiled kernels (matmul.wgsl, get_rows.wgsl): row
// elements straight from the tensor's GGUF bytes. CPU reference: quant::dequantize
// (BlockQ5_1::dequantize), in the same arithmetic order.
//
// Layout: 24-byte blocks of 32: f16 d, f16 m, u32 qh, qs[16]; bits as Q5_0; y = q * d + m.
// Blocks start on word boundaries.
//
// Decoder interface (the same in every dequant_*.wgsl; see README.md): binding 0 `w`, the piece's
// bytes as array<u32>; `const BLOCK` (elements per block) and `const BLOCK_BYTES`; and
// `fn dequant4(row_byte, i) -> vec4<f32>`, elements i..i + 4 (i a multiple of 4) of the row that
// starts at byte `row_byte` of w. Other names here start with `dq_`. A kernel file is appended to
// this one to make a pipeline's source (gpu::shaders::with_decoder); alone it is a valid module
// with no entry point, which is how naga checks it.

@group(0) @binding(0) var<storage, read> w: array<u32>;  // [n_rows, row_bytes] bytes, padded to 4

// Bits 0..4 of b moved to bit 4 of bytes 0..4.
fn dq_bit4(b: u32) -> u32 {
    return ((b & 1u) | ((b & 2u) << 7u) | ((b & 4u) << 14u) | ((b & 8u) << 21u)) << 4u;
}

const BLOCK: u32 = 32u;
const BLOCK_BYTES: u32 = 24u;

fn dequant4(row_byte: u32, i: u32) -> vec4<f32> {
    let wb = (row_byte + BLOCK_BYTES * (i / BLOCK)) >> 2u;
    let j = i % BLOCK;
    let dm = unpack2x16float(w[wb]);
    let lo = (w[wb + 2u + (j % 16u) / 4u] >> (4u * (j / 16u))) & 0x0F0F0F0Fu;
    let q = lo | dq_bit4((w[wb + 1u] >> j) & 15u);
    return vec4<f32>(unpack4xU8(q)) * dm.x + dm.y;
}
