// attn_prefill.wgsl — causal attention of the step's prefill runs (runs of more than one token of
// a sequence, e.g. prompt chunks), tiled like a matmul: a token at position pos attends to cells
// start..=pos of its sequence's cache (start = 0, or pos + 1 - window for a sliding-window layer),
// scores (q·k) · kq_scale with q rounded to f16, softmax, Σ p·v with each p rounded to f16 once
// normalised (as the CPU reference and llama.cpp, whose P·V product takes p in f16, the V cache's
// vec_dot_type). CPU twin: gpu::attention_cpu; launcher: core/src/gpu/attention.rs.
//
// Layout: q f32 [n_tokens, n_head, head_dim] at q_off; K and V caches f16 packed two per u32,
// [n_seq, n_ctx, kv_dim] (a region of n_ctx cells per sequence), read as vec4<u32> (8 values;
// head_dim is a multiple of 8 up to 256); att f32 [n_tokens, n_head * head_dim] at att_off. Head
// h reads kv head h / group. The step table's tiles[i] = (first row, rows <= BQ, sequence, first
// position): up to BQ consecutive tokens of one run.
// Dispatch: (n_tiles, n_head, 1) workgroups of WG = 256: the BQ = 64 query rows of a tile and one
// head. The cells the tile's tokens see go by in K/V tiles of BK = 32 (those wholly before the
// first token's window or after the last token skipped), twice, because each p is rounded to f16
// once normalised: pass 1 takes each row's max and Σ e, pass 2 scores again and adds f16(e / Σ e)
// · v. Scores: S [BQ, BK] = Q Kᵀ, dims DC = 32 at a time through workgroup memory (Q rounded to
// f16 and K unpacked, both as f32); invocation (tx, ty) = (lid % 16, lid / 16) holds rows ty + 16i
// (i < 4) × cells tx + 16j (j < 2) in registers. Pass 1 keeps a running max and Σ e of its own
// cells per row, combined across the 16 tx at the end; pass 2 writes P [BQ, BK] to workgroup
// memory beside the V tile (VC cells at a time, VC · head_dim ≤ 4096 values), then the
// invocation adds Σ_c P[r, c] · V[c, 8g..8g+8] for its rows r and dim groups g = tx + 16k
// (k < 2), the output accumulating in registers. 16 KiB of workgroup memory, one array reused by
// both phases.

const WG: u32 = 256u;
// Query rows (tokens) of a tile.
const BQ: u32 = 64u;
// Cells per K/V tile.
const BK: u32 = 32u;
// Dims per step of the scores, and the padded stride (in vec4) of a K row in workgroup memory.
const DC: u32 = 32u;
const KS: u32 = 9u;
// Regions of `sh` (in vec4): scores phase Q [BQ, DC / 4] then K [BK, KS]; values phase P
// [BQ, BK / 4] then V [VC, head_dim / 8].
const SH_K: u32 = 512u;
const SH_V: u32 = 512u;
const SH_LEN: u32 = 1024u;
// The max of a row that has seen no cell: finite, so that exp(NEG - m) is a plain 0.
const NEG: f32 = -1.0e30;

struct Params {
    n_head: u32,
    group: u32,       // q heads per kv head (n_head / n_head_kv)
    head_dim: u32,
    kv_dim: u32,      // n_head_kv * head_dim
    q_off: u32,       // offsets in elements
    att_off: u32,
    window: u32,      // cells a token sees, itself included; 0 = all
    n_split: u32,     // (decode only)
    kq_scale: f32,
    n_ctx: u32,       // cells of a sequence's region
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k_cache: array<vec4<u32>>;   // [n_ctx, kv_dim / 8]
@group(0) @binding(2) var<storage, read> v_cache: array<vec4<u32>>;   // [n_ctx, kv_dim / 8]
@group(0) @binding(3) var<storage, read_write> att: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<storage, read> tiles: array<vec4<u32>>;    // [n_tiles] (row, rows, sequence, position)

// f32 values kept as bits (Q, K, P; between the passes each invocation's max and Σ e) or packed
// f16 pairs (V), per phase (see the regions above).
var<workgroup> sh: array<vec4<u32>, SH_LEN>;

fn round_f16(v: f32) -> f32 {
    return unpack2x16float(pack2x16float(vec2<f32>(v, 0.0))).x;
}

// v rounded to f16, as the CPU (and llama.cpp) round a query before dotting it with the f16 keys.
fn f16_round4(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(pack2x16float(v.xy)), unpack2x16float(pack2x16float(v.zw)));
}

