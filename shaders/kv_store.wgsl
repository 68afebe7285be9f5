// kv_store.wgsl — appends the step's keys and values to one layer's KV cache: row t of k and v
// [n_tokens, kv_dim] f32 (at k_off / v_off, elements) goes to cell at[t].y of sequence at[t].x
// (the step table), as f16 packed two per u32 (pack2x16float). CPU twin: gpu::kv_store_cpu;
// launcher: core/src/gpu/kv_store.rs.
//
// Layout: k_cache and v_cache [n_seq, n_ctx, kv_dim] f16 = [n_seq, n_ctx, kv_dim/2] u32 from word
// cache_off (kv_dim is even): each sequence a region of n_ctx cells. Positions at or past n_ctx
// and sequences at or past n_seq are not written.
// Dispatch: ceil(n_tokens · kv_dim/2 / WG) workgroups of WG over x then y; one u32 of each cache
// per invocation.

const WG: u32 = 256u;

struct Params {
    kv_dim: u32,
    k_off: u32,
    v_off: u32,
    cache_off: u32,  // in u32 words (pairs of f16)
    n_ctx: u32,
    n_seq: u32,
    _pad0: u32,
    _pad1: u32,
}

struct Step {
    pos0: u32,
    n_tokens: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> k: array<f32>;              // [k_off + n_tokens · kv_dim]
@group(0) @binding(1) var<storage, read> v: array<f32>;              // [v_off + n_tokens · kv_dim]
@group(0) @binding(2) var<storage, read_write> k_cache: array<u32>;  // [cache_off + n_seq · n_ctx · kv_dim/2]
@group(0) @binding(3) var<storage, read_write> v_cache: array<u32>;  // [cache_off + n_seq · n_ctx · kv_dim/2]
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<uniform> step: Step;
@group(0) @binding(6) var<storage, read> at: array<vec2<u32>>;      // [n_tokens] (sequence, position)

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let words = p.kv_dim / 2u;
    let id = (wg.y * nwg.x + wg.x) * WG + lid;
    if id >= step.n_tokens * words {
        return;
    }
    let t = id / words;
    let j = id % words;
    let a = at[t];
    if a.x >= p.n_seq || a.y >= p.n_ctx {
        return;
    }
    let cell = a.x * p.n_ctx + a.y;
    let src = t * p.kv_dim + 2u * j;
    let dst = p.cache_off + cell * words + j;
    k_cache[dst] = pack2x16float(vec2<f32>(k[p.k_off + src], k[p.k_off + src + 1u]));
    v_cache[dst] = pack2x16float(vec2<f32>(v[p.v_off + src], v[p.v_off + src + 1u]));
}
