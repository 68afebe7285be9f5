// matmul_int_q4_k.wgsl — Y[t, r] = Σ_c W[r, c] · X[t, c] for the tokens t < n_tokens of a step of
// batched decode (one token of each of up to 64 sequences) and the n_rows rows of one piece of a
// Q4_K tensor: every Q4_K block decoded once into workgroup memory and multiplied with the step's
// tokens by integer dot products (`dot4I8Packed`), as matvec_q4_k.wgsl's — the CPU's Q4_K × Q8_K
// dot product, with each sub-block's integer sum scaled in integers and each block's in f32.
// CPU twin: gpu::matvec_multi_cpu; launcher: core/src/gpu/matvec_multi.rs (the "tile" variants).
//
// Layout: W as in matvec_q4_k.wgsl (144-byte blocks of 256: f16 d, f16 dmin, 12 bytes of 6-bit
// scales and mins, 128 bytes of nibbles). X is packed Q8_K levels (act_quant.wgsl's `xq`), token
// t's row at word x_off + t · x_stride: levels [cols / 4 words], then a scale word per 32
// elements (Q8_K's d, the same eight times a block). Y is f32 [tokens, y_stride] from y_off, as
// the mat-vecs over a few tokens write it, maybe added to (p.add).
// Dispatch: ceil(n_rows / BM) workgroups of WG = KG · RG · TG invocations, laid over x then y
// (groups_x per row of the grid). A workgroup takes BM = RG · RPT rows and the step's tokens
// BT = TG · TPT at a time. Per block of the rows' width it stages the rows' levels (a byte per
// nibble) and factors and the tokens' levels and per-sub-block sums in workgroup memory, the
// next block's global loads already in flight in registers; invocation (k, g, h) then sums rows
// g·RPT + i and tokens h + TG·j over sub-blocks k, k + KG, …: per sub-block 8 integer dots per
// (row, token), its scale and min applied in integers, the block's d, dmin and the token's scale
// in f32. The KG groups' sums meet in workgroup memory at the end. Workgroup rows are padded a
// vector (17 of 16) so the TG tokens a quarter-warp reads fall in distinct banks.

// Row groups, token groups and sub-block groups of a workgroup. The launcher builds TG 2, 4 and 8
// (16, 32, 64 tokens a pass of 64, 128, 256 invocations) where the workgroup memory allows; 2
// fits WebGPU's guaranteed 16 KiB.
const RG: u32 = 16u;
const TG: u32 = 2u;
const KG: u32 = 2u;
// Rows and tokens per invocation: the kernel is written for these (its sums are named vectors,
// one per row and quad of tokens; an indexed array would live in memory, not registers).
const RPT: u32 = 2u;
const TPT: u32 = 8u;
const WG: u32 = KG * RG * TG;
const BM: u32 = RG * RPT;
const BT: u32 = TG * TPT;
// Vectors per staged row: 16 of levels and one of padding.
const SV: u32 = 17u;
// A block's staging: each invocation carries WI level vectors of the rows (or none, past the
// rows' BM · 8) and XI sub-blocks of the tokens; the kernel has room for up to 4 and 2.
const WI: u32 = (BM * 8u + WG - 1u) / WG;
const XI: u32 = BT * 8u / WG;
const_assert WI <= 4u && (WI * WG == BM * 8u || WI == 1u);
const_assert XI * WG == BT * 8u && XI >= 1u && XI <= 2u;

struct Params {
    n_rows: u32,      // rows in this piece
    cols: u32,        // elements per row (ne[0]), a multiple of 256
    row_bytes: u32,   // bytes per row
    x_off: u32,       // token 0's row of xq, in words (a multiple of 4)
    x_stride: u32,    // words per token of xq (a multiple of 4)
    y_off: u32,       // of row 0 of this piece, token 0
    y_stride: u32,    // elements per token of Y (rows of the whole tensor)
    groups_x: u32,    // workgroups per row of the dispatch grid
    add: u32,         // 1: Y += W·X (a residual add), 0: Y = W·X
    max_tokens: u32,  // tokens the buffers hold
    _pad0: u32,
    _pad1: u32,
}

