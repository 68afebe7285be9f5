// stream_read.wgsl — reads a whole buffer once, 16 bytes per load, and writes one word per
// workgroup so the reads cannot be optimised away: the memory-bandwidth probe behind
// `aether bench`'s roofline figure. CPU twin: gpu::stream_read_cpu (the same per-workgroup XOR);
// launcher: core/src/gpu/stream_read.rs.
//
// Dispatch: `groups` workgroups of WG (over x then y); invocation i of the grid reads vec4s
// i, i + stride, i + 2·stride, … (a grid-stride loop: consecutive invocations read consecutive
// 16-byte words, so every warp's loads coalesce).

const WG: u32 = 256u;

struct Params {
    n_vec4: u32,  // vec4<u32> in src
    stride: u32,  // invocations in the grid
    groups_x: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;  // [workgroups]
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> acc: array<u32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wg.y * p.groups_x + wg.x;
    var x = vec4<u32>(0u);
    for (var i = group * WG + lid; i < p.n_vec4; i += p.stride) {
        x ^= src[i];
    }
    acc[lid] = x.x ^ x.y ^ x.z ^ x.w;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            acc[lid] ^= acc[lid + s];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        out[group] = acc[0];
    }
}
