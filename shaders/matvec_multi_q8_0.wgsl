// matvec_multi_q8_0.wgsl — Y[t, r] = Σ_c W[r, c] · X[t, c] for the few tokens t < n_tokens of a
// step (batched decode) and the n_rows rows of one piece of a Q8_0 tensor: matvec_q8_0.wgsl's
// integer products, with every weight vector a lane loads used for NT tokens. CPU twin:
// gpu::matvec_multi_cpu (quant::dot per row and token); launcher: core/src/gpu/matvec_multi.rs.
//
// Layout: W as in matvec_q8_0.wgsl (34-byte blocks of 32: f16 d, i8 qs[32], on 2-byte
// boundaries). X is packed Q8_0 levels (act_quant.wgsl's `xq`), token t's row at word
// x_off + t · x_stride: levels [cols / 4 words], then a scale per 32 elements. Y is f32
// [tokens, y_stride] from element y_off (y_stride = rows of the whole tensor), as matmul.wgsl's.
// Dispatch: ceil(n_rows / NR) workgroups of WG invocations, laid over x then y (groups_x per row of
// the grid). The entry point, which takes the NR rows through the step's tokens NT at a time, is
// matvec_multi_int.wgsl's, spliced on before the reduction; this file gives it the slices: per
// block, invocation s (0..TPB) loads qs[16s..16s + 16] and d of each row and multiplies them with
// the matching levels of each token.

override WG: u32 = 64u;
// Weight rows per workgroup: the kernel is written for two.
const NR: u32 = 2u;
// Tokens per pass over the rows' weights (the launcher builds 2 and 4; the kernel is written
// for at most 4).
const NT: u32 = 4u;
// Partial sums per invocation, as the reduction calls them: [NR, NT].
const ROWS: u32 = NR * NT;
// Invocations sharing one block; WG / TPB blocks of each row are in flight at once.
const TPB: u32 = 2u;
// Elements per block.
const BLOCK: u32 = 32u;

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

@group(0) @binding(0) var<storage, read> w: array<u32>;        // [n_rows, row_bytes] bytes, padded to 4
@group(0) @binding(1) var<storage, read> x: array<vec4<u32>>;  // [max_tokens, x_stride] words
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // [y_off + max_tokens · y_stride]
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> step: Step;

// Σ of four products of the int8 lanes of `a` and `b`.
fn dot4(a: vec4<u32>, b: vec4<u32>) -> i32 {
    return (dot4I8Packed(a.x, b.x) + dot4I8Packed(a.y, b.y)) + (dot4I8Packed(a.z, b.z) + dot4I8Packed(a.w, b.w));
}

// One row's slice of block b: invocation s's 16 levels and the block's scale.
struct RowSlice {
    q: vec4<u32>,
    d: f32,
}

fn row_slice(row: u32, b: u32, s: u32) -> RowSlice {
    let blk = row * p.row_bytes + 34u * b;
    let start = blk + 2u + 16u * s;
    let i = start / 4u;
    // 0 or 16: blocks start on even bytes.
    let sh = (start % 4u) * 8u;
    let a = vec4<u32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]);
    let hi = vec4<u32>(a.yzw, w[i + 4u]);
    var r: RowSlice;
    r.q = select((a >> vec4<u32>(sh)) | (hi << vec4<u32>(32u - sh)), a, sh == 0u);
    r.d = unpack2x16float(w[blk / 4u] >> ((blk % 4u) * 8u)).x;
    return r;
}

// One token's slice of block b: its 16 levels matching the row slice's, and the block's scale.
struct TokSlice {
    q: vec4<u32>,
    d: f32,
}

fn tok_slice(t: u32, b: u32, s: u32) -> TokSlice {
    let xw = p.x_off + t * p.x_stride;
    let sw = xw + p.cols / 4u + b;
    var x_: TokSlice;
    x_.q = x[xw / 4u + 2u * b + s];
    x_.d = bitcast<f32>(x[sw / 4u][sw % 4u]);
    return x_;
}

// The row slice's contribution for one token.
fn term(r: RowSlice, t: TokSlice) -> f32 {
    return (r.d * t.d) * f32(dot4(r.q, t.q));
}

// ---- reduce: the row reduction, spliced on at load (gpu::shaders::splice_reduce).
