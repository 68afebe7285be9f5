// exact_attention.wgsl — attention of the step's decode tokens bit for bit as the CPU reference
// computes it (cpu::attention's attn_probs and attn_values, in the order of ggml's x86 AVX2
// build): the exact numerics' attention (`GpuOptions::exact`). For token i and q head h:
// - q rounded to f16; each cell's score K·q summed in 32 lanes (element e in lane e % 32, the
//   lanes reduced as ggml's GGML_F16_VEC_REDUCE), the elements past the last whole 32 added in
//   (hi, lo) as the CPU adds them in f64; times kq_scale;
// - e = exp(s − max) with ggml's exp; Σe in f32 per group of 8 cells aligned to cell 0
//   (((e0+e4)+(e2+e6))+((e1+e5)+(e3+e7))), the groups summed in (hi, lo) for the CPU's f64; each
//   p = f16(e · (1/Σe));
// - out[d] = Σ p·V[cell, d] in 32 lanes by cell (cell c in lane c % 32), reduced the same way.
// CPU twin: cpu::attention::{attn_probs, attn_values}; launcher: core/src/gpu/attention.rs.
//
// Layout as attn_decode.wgsl: q f32 [n_tokens, n_head, head_dim] at q_off; decode token i is row
// dec[i] of the step, at (sequence, position) at[dec[i]]; K and V caches f16 packed two per u32,
// [n_seq, n_ctx, kv_dim]; att f32 [n_tokens, n_head · head_dim] at att_off; probs f32
// [n_decode, n_head, n_ctx] (scores, then e, then p of the cells attended).
// Dispatch: (n_head, n_decode) workgroups of WG: invocation j takes cells j, j + WG, … for the
// scores and dims j, j + WG, … for the output; the max and Σe every invocation computes whole
// (the same order in each), so only two barriers part the three phases.

// Params and decode_chunks (for the window's start).
// include: attn_params.wgsl

const WG: u32 = 64u;

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k_cache: array<u32>;
@group(0) @binding(2) var<storage, read> v_cache: array<u32>;
@group(0) @binding(3) var<storage, read_write> att: array<f32>;
@group(0) @binding(4) var<storage, read_write> probs: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
@group(0) @binding(6) var<storage, read> at: array<vec2<u32>>;
@group(0) @binding(7) var<storage, read> dec: array<u32>;

fn zero_bits() -> u32 {
    return p.zero;
}

// include: exact_fp.wgsl

// Element e of a cache row of words from `word`.
fn cached(cache_word: u32, e: u32, is_k: bool) -> f32 {
    let w = select(v_cache[cache_word + e / 2u], k_cache[cache_word + e / 2u], is_k);
    return unpack2x16float(w)[e & 1u];
}

// ggml's reduction of 32 f32 lanes (4 registers of 8): registers (0 + 2) + (1 + 3) lane-wise,
// then the 8 lanes' halves, then pairs.
fn reduce32(a: ptr<function, array<f32, 32>>) -> f32 {
    var x: array<f32, 8>;
    for (var l = 0u; l < 8u; l++) {
        x[l] = ((*a)[l] + (*a)[16u + l]) + ((*a)[8u + l] + (*a)[24u + l]);
    }
    let t0 = x[0] + x[4];
    let t1 = x[1] + x[5];
    let t2 = x[2] + x[6];
    let t3 = x[3] + x[7];
    return (t0 + t1) + (t2 + t3);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wg.x;
    let row = dec[wg.y];
    let seat = at[row];
    let start = decode_chunks(seat.y, 1u).start;
    let n = seat.y + 1u - start;
    let hd = p.head_dim;
    let qb = p.q_off + (row * p.n_head + h) * hd;
    let region = seat.x * p.n_ctx;
    let kv_off = (h / p.group) * hd;
    let pb = (wg.y * p.n_head + h) * p.n_ctx;
    let whole = hd - hd % 32u;

    for (var t = lid; t < n; t += WG) {
        let kw = ((region + start + t) * p.kv_dim + kv_off) / 2u;
        var lanes = array<f32, 32>();
        for (var e = 0u; e < whole; e++) {
            lanes[e % 32u] += round_f16(q[qb + e]) * cached(kw, e, true);
        }
        var s = vec2<f32>(reduce32(&lanes), 0.0);
        for (var e = whole; e < hd; e++) {
            s = dd_add(s, vec2<f32>(round_f16(q[qb + e]) * cached(kw, e, true), 0.0));
        }
        probs[pb + t] = s.x * p.kq_scale;
    }
    storageBarrier();
    workgroupBarrier();
    var m = probs[pb];
    for (var t = 1u; t < n; t++) {
        m = max(m, probs[pb + t]);
    }
    storageBarrier();
    workgroupBarrier();
    for (var t = lid; t < n; t += WG) {
        probs[pb + t] = exp_ggml(probs[pb + t] - m);
    }
    storageBarrier();
    workgroupBarrier();
    // Σe: groups of 8 cells aligned to cell 0, the cells outside start..=pos zeros.
    var sum = vec2<f32>(0.0);
    for (var g = start / 8u; g <= seat.y / 8u; g++) {
        var v: array<f32, 8>;
        for (var j = 0u; j < 8u; j++) {
            let c = 8u * g + j;
            v[j] = select(0.0, probs[pb + c - start], c >= start && c <= seat.y);
        }
        let gs = ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
        sum = dd_add(sum, vec2<f32>(gs, 0.0));
    }
    let inv = dd_recip(sum);
    storageBarrier();
    workgroupBarrier();
    for (var t = lid; t < n; t += WG) {
        probs[pb + t] = round_f16(probs[pb + t] * inv);
    }
    storageBarrier();
    workgroupBarrier();
    for (var d = lid; d < hd; d += WG) {
        var lanes = array<f32, 32>();
        for (var t = 0u; t < n; t++) {
            let vw = ((region + start + t) * p.kv_dim + kv_off) / 2u;
            lanes[(start + t) % 32u] += probs[pb + t] * cached(vw, d, false);
        }
        att[p.att_off + (row * p.n_head + h) * hd + d] = reduce32(&lanes);
    }
}

// ---- round_f16: stand-in, replaced at load by f16_round.wgsl's exact section (a device may
// fold this round trip away).
fn round_f16(v: f32) -> f32 {
    return unpack2x16float(pack2x16float(vec2<f32>(v, 0.0))).x;
}