struct Step { pos0: u32, n_tokens: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;  // [n_rows, row_bytes] bytes
@group(0) @binding(1) var<storage, read> x: array<vec4<u32>>;  // [max_tokens, x_stride] words
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // [y_off + max_tokens · y_stride]
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> step: Step;

// The block's levels, a byte each, in element order: [BM rows][SV vectors], [BT tokens][SV]. At
// the end of a pass `xs` carries the sub-block groups' sums to each other.
var<workgroup> ws: array<vec4<u32>, BM * SV>;
var<workgroup> xs: array<vec4<u32>, BT * SV>;
// Per row: the eight 6-bit scales (words x, y) and mins (z, w), a byte each; d and dmin.
var<workgroup> wsm: array<vec4<u32>, BM>;
var<workgroup> wd: array<vec2<f32>, BM>;
// Per token: the sum of each sub-block's levels, and the block's scale.
var<workgroup> xsum: array<i32, BT * 8u>;
var<workgroup> xd: array<f32, BT>;

// `scales` and `mins`: the packed 6-bit scale and min bytes of sub-blocks 0..4 (`lo`) or 4..8.
// include: q4_k_scales.wgsl

// Σ of four products of the int8 lanes of `a` and `b`.
fn dot4(a: vec4<u32>, b: vec4<u32>) -> i32 {
    return (dot4I8Packed(a.x, b.x) + dot4I8Packed(a.y, b.y)) + (dot4I8Packed(a.z, b.z) + dot4I8Packed(a.w, b.w));
}

// Byte `k` (0..8) of a pair of words, as an integer.
fn byte_of(lo: u32, hi: u32, k: u32) -> i32 {
    return i32((select(hi, lo, k < 4u) >> (8u * (k % 4u))) & 0xFFu);
}

// Σ of the eight products of a sub-block's row levels (wa, wb) and token levels (xa, xb), as
// one chain of accumulating dot products.
fn dot8(wa: vec4<u32>, wb: vec4<u32>, xa: vec4<u32>, xb: vec4<u32>) -> i32 {
    var s = dot4I8Packed(wa.x, xa.x);
    s = dot4I8Packed(wa.y, xa.y) + s;
    s = dot4I8Packed(wa.z, xa.z) + s;
    s = dot4I8Packed(wa.w, xa.w) + s;
    s = dot4I8Packed(wb.x, xb.x) + s;
    s = dot4I8Packed(wb.y, xb.y) + s;
    s = dot4I8Packed(wb.z, xb.z) + s;
    return dot4I8Packed(wb.w, xb.w) + s;
}

// Four tokens' (t, t + TG, t + 2 TG, t + 3 TG) products with one row's sub-block levels from
// vector v of their staged rows.
fn dots(wa: vec4<u32>, wb: vec4<u32>, t: u32, v: u32) -> vec4<i32> {
    let x0 = t * SV + v;
    let x1 = x0 + TG * SV;
    let x2 = x1 + TG * SV;
    let x3 = x2 + TG * SV;
    return vec4<i32>(
        dot8(wa, wb, xs[x0], xs[x0 + 1u]),
        dot8(wa, wb, xs[x1], xs[x1 + 1u]),
        dot8(wa, wb, xs[x2], xs[x2 + 1u]),
        dot8(wa, wb, xs[x3], xs[x3 + 1u]),
    );
}

// Four tokens' level sums of sub-block sb.
fn sums(t: u32, sb: u32) -> vec4<i32> {
    let i = t * 8u + sb;
    return vec4<i32>(xsum[i], xsum[i + TG * 8u], xsum[i + 2u * TG * 8u], xsum[i + 3u * TG * 8u]);
}

// Writes (or adds) row `row`'s sums over tokens t + TG·j: j in 0..4 from `a`, 4..8 from `b`.
fn store(row: u32, t: u32, a: vec4<f32>, b: vec4<f32>, n_tok: u32) {
    if row >= p.n_rows {
        return;
    }
    for (var j = 0u; j < TPT; j++) {
        let tok = t + TG * j;
        if tok < n_tok {
            let at = p.y_off + tok * p.y_stride + row;
            let v = select(b[j % 4u], a[j % 4u], j < 4u);
            y[at] = select(v, y[at] + v, p.add != 0u);
        }
    }
}

// What one invocation carries of a block from global memory to workgroup memory: level vectors
// lid + WG·i (i < WI) of the rows' BM · 8, the header of row lid (lid < BM), and sub-blocks
// lid + WG·i (i < XI) of the tokens' BT · 8, each with its token's scale (used for sub-block 0).
struct Fetched {
    q0: vec4<u32>,
    q1: vec4<u32>,
    q2: vec4<u32>,
    q3: vec4<u32>,
    hd: vec4<u32>,
    xa0: vec4<u32>,
    xb0: vec4<u32>,
    xa1: vec4<u32>,
    xb1: vec4<u32>,
    dx0: f32,
    dx1: f32,
}

// Level vector i of the rows' block b.
fn levels(row0: u32, b: u32, i: u32) -> vec4<u32> {
    return w[min(row0 + i / 8u, p.n_rows - 1u) * (p.row_bytes / 16u) + 9u * b + 1u + i % 8u];
}

// Sub-block i % 8 of token i / 8 (the last token repeated past the step): its two level vectors
// and the token's scale for block b.
fn token_levels(b: u32, i: u32, t0: u32, n_tok: u32) -> vec4<u32> {
    let xw = p.x_off + min(t0 + i / 8u, n_tok - 1u) * p.x_stride;
    return vec4<u32>(xw / 4u + 16u * b + 2u * (i % 8u), (xw + p.cols / 4u) / 4u + 2u * b, 0u, 0u);
}

// Global loads of block b for tokens t0.. .
fn fetch(lid: u32, row0: u32, b: u32, t0: u32, n_tok: u32) -> Fetched {
    var f: Fetched;
    f.q0 = levels(row0, b, lid);
    if WI > 1u {
        f.q1 = levels(row0, b, lid + WG);
    }
    if WI > 2u {
        f.q2 = levels(row0, b, lid + 2u * WG);
        f.q3 = levels(row0, b, lid + 3u * WG);
    }
    if lid < BM {
        f.hd = w[min(row0 + lid, p.n_rows - 1u) * (p.row_bytes / 16u) + 9u * b];
    }
    let at0 = token_levels(b, lid, t0, n_tok);
    f.xa0 = x[at0.x];
    f.xb0 = x[at0.x + 1u];
    f.dx0 = bitcast<f32>(x[at0.y].x);
    if XI > 1u {
        let at1 = token_levels(b, lid + WG, t0, n_tok);
        f.xa1 = x[at1.x];
        f.xb1 = x[at1.x + 1u];
        f.dx1 = bitcast<f32>(x[at1.y].x);
    }
    return f;
}

// Level vector i of the rows: 16 bytes of pair (i % 8) / 2, whose low nibbles are elements
// 64 ((i % 8) / 2) + 16 (i % 2).. of sub-block 2 ((i % 8) / 2), the high ones the same of the next.
fn stage_levels(i: u32, q: vec4<u32>) {
    let at = (i / 8u) * SV + 4u * ((i % 8u) / 2u) + i % 2u;
    ws[at] = q & vec4<u32>(0x0F0F0F0Fu);
    ws[at + 2u] = (q >> vec4<u32>(4u)) & vec4<u32>(0x0F0F0F0Fu);
}

// Sub-block i % 8 of token i / 8: its levels, their sum, and for sub-block 0 the token's scale.
fn stage_tokens(i: u32, xa: vec4<u32>, xb: vec4<u32>, dx: f32) {
    let t = i / 8u;
    let sb = i % 8u;
    xs[t * SV + 2u * sb] = xa;
    xs[t * SV + 2u * sb + 1u] = xb;
    let ones = vec4<u32>(0x01010101u);
    xsum[t * 8u + sb] = dot4(ones, xa) + dot4(ones, xb);
    if sb == 0u {
        xd[t] = dx;
    }
}

fn stage(lid: u32, f: Fetched) {
    if lid < BM * 8u {
        stage_levels(lid, f.q0);
    }
    if WI > 1u {
        stage_levels(lid + WG, f.q1);
    }
    if WI > 2u {
        stage_levels(lid + 2u * WG, f.q2);
        stage_levels(lid + 3u * WG, f.q3);
    }
    if lid < BM {
        wd[lid] = unpack2x16float(f.hd.x);
        wsm[lid] = vec4<u32>(
            scales(f.hd.y, f.hd.w, true),
            scales(f.hd.y, f.hd.w, false),
            mins(f.hd.z, f.hd.w, true),
            mins(f.hd.z, f.hd.w, false),
        );
    }
    stage_tokens(lid, f.xa0, f.xb0, f.dx0);
    if XI > 1u {
        stage_tokens(lid + WG, f.xa1, f.xb1, f.dx1);
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row0 = (wg.y * p.groups_x + wg.x) * BM;
    if row0 >= p.n_rows {
        return;
    }
    let n_tok = min(step.n_tokens, p.max_tokens);
    let k = lid / (RG * TG);
    let g = (lid / TG) % RG;
    let h = lid % TG;
    let n_blocks = p.cols / 256u;
    // Row r0 + i's sums over tokens h + TG·j, j in 0..4 (`_a`) and 4..8 (`_b`).
    let r0 = g * RPT;
    for (var t0 = 0u; t0 < n_tok; t0 += BT) {
        var acc0_a = vec4<f32>();
        var acc0_b = vec4<f32>();
        var acc1_a = vec4<f32>();
        var acc1_b = vec4<f32>();
        var next = fetch(lid, row0, 0u, t0, n_tok);
        for (var b = 0u; b < n_blocks; b++) {
            stage(lid, next);
            workgroupBarrier();
            if b + 1u < n_blocks {
                next = fetch(lid, row0, b + 1u, t0, n_tok);
            }
            // Integer sums of this group's sub-blocks: levels scaled by each sub-block's scale,
            // the tokens' level sums by its min.
            var is0_a = vec4<i32>();
            var is0_b = vec4<i32>();
            var is1_a = vec4<i32>();
            var is1_b = vec4<i32>();
            var ms0_a = vec4<i32>();
            var ms0_b = vec4<i32>();
            var ms1_a = vec4<i32>();
            var ms1_b = vec4<i32>();
            let f0 = wsm[r0];
            let f1 = wsm[r0 + 1u];
            for (var sb = k; sb < 8u; sb += KG) {
                let v = 2u * sb;
                let wa0 = ws[r0 * SV + v];
                let wb0 = ws[r0 * SV + v + 1u];
                let wa1 = ws[(r0 + 1u) * SV + v];
                let wb1 = ws[(r0 + 1u) * SV + v + 1u];
                let sc0 = byte_of(f0.x, f0.y, sb);
                let sc1 = byte_of(f1.x, f1.y, sb);
                let mn0 = byte_of(f0.z, f0.w, sb);
                let mn1 = byte_of(f1.z, f1.w, sb);
                is0_a += sc0 * dots(wa0, wb0, h, v);
                is1_a += sc1 * dots(wa1, wb1, h, v);
                is0_b += sc0 * dots(wa0, wb0, h + 4u * TG, v);
                is1_b += sc1 * dots(wa1, wb1, h + 4u * TG, v);
                let s_a = sums(h, sb);
                let s_b = sums(h + 4u * TG, sb);
                ms0_a += mn0 * s_a;
                ms0_b += mn0 * s_b;
                ms1_a += mn1 * s_a;
                ms1_b += mn1 * s_b;
            }
            let dx_a = vec4<f32>(xd[h], xd[h + TG], xd[h + 2u * TG], xd[h + 3u * TG]);
            let dx_b = vec4<f32>(xd[h + 4u * TG], xd[h + 5u * TG], xd[h + 6u * TG], xd[h + 7u * TG]);
            let dm0 = wd[r0];
            let dm1 = wd[r0 + 1u];
            acc0_a += dx_a * (dm0.x * vec4<f32>(is0_a) - dm0.y * vec4<f32>(ms0_a));
            acc0_b += dx_b * (dm0.x * vec4<f32>(is0_b) - dm0.y * vec4<f32>(ms0_b));
            acc1_a += dx_a * (dm1.x * vec4<f32>(is1_a) - dm1.y * vec4<f32>(ms1_a));
            acc1_b += dx_b * (dm1.x * vec4<f32>(is1_b) - dm1.y * vec4<f32>(ms1_b));
            // The next block's staging overwrites what this one read.
            workgroupBarrier();
        }
        // The sub-block groups' sums into group 0's, halving the groups each round through
        // `xs` (4 vectors per invocation of a group).
        let me = lid % (RG * TG);
        for (var half = KG / 2u; half > 0u; half /= 2u) {
            if k >= half && k < 2u * half {
                let at = ((k - half) * RG * TG + me) * 4u;
                xs[at] = bitcast<vec4<u32>>(acc0_a);
                xs[at + 1u] = bitcast<vec4<u32>>(acc0_b);
                xs[at + 2u] = bitcast<vec4<u32>>(acc1_a);
                xs[at + 3u] = bitcast<vec4<u32>>(acc1_b);
            }
            workgroupBarrier();
            if k < half {
                let at = (k * RG * TG + me) * 4u;
                acc0_a += bitcast<vec4<f32>>(xs[at]);
                acc0_b += bitcast<vec4<f32>>(xs[at + 1u]);
                acc1_a += bitcast<vec4<f32>>(xs[at + 2u]);
                acc1_b += bitcast<vec4<f32>>(xs[at + 3u]);
            }
            workgroupBarrier();
        }
        if k == 0u {
            store(row0 + r0, t0 + h, acc0_a, acc0_b, n_tok);
            store(row0 + r0 + 1u, t0 + h, acc1_a, acc1_b, n_tok);
        }
    }
}
