// attn_decode_common.wgsl — what the two decode attention kernels share: their geometry, their
// parameters (gpu::attention's `Params` mirrors them), bindings and the f16 pair unpacking.
// Included by attn_decode.wgsl (a q head a workgroup) and attn_decode_gqa.wgsl (four q heads of
// one kv head a workgroup) with `// include: attn_decode_common.wgsl`.

const WG: u32 = 128u;
// Cells scored per pass: one per invocation.
const TILE: u32 = 128u;
const MAX_HEAD_DIM: u32 = 256u;
// The model's head_dim (Params.head_dim), a pipeline constant.
override HEAD_DIM: u32 = 128u;
// Most cell groups: head_dim >= 64, so L >= 8.
const MAX_GROUPS: u32 = 16u;
// The max of a state that has seen no cell: finite, so that exp(NEG - m) is a plain 0.
const NEG: f32 = -1.0e30;

struct Params {
    n_head: u32,
    group: u32,       // q heads per kv head (n_head / n_head_kv)
    head_dim: u32,
    kv_dim: u32,      // n_head_kv * head_dim
    q_off: u32,       // offsets in elements
    att_off: u32,
    window: u32,      // cells a token sees, itself included; 0 = all
    n_split: u32,     // most chunks per head (scratch rows)
    kq_scale: f32,
    n_ctx: u32,       // cells of a sequence's region
    phase: u32,       // 0: statistics (and, for a one-chunk token, its output), 1: Σ p·v of a chunk
    one_chunk: u32,   // a token of at most this many cells takes them in one chunk (whole tiles)
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k_cache: array<vec4<u32>>;   // [n_ctx, kv_dim / 8]
@group(0) @binding(2) var<storage, read> v_cache: array<vec4<u32>>;   // [n_ctx, kv_dim / 8]
@group(0) @binding(3) var<storage, read_write> att: array<f32>;
@group(0) @binding(4) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
@group(0) @binding(6) var<storage, read> at: array<vec2<u32>>;        // [n_tokens] (sequence, position)
@group(0) @binding(7) var<storage, read> dec: array<u32>;             // [n_decode] rows

fn unpack8(u: vec4<u32>, hi: bool) -> vec4<f32> {
    if hi {
        return vec4<f32>(unpack2x16float(u.z), unpack2x16float(u.w));
    }
    return vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y));
}
