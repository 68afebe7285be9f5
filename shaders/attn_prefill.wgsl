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
// both phases. Workgroup x takes tile n_tiles - 1 - x, the longest (last of a run) first.
// Measured (H100, llama3-8b shape, one 512-token step): 18.5 ms for 32 layers, ~3.7 TFLOP/s of
// causal attention (5.6 counting the second pass's scores); see docs/PERF.md.

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

// Params (its decode fields unused here).
// include: attn_params.wgsl

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k_cache: array<vec4<u32>>;   // [n_ctx, kv_dim / 8]
@group(0) @binding(2) var<storage, read> v_cache: array<vec4<u32>>;   // [n_ctx, kv_dim / 8]
@group(0) @binding(3) var<storage, read_write> att: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<storage, read> tiles: array<vec4<u32>>;    // [n_tiles] (row, rows, sequence, position)

// f32 values kept as bits (Q, K, P; between the passes each invocation's max and Σ e) or packed
// f16 pairs (V), per phase (see the regions above).
var<workgroup> sh: array<vec4<u32>, SH_LEN>;

// v rounded to f16, as the CPU (and llama.cpp) round a query before dotting it with the f16 keys.
fn f16_round4(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(round_f16(v.x), round_f16(v.y), round_f16(v.z), round_f16(v.w));
}

// The first cell position `pos` sees.
fn window_start(pos: u32) -> u32 {
    if p.window > 0u && pos + 1u > p.window {
        return pos + 1u - p.window;
    }
    return 0u;
}

// The first cell each of four positions sees.
fn window_start4(pos: vec4<u32>) -> vec4<u32> {
    let w = vec4<u32>(p.window);
    return select(vec4<u32>(0u), pos + 1u - w, and4(w > vec4<u32>(0u), pos + 1u > w));
}

// a && b per component (naga takes no `&` of bool vectors).
fn and4(a: vec4<bool>, b: vec4<bool>) -> vec4<bool> {
    return select(vec4<bool>(false), b, a);
}

fn unpack_lo(u: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y));
}

fn unpack_hi(u: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(u.z), unpack2x16float(u.w));
}

