// gather.wgsl — dst[i, :] = src[rows[i], :] for i < step.n_tokens: copies rows of an f32 matrix,
// in the order a table gives them. The output head gathers the rows whose logits it computes
// (the last token of each run that wants an output) before the final norm. CPU twin:
// gpu::gather_cpu; launcher: core/src/gpu/gather.rs.
//
// Layout: src f32 [any, width] at src_off, dst f32 [n_tokens, width] at dst_off (elements);
// rows u32 [n_tokens]. Here `step` is the head's: n_tokens = the rows gathered.
// Dispatch: ceil(n_tokens · width / WG) workgroups of WG over x then y; one element per
// invocation.

const WG: u32 = 256u;

struct Params {
    width: u32,
    src_off: u32,
    dst_off: u32,
    _pad0: u32,
}

struct Step {
    pos0: u32,
    n_tokens: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;         // [src_off + rows · width]
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;   // [dst_off + n_tokens · width]
@group(0) @binding(2) var<storage, read> rows: array<u32>;        // [n_tokens]
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> step: Step;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let id = (wg.y * nwg.x + wg.x) * WG + lid;
    if id >= step.n_tokens * p.width {
        return;
    }
    let i = id / p.width;
    let c = id % p.width;
    dst[p.dst_off + id] = src[p.src_off + rows[i] * p.width + c];
}
