// gemm_stage.wgsl — the operands of a long step's product as f16, for gemm_coop.wgsl: rows
// [row0, row0 + n_rows) of a weight piece decoded into the W region of the staging buffer, and (in
// the first of a tensor's stagings) the step's tokens of X rounded into its X region. Both regions
// hold rows of `kq` vec4<f16> (the width rounded up to gemm_coop's 32-column step), zero past the
// width. CPU twin: the decoder's `quant::dequantize` and f16 rounding (gpu::matmul_cpu compares the
// whole product); launcher: core/src/gpu/matmul.rs (`Gemm`).
//
// Not valid alone: the pipeline's source is dequant_common.wgsl and a decoder dequant_<type>.wgsl
// followed by this file, with the `enable` line below moved to the front (gpu::shaders::
// with_decoder). The decoder owns binding 0 (`w`) and gives `dequant4`.
//
// Dispatch: (ceil(kq / (2 WG)), n_rows + tokens) workgroups, tokens = the step's count when this
// staging converts X, else 0: workgroup row y < n_rows decodes weight row row0 + y, the others
// convert token y - n_rows. Invocation i of workgroup x writes quads 2 (x · WG + i) and the one
// after (kq is even), as one 16-byte store.
//
// Precision: values are clamped to ±65504 before rounding, so a large one saturates instead of
// becoming inf (as matmul_coop.wgsl does).

enable f16;

const WG: u32 = 256u;
const F16_MAX: f32 = 65504.0;

struct Params {
    n_rows: u32,     // weight rows staged
    cols: u32,       // elements per row (ne[0])
    row_bytes: u32,  // bytes per weight row
    row0_byte: u32,  // byte of row row0 in the piece
    kq: u32,         // vec4<f16> per staged row (even)
    x_off: u32,      // X's token 0, in elements
    w_at: u32,       // the W region's first vec4<f16>, even (the X region starts at 0)
    max_tokens: u32, // tokens the X buffer holds
}

struct Step { pos0: u32, n_tokens: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(1) var<storage, read> x: array<f32>;              // [x_off + max_tokens * cols]
@group(0) @binding(2) var<storage, read_write> s: array<vec4<u32>>;  // X region, then W region
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> step: Step;

// Eight values as f16, packed for one 16-byte store.
fn h8(a: vec4<f32>, b: vec4<f32>) -> vec4<u32> {
    let ca = clamp(a, vec4<f32>(-F16_MAX), vec4<f32>(F16_MAX));
    let cb = clamp(b, vec4<f32>(-F16_MAX), vec4<f32>(F16_MAX));
    return vec4<u32>(pack2x16float(ca.xy), pack2x16float(ca.zw), pack2x16float(cb.xy), pack2x16float(cb.zw));
}

// Columns c.. c + 4 of a row: zero past the row (float rows with cols % 4 == 2 end inside a quad;
// select, not multiply: those lanes may hold any bits).
fn in_row(v: vec4<f32>, c: u32) -> vec4<f32> {
    if c + 4u <= p.cols {
        return v;
    }
    return select(vec4<f32>(0.0), v, vec4<u32>(c, c + 1u, c + 2u, c + 3u) < vec4<u32>(p.cols));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let q = 2u * (wg.x * WG + lid);
    if q >= p.kq {
        return;
    }
    let c = 4u * q;
    if wg.y < p.n_rows {
        let rb = p.row0_byte + wg.y * p.row_bytes;
        var a = vec4<f32>(0.0);
        var b = vec4<f32>(0.0);
        if c < p.cols {
            a = in_row(dequant4(rb, c), c);
        }
        if c + 4u < p.cols {
            b = in_row(dequant4(rb, c + 4u), c + 4u);
        }
        s[(p.w_at + wg.y * p.kq + q) / 2u] = h8(a, b);
        return;
    }
    let t = wg.y - p.n_rows;
    if t >= min(step.n_tokens, p.max_tokens) {
        return;
    }
    let i = p.x_off + t * p.cols + c;
    var a = vec4<f32>(0.0);
    var b = vec4<f32>(0.0);
    if c < p.cols {
        a = in_row(vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]), c);
    }
    if c + 4u < p.cols {
        b = in_row(vec4<f32>(x[i + 4u], x[i + 5u], x[i + 6u], x[i + 7u]), c + 4u);
    }
    s[(t * p.kq + q) / 2u] = h8(a, b);
}
