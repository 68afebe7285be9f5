// matmul_coop.wgsl — Y[t, r] = Σ_c W[r, c] · X[t, c] on the tensor cores: the prefill product of
// matmul.wgsl (same bindings 0-4, parameters and layout) with its multiply-adds done by subgroup
// cooperative matrices (wgpu's EXPERIMENTAL_COOPERATIVE_MATRIX; Vulkan VK_KHR_cooperative_matrix),
// 16×16×16, f16 operands, f32 sums. CPU twin: gpu::matmul_cpu; launcher: core/src/gpu/matmul.rs
// (used when gpu::Caps::coop_matrix).
//
// Not valid alone: the pipeline's source is dequant_common.wgsl and a decoder dequant_<type>.wgsl
// followed by this file, with the `enable` lines below moved to the front
// (gpu::shaders::with_decoder). The decoder owns binding 0 (`w`) and gives `dequant4`.
//
// Layout: X is f32 [max_tokens, cols] from element x_off; Y is f32 [max_tokens, y_stride] from
// element y_off (y_stride = rows of the whole tensor; y_off includes the piece's first row).
// Dispatch: (ceil(n_rows / TM), ceil(n_tokens / TN), splits) workgroups of 256 invocations = 8
// subgroups of 32 (Caps::coop_matrix requires exactly 32). A workgroup computes a TM × TN = 128 ×
// 64 tile of Y over columns [z · k_split, (z + 1) · k_split) of split z, or over all of them when
// the grid has one split; subgroup s owns its 32 × 32 quarter-column (rows 32 (s % 4).., tokens
// 32 (s / 4)..) as 2 × 2 accumulator fragments. Per step of TK = 32 columns every invocation
// decodes four weight quads and loads two X quads (8 invocations per row read its 32 columns),
// converts them to f16 and stores them in workgroup memory, row after row with KS vec4 per row (2
// of padding, so the 16-byte row segments a fragment load reads fall in distinct banks); after a
// barrier each subgroup loads its A fragments row-major (A[m, k] = W[row, k]) and B fragments
// column-major (B[k, n] = X[token, k]: a token's row of X is a column of B) and does 2 × 2
// multiply-adds per 16 columns. At the end each fragment goes through a 16 × 16 f32 staging area
// per subgroup (column-major: rows contiguous, as in Y) and the whole workgroup copies the
// in-bounds part out, so ragged row and token edges never write past the piece or the step. 23 KiB
// of workgroup memory (context.rs COOP_WORKGROUP_BYTES).
//
// Split-K (a step of few tokens on a tensor of few row tiles, where one split would leave most of
// the GPU idle): with splits > 1 the tile's partial sums go to `part` [splits, split_tokens,
// y_stride] at the piece's rows (first_row..) instead of Y, and matmul_reduce.wgsl sums the
// splits into Y. The launcher sizes k_split (a multiple of TK) so no split is empty.
//
// Precision: operands are rounded to f16 (clamped to ±65504 so a large activation saturates
// instead of becoming inf); sums are f32. Rows past the piece repeat its last row and tokens past
// the step read zeros; neither is stored.

enable f16;
enable wgpu_cooperative_matrix;

const WG: u32 = 256u;
// Rows and tokens per workgroup tile, columns per step.
const TM: u32 = 128u;
const TN: u32 = 64u;
const TK: u32 = 32u;
// vec4<f16> per tile row in workgroup memory: TK / 4 and 2 of padding.
const KS: u32 = 10u;

// Params, Step, bindings 2-5 (y, p, step, part), `cs`, `h4` and `store`.
// include: coop_common.wgsl

@group(0) @binding(1) var<storage, read> x: array<f32>;        // [x_off + max_tokens * cols]

var<workgroup> ws: array<vec4<f16>, 1280>;  // [TM, KS] weights of the step
var<workgroup> xs: array<vec4<f16>, 640>;   // [TN, KS] X of the step

fn xv(i: u32) -> vec4<f32> {
    return vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
}

// Columns c.. c + 4 of a row: zero past the row (float rows with cols % 4 == 2 end inside a quad;
// select, not multiply: those lanes may hold any bits).
fn in_row(v: vec4<f32>, c: u32) -> vec4<f32> {
    if c + 4u <= p.cols {
        return v;
    }
    return select(vec4<f32>(0.0), v, vec4<u32>(c, c + 1u, c + 2u, c + 3u) < vec4<u32>(p.cols));
}

// Quad c of the row at byte rb, as f16 (zero past the row).
fn w_quad(rb: u32, c: u32) -> vec4<f16> {
    if c >= p.cols {
        return vec4<f16>(0.0);
    }
    return h4(in_row(dequant4(rb, c), c));
}

// Quad c of token t's row of X, as f16 (zero past the row or the step).
fn x_quad(t: u32, n_tok: u32, c: u32) -> vec4<f16> {
    if c >= p.cols || t >= n_tok {
        return vec4<f16>(0.0);
    }
    return h4(in_row(xv(p.x_off + t * p.cols + c), c));
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
    // Loading: quad lk of tile rows lr + 32i (i < 4) and tile tokens lr + 32i (i < 2).
    let lk = lid % 8u;
    let lr = lid / 8u;
    let last = p.n_rows - 1u;
    let rb0 = min(row0 + lr, last) * p.row_bytes;
    let rb1 = min(row0 + lr + 32u, last) * p.row_bytes;
    let rb2 = min(row0 + lr + 64u, last) * p.row_bytes;
    let rb3 = min(row0 + lr + 96u, last) * p.row_bytes;
    let t0 = tok0 + lr;
    let t1 = tok0 + lr + 32u;
    // Computing: subgroup sg's fragments start at tile row ar and tile token bt.
    let ar = (sg % 4u) * 32u;
    let bt = (sg / 4u) * 32u;
    let ks = KS;
    var c00 = coop_mat16x16<f32, C>();
    var c01 = coop_mat16x16<f32, C>();
    var c10 = coop_mat16x16<f32, C>();
    var c11 = coop_mat16x16<f32, C>();

    // This split's columns (all of them without split-K).
    let splits = nwg.z;
    let k_begin = select(0u, wg.z * p.k_split, splits > 1u);
    let k_end = select(p.cols, min(p.cols, k_begin + p.k_split), splits > 1u);
    for (var k0 = k_begin; k0 < k_end; k0 += TK) {
        let c = k0 + 4u * lk;
        ws[lr * KS + lk] = w_quad(rb0, c);
        ws[(lr + 32u) * KS + lk] = w_quad(rb1, c);
        ws[(lr + 64u) * KS + lk] = w_quad(rb2, c);
        ws[(lr + 96u) * KS + lk] = w_quad(rb3, c);
        xs[lr * KS + lk] = x_quad(t0, n_tok, c);
        xs[(lr + 32u) * KS + lk] = x_quad(t1, n_tok, c);
        workgroupBarrier();
        for (var kq = 0u; kq < TK / 4u; kq += 4u) {
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

    store(c00, sg, lid, row0, tok0, n_tok, 0u, 0u, wg.z, splits);
    store(c01, sg, lid, row0, tok0, n_tok, 0u, 16u, wg.z, splits);
    store(c10, sg, lid, row0, tok0, n_tok, 16u, 0u, wg.z, splits);
    store(c11, sg, lid, row0, tok0, n_tok, 16u, 16u, wg.z, splits);
}
