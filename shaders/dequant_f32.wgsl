// dequant_f32.wgsl — the F32 decoder of the tiled kernels (matmul.wgsl, get_rows.wgsl): row
// elements straight from the tensor's GGUF bytes. CPU reference: quant::dequantize.
//
// Layout: plain little-endian f32; rows start on word boundaries.
//
// Decoder interface: shaders/dequant_common.wgsl, which comes first in a pipeline's source.

const BLOCK: u32 = 1u;
const BLOCK_BYTES: u32 = 4u;

fn dequant4(row_byte: u32, i: u32) -> vec4<f32> {
    let k = (row_byte >> 2u) + i;
    return bitcast<vec4<f32>>(vec4<u32>(w[k], w[k + 1u], w[k + 2u], w[k + 3u]));
}
