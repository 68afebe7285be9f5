// matvec_multi_q6_k.wgsl — Y[t, r] = Σ_c W[r, c] · X[t, c] for the few tokens t < n_tokens of a
// step (batched decode) and the n_rows rows of one piece of a Q6_K tensor: matvec_q6_k.wgsl's
// integer products, with every weight word a lane loads used for NT tokens. CPU twin:
// gpu::matvec_multi_cpu (quant::dot per row and token); launcher: core/src/gpu/matvec_multi.rs.
//
// Layout: W as in matvec_q6_k.wgsl (210-byte blocks of 256: ql[128], qh[64], i8 scales[16],
// f16 d, on 2-byte boundaries). X is packed Q8_K levels (act_quant.wgsl's `xq`), token t's row
// at word x_off + t · x_stride: levels [cols / 4 words], then a scale per 32 elements. Y is f32
// [tokens, y_stride] from element y_off (y_stride = rows of the whole tensor), as matmul.wgsl's.
// Dispatch: ceil(n_rows / NR) workgroups of WG invocations, laid over x then y (groups_x per row of
// the grid). The entry point, which takes the NR rows through the step's tokens NT at a time, is
// matvec_multi_int.wgsl's, spliced on before the reduction; this file gives it the slices: per
// block, invocation s (0..TPB) decodes the 6-bit levels of half h = s / 8, elements l = 4 (s % 8)..
// l + 4 of each 32-element group k, and their scales, of each row, and multiplies them with the
// matching levels of each token (the −32 of the levels taken out as 32 · Σ x).

override WG: u32 = 64u;
// Weight rows per workgroup: the kernel is written for two.
const NR: u32 = 2u;
// Tokens per pass over the rows' weights (the launcher builds 2 and 4; the kernel is written
// for at most 4).
const NT: u32 = 4u;
// Partial sums per invocation, as the reduction calls them: [NR, NT].
const ROWS: u32 = NR * NT;
// Invocations sharing one block; WG / TPB blocks of each row are in flight at once.
const TPB: u32 = 16u;
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

@group(0) @binding(0) var<storage, read> w: array<u32>;        // [n_rows, row_bytes] bytes, padded to 4
@group(0) @binding(1) var<storage, read> x: array<vec4<u32>>;  // [max_tokens, x_stride] words
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // [y_off + max_tokens · y_stride]
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> step: Step;

// The u32 at byte `byte` (even) of w: blocks start on 2-byte boundaries.
fn load_u32(byte: u32) -> u32 {
    let i = byte >> 2u;
    let sh = (byte & 3u) * 8u;
    if sh == 0u {
        return w[i];
    }
    return (w[i] >> sh) | (w[i + 1u] << (32u - sh));
}

fn i8_at(byte: u32) -> i32 {
    return bitcast<i32>(((w[byte >> 2u] >> ((byte & 3u) * 8u)) & 0xFFu) << 24u) >> 24u;
}

// The f16 at byte `byte` (even) of w, as f32.
fn f16_at(byte: u32) -> f32 {
    return unpack2x16float(w[byte >> 2u] >> ((byte & 2u) * 8u)).x;
}

// Word `i` of x.
fn xw(i: u32) -> u32 {
    return x[i / 4u][i % 4u];
}

// One row's slice of block b: levels of groups k = 0..4 (bytes 0..63) of invocation s, their
// scales and the block's d.
struct RowSlice {
    q: vec4<u32>,
    sc: vec4<i32>,
    d: f32,
}

fn row_slice(row: u32, b: u32, s: u32) -> RowSlice {
    let h = s / 8u;
    let l4 = (s % 8u) * 4u;
    let blk = row * p.row_bytes + 210u * b;
    let qa = load_u32(blk + 64u * h + l4);
    let qb = load_u32(blk + 64u * h + 32u + l4);
    let qh = load_u32(blk + 128u + 32u * h + l4);
    var r: RowSlice;
    r.q = vec4<u32>(
        (qa & 0x0F0F0F0Fu) | ((qh & 0x03030303u) << 4u),
        (qb & 0x0F0F0F0Fu) | (((qh >> 2u) & 0x03030303u) << 4u),
        ((qa >> 4u) & 0x0F0F0F0Fu) | (((qh >> 4u) & 0x03030303u) << 4u),
        ((qb >> 4u) & 0x0F0F0F0Fu) | (((qh >> 6u) & 0x03030303u) << 4u),
    );
    let at = blk + 192u + 8u * h + l4 / 16u;
    r.sc = vec4<i32>(i8_at(at), i8_at(at + 2u), i8_at(at + 4u), i8_at(at + 6u));
    r.d = f16_at(blk + 208u);
    return r;
}

// One token's slice of block b: words of elements 128h + 32k + l4.. for k = 0..4, 32 times their
// sums (the levels' offset), and the block's scale.
struct TokSlice {
    q: vec4<u32>,
    x32: vec4<i32>,
    d: f32,
}

fn tok_slice(t: u32, b: u32, s: u32) -> TokSlice {
    let xt = p.x_off + t * p.x_stride;
    let xb = xt + 64u * b + 32u * (s / 8u) + s % 8u;
    let ones = 0x01010101u;
    var x_: TokSlice;
    x_.q = vec4<u32>(xw(xb), xw(xb + 8u), xw(xb + 16u), xw(xb + 24u));
    x_.x32 = 32 * vec4<i32>(
        dot4I8Packed(ones, x_.q.x), dot4I8Packed(ones, x_.q.y),
        dot4I8Packed(ones, x_.q.z), dot4I8Packed(ones, x_.q.w),
    );
    x_.d = bitcast<f32>(xw(xt + p.cols / 4u + 8u * b));
    return x_;
}

// The row slice's contribution for one token.
fn term(r: RowSlice, t: TokSlice) -> f32 {
    let dots = vec4<i32>(
        dot4I8Packed(r.q.x, t.q.x), dot4I8Packed(r.q.y, t.q.y),
        dot4I8Packed(r.q.z, t.q.z), dot4I8Packed(r.q.w, t.q.w),
    ) - t.x32;
    return (r.d * t.d) * f32(dot(r.sc, dots));
}

// ---- reduce: the row reduction, spliced on at load (gpu::shaders::splice_reduce).