// The tile's scores S[ty + 16i, tx + 16j] = q·k of cells t0.. (unscaled, unmasked; cells at or
// past `hi` read as zero keys): component i of column j. Called by every invocation in uniform
// control flow; leaves `sh` free for the caller. Every register is a named vector: arrays
// indexed in naga's loops may be left in local memory by the driver.
fn scores(t0: u32, hi: u32, head: u32, qrow0: u32, rows: u32, lid: u32) -> mat2x4<f32> {
    let hd = p.head_dim;
    let tx = lid % 16u;
    let ty = lid / 16u;
    let qstride = p.n_head * hd;
    let krow = p.kv_dim / 8u;
    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
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
            sh[SH_K + c * KS + 2u * g] = bitcast<vec4<u32>>(unpack_lo(u));
            sh[SH_K + c * KS + 2u * g + 1u] = bitcast<vec4<u32>>(unpack_hi(u));
        }
        workgroupBarrier();
        for (var d4 = 0u; d4 < DC / 4u; d4++) {
            let k0 = bitcast<vec4<f32>>(sh[SH_K + tx * KS + d4]);
            let k1 = bitcast<vec4<f32>>(sh[SH_K + (tx + 16u) * KS + d4]);
            let q0 = bitcast<vec4<f32>>(sh[ty * (DC / 4u) + d4]);
            let q1 = bitcast<vec4<f32>>(sh[(ty + 16u) * (DC / 4u) + d4]);
            let q2 = bitcast<vec4<f32>>(sh[(ty + 32u) * (DC / 4u) + d4]);
            let q3 = bitcast<vec4<f32>>(sh[(ty + 48u) * (DC / 4u) + d4]);
            s0 += vec4<f32>(dot(q0, k0), dot(q1, k0), dot(q2, k0), dot(q3, k0));
            s1 += vec4<f32>(dot(q0, k1), dot(q1, k1), dot(q2, k1), dot(q3, k1));
        }
    }
    workgroupBarrier();
    return mat2x4<f32>(s0, s1);
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
    // This invocation's rows (component i: row ty + 16i), their positions and first cells.
    let r = vec4<u32>(ty) + vec4<u32>(0u, 16u, 32u, 48u);
    let live_row = r < vec4<u32>(tile.y);
    let pos = vec4<u32>(tile.w) + r;
    let start = window_start4(pos);
    let negs = vec4<f32>(NEG);

    // Pass 1: per row and invocation, the running max and Σ e of its cells.
    var m = negs;
    var l = vec4<f32>(0.0);
    for (var t0 = lo; t0 < hi; t0 += BK) {
        let s = scores(t0, hi, head, qrow0, tile.y, lid);
        let c0 = vec4<u32>(t0 + tx);
        let c1 = c0 + 16u;
        let sc0 = select(negs, s[0] * p.kq_scale, and4(live_row, and4(c0 >= start, c0 <= pos)));
        let sc1 = select(negs, s[1] * p.kq_scale, and4(live_row, and4(c1 >= start, c1 <= pos)));
        let m_new = max(m, max(sc0, sc1));
        // A masked cell weighs 0 even while the row has seen nothing (m = NEG).
        l = l * exp(m - m_new) + select(vec4<f32>(0.0), exp(sc0 - m_new), sc0 > negs)
            + select(vec4<f32>(0.0), exp(sc1 - m_new), sc1 > negs);
        m = m_new;
    }
    // Combine the 16 invocations of each row (`sh` is free: `scores` ends with a barrier).
    sh[lid] = bitcast<vec4<u32>>(m);
    sh[WG + lid] = bitcast<vec4<u32>>(l);
    workgroupBarrier();
    var mr = negs;
    for (var x = 0u; x < 16u; x++) {
        mr = max(mr, bitcast<vec4<f32>>(sh[ty * 16u + x]));
    }
    var lr = vec4<f32>(0.0);
    for (var x = 0u; x < 16u; x++) {
        let at = ty * 16u + x;
        lr += bitcast<vec4<f32>>(sh[WG + at]) * exp(bitcast<vec4<f32>>(sh[at]) - mr);
    }
    m = mr;
    let inv = 1.0 / max(lr, vec4<f32>(1.0e-30));
    workgroupBarrier();

    // Pass 2: Σ f16(e / Σ e) · v into dim groups g = tx (a) and tx + 16 (b) of the four rows,
    // low and high halves (8 dims a group).
    var a0l = vec4<f32>(0.0);
    var a0h = vec4<f32>(0.0);
    var a1l = vec4<f32>(0.0);
    var a1h = vec4<f32>(0.0);
    var a2l = vec4<f32>(0.0);
    var a2h = vec4<f32>(0.0);
    var a3l = vec4<f32>(0.0);
    var a3h = vec4<f32>(0.0);
    var b0l = vec4<f32>(0.0);
    var b0h = vec4<f32>(0.0);
    var b1l = vec4<f32>(0.0);
    var b1h = vec4<f32>(0.0);
    var b2l = vec4<f32>(0.0);
    var b2h = vec4<f32>(0.0);
    var b3l = vec4<f32>(0.0);
    var b3h = vec4<f32>(0.0);
    let ga = tx < l8;
    let gb = tx + 16u < l8;
    // Cells of V per step of workgroup memory.
    let vc = min(BK, SH_V * 8u / hd);
    for (var t0 = lo; t0 < hi; t0 += BK) {
        let s = scores(t0, hi, head, qrow0, tile.y, lid);
        let ps = PStats(m, inv, live_row, start, pos);
        put_p(ps, t0, tx, ty, s[0]);
        put_p(ps, t0, tx + 16u, ty, s[1]);
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
                let pc = ty * (BK / 4u) + (c0 + c) / 4u;
                let pk = (c0 + c) % 4u;
                let pr = vec4<f32>(
                    bitcast<f32>(sh[pc][pk]),
                    bitcast<f32>(sh[pc + 16u * (BK / 4u)][pk]),
                    bitcast<f32>(sh[pc + 32u * (BK / 4u)][pk]),
                    bitcast<f32>(sh[pc + 48u * (BK / 4u)][pk]),
                );
                if ga {
                    let u = sh[SH_V + c * l8 + tx];
                    let vl = unpack_lo(u);
                    let vh = unpack_hi(u);
                    a0l += pr.x * vl;
                    a0h += pr.x * vh;
                    a1l += pr.y * vl;
                    a1h += pr.y * vh;
                    a2l += pr.z * vl;
                    a2h += pr.z * vh;
                    a3l += pr.w * vl;
                    a3h += pr.w * vh;
                }
                if gb {
                    let u = sh[SH_V + c * l8 + tx + 16u];
                    let vl = unpack_lo(u);
                    let vh = unpack_hi(u);
                    b0l += pr.x * vl;
                    b0h += pr.x * vh;
                    b1l += pr.y * vl;
                    b1h += pr.y * vh;
                    b2l += pr.z * vl;
                    b2h += pr.z * vh;
                    b3l += pr.w * vl;
                    b3h += pr.w * vh;
                }
            }
            workgroupBarrier();
        }
    }

    let row0 = p.att_off + (tile.x + ty) * p.n_head * hd + h * hd;
    let step = 16u * p.n_head * hd;
    if ga {
        put(live_row.x, row0 + 8u * tx, a0l, a0h);
        put(live_row.y, row0 + step + 8u * tx, a1l, a1h);
        put(live_row.z, row0 + 2u * step + 8u * tx, a2l, a2h);
        put(live_row.w, row0 + 3u * step + 8u * tx, a3l, a3h);
    }
    if gb {
        let o = row0 + 8u * (tx + 16u);
        put(live_row.x, o, b0l, b0h);
        put(live_row.y, o + step, b1l, b1h);
        put(live_row.z, o + 2u * step, b2l, b2h);
        put(live_row.w, o + 3u * step, b3l, b3h);
    }
}

