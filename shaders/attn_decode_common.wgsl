// attn_decode_common.wgsl — what the two decode attention kernels share: their geometry, bindings
// and the f16 pair unpacking (their Params and chunking: attn_params.wgsl). Included by
// attn_decode.wgsl (a q head a workgroup) and attn_decode_gqa.wgsl (four q heads of one kv head a
// workgroup) with `// include: attn_decode_common.wgsl`.

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
