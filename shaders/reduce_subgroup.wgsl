// reduce_subgroup.wgsl — the subgroup version of the row reduction that ends every mat-vec kernel.
//
// Each matvec_*.wgsl ends at a `// ---- reduce` line. When the adapter has subgroups, the
// launcher appends this file's section from its own `// ---- reduce` line on
// (gpu::shaders::splice_reduce; key suffix `_sg`), else the same section of
// reduce_workgroup.wgsl, the portable workgroup-memory tree (`_wg`). The lines above the marker
// only make this file a module of its own, so that naga can check it; they are never spliced.
//
// No `enable subgroups;` here: the WGSL spec and browsers require it, but naga (wgpu 30) rejects
// it as unimplemented and takes subgroup built-ins from the device's features instead. The splice
// puts the directive first for the browser's WebGPU backend only.
//
// Contract of the section (the same as reduce_workgroup.wgsl's): it declares `struct Lane` (the entry point's built-ins, taken as one
// argument so the two versions can differ) and `fn reduce_rows(acc, lane) -> f32`, which every
// invocation of the workgroup calls once, in uniform control flow, with its partial sums for the
// ROWS rows; invocation `lid == r` gets the total of row `r` back.
override WG: u32 = 256u;
const ROWS: u32 = 4u;

// ---- reduce (subgroups): subgroupAdd per row, then one slot per subgroup in workgroup memory.
struct Lane {
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(num_subgroups) n_sg: u32,
}

// [num_subgroups, ROWS]; WebGPU subgroups are at least 4 wide, so WG / 4 slots always suffice.
var<workgroup> red: array<f32, (WG / 4u) * ROWS>;

fn reduce_rows(acc: array<f32, ROWS>, lane: Lane) -> f32 {
    for (var r = 0u; r < ROWS; r++) {
        let s = subgroupAdd(acc[r]);
        if lane.sg_lane == 0u {
            red[lane.sg * ROWS + r] = s;
        }
    }
    workgroupBarrier();
    var total = 0.0;
    if lane.lid < ROWS {
        for (var g = 0u; g < lane.n_sg; g++) {
            total += red[g * ROWS + lane.lid];
        }
    }
    return total;
}
