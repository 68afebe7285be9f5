// dequant_f16.wgsl — the F16 decoder of the tiled kernels (matmul.wgsl, get_rows.wgsl): row
// elements straight from the tensor's GGUF bytes. CPU reference: quant::dequantize.
//
// Layout: IEEE half floats; rows of an odd length start on 2-byte boundaries.
//
// Decoder interface: shaders/dequant_common.wgsl, which comes first in a pipeline's source.

const BLOCK: u32 = 1u;
const BLOCK_BYTES: u32 = 2u;

fn dequant4(row_byte: u32, i: u32) -> vec4<f32> {
    let at = row_byte + 2u * i;
    return vec4<f32>(unpack2x16float(dq_load_u32(at)), unpack2x16float(dq_load_u32(at + 4u)));
}
