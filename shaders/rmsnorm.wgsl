// rmsnorm.wgsl — y[row] = x[row] · 1/sqrt(mean(x[row]²) + eps) · w for rows of `width` elements:
// per token t and group g, row t·groups + g, at x_off and y_off (elements). A layer norm has
// groups = 1 (width = n_embd); the per-head q/k norms of Qwen 3 and Gemma 3 have groups = n_head,
// width = head_dim. CPU twin: gpu::rmsnorm_cpu (cpu::ops::rmsnorm per row); launcher:
// core/src/gpu/rmsnorm.rs.
//
// Rows (gpu::Rows, through rows_mode / rows_fixed): the step's tokens, only its last token (read
// from row n_tokens - 1, written as row 0: the output norm), or a fixed count.
// Dispatch: (groups, rows) workgroups of WG; workgroup (g, t) normalizes one row. Each invocation
// sums the squares of elements lid, lid + WG, …, the workgroup reduces the sums, then each
// invocation scales its elements.
// Variants (gpu::shaders::swap_section): the `io` section below binds x and y apart (out of place);
// rmsnorm_inplace.wgsl's binds one read_write buffer. The `reduce` section is a workgroup-memory
// tree; rmsnorm_sg.wgsl's reduces with subgroups.

const WG: u32 = 256u;

struct Params {
    width: u32,       // elements per row
    groups: u32,      // rows per token
    x_off: u32,       // offsets in elements
    y_off: u32,
    eps: f32,
    rows_mode: u32,   // 0: the step's tokens, 1: its last token only, 2: rows_fixed
    rows_fixed: u32,
    _pad0: u32,
}

struct Step {
    pos0: u32,
    n_tokens: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> w: array<f32>;  // [width]
@group(0) @binding(1) var<uniform> p: Params;
@group(0) @binding(2) var<uniform> step: Step;

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
fn main(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let g = wg.x;
    let t = wg.y;
    if t >= n_rows() || g >= p.groups {
        return;
    }
    let xr = p.x_off + (src_row(t) * p.groups + g) * p.width;
    let yr = p.y_off + (t * p.groups + g) * p.width;
    // Four elements per invocation and round, loaded before any is used: a lone workgroup
    // covers a decode step's row, so its time is the latency of its loads.
    let last = p.width - 1u;
    var ss = vec4<f32>(0.0);
    for (var i = lane.lid; i < p.width; i += 4u * WG) {
        let e = vec4<u32>(i, i + WG, i + 2u * WG, i + 3u * WG);
        let v = vec4<f32>(load_x(xr + min(e.x, last)), load_x(xr + min(e.y, last)), load_x(xr + min(e.z, last)), load_x(xr + min(e.w, last)));
        ss += select(vec4<f32>(0.0), v * v, e <= vec4<u32>(last));
    }
    let total = reduce_sum((ss.x + ss.y) + (ss.z + ss.w), lane);
    let scale = 1.0 / sqrt(total / f32(p.width) + p.eps);
    for (var i = lane.lid; i < p.width; i += 4u * WG) {
        let e = vec4<u32>(i, i + WG, i + 2u * WG, i + 3u * WG);
        let v = vec4<f32>(load_x(xr + min(e.x, last)), load_x(xr + min(e.y, last)), load_x(xr + min(e.z, last)), load_x(xr + min(e.w, last)));
        let g = vec4<f32>(w[min(e.x, last)], w[min(e.y, last)], w[min(e.z, last)], w[min(e.w, last)]);
        let out = v * scale * g;
        for (var k = 0u; k < 4u; k++) {
            if e[k] <= last {
                store_y(yr + e[k], out[k]);
            }
        }
    }
}

// ---- io (out of place): x is read, y written. rmsnorm_inplace.wgsl holds the in-place version.
@group(0) @binding(3) var<storage, read> x: array<f32>;        // [x_off + rows · groups · width]
@group(0) @binding(4) var<storage, read_write> y: array<f32>;  // [y_off + rows · groups · width]

fn load_x(i: u32) -> f32 {
    return x[i];
}

fn store_y(i: u32, v: f32) {
    y[i] = v;
}

// ---- reduce (workgroup memory): a tree over the WG partial sums. rmsnorm_sg.wgsl holds the
// subgroup version. Contract: `struct Lane` (the entry point's built-ins) and `reduce_sum`, called
// once by every invocation in uniform control flow, which returns the workgroup's total to all.
struct Lane {
    @builtin(local_invocation_index) lid: u32,
}

var<workgroup> red: array<f32, WG>;

fn reduce_sum(v: f32, lane: Lane) -> f32 {
    red[lane.lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lane.lid < s {
            red[lane.lid] += red[lane.lid + s];
        }
        workgroupBarrier();
    }
    return red[0];
}
