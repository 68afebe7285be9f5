// add.wgsl — y[t, i] += x[t, i] (the residual add) or, broadcast, y[t, i] += b[i] (the biases of
// Qwen 2's q/k/v and output), for i < width and the rows of gpu::Rows. CPU twin: gpu::add_cpu;
// launcher: core/src/gpu/add.rs.
//
// Layout: y [rows, width] f32 at y_off; x [rows, width] at x_off with x_stride = width, or one
// row [width] with x_stride = 0 (broadcast). Rows: the step's tokens, only its last (x's row
// n_tokens - 1 added to y's row 0), or a fixed count (rows_mode / rows_fixed).
// Dispatch: ceil(rows · width / WG) workgroups of WG over x then y; one element each.

const WG: u32 = 256u;

struct Params {
    width: u32,
    y_off: u32,
    x_off: u32,
    x_stride: u32,   // width, or 0 to broadcast one row
    rows_mode: u32,  // 0: the step's tokens, 1: its last token only, 2: rows_fixed
    rows_fixed: u32,
    _pad0: u32,
    _pad1: u32,
}

struct Step {
    pos0: u32,
    n_tokens: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> y: array<f32>;  // [y_off + rows · width]
@group(0) @binding(1) var<storage, read> x: array<f32>;        // [x_off + rows · x_stride + width]
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<uniform> step: Step;

// Token rows this step covers.
fn n_rows() -> u32 {
    switch p.rows_mode {
        case 1u: { return min(step.n_tokens, 1u); }
        case 2u: { return p.rows_fixed; }
        default: { return step.n_tokens; }
    }
}

// The input row that output row `t` reads.
fn src_row(t: u32) -> u32 {
    return select(t, step.n_tokens - 1u, p.rows_mode == 1u);
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = (wg.y * nwg.x + wg.x) * WG + lid;
    if e >= n_rows() * p.width {
        return;
    }
    let t = e / p.width;
    let i = e % p.width;
    y[p.y_off + e] += x[p.x_off + src_row(t) * p.x_stride + i];
}
