// argmax_sg.wgsl — the subgroup version of argmax.wgsl's `reduce` section, spliced over it when
// the adapter has subgroups (gpu::shaders::swap_section; the launcher prepends `enable
// subgroups;` for the browser). The lines above the marker only make this file a module of its
// own for naga.
const WG: u32 = 256u;

struct Best {
    v: f32,
    i: u32,
}

fn better(v: f32, i: u32, b: Best) -> bool {
    return v > b.v || (v == b.v && i < b.i);
}

// ---- reduce (subgroups): the subgroup's largest value, its lowest index holding it, then one
// slot per subgroup in workgroup memory, scanned by invocation 0.
struct Lane {
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(num_subgroups) n_sg: u32,
}

// [num_subgroups]; WebGPU subgroups are at least 4 wide.
var<workgroup> red_v: array<f32, WG / 4u>;
var<workgroup> red_i: array<u32, WG / 4u>;

fn reduce_best(b: Best, lane: Lane) -> Best {
    let m = subgroupMax(b.v);
    // NONE (0xffffffff) from lanes without the maximum loses the min.
    let i = subgroupMin(select(0xffffffffu, b.i, b.v == m));
    if lane.sg_lane == 0u {
        red_v[lane.sg] = m;
        red_i[lane.sg] = i;
    }
    workgroupBarrier();
    var best = Best(red_v[0], red_i[0]);
    if lane.lid == 0u {
        for (var g = 1u; g < lane.n_sg; g++) {
            if better(red_v[g], red_i[g], best) {
                best = Best(red_v[g], red_i[g]);
            }
        }
    }
    return best;
}
