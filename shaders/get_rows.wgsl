// get_rows.wgsl — y[y_off + t * cols + c] = scale * W[ids[t], c] for the tokens t < n_tokens of a
// step: the embedding lookup, from one piece of a weight tensor of any type. CPU twin:
// gpu::get_rows_cpu (quant::dequantize of the row, times scale); launcher:
// core/src/gpu/get_rows.rs.
//
// Not valid alone: the pipeline's source is a decoder, shaders/dequant_<type>.wgsl, followed by
// this file (gpu::shaders::with_decoder); the decoder owns binding 0 (`w`, the piece's bytes).
//
// Layout: ids is u32 [max_tokens] (token ids, written by the caller); y is f32
// [max_tokens, cols] from element y_off. A split tensor runs once per piece, and each piece
// writes the tokens whose id falls in its rows; the last piece also writes zeros for ids past
// the tensor, so y never keeps stale values.
// Dispatch: (ceil(cols / (4 WG)), n_tokens) workgroups; invocation x of row t of the grid
// decodes elements 4x.. 4x + 4 of token t's row.

const WG: u32 = 64u;

struct Params {
    cols: u32,        // elements per row (ne[0])
    row_bytes: u32,   // bytes per row
    y_off: u32,       // in elements
    first_row: u32,   // id of this piece's first row
    n_rows: u32,      // rows in this piece
    zero_past: u32,   // 1 on the last piece: ids >= first_row + n_rows give zeros
    max_tokens: u32,  // tokens the buffers hold
    scale: f32,
}

struct Step { pos0: u32, n_tokens: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(1) var<storage, read> ids: array<u32>;      // [max_tokens]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // [y_off + max_tokens * cols]
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> step: Step;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.y;
    let c = 4u * gid.x;
    if t >= min(step.n_tokens, p.max_tokens) || c >= p.cols {
        return;
    }
    let id = ids[t];
    var v = vec4<f32>(0.0);
    if id >= p.first_row && id - p.first_row < p.n_rows {
        v = dequant4((id - p.first_row) * p.row_bytes, c) * p.scale;
    } else if p.zero_past == 0u || id < p.first_row {
        return;
    }
    let at = p.y_off + t * p.cols + c;
    for (var e = 0u; e < min(4u, p.cols - c); e++) {
        y[at + e] = v[e];
    }
}
