// rope.wgsl — rotary position embedding, in place on x [n_tokens, n_heads, head_dim] f32 at x_off
// (elements); token t sits at its own position at[t].y (the step table: tokens of several
// sequences, each at its place in its sequence). CPU twin: gpu::rope_cpu
// (cpu::ops::rope_angles + rope); launcher: core/src/gpu/rope.rs.
//
// Pair i < n_rot/2 of a head turns by φ_i = freq_scale · (θ_i / factor_i), θ_0 = pos,
// θ_{i+1} = θ_i · theta_scale (the running product of ggml_rope_cache_init, in f32, so the
// roundings match the CPU's), with cos φ and sin φ times attn_factor. Pairs are (2i, 2i+1)
// (`neox` = 0, llama) or (i, i + n_rot/2) (NeoX). Dims from n_rot on are not rotated; every dim is
// then multiplied by `scale` (q_scale of Phi-3 / Gemma 3; 1 otherwise).
// Dispatch: ceil(n_tokens · n_heads · head_dim/2 / WG) workgroups of WG, over x then y; one
// invocation per (token, head, pair). Invocations past n_rot/2 scale dims 2i and 2i + 1, which
// are exactly the unrotated dims in both pairings.
//
// Angles: WGSL's sin/cos are only specified on [-π, π] (and real GPUs lose accuracy far beyond
// it), while positions reach 10⁵ radians; φ is first reduced by 2π in four parts (Cody–Waite).

const WG: u32 = 256u;

struct Params {
    x_off: u32,
    n_heads: u32,
    head_dim: u32,
    n_rot: u32,
    neox: u32,         // 1: NeoX pairing (i, i + n_rot/2)
    has_factors: u32,  // 1: divide θ_i by factors[i]
    theta_scale: f32,  // base^(-2/n_rot)
    freq_scale: f32,
    attn_factor: f32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

struct Step {
    pos0: u32,
    n_tokens: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;  // [x_off + n_tokens · n_heads · head_dim]
@group(0) @binding(1) var<storage, read> factors: array<f32>;  // [n_rot/2] (one unused value if none)
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<uniform> step: Step;
@group(0) @binding(4) var<storage, read> at: array<vec2<u32>>;  // [n_tokens] (sequence, position)

// reduce_angle, theta and turn (the running product, the reduction by 2π, cos and sin).
// include: rope_angles.wgsl

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let pairs = p.head_dim / 2u;
    let per_token = p.n_heads * pairs;
    let id = (wg.y * nwg.x + wg.x) * WG + lid;
    if id >= step.n_tokens * per_token {
        return;
    }
    let t = id / per_token;
    let h = (id % per_token) / pairs;
    let i = id % pairs;
    let head = p.x_off + (t * p.n_heads + h) * p.head_dim;
    let half_rot = p.n_rot / 2u;
    if i >= half_rot {
        x[head + 2u * i] *= p.scale;
        x[head + 2u * i + 1u] *= p.scale;
        return;
    }
    let cs = turn(i, theta(i, at[t].y, p.theta_scale), Angles(p.freq_scale, p.attn_factor, p.has_factors));
    let c = cs.x;
    let s = cs.y;
    var a = 2u * i;
    var b = a + 1u;
    if p.neox == 1u {
        a = i;
        b = i + half_rot;
    }
    let x0 = x[head + a];
    let x1 = x[head + b];
    x[head + a] = (x0 * c - x1 * s) * p.scale;
    x[head + b] = (x0 * s + x1 * c) * p.scale;
}
