// matvec_multi_q4_k.wgsl — Y[t, r] = Σ_c W[r, c] · X[t, c] for the few tokens t < n_tokens of a
// step (batched decode: one token of each of 2..N sequences) and the n_rows rows of one piece of
// a Q4_K tensor: matvec_q4_k.wgsl's integer products, with every weight vector a lane loads
// used for NT tokens. CPU twin: gpu::matvec_multi_cpu (quant::dot per row and token); launcher:
// core/src/gpu/matvec_multi.rs.
//
// Layout: W as in matvec_q4_k.wgsl (144-byte blocks of 256 as nine 16-byte vectors). X is packed
// Q8_K levels (act_quant.wgsl's `xq`), token t's row at word x_off + t · x_stride: levels
// [cols / 4 words], then a scale per 32 elements. Y is f32 [tokens, y_stride] from element y_off
// (y_stride = rows of the whole tensor, y_off includes the piece's first row), as matmul.wgsl's.
// Dispatch: ceil(n_rows / NR) workgroups of WG invocations, laid over x then y (groups_x per row of
// the grid). The entry point, which takes the NR rows through the step's tokens NT at a time, is
// matvec_multi_int.wgsl's, spliced on before the reduction; this file gives it the slices: per
// block, invocation s (0..TPB) decodes level vector s and the scales of each row (as the one-token
// kernel does) and multiplies them with the matching levels of each token.

override WG: u32 = 64u;
// Weight rows per workgroup: the kernel is written for two.
const NR: u32 = 2u;
// Tokens per pass over the rows' weights (the launcher builds 2 and 4; the kernel is written
// for at most 4).
const NT: u32 = 4u;
// Partial sums per invocation, as the reduction calls them: [NR, NT].
const ROWS: u32 = NR * NT;
// Invocations sharing one block; WG / TPB blocks of each row are in flight at once.
const TPB: u32 = 8u;
// Elements per block.
const BLOCK: u32 = 256u;

struct Params {
    n_rows: u32,      // rows in this piece
    cols: u32,        // elements per row (ne[0])
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

// `scales` and `mins`: the packed 6-bit scale and min bytes of sub-blocks 0..4 (`lo`) or 4..8.
// include: q4_k_scales.wgsl

// Σ of four products of the int8 lanes of `a` and `b`.
fn dot4(a: vec4<u32>, b: vec4<u32>) -> i32 {
    return (dot4I8Packed(a.x, b.x) + dot4I8Packed(a.y, b.y)) + (dot4I8Packed(a.z, b.z) + dot4I8Packed(a.w, b.w));
}

// Invocation s's slice of a row's block: levels of sub-blocks 2pr (qa) and 2pr + 1 (qb), pr =
// s / 2, their scales and mins, and the block's d and dmin.
struct RowSlice {
    qa: vec4<u32>,
    qb: vec4<u32>,
    sc: vec2<f32>,
    mn: vec2<f32>,
    dm: vec2<f32>,
}

fn row_slice(row: u32, b: u32, s: u32) -> RowSlice {
    let pr = s / 2u;           // the pair of sub-blocks 2pr, 2pr + 1
    let lo = pr < 2u;          // sub-blocks 0..4: scales in the low words
    let sh = 16u * (pr % 2u);  // their bytes 2 (pr % 2), + 1 of the scale word
    let blk = row * (p.row_bytes / 16u) + 9u * b;
    let hd = w[blk];
    let q = w[blk + 1u + s];
    var r: RowSlice;
    r.qa = q & vec4<u32>(0x0F0F0F0Fu);
    r.qb = (q >> vec4<u32>(4u)) & vec4<u32>(0x0F0F0F0Fu);
    r.dm = unpack2x16float(hd.x);
    let scw = (scales(hd.y, hd.w, lo) >> sh) & 0xFFFFu;
    let mnw = (mins(hd.z, hd.w, lo) >> sh) & 0xFFFFu;
    r.sc = vec2<f32>(f32(scw & 0xFFu), f32(scw >> 8u));
    r.mn = vec2<f32>(f32(mnw & 0xFFu), f32(mnw >> 8u));
    return r;
}

// One token's slice of block b: its two level vectors, their sums and its scale.
struct TokSlice {
    xa: vec4<u32>,
    xb: vec4<u32>,
    sums: vec2<f32>,
    dx: f32,
}

fn tok_slice(t: u32, b: u32, s: u32) -> TokSlice {
    let xw = p.x_off + t * p.x_stride;
    let xv = xw / 4u + 16u * b + 4u * (s / 2u) + s % 2u;
    var x_: TokSlice;
    x_.xa = x[xv];
    x_.xb = x[xv + 2u];
    let ones = vec4<u32>(0x01010101u);
    x_.sums = vec2<f32>(f32(dot4(ones, x_.xa)), f32(dot4(ones, x_.xb)));
    x_.dx = bitcast<f32>(x[(xw + p.cols / 4u) / 4u + 2u * b].x);
    return x_;
}

// The row slice's contribution for one token.
fn term(r: RowSlice, t: TokSlice) -> f32 {
    let prod = r.sc.x * f32(dot4(r.qa, t.xa)) + r.sc.y * f32(dot4(r.qb, t.xb));
    let bias = r.mn.x * t.sums.x + r.mn.y * t.sums.y;
    return t.dx * (r.dm.x * prod - r.dm.y * bias);
}

// ---- reduce: the row reduction, spliced on at load (gpu::shaders::splice_reduce).
