// gemm_coop.wgsl — Y[t, r] = Σ_c W[r, c] · X[t, c] on the tensor cores for steps of many tokens,
// from operands gemm_stage.wgsl staged as f16 (a weight chunk's rows and the step's X, zero-padded to
// a multiple of TK columns). Cooperative matrices 16×16×16, f16 operands, f32 sums (wgpu's
// EXPERIMENTAL_COOPERATIVE_MATRIX). CPU twin: gpu::matmul_cpu; launcher: core/src/gpu/matmul.rs
// (`Gemm`, used for steps of more than SPLIT_TOKENS tokens when gpu::Caps::gemm).
//
// Why staged: decoding a weight tile inside the multiply loop (matmul_coop.wgsl) keeps the tensor
// cores waiting on the decode's dependent loads; here a step's loads are plain 16-byte reads of
// f16 rows, issued for the next step before this step's multiply-adds (double-buffered workgroup
// memory), and decoding every weight once costs one f16 write and read of it per long step.
//
// Layout: the staging buffer `s` holds the X region from vec4<u32> 0 ([tokens, kq8] rows) and the W
// region from `w_at8` ([rows, kq8]); kq8 = 16-byte units per row. Y is f32 [max_tokens, y_stride]
// from element y_off (y_off includes the chunk's first row). Both regions have rows up to the next
// multiple of the tile (what past the chunk or the step is read there never reaches Y).
// Dispatch: (ceil(n_rows / TM), ceil(n_tokens / TN)) workgroups of 256 invocations = 8 subgroups of
// 32 (Caps::coop_matrix requires exactly 32). A workgroup computes a TM × TN = 128 × 128 tile; subgroup
// s owns rows 32 (s % 4).. + 32 and tokens 64 (s / 4).. + 64 as 2 × 4 accumulator fragments. Per step
// of TK = 32 columns each invocation loads two 16-byte pieces of W and two of X for the next step,
// the subgroups multiply this step's tiles (rows of KS vec4<f16>: 2 of padding, so the 16-byte
// segments a fragment load reads fall in distinct banks), the loaded pieces go to the other buffer,
// and one barrier ends the step. A tile wholly inside the chunk and the step is stored straight to
// Y; an edge tile goes fragment by fragment through a 16 × 16 staging area per subgroup, and only
// its in-bounds part is written. 48 KiB of workgroup memory (context.rs GEMM_WORKGROUP_BYTES).

enable f16;
enable wgpu_cooperative_matrix;

const WG: u32 = 256u;
// Rows and tokens per workgroup tile, columns per step.
const TM: u32 = 128u;
const TN: u32 = 128u;
const TK: u32 = 32u;
// vec4<f16> per tile row in workgroup memory: TK / 4 and 2 of padding; one buffer's tile.
const KS: u32 = 10u;
const TILE: u32 = 1280u;

struct Params {
    n_rows: u32,     // rows in this chunk
    kq8: u32,        // 16-byte units per staged row (a multiple of TK / 8)
    w_at8: u32,      // the W region's first 16-byte unit
    y_off: u32,      // Y's element of the chunk's row 0, token 0
    y_stride: u32,   // elements per token of Y (rows of the whole tensor)
    max_tokens: u32, // tokens the buffers hold
    _pad0: u32,
    _pad1: u32,
}

