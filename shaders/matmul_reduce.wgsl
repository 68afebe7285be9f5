// matmul_reduce.wgsl — Y[t, r] = Σ_z part[z, t, r]: the second pass of matmul_coop.wgsl's split-K,
// summing the splits' partial products of a step's tokens into Y. CPU twin:
// gpu::matmul_reduce_cpu; launcher: core/src/gpu/matmul_reduce.rs.
//
// Layout: part is f32 [splits, split_tokens, rows] (rows = the whole tensor's). Y: the rows are up
// to three parts end to end (a fused q|k|v or gate|up tensor), part k from row start[k] on, each
// its own f32 [max_tokens, width[k]] region of Y from element off[k]; a tensor of one part is
// Y [max_tokens, rows] from off[0]. Splits are added in order z = 0, 1, ..., so a result does
// not depend on the grid. With `add`, the sum is added to what Y holds (a projection into the
// residual stream: Y is the stream, and the add kernel it would take after is left out).
// Dispatch: ceil(n_tokens · rows / WG) workgroups of WG, laid over x then y (launch::grid); one
// output each.

const WG: u32 = 256u;

struct Params {
    rows: u32,          // elements per token of part (all the parts' rows)
    splits: u32,
    split_tokens: u32,  // tokens per split in part
    add: u32,           // 1: Y += the sum; 0: Y = the sum
    start: vec4<u32>,   // each part's first row; 0xffffffff past the last part
    off: vec4<u32>,     // where each part's region of Y starts, in elements
    width: vec4<u32>,   // each part's rows (its elements per token in Y)
}

struct Step { pos0: u32, n_tokens: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<storage, read> part: array<f32>;     // [splits, split_tokens, rows]
@group(0) @binding(1) var<storage, read_write> y: array<f32>;  // the parts' regions
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<uniform> step: Step;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = (wg.y * nwg.x + wg.x) * WG + lid;
    let n_tok = min(step.n_tokens, p.split_tokens);
    if e >= n_tok * p.rows {
        return;
    }
    let slice = p.split_tokens * p.rows;
    var sum = part[e];
    for (var z = 1u; z < p.splits; z++) {
        sum += part[z * slice + e];
    }
    let t = e / p.rows;
    let r = e % p.rows;
    let k = select(0u, 1u, r >= p.start.y) + select(0u, 1u, r >= p.start.z);
    let i = p.off[k] + t * p.width[k] + r - p.start[k];
    if p.add == 1u {
        y[i] = y[i] + sum;
    } else {
        y[i] = sum;
    }
}
