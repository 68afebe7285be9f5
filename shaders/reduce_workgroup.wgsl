// reduce_workgroup.wgsl — the portable row reduction that ends every mat-vec kernel, through
// workgroup memory.
//
// Each matvec_*.wgsl ends at a `// ---- reduce` line. The launcher appends this file's section
// from its own `// ---- reduce` line on (gpu::shaders::splice_reduce), or the same section of
// reduce_subgroup.wgsl when the adapter has subgroups (pipeline key suffix `_wg` / `_sg`). The
// lines above the marker only make this file a module of its own, so that naga can check it;
// they are never spliced.
//
// Contract of the section (the same as reduce_subgroup.wgsl's): it declares `struct Lane` (the
// entry point's built-ins, taken as one argument so the two versions can differ) and
// `fn reduce_rows(acc, lane) -> f32`, which every invocation of the workgroup calls once, in
// uniform control flow, with its partial sums for the ROWS rows; invocation `lid == r` gets the
// total of row `r` back. The kernel defines `override WG` (a power of two, at least ROWS)
// and `const ROWS`.
override WG: u32 = 256u;
const ROWS: u32 = 4u;

// ---- reduce (workgroup memory): a tree over the WG partials of each row.
struct Lane {
    @builtin(local_invocation_index) lid: u32,
}

// [ROWS, WG] partial sums.
var<workgroup> red: array<f32, ROWS * WG>;

fn reduce_rows(acc: array<f32, ROWS>, lane: Lane) -> f32 {
    for (var r = 0u; r < ROWS; r++) {
        red[r * WG + lane.lid] = acc[r];
    }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lane.lid < s {
            for (var r = 0u; r < ROWS; r++) {
                red[r * WG + lane.lid] += red[r * WG + lane.lid + s];
            }
        }
        workgroupBarrier();
    }
    return red[min(lane.lid, ROWS - 1u) * WG];
}
