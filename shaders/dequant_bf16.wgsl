// dequant_bf16.wgsl — the BF16 decoder of the tiled kernels (matmul.wgsl, get_rows.wgsl): row
// elements straight from the tensor's GGUF bytes. CPU reference: quant::dequantize.
//
// Layout: bfloat16 (the top 16 bits of an f32); rows of an odd length start on 2-byte boundaries.
//
// Decoder interface: shaders/dequant_common.wgsl, which comes first in a pipeline's source.

fn dq_bf16x2(v: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(v << 16u), bitcast<f32>(v & 0xFFFF0000u));
}

const BLOCK: u32 = 1u;
const BLOCK_BYTES: u32 = 2u;

fn dequant4(row_byte: u32, i: u32) -> vec4<f32> {
    let at = row_byte + 2u * i;
    return vec4<f32>(dq_bf16x2(dq_load_u32(at)), dq_bf16x2(dq_load_u32(at + 4u)));
}