// The first cell position `pos` sees.
fn window_start(pos: u32) -> u32 {
    if p.window > 0u && pos + 1u > p.window {
        return pos + 1u - p.window;
    }
    return 0u;
}

// The tile's scores S[ty + 16i, tx + 16j] = q·k of cells t0.. (unscaled, unmasked; cells at or
// past `hi` read as zero keys). Called by every invocation in uniform control flow; leaves `sh`
// free for the caller.
fn scores(t0: u32, hi: u32, head: u32, qrow0: u32, rows: u32, lid: u32) -> array<f32, 8> {
    let hd = p.head_dim;
    let tx = lid % 16u;
    let ty = lid / 16u;
    let qstride = p.n_head * hd;
    let krow = p.kv_dim / 8u;
    var s: array<f32, 8>;
    for (var d0 = 0u; d0 < hd; d0 += DC) {
        workgroupBarrier();
        // Q [BQ, DC]: two vec4 per invocation; rows past the tile repeat its last row.
        for (var k = 0u; k < 2u; k++) {
            let e = lid + WG * k;
            let r = min(e / (DC / 4u), rows - 1u);
            let d = d0 + 4u * (e % (DC / 4u));
            var v = vec4<f32>(0.0);
            if d < hd {
                let at = qrow0 + r * qstride + d;
                v = f16_round4(vec4<f32>(q[at], q[at + 1u], q[at + 2u], q[at + 3u]));
            }
            sh[e] = bitcast<vec4<u32>>(v);
        }
        // K [BK, DC]: one vec4<u32> (8 dims) of a cell per invocation of the first BK · DC / 8.
        if lid < BK * DC / 8u {
            let c = lid / (DC / 8u);
            let g = lid % (DC / 8u);
            var u = vec4<u32>(0u);
            if t0 + c < hi && d0 + 8u * g < hd {
                u = k_cache[(t0 + c) * krow + head + d0 / 8u + g];
            }
            let a = vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y));
            let b = vec4<f32>(unpack2x16float(u.z), unpack2x16float(u.w));
            sh[SH_K + c * KS + 2u * g] = bitcast<vec4<u32>>(a);
            sh[SH_K + c * KS + 2u * g + 1u] = bitcast<vec4<u32>>(b);
        }
        workgroupBarrier();
        for (var d4 = 0u; d4 < DC / 4u; d4++) {
            let k0 = bitcast<vec4<f32>>(sh[SH_K + tx * KS + d4]);
            let k1 = bitcast<vec4<f32>>(sh[SH_K + (tx + 16u) * KS + d4]);
            for (var i = 0u; i < 4u; i++) {
                let qv = bitcast<vec4<f32>>(sh[(ty + 16u * i) * (DC / 4u) + d4]);
                s[2u * i] += dot(qv, k0);
                s[2u * i + 1u] += dot(qv, k1);
            }
        }
    }
    workgroupBarrier();
    return s;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) n_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let hd = p.head_dim;
    let l8 = hd / 8u;
    let h = wg.y;
    // The longest tiles (last of their runs) first, so that they do not finish the dispatch alone.
    let tile = tiles[n_wg.x - 1u - wg.x];
    let head = tile.z * p.n_ctx * (p.kv_dim / 8u) + (h / p.group) * l8;
    let tx = lid % 16u;
    let ty = lid / 16u;
    let qrow0 = p.q_off + tile.x * p.n_head * hd + h * hd;
    // The cells any token of the tile sees.
    let lo = window_start(tile.w);
    let hi = tile.w + tile.y;

    // Pass 1: per row and invocation, the running max and Σ e of its cells.
    var m: array<f32, 4>;
    var l: array<f32, 4>;
    for (var i = 0u; i < 4u; i++) {
        m[i] = NEG;
    }
    for (var t0 = lo; t0 < hi; t0 += BK) {
        let s = scores(t0, hi, head, qrow0, tile.y, lid);
        for (var i = 0u; i < 4u; i++) {
            let r = ty + 16u * i;
            let pos = tile.w + r;
            let start = window_start(pos);
            var sc: array<f32, 2>;
            for (var j = 0u; j < 2u; j++) {
                let cell = t0 + tx + 16u * j;
                sc[j] = select(NEG, s[2u * i + j] * p.kq_scale, r < tile.y && cell >= start && cell <= pos);
            }
            let m_new = max(m[i], max(sc[0], sc[1]));
            l[i] *= exp(m[i] - m_new);
            m[i] = m_new;
            for (var j = 0u; j < 2u; j++) {
                // A masked cell weighs 0 even while the row has seen nothing (m = NEG).
                l[i] += select(0.0, exp(sc[j] - m_new), sc[j] > NEG);
            }
        }
    }
    // Combine the 16 invocations of each row (`sh` is free: `scores` ends with a barrier).
    sh[lid] = bitcast<vec4<u32>>(vec4<f32>(m[0], m[1], m[2], m[3]));
    sh[WG + lid] = bitcast<vec4<u32>>(vec4<f32>(l[0], l[1], l[2], l[3]));
    workgroupBarrier();
    for (var i = 0u; i < 4u; i++) {
        var mr = NEG;
        for (var x = 0u; x < 16u; x++) {
            mr = max(mr, bitcast<f32>(sh[ty * 16u + x][i]));
        }
        var lr = 0.0;
        for (var x = 0u; x < 16u; x++) {
            let at = ty * 16u + x;
            lr += bitcast<f32>(sh[WG + at][i]) * exp(bitcast<f32>(sh[at][i]) - mr);
        }
        m[i] = mr;
        l[i] = 1.0 / max(lr, 1.0e-30);
    }
    workgroupBarrier();

    // Pass 2: Σ f16(e / Σ e) · v, dims groups g = tx + 16k of rows ty + 16i.
    var acc_a: array<vec4<f32>, 8>;
    var acc_b: array<vec4<f32>, 8>;
    // Cells of V per step of workgroup memory.
    let vc = min(BK, SH_V * 8u / hd);
    for (var t0 = lo; t0 < hi; t0 += BK) {
        let s = scores(t0, hi, head, qrow0, tile.y, lid);
        for (var i = 0u; i < 4u; i++) {
            let r = ty + 16u * i;
            let pos = tile.w + r;
            let start = window_start(pos);
            for (var j = 0u; j < 2u; j++) {
                let c = tx + 16u * j;
                let cell = t0 + c;
                let live = r < tile.y && cell >= start && cell <= pos;
                let e = select(0.0, round_f16(exp(s[2u * i + j] * p.kq_scale - m[i]) * l[i]), live);
                sh[r * (BK / 4u) + c / 4u][c % 4u] = bitcast<u32>(e);
            }
        }
        for (var c0 = 0u; c0 < BK; c0 += vc) {
            // V [vc, head_dim]: cells t0 + c0.. (zeros past `hi`, where p is 0 too).
            for (var e = lid; e < vc * l8; e += WG) {
                let c = e / l8;
                let g = e % l8;
                var u = vec4<u32>(0u);
                if t0 + c0 + c < hi {
                    u = v_cache[(t0 + c0 + c) * (p.kv_dim / 8u) + head + g];
                }
                sh[SH_V + e] = u;
            }
            workgroupBarrier();
            let n = min(vc, BK - c0);
            for (var c = 0u; c < n; c++) {
                var pr: array<f32, 4>;
                for (var i = 0u; i < 4u; i++) {
                    pr[i] = bitcast<f32>(sh[(ty + 16u * i) * (BK / 4u) + (c0 + c) / 4u][(c0 + c) % 4u]);
                }
                for (var k = 0u; k < 2u; k++) {
                    let g = tx + 16u * k;
                    if g < l8 {
                        let u = sh[SH_V + c * l8 + g];
                        let va = vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y));
                        let vb = vec4<f32>(unpack2x16float(u.z), unpack2x16float(u.w));
                        for (var i = 0u; i < 4u; i++) {
                            acc_a[4u * k + i] += pr[i] * va;
                            acc_b[4u * k + i] += pr[i] * vb;
                        }
                    }
                }
            }
            workgroupBarrier();
        }
    }

    for (var i = 0u; i < 4u; i++) {
        let r = ty + 16u * i;
        if r < tile.y {
            let out = p.att_off + (tile.x + r) * p.n_head * hd + h * hd;
            for (var k = 0u; k < 2u; k++) {
                let g = tx + 16u * k;
                if g < l8 {
                    let a = acc_a[4u * k + i];
                    let b = acc_b[4u * k + i];
                    for (var e = 0u; e < 4u; e++) {
                        att[out + 8u * g + e] = a[e];
                        att[out + 8u * g + 4u + e] = b[e];
                    }
                }
            }
        }
    }
}
