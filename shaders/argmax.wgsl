// argmax.wgsl — out[out_off + r] = the index of the largest of the n f32 logits of row r (at
// in_off + r · in_stride), for each of the dispatch's rows: greedy sampling on the GPU, every
// output of a step in one dispatch per stage. Ties go to the lowest index; NaN and -inf are never
// chosen (ordered comparisons against a start of -f32::MAX); with no other value at all the answer
// is 0 — as aether_core::sample::argmax. CPU twin: gpu::argmax_cpu; launcher:
// core/src/gpu/argmax.rs.
//
// Two dispatches of this kernel, told apart by `stage` (one uniform each); workgroup z is row z:
//   stage 0: (x, y, rows) workgroups, x then y numbering `groups` per row; workgroup w takes
//            logits [w·WG·PER, (w+1)·WG·PER) of its row, invocation lid the elements lid,
//            lid + WG, …, and writes the workgroup's best (index, value bits) to
//            partial[row · groups + w];
//   stage 1: (1, 1, rows): one workgroup per row reduces its `groups` partials into out.
// Variants (gpu::shaders::swap_section): the `reduce` section below is a workgroup-memory tree;
// argmax_sg.wgsl's reduces with subgroups.

const WG: u32 = 256u;
// Elements per invocation in stage 0: 262144 logits take 256 workgroups.
const PER: u32 = 4u;
// "No index yet": loses every tie.
const NONE: u32 = 0xffffffffu;
const LOWEST: f32 = -0x1.fffffep+127f; // -f32::MAX, exactly (Tint rejects a decimal that rounds to it)

struct Params {
    n: u32,         // logits per row
    in_off: u32,    // elements of logits
    out_off: u32,   // elements of out
    stage: u32,
    in_stride: u32, // elements from one row's logits to the next's
    groups: u32,    // stage 0's workgroups per row (partials per row)
    _pad0: u32,
    _pad1: u32,
}

struct Best {
    v: f32,
    i: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;         // [in_off + rows · in_stride]
@group(0) @binding(1) var<storage, read_write> partial: array<vec2<u32>>;  // [rows, groups] (index, bits)
@group(0) @binding(2) var<storage, read_write> out: array<u32>;      // [out_off + rows]
@group(0) @binding(3) var<uniform> p: Params;

// Whether (v, i) beats (bv, bi): larger, or equal at a lower index. NaN compares false.
fn better(v: f32, i: u32, b: Best) -> bool {
    return v > b.v || (v == b.v && i < b.i);
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    lane: Lane,
) {
    let group = wg.y * nwg.x + wg.x;
    let row = wg.z;
    let in_row = p.in_off + row * p.in_stride;
    let parts = row * p.groups;
    var best = Best(LOWEST, NONE);
    if p.stage == 0u {
        let first = group * WG * PER;
        for (var k = 0u; k < PER; k++) {
            let i = first + k * WG + lane.lid;
            if i < p.n {
                let v = logits[in_row + i];
                if better(v, i, best) {
                    best = Best(v, i);
                }
            }
        }
    } else {
        for (var j = lane.lid; j < p.groups; j += WG) {
            let c = partial[parts + j];
            let v = bitcast<f32>(c.y);
            if better(v, c.x, best) {
                best = Best(v, c.x);
            }
        }
    }
    let total = reduce_best(best, lane);
    if lane.lid == 0u {
        if p.stage == 0u {
            partial[parts + group] = vec2<u32>(total.i, bitcast<u32>(total.v));
        } else {
            out[p.out_off + row] = select(total.i, 0u, total.i == NONE);
        }
    }
}

// ---- reduce (workgroup memory): a tree over the WG candidates. argmax_sg.wgsl holds the
// subgroup version. Contract: `struct Lane` (the entry point's built-ins) and `reduce_best`,
// called once by every invocation in uniform control flow, which returns the workgroup's best
// to invocation 0 (at least).
struct Lane {
    @builtin(local_invocation_index) lid: u32,
}

var<workgroup> red_v: array<f32, WG>;
var<workgroup> red_i: array<u32, WG>;

fn reduce_best(b: Best, lane: Lane) -> Best {
    red_v[lane.lid] = b.v;
    red_i[lane.lid] = b.i;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lane.lid < s {
            let o = lane.lid + s;
            if better(red_v[o], red_i[o], Best(red_v[lane.lid], red_i[lane.lid])) {
                red_v[lane.lid] = red_v[o];
                red_i[lane.lid] = red_i[o];
            }
        }
        workgroupBarrier();
    }
    return Best(red_v[0], red_i[0]);
}
