// rope_kv.wgsl — a step's rotary embedding of q (in place) and of k, and the store of the rotated
// k and of v into one layer's KV cache, in one dispatch: what rope.wgsl on q, rope.wgsl on k and
// kv_store.wgsl do one after the other (same angles, same arithmetic). CPU twin: gpu::rope_kv_cpu;
// launcher: core/src/gpu/rope_kv.rs.
//
// Layout: q [n_tokens, n_head, head_dim], k and v [n_tokens, n_head_kv, head_dim] f32 in ONE
// buffer at q_off / k_off / v_off (elements; the forward pass keeps them there, and a buffer
// cannot be bound both writable and read-only); token t sits at its position at[t].y of sequence
// at[t].x (the step table). Caches as kv_store.wgsl: [n_seq, n_ctx, kv_dim/2] u32 of f16 pairs
// from word cache_off; positions at or past n_ctx, sequences at or past n_seq are not written.
// Rotation as rope.wgsl: pair i < n_rot/2 turns by φ_i = freq_scale · θ_i (/ factor_i), pairs
// (2i, 2i+1) or NeoX (i, i + n_rot/2); q then scaled by q_scale; dims from n_rot on unrotated.
// k stays unrotated in its buffer: only the cache reads it after this kernel.
// With EXACT (exact numerics, `GpuOptions::exact`) the angles come from the host, which computes
// them as the CPU reference does (cpu::ops::rope_angles, libm's cos and sin): binding 1 holds
// [n_tokens, n_rot/2] (cos φ_i, sin φ_i) · attn_factor, and each pair turns with the CPU's fused
// multiply-adds, x0·cos − x1·sin as fma(x0, cos, −(x1·sin)) and x0·sin + x1·cos as
// fma(x0, sin, x1·cos).
// Dispatch: ceil(n_tokens · (n_head + n_head_kv) · head_dim/2 / WG) workgroups of WG, over x
// then y. Per token, the first n_head · head_dim/2 invocations each turn one pair of q in place;
// the other kv_dim/2 each write one word of both caches: v's two values, and k's two values
// rotated, each computed from its own pair (a NeoX pair spans two words, so a word's invocation
// reads both partners instead of owning a pair).

const WG: u32 = 256u;
override EXACT: bool = false;

