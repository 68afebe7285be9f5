// attn_merge.wgsl — adds up the per-chunk sums Σ p·v that attn_decode.wgsl's phase 1 wrote for
// each decode token (already normalised by the whole softmax): att[h, d] = Σ_c acc_c[d], in chunk
// order. CPU twin: gpu::attention_cpu; launcher:
// core/src/gpu/attention.rs (dispatched only when some decode token has more than one chunk;
// a token with one chunk had its row written by attn_decode and is skipped here).
//
// Layout: scratch f32 [n_decode, n_head, n_split, 2 + head_dim] (m, l, acc), of which the first
// n_chunks rows of each head are written; decode token i is row dec[i] of the step, at position
// at[dec[i]].y; att f32 [n_tokens, n_head * head_dim] at att_off.
// Dispatch: (n_head, n_decode, 1) workgroups of WG; invocation i takes dims i, i + WG, ... and
// adds its dims' n_chunks sums itself: no reduction needed.

const WG: u32 = 64u;
// attn_decode.wgsl's tile: the two cut a token's cells alike (decode_chunks; the launcher checks).
const TILE: u32 = 128u;

// Params and decode_chunks.
// include: attn_params.wgsl

@group(0) @binding(0) var<storage, read> scratch: array<f32>;
@group(0) @binding(1) var<storage, read_write> att: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> at: array<vec2<u32>>;  // [n_tokens] (sequence, position)
@group(0) @binding(4) var<storage, read> dec: array<u32>;       // [n_decode] rows

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let hd = p.head_dim;
    let h = wg.x;
    let t = dec[wg.y];
    let pos = at[t].y;
    let n_chunks = decode_chunks(pos, TILE).n;
    if n_chunks < 2u {
        return;
    }
    let base = (wg.y * p.n_head + h) * p.n_split * (2u + hd);
    for (var d = lid; d < hd; d += WG) {
        var o = 0.0;
        for (var c = 0u; c < n_chunks; c++) {
            o += scratch[base + c * (2u + hd) + 2u + d];
        }
        att[p.att_off + t * p.n_head * hd + h * hd + d] = o;
    }
}
