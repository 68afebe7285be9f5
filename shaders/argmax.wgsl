// argmax.wgsl — out[out_off] = the index of the largest of n f32 logits at in_off: greedy
// sampling on the GPU. Ties go to the lowest index; NaN and -inf are never chosen (ordered
// comparisons against a start of -f32::MAX); with no other value at all the answer is 0 — as
// aether_core::sample::argmax. CPU twin: gpu::argmax_cpu; launcher: core/src/gpu/argmax.rs.
//
// Two dispatches of this kernel, told apart by `stage` (one uniform each):
//   stage 0: ceil(n / (WG · PER)) workgroups over x then y; workgroup w takes logits
//            [w·WG·PER, (w+1)·WG·PER), invocation lid the elements lid, lid + WG, …, and writes
//            the workgroup's best (index, value bits) to partial[w];
//   stage 1: one workgroup reduces the n partials (n = stage 0's workgroup count) into out.
// Variants (gpu::shaders::swap_section): the `reduce` section below is a workgroup-memory tree;
// argmax_sg.wgsl's reduces with subgroups.

const WG: u32 = 256u;
// Elements per invocation in stage 0: 262144 logits take 256 workgroups.
const PER: u32 = 4u;
// "No index yet": loses every tie.
const NONE: u32 = 0xffffffffu;
const LOWEST: f32 = -0x1.fffffep+127f; // -f32::MAX, exactly (Tint rejects a decimal that rounds to it)

struct Params {
    n: u32,        // stage 0: logits; stage 1: partials
    in_off: u32,   // elements of logits
    out_off: u32,  // elements of out
    stage: u32,
}

struct Best {
    v: f32,
    i: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;         // [in_off + n]
@group(0) @binding(1) var<storage, read_write> partial: array<vec2<u32>>;  // [workgroups of stage 0] (index, bits)
@group(0) @binding(2) var<storage, read_write> out: array<u32>;      // [out_off + 1]
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
    var best = Best(LOWEST, NONE);
    if p.stage == 0u {
        let first = group * WG * PER;
        for (var k = 0u; k < PER; k++) {
            let i = first + k * WG + lane.lid;
            if i < p.n {
                let v = logits[p.in_off + i];
                if better(v, i, best) {
                    best = Best(v, i);
                }
            }
        }
    } else {
        for (var j = lane.lid; j < p.n; j += WG) {
            let c = partial[j];
            let v = bitcast<f32>(c.y);
            if better(v, c.x, best) {
                best = Best(v, c.x);
            }
        }
    }
    let total = reduce_best(best, lane);
    if lane.lid == 0u {
        if p.stage == 0u {
            partial[group] = vec2<u32>(total.i, bitcast<u32>(total.v));
        } else {
            out[p.out_off] = select(total.i, 0u, total.i == NONE);
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