struct Params {
    q_off: u32,
    k_off: u32,
    v_off: u32,
    cache_off: u32,    // in u32 words (pairs of f16)
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    n_rot: u32,
    neox: u32,         // 1: NeoX pairing (i, i + n_rot/2)
    has_factors: u32,  // 1: divide θ_i by factors[i]
    theta_scale: f32,  // base^(-2/n_rot)
    freq_scale: f32,
    attn_factor: f32,
    q_scale: f32,
    n_ctx: u32,
    n_seq: u32,
    zero: u32,         // 0, which the compiler cannot know (exact_fp.wgsl)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

struct Step {
    pos0: u32,
    n_tokens: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;        // q, k, v (see Layout)
@group(0) @binding(1) var<storage, read> factors: array<f32>;        // [n_rot/2] (one unused value if none); EXACT: the angles
@group(0) @binding(2) var<storage, read_write> k_cache: array<u32>;  // [cache_off + n_seq · n_ctx · kv_dim/2]
@group(0) @binding(3) var<storage, read_write> v_cache: array<u32>;  // [cache_off + n_seq · n_ctx · kv_dim/2]
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<uniform> step: Step;
@group(0) @binding(6) var<storage, read> at: array<vec2<u32>>;      // [n_tokens] (sequence, position)

// reduce_angle, theta and turn.
// include: rope_angles.wgsl

fn zero_bits() -> u32 {
    return p.zero;
}

// include: exact_fp.wgsl

// EXACT: pair i's (cos, sin) · attn_factor at step token t, from the host.
fn host_turn(t: u32, i: u32) -> vec2<f32> {
    let at = 2u * (t * (p.n_rot / 2u) + i);
    return vec2<f32>(factors[at], factors[at + 1u]);
}

// EXACT: dim d (< n_rot) of the k head starting at element `head`, at step token t.
fn k_rotated_exact(head: u32, d: u32, t: u32) -> f32 {
    let pr = pair_of(d);
    let cs = host_turn(t, pr.x);
    let x0 = x[head + pr.y];
    let x1 = x[head + pr.z];
    if pr.w == 1u {
        return fma_exact(x0, cs.x, -(x1 * cs.y));
    }
    return fma_exact(x0, cs.y, x1 * cs.x);
}

fn angles() -> Angles {
    return Angles(p.freq_scale, p.attn_factor, p.has_factors);
}

// The pair of rotated dim d (< n_rot): its index i, its first and second elements' dims a and b,
// and whether d is the first.
fn pair_of(d: u32) -> vec4<u32> {
    let half_rot = p.n_rot / 2u;
    if p.neox == 1u {
        let first = d < half_rot;
        let i = select(d - half_rot, d, first);
        return vec4<u32>(i, i, i + half_rot, u32(first));
    }
    return vec4<u32>(d / 2u, d & ~1u, (d & ~1u) + 1u, u32((d & 1u) == 0u));
}

// Dim d (< n_rot) of the k head starting at element `head`, rotated by θ = `th` of its pair.
fn k_rotated(head: u32, d: u32, th: f32) -> f32 {
    let pr = pair_of(d);
    let cs = turn(pr.x, th, angles());
    let x0 = x[head + pr.y];
    let x1 = x[head + pr.z];
    return select(x0 * cs.y + x1 * cs.x, x0 * cs.x - x1 * cs.y, pr.w == 1u);
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let pairs = p.head_dim / 2u;
    let q_pairs = p.n_head * pairs;
    let words = p.n_head_kv * pairs;
    let per_token = q_pairs + words;
    let id = (wg.y * nwg.x + wg.x) * WG + lid;
    if id >= step.n_tokens * per_token {
        return;
    }
    let t = id / per_token;
    let r = id % per_token;
    let seat = at[t];
    if r < q_pairs {
        let head = p.q_off + (t * p.n_head + r / pairs) * p.head_dim;
        let i = r % pairs;
        let half_rot = p.n_rot / 2u;
        if i >= half_rot {
            x[head + 2u * i] *= p.q_scale;
            x[head + 2u * i + 1u] *= p.q_scale;
            return;
        }
        var a = 2u * i;
        var b = a + 1u;
        if p.neox == 1u {
            a = i;
            b = i + half_rot;
        }
        let x0 = x[head + a];
        let x1 = x[head + b];
        if EXACT {
            let cs = host_turn(t, i);
            x[head + a] = fma_exact(x0, cs.x, -(x1 * cs.y)) * p.q_scale;
            x[head + b] = fma_exact(x0, cs.y, x1 * cs.x) * p.q_scale;
            return;
        }
        let cs = turn(i, theta(i, seat.y, p.theta_scale), angles());
        x[head + a] = (x0 * cs.x - x1 * cs.y) * p.q_scale;
        x[head + b] = (x0 * cs.y + x1 * cs.x) * p.q_scale;
        return;
    }
    if seat.x >= p.n_seq || seat.y >= p.n_ctx {
        return;
    }
    let j = r - q_pairs;
    let kv_dim = p.n_head_kv * p.head_dim;
    let dst = p.cache_off + (seat.x * p.n_ctx + seat.y) * words + j;
    let src = t * kv_dim + 2u * j;
    v_cache[dst] = pack2x16float(vec2<f32>(x[p.v_off + src], x[p.v_off + src + 1u]));
    let head = p.k_off + t * kv_dim + (2u * j / p.head_dim) * p.head_dim;
    let d = (2u * j) % p.head_dim;
    // Dims d and d + 1: one pair, consecutive pairs (NeoX) or, where half of n_rot is odd, the
    // last of the first half and the first of the second; one running product serves the first
    // two cases.
    // d is even and so is n_rot: both dims are rotated or neither.
    var k = vec2<f32>(x[head + d], x[head + d + 1u]);
    if EXACT && d < p.n_rot {
        k = vec2<f32>(k_rotated_exact(head, d, t), k_rotated_exact(head, d + 1u, t));
    } else if d < p.n_rot {
        let i0 = pair_of(d).x;
        let i1 = pair_of(d + 1u).x;
        let th = theta(i0, seat.y, p.theta_scale);
        var th1 = th;
        if i1 == i0 + 1u {
            th1 = th * p.theta_scale;
        } else if i1 != i0 {
            th1 = theta(i1, seat.y, p.theta_scale);
        }
        k = vec2<f32>(k_rotated(head, d, th), k_rotated(head, d + 1u, th1));
    }
    k_cache[dst] = pack2x16float(k);
}
