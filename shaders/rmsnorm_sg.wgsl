// rmsnorm_sg.wgsl — the subgroup version of rmsnorm.wgsl's `reduce` section, spliced over it when
// the adapter has subgroups (gpu::shaders::swap_section; the launcher prepends `enable
// subgroups;` for the browser, as for the mat-vec kernels). The line above the marker only makes
// this file a module of its own for naga.
const WG: u32 = 256u;

// ---- reduce (subgroups): subgroupAdd, then one slot per subgroup in workgroup memory.
struct Lane {
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(num_subgroups) n_sg: u32,
}

// [num_subgroups]; WebGPU subgroups are at least 4 wide.
var<workgroup> red: array<f32, WG / 4u>;

fn reduce_sum(v: f32, lane: Lane) -> f32 {
    let s = subgroupAdd(v);
    if lane.sg_lane == 0u {
        red[lane.sg] = s;
    }
    workgroupBarrier();
    var total = 0.0;
    for (var g = 0u; g < lane.n_sg; g++) {
        total += red[g];
    }
    return total;
}