// A row block's softmax statistics (max, 1 / Σ e) and mask.
struct PStats {
    m: vec4<f32>,
    inv: vec4<f32>,
    live_row: vec4<bool>,
    start: vec4<u32>,
    pos: vec4<u32>,
}

// P[ty + 16i, c] = f16(e / Σ e) (0 where masked) of cell t0 + c, from its scores `sc`.
fn put_p(ps: PStats, t0: u32, c: u32, ty: u32, sc: vec4<f32>) {
    let cell = vec4<u32>(t0 + c);
    let live = and4(ps.live_row, and4(cell >= ps.start, cell <= ps.pos));
    let e = select(vec4<f32>(0.0), f16_round4(exp(sc * p.kq_scale - ps.m) * ps.inv), live);
    let at = ty * (BK / 4u) + c / 4u;
    sh[at][c % 4u] = bitcast<u32>(e.x);
    sh[at + 16u * (BK / 4u)][c % 4u] = bitcast<u32>(e.y);
    sh[at + 32u * (BK / 4u)][c % 4u] = bitcast<u32>(e.z);
    sh[at + 48u * (BK / 4u)][c % 4u] = bitcast<u32>(e.w);
}

// att[at..at + 8] = (lo, hi) where `live`.
fn put(live: bool, at: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if live {
        att[at] = lo.x;
        att[at + 1u] = lo.y;
        att[at + 2u] = lo.z;
        att[at + 3u] = lo.w;
        att[at + 4u] = hi.x;
        att[at + 5u] = hi.y;
        att[at + 6u] = hi.z;
        att[at + 7u] = hi.w;
    }
}

// ---- round_f16: stand-in, replaced at load by f16_round.wgsl's exact section (a device may
// fold this round trip away).
fn round_f16(v: f32) -> f32 {
    return unpack2x16float(pack2x16float(vec2<f32>(v, 0.0))).x;
}
