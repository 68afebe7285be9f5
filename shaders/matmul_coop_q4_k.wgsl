// matmul_coop_q4_k.wgsl — Y[t, r] = Σ_c W[r, c] · X[t, c] on the tensor cores for a Q4_K tensor:
// matmul_coop.wgsl's product (same bindings, parameters, tiles, split-K and stores) with the
// weight tile decoded by Q4_K's own loads instead of the generic `dequant4`. CPU twin:
// gpu::matmul_cpu; launcher: core/src/gpu/matmul.rs (`MatMul` takes it for Q4_K tensors where
// Caps::gemm: it declares more workgroup memory than matmul_coop.wgsl).
//
// Why: matmul_coop.wgsl decodes a quad at a time through dependent 4-byte loads (the nibbles, then
// d, then the scale bytes), so at 64 tokens its tensor cores wait on the decode. Here a 64-column
// stage of a row is one 16-byte load of nibbles (and, once a block, one of the block's d, dmin and
// scales), issued for the next stage before this stage's multiply-adds.
//
// Reads the weights itself (binding 0 is declared here), so no decoder is spliced in front.
// Layout: W in Q4_K blocks of 144 bytes (dequant_q4_k.wgsl): vector 0 of a block holds f16 d,
// f16 dmin and the 12 bytes of 6-bit scales and mins; vectors 1..9 the 128 bytes of nibbles,
// sub-block 2j in the low nibbles of bytes 32j..32j+32 and 2j + 1 in their high ones. So stage j
// (columns 64j..64j+64 of a block) is vectors 1 + 2j and 2 + 2j: invocation half h takes vector
// 1 + 2j + h, columns 16h.. + 16 (low nibbles) and 32 + 16h.. + 16 (high). X and Y as in
// matmul_coop.wgsl.
// Dispatch: as matmul_coop.wgsl ((row tiles, token tiles, splits); k_split a multiple of TK, a
// whole block). Invocation lid loads row lid / 2's half lid % 2, and of token lid / 4 the quads
// q ≡ lid (mod 4) of the stage (four lanes read 64 contiguous bytes a load); subgroup s multiplies rows 32 (s % 4).. and tokens 32 (s / 4).. as 2 × 2 fragments.
// One stage: decode the loaded registers into workgroup memory, barrier, issue the next stage's
// loads, multiply, barrier.
//
// Precision: each weight is (d · scale) · q − dmin · min in f32 (the CPU's order), then rounded
// to f16 like X (both clamped to ±65504); sums are f32.

enable f16;
enable wgpu_cooperative_matrix;

const WG: u32 = 256u;
// Rows and tokens per workgroup tile; columns per loop of the split plan (a Q4_K block) and per
// stage (a sub-block pair).
const TM: u32 = 128u;
const TN: u32 = 64u;
const TK: u32 = 256u;
const SK: u32 = 64u;
// vec4<f16> per staged row: SK / 4 and 2 of padding (the 16-byte segments a fragment load reads
// fall in distinct banks).
const KS: u32 = 18u;
// 16-byte vectors per Q4_K block.
const BV: u32 = 9u;

// Params, Step, bindings 2-5 (y, p, step, part), `cs`, `h4` and `store`; here p.cols is a
// multiple of 256 and p.x_off of 4.
// include: coop_common.wgsl

@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;  // [n_rows, row_bytes] bytes
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;  // [(x_off + max_tokens * cols) / 4]

var<workgroup> ws: array<vec4<f16>, 2304>;  // [TM, KS] weights of the stage
var<workgroup> xs: array<vec4<f16>, 1152>;  // [TN, KS] X of the stage

// `scales` and `mins`: the packed 6-bit scale and min bytes of sub-blocks 0..4 (`lo`) or 4..8.
// include: q4_k_scales.wgsl

// Four weights from four nibbles (a byte each in `q`): (d · scale) · q − dmin · min.
fn level4(q: u32, a: f32, b: f32) -> vec4<f16> {
    return h4(a * vec4<f32>(unpack4xU8(q)) - b);
}