struct Step { pos0: u32, n_tokens: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<storage, read> s: array<vec4<u32>>;   // staged X, then staged W
@group(0) @binding(1) var<storage, read_write> y: array<f32>;   // [y_off + max_tokens * y_stride]
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<uniform> step: Step;

var<workgroup> wa: array<vec4<f16>, 2560>;  // 2 × [TM, KS]: W of this step and the next
var<workgroup> wb: array<vec4<f16>, 2560>;  // 2 × [TN, KS]: X of this step and the next
var<workgroup> cs: array<f32, 2048>;        // [8 subgroups, 16 tokens, 16 rows] edge staging

// Eight f16 (a 16-byte unit of a staged row) into tile memory at vec4<f16> i.
fn put_w(i: u32, v: vec4<u32>) {
    wa[i] = vec4<f16>(vec2<f16>(unpack2x16float(v.x)), vec2<f16>(unpack2x16float(v.y)));
    wa[i + 1u] = vec4<f16>(vec2<f16>(unpack2x16float(v.z)), vec2<f16>(unpack2x16float(v.w)));
}

fn put_x(i: u32, v: vec4<u32>) {
    wb[i] = vec4<f16>(vec2<f16>(unpack2x16float(v.x)), vec2<f16>(unpack2x16float(v.y)));
    wb[i + 1u] = vec4<f16>(vec2<f16>(unpack2x16float(v.z)), vec2<f16>(unpack2x16float(v.w)));
}

// Stages fragment `acc` (chunk rows r.., tokens t..) through subgroup sg's area and writes its
// in-bounds part. Called by every subgroup alike (uniform control flow).
fn edge(acc: coop_mat16x16<f32, C>, sg: u32, lane: u32, r: u32, t: u32, n_tok: u32) {
    let at = sg * 256u;
    let ld = 16u;
    coopStore(acc, &cs[at], ld);
    workgroupBarrier();
    for (var e = lane; e < 256u; e += 32u) {
        let row = r + e % 16u;
        let tok = t + e / 16u;
        if row < p.n_rows && tok < n_tok {
            y[p.y_off + tok * p.y_stride + row] = cs[at + e];
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sg: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let n_tok = min(step.n_tokens, p.max_tokens);
    let row0 = wg.x * TM;
    let tok0 = wg.y * TN;
    if tok0 >= n_tok {
        return;
    }
    // Loading: 16-byte unit lq of tile rows (and tokens) lr and lr + 64.
    let kq = p.kq8;
    let lq = lid % 4u;
    let lr = lid / 4u;
    let ga = p.w_at8 + (row0 + lr) * kq + lq;
    let gb = (tok0 + lr) * kq + lq;
    let far = 64u * kq;
    let sd = lr * KS + 2u * lq;
    // Computing: subgroup sg's fragments start at tile row ar and tile token bt.
    let ar = (sg % 4u) * 32u;
    let bt = (sg / 4u) * 64u;
    let ia0 = ar * KS;
    let ia1 = (ar + 16u) * KS;
    let ib0 = bt * KS;
    let ib1 = (bt + 16u) * KS;
    let ib2 = (bt + 32u) * KS;
    let ib3 = (bt + 48u) * KS;
    let ks = KS;
    var c00 = coop_mat16x16<f32, C>();
    var c01 = coop_mat16x16<f32, C>();
    var c02 = coop_mat16x16<f32, C>();
    var c03 = coop_mat16x16<f32, C>();
    var c10 = coop_mat16x16<f32, C>();
    var c11 = coop_mat16x16<f32, C>();
    var c12 = coop_mat16x16<f32, C>();
    var c13 = coop_mat16x16<f32, C>();

    put_w(sd, s[ga]);
    put_w(sd + 64u * KS, s[ga + far]);
    put_x(sd, s[gb]);
    put_x(sd + 64u * KS, s[gb + far]);
    workgroupBarrier();
    let steps = kq / (TK / 8u);
    for (var st = 0u; st < steps; st++) {
        let at = (st % 2u) * TILE;
        let next = st + 1u < steps;
        var wn0: vec4<u32>;
        var wn1: vec4<u32>;
        var xn0: vec4<u32>;
        var xn1: vec4<u32>;
        if next {
            let k = (st + 1u) * (TK / 8u);
            wn0 = s[ga + k];
            wn1 = s[ga + far + k];
            xn0 = s[gb + k];
            xn1 = s[gb + far + k];
        }
        // Columns 0..16 of the step.
        let pa00 = at + ia0 + 0u;
        let a00 = coopLoadT<coop_mat16x16<f16, A>>(&wa[pa00], ks);
        let pa10 = at + ia1 + 0u;
        let a10 = coopLoadT<coop_mat16x16<f16, A>>(&wa[pa10], ks);
        let pb00 = at + ib0 + 0u;
        let b00 = coopLoad<coop_mat16x16<f16, B>>(&wb[pb00], ks);
        let pb10 = at + ib1 + 0u;
        let b10 = coopLoad<coop_mat16x16<f16, B>>(&wb[pb10], ks);
        let pb20 = at + ib2 + 0u;
        let b20 = coopLoad<coop_mat16x16<f16, B>>(&wb[pb20], ks);
        let pb30 = at + ib3 + 0u;
        let b30 = coopLoad<coop_mat16x16<f16, B>>(&wb[pb30], ks);
        c00 = coopMultiplyAdd(a00, b00, c00);
        c01 = coopMultiplyAdd(a00, b10, c01);
        c02 = coopMultiplyAdd(a00, b20, c02);
        c03 = coopMultiplyAdd(a00, b30, c03);
        c10 = coopMultiplyAdd(a10, b00, c10);
        c11 = coopMultiplyAdd(a10, b10, c11);
        c12 = coopMultiplyAdd(a10, b20, c12);
        c13 = coopMultiplyAdd(a10, b30, c13);
        // Columns 16..32 of the step.
        let pa01 = at + ia0 + 4u;
        let a01 = coopLoadT<coop_mat16x16<f16, A>>(&wa[pa01], ks);
        let pa11 = at + ia1 + 4u;
        let a11 = coopLoadT<coop_mat16x16<f16, A>>(&wa[pa11], ks);
        let pb01 = at + ib0 + 4u;
        let b01 = coopLoad<coop_mat16x16<f16, B>>(&wb[pb01], ks);
        let pb11 = at + ib1 + 4u;
        let b11 = coopLoad<coop_mat16x16<f16, B>>(&wb[pb11], ks);
        let pb21 = at + ib2 + 4u;
        let b21 = coopLoad<coop_mat16x16<f16, B>>(&wb[pb21], ks);
        let pb31 = at + ib3 + 4u;
        let b31 = coopLoad<coop_mat16x16<f16, B>>(&wb[pb31], ks);
        c00 = coopMultiplyAdd(a01, b01, c00);
        c01 = coopMultiplyAdd(a01, b11, c01);
        c02 = coopMultiplyAdd(a01, b21, c02);
        c03 = coopMultiplyAdd(a01, b31, c03);
        c10 = coopMultiplyAdd(a11, b01, c10);
        c11 = coopMultiplyAdd(a11, b11, c11);
        c12 = coopMultiplyAdd(a11, b21, c12);
        c13 = coopMultiplyAdd(a11, b31, c13);
        if next {
            let nt = TILE - at;
            put_w(nt + sd, wn0);
            put_w(nt + sd + 64u * KS, wn1);
            put_x(nt + sd, xn0);
            put_x(nt + sd + 64u * KS, xn1);
        }
        workgroupBarrier();
    }

    let r0 = row0 + ar;
    let t0 = tok0 + bt;
    if row0 + TM <= p.n_rows && tok0 + TN <= n_tok {
        let ys = p.y_stride;
        let base = p.y_off + t0 * ys + r0;
        let o00 = base + 0u * ys + 0u;
        coopStore(c00, &y[o00], ys);
        let o01 = base + 16u * ys + 0u;
        coopStore(c01, &y[o01], ys);
        let o02 = base + 32u * ys + 0u;
        coopStore(c02, &y[o02], ys);
        let o03 = base + 48u * ys + 0u;
        coopStore(c03, &y[o03], ys);
        let o10 = base + 0u * ys + 16u;
        coopStore(c10, &y[o10], ys);
        let o11 = base + 16u * ys + 16u;
        coopStore(c11, &y[o11], ys);
        let o12 = base + 32u * ys + 16u;
        coopStore(c12, &y[o12], ys);
        let o13 = base + 48u * ys + 16u;
        coopStore(c13, &y[o13], ys);
    } else {
        edge(c00, sg, lane, r0 + 0u, t0 + 0u, n_tok);
        edge(c01, sg, lane, r0 + 0u, t0 + 16u, n_tok);
        edge(c02, sg, lane, r0 + 0u, t0 + 32u, n_tok);
        edge(c03, sg, lane, r0 + 0u, t0 + 48u, n_tok);
        edge(c10, sg, lane, r0 + 16u, t0 + 0u, n_tok);
        edge(c11, sg, lane, r0 + 16u, t0 + 16u, n_tok);
        edge(c12, sg, lane, r0 + 16u, t0 + 32u, n_tok);
        edge(c13, sg, lane, r0 + 16u, t0 + 48u, n_tok);
    }
}
