// attn_prefill_subgroup.wgsl — the subgroup version of attn_prefill.wgsl's row reduction.
//
// attn_prefill.wgsl ends with a `// ---- reduce` section (partial sums through workgroup
// memory); on an adapter whose subgroups hold at least LANES invocations the launcher keeps the
// kernel up to that line and appends this file's section (gpu::shaders::splice_section). The
// lines above the marker only make this file a module naga can check; they are never spliced.
// No `enable subgroups;` here, for the reason given in reduce_subgroup.wgsl.
//
// The roles are numbered by subgroup (subgroup_id · subgroup_size + subgroup_invocation_id), so
// the LANES invocations of a row are LANES consecutive lanes of one subgroup whatever order the
// device puts invocations in, and butterfly shuffles over xor 1, 2, 4 add them up.
const BK: u32 = 16u;
const LANES: u32 = 8u;

// ---- reduce (subgroups): butterfly shuffles across the LANES lanes of a row.
struct Lane {
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_size) sg_size: u32,
}

fn role(lane: Lane) -> u32 {
    return lane.sg * lane.sg_size + lane.sg_lane;
}

fn row_sums(part: array<f32, BK>, lane: Lane) -> array<f32, BK> {
    var s = part;
    for (var c = 0u; c < BK; c++) {
        var x = s[c];
        for (var o = 1u; o < LANES; o <<= 1u) {
            x += subgroupShuffleXor(x, o);
        }
        s[c] = x;
    }
    return s;
}
