// matvec_multi_q6_k.wgsl — Y[t, r] = Σ_c W[r, c] · X[t, c] for the few tokens t < n_tokens of a
// step (batched decode) and the n_rows rows of one piece of a Q6_K tensor: matvec_q6_k.wgsl's
// integer products, with every weight word a lane loads used for NT tokens. CPU twin:
// gpu::matvec_multi_cpu (quant::dot per row and token); launcher: core/src/gpu/matvec_multi.rs.
//
// Layout: W as in matvec_q6_k.wgsl (210-byte blocks of 256: ql[128], qh[64], i8 scales[16],
// f16 d, on 2-byte boundaries). X is packed Q8_K levels (act_quant.wgsl's `xq`), token t's row
// at word x_off + t · x_stride: levels [cols / 4 words], then a scale per 32 elements. Y is f32
// [tokens, y_stride] from element y_off (y_stride = rows of the whole tensor), as matmul.wgsl's.
// Dispatch: ceil(n_rows / NR) workgroups of WG invocations, laid over x then y (groups_x per row
// of the grid). The workgroup takes its NR rows through the step's tokens NT at a time: per
// block, invocation s (0..TPB) decodes the 6-bit levels of half h = s / 8, elements
// l = 4 (s % 8).. l + 4 of each 32-element group k, and their scales, once per row; then
// multiplies them with the matching levels of each token of the group (the −32 of the levels
// taken out as 32 · Σ x, once per token). The NR × NT sums (row-major) go through the spliced
// reduction, whose `ROWS` is their count.

override WG: u32 = 64u;
// Weight rows per workgroup.
const NR: u32 = 2u;
// Tokens per pass over the rows' weights (the launcher builds 2, 4 and 8).
const NT: u32 = 8u;
// Partial sums per invocation, as the reduction calls them: [NR, NT].
const ROWS: u32 = NR * NT;
// Invocations sharing one block; WG / TPB blocks of each row are in flight at once.
const TPB: u32 = 16u;

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

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let row0 = (wg.y * p.groups_x + wg.x) * NR;
    if row0 >= p.n_rows {
        return;
    }
    let n_tok = min(step.n_tokens, p.max_tokens);
    let s = lane.lid % TPB;
    let h = s / 8u;
    let l4 = (s % 8u) * 4u;
    let ones = 0x01010101u;
    for (var t0 = 0u; t0 < n_tok; t0 += NT) {
        var acc: array<f32, ROWS>;
        for (var b = lane.lid / TPB; b < p.cols / 256u; b += WG / TPB) {
            // Each row's levels of groups k = 0..4 (bytes 0..63), their scales and d.
            var q: array<vec4<u32>, NR>;
            var sc: array<vec4<i32>, NR>;
            var d: array<f32, NR>;
            for (var r = 0u; r < NR; r++) {
                let blk = min(row0 + r, p.n_rows - 1u) * p.row_bytes + 210u * b;
                let qa = load_u32(blk + 64u * h + l4);
                let qb = load_u32(blk + 64u * h + 32u + l4);
                let qh = load_u32(blk + 128u + 32u * h + l4);
                q[r] = vec4<u32>(
                    (qa & 0x0F0F0F0Fu) | ((qh & 0x03030303u) << 4u),
                    (qb & 0x0F0F0F0Fu) | (((qh >> 2u) & 0x03030303u) << 4u),
                    ((qa >> 4u) & 0x0F0F0F0Fu) | (((qh >> 4u) & 0x03030303u) << 4u),
                    ((qb >> 4u) & 0x0F0F0F0Fu) | (((qh >> 6u) & 0x03030303u) << 4u),
                );
                let at = blk + 192u + 8u * h + l4 / 16u;
                sc[r] = vec4<i32>(i8_at(at), i8_at(at + 2u), i8_at(at + 4u), i8_at(at + 6u));
                d[r] = f16_at(blk + 208u);
            }
            for (var t = 0u; t < NT; t++) {
                if t0 + t < n_tok {
                    let xt = p.x_off + (t0 + t) * p.x_stride;
                    // Words of elements 128h + 32k + l4.. for k = 0..4, and their sums.
                    let xb = xt + 64u * b + 32u * h + s % 8u;
                    let xk = vec4<u32>(xw(xb), xw(xb + 8u), xw(xb + 16u), xw(xb + 24u));
                    let x32 = 32 * vec4<i32>(
                        dot4I8Packed(ones, xk.x), dot4I8Packed(ones, xk.y),
                        dot4I8Packed(ones, xk.z), dot4I8Packed(ones, xk.w),
                    );
                    let dx = bitcast<f32>(xw(xt + p.cols / 4u + 8u * b));
                    for (var r = 0u; r < NR; r++) {
                        let dots = vec4<i32>(
                            dot4I8Packed(q[r].x, xk.x), dot4I8Packed(q[r].y, xk.y),
                            dot4I8Packed(q[r].z, xk.z), dot4I8Packed(q[r].w, xk.w),
                        ) - x32;
                        let sum = dot(sc[r], dots);
                        acc[r * NT + t] += (d[r] * dx) * f32(sum);
                    }
                }
            }
        }
        let total = reduce_rows(acc, lane);
        let r = row0 + lane.lid / NT;
        let t = t0 + lane.lid % NT;
        if lane.lid < ROWS && r < p.n_rows && t < n_tok {
            let i = p.y_off + t * p.y_stride + r;
            y[i] = select(total, y[i] + total, p.add != 0u);
        }
        // The next group's reduction reuses the workgroup memory this one read.
        workgroupBarrier();
    }
}

// ---- reduce: the row reduction, spliced on at load (gpu::shaders::splice_reduce).