// Stores a whole fragment at element `at` of Y (or of `part`), rows contiguous, tokens `ys` apart.
fn put(acc: coop_mat16x16<f32, C>, at: u32, ys: u32, split: bool) {
    if split {
        coopStore(acc, &part[at], ys);
    } else {
        coopStore(acc, &y[at], ys);
    }
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sg: u32,
) {
    let n_tok = min(step.n_tokens, p.max_tokens);
    let row0 = wg.x * TM;
    let tok0 = wg.y * TN;
    if tok0 >= n_tok {
        return;
    }
    // Loading: half h of row lr's stage; 16 columns (quarter lq) of token lt's.
    let h = lid % 2u;
    let lr = lid / 2u;
    let wv = min(row0 + lr, p.n_rows - 1u) * (p.row_bytes / 16u);
    let lq = lid % 4u;
    let lt = lid / 4u;
    let has_x = tok0 + lt < n_tok;
    let xb = (p.x_off + (tok0 + lt) * p.cols) / 4u + lq;
    // Where this invocation's decoded columns and X land in workgroup memory.
    let at_lo = lr * KS + 4u * h;
    let at_hi = at_lo + 8u;
    let at_x = lt * KS + lq;
    // Computing: subgroup sg's fragments start at tile row ar and tile token bt.
    let ar = (sg % 4u) * 32u;
    let bt = (sg / 4u) * 32u;
    let ks = KS;
    var c00 = coop_mat16x16<f32, C>();
    var c01 = coop_mat16x16<f32, C>();
    var c10 = coop_mat16x16<f32, C>();
    var c11 = coop_mat16x16<f32, C>();

    // This split's stages (all of them without split-K).
    let splits = nwg.z;
    let k_begin = select(0u, wg.z * p.k_split, splits > 1u);
    let k_end = select(p.cols, min(p.cols, k_begin + p.k_split), splits > 1u);
    let s_end = k_end / SK;
    var s = k_begin / SK;
    // The first stage's loads.
    var hd = w[wv + (s / 4u) * BV];
    var qv = w[wv + (s / 4u) * BV + 1u + 2u * (s % 4u) + h];
    var x0 = vec4<f32>(0.0);
    var x1 = vec4<f32>(0.0);
    var x2 = vec4<f32>(0.0);
    var x3 = vec4<f32>(0.0);
    if has_x {
        let i = xb + s * (SK / 4u);
        x0 = x[i];
        x1 = x[i + 4u];
        x2 = x[i + 8u];
        x3 = x[i + 12u];
    }
    for (; s < s_end; s++) {
        // Decode: sub-blocks 2j (low nibbles) and 2j + 1 (high) of the block whose words are hd.
        let j = s % 4u;
        let dm = unpack2x16float(hd.x);
        let lo = j < 2u;
        let sh = 16u * (j % 2u);
        let sc = scales(hd.y, hd.w, lo) >> sh;
        let mn = mins(hd.z, hd.w, lo) >> sh;
        let a0 = dm.x * f32(sc & 0xFFu);
        let b0 = dm.y * f32(mn & 0xFFu);
        let a1 = dm.x * f32((sc >> 8u) & 0xFFu);
        let b1 = dm.y * f32((mn >> 8u) & 0xFFu);
        let m = 0x0F0F0F0Fu;
        ws[at_lo] = level4(qv.x & m, a0, b0);
        ws[at_lo + 1u] = level4(qv.y & m, a0, b0);
        ws[at_lo + 2u] = level4(qv.z & m, a0, b0);
        ws[at_lo + 3u] = level4(qv.w & m, a0, b0);
        ws[at_hi] = level4((qv.x >> 4u) & m, a1, b1);
        ws[at_hi + 1u] = level4((qv.y >> 4u) & m, a1, b1);
        ws[at_hi + 2u] = level4((qv.z >> 4u) & m, a1, b1);
        ws[at_hi + 3u] = level4((qv.w >> 4u) & m, a1, b1);
        xs[at_x] = h4(x0);
        xs[at_x + 4u] = h4(x1);
        xs[at_x + 8u] = h4(x2);
        xs[at_x + 12u] = h4(x3);
        workgroupBarrier();
        // The next stage's loads, in flight during the multiply-adds.
        let n = s + 1u;
        if n < s_end {
            if n % 4u == 0u {
                hd = w[wv + (n / 4u) * BV];
            }
            qv = w[wv + (n / 4u) * BV + 1u + 2u * (n % 4u) + h];
            if has_x {
                let i = xb + n * (SK / 4u);
                x0 = x[i];
                x1 = x[i + 4u];
                x2 = x[i + 8u];
                x3 = x[i + 12u];
            }
        }
        for (var kq = 0u; kq < SK / 4u; kq += 4u) {
            let ia0 = ar * KS + kq;
            let ia1 = (ar + 16u) * KS + kq;
            let ib0 = bt * KS + kq;
            let ib1 = (bt + 16u) * KS + kq;
            let a0 = coopLoadT<coop_mat16x16<f16, A>>(&ws[ia0], ks);
            let a1 = coopLoadT<coop_mat16x16<f16, A>>(&ws[ia1], ks);
            let b0 = coopLoad<coop_mat16x16<f16, B>>(&xs[ib0], ks);
            let b1 = coopLoad<coop_mat16x16<f16, B>>(&xs[ib1], ks);
            c00 = coopMultiplyAdd(a0, b0, c00);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c11 = coopMultiplyAdd(a1, b1, c11);
        }
        workgroupBarrier();
    }

    if row0 + TM <= p.n_rows && tok0 + TN <= n_tok {
        let ys = p.y_stride;
        let split = splits > 1u;
        let r = row0 + ar;
        let t = tok0 + bt;
        let base = select(p.y_off + t * ys + r, (wg.z * p.split_tokens + t) * ys + p.first_row + r, split);
        put(c00, base, ys, split);
        put(c01, base + 16u * ys, ys, split);
        put(c10, base + 16u, ys, split);
        put(c11, base + 16u * ys + 16u, ys, split);
    } else {
        store(c00, sg, lid, row0, tok0, n_tok, 0u, 0u, wg.z, splits);
        store(c01, sg, lid, row0, tok0, n_tok, 0u, 16u, wg.z, splits);
        store(c10, sg, lid, row0, tok0, n_tok, 16u, 0u, wg.z, splits);
        store(c11, sg, lid, row0, tok0, n_tok, 16u, 16u, wg.z, splits);
    }
}
