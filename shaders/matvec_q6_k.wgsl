// matvec_q6_k.wgsl — y[y_off + r] = Σ_c W[r, c] · x[c] for the n_rows rows of one piece of a
// Q6_K tensor, decoded straight from its GGUF bytes, with x as packed Q8_K levels (act_quant.wgsl's
// `xq`): integer dot products of the 6-bit and 8-bit levels (`dot4I8Packed`), then the scales —
// the CPU's Q6_K × Q8_K dot product. CPU twin: gpu::matvec_cpu (quant::dot per row); launcher:
// core/src/gpu/matvec.rs.
//
// Layout: 210-byte blocks of 256: ql[128], qh[64], i8 scales[16], f16 d. Element
// e = 128h + 32k + l: low nibble of ql[64h + 32(k % 2) + l] (high nibble for k >= 2), top two
// bits from bits 2k.. of qh[32h + l]; y = (d * sc) * (q - 32) with sc = scales[e / 16]. Blocks
// start on 2-byte boundaries.
// Dispatch: ceil(n_rows / ROWS) workgroups of WG invocations, laid over x then y (groups_x per
// row of the grid). Invocation s (0..TPB) of a block takes
// half h = s / 8 and l = 4 (s % 8).. l + 4 of each of the four 32-element groups k; the −32 of
// the levels is taken out of the integer sum as 32 · Σ x. The two rows' sums live in a vec2
// (named registers), each row's block share from one function, as in the Q4_K and Q8_0 kernels:
// the 8B's Q6_K output projection ~13% faster than with an array indexed in a loop over rows.

override WG: u32 = 64u;
// Rows per workgroup: each invocation loads its slice of x once and uses it for all of them. The
// kernel is written for two.
const ROWS: u32 = 2u;
// Invocations sharing one block; WG / TPB blocks of each row are in flight at once.
const TPB: u32 = 16u;

struct Params {
    n_rows: u32,     // rows in this piece
    cols: u32,       // elements per row (ne[0])
    row_bytes: u32,  // bytes per row
    x_off: u32,      // offset of x's row in xq, in words (a multiple of 4)
    y_off: u32,      // in elements
    groups_x: u32,   // workgroups per row of the dispatch grid
    add: u32,        // 1: y += W·x (a residual add), 0: y = W·x
    split1: u32,     // local rows from split1 on land gap1 further on in y, and from split2 on
    gap1: u32,       // gap2 more (a fused q|k|v's parts into their own regions; none: splits
    split2: u32,     // past the rows)
    gap2: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> w: array<u32>;        // [n_rows, row_bytes] bytes, padded to 4
@group(0) @binding(1) var<storage, read> x: array<vec4<u32>>;  // levels [cols / 4 words], scales [cols / 32]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // [y_off + n_rows]
@group(0) @binding(3) var<uniform> p: Params;

// The u32 at byte `byte` (even) of w: blocks whose size is not a multiple of 4 start on 2-byte
// boundaries.
fn load_u32(byte: u32) -> u32 {
    let i = byte >> 2u;
    let sh = (byte & 3u) * 8u;
    if sh == 0u {
        return w[i];
    }
    return (w[i] >> sh) | (w[i + 1u] << (32u - sh));
}

fn u8_at(byte: u32) -> u32 {
    return (w[byte >> 2u] >> ((byte & 3u) * 8u)) & 0xFFu;
}

fn i8_at(byte: u32) -> i32 {
    return bitcast<i32>(u8_at(byte) << 24u) >> 24u;
}

// The f16 at byte `byte` (even) of w, as f32.
fn f16_at(byte: u32) -> f32 {
    return unpack2x16float(w[byte >> 2u] >> ((byte & 2u) * 8u)).x;
}

// Word `i` of x.
fn xw(i: u32) -> u32 {
    return x[i / 4u][i % 4u];
}

// Σ of the products of the 6-bit levels `q` (bytes 0..63) less 32 with the int8 levels `a`.
fn dot6(q: u32, a: u32) -> i32 {
    return dot4I8Packed(q, a) - 32 * dot4I8Packed(0x01010101u, a);
}

// A row's share of block b (its bytes from `blk`), against x's words x0..x3 of this invocation
// and the block's scale dx.
fn row_part(blk: u32, h: u32, l4: u32, x0: u32, x1: u32, x2: u32, x3: u32, dx: f32) -> f32 {
    let qa = load_u32(blk + 64u * h + l4);
    let qb = load_u32(blk + 64u * h + 32u + l4);
    let qh = load_u32(blk + 128u + 32u * h + l4);
    let q0 = (qa & 0x0F0F0F0Fu) | ((qh & 0x03030303u) << 4u);
    let q1 = (qb & 0x0F0F0F0Fu) | (((qh >> 2u) & 0x03030303u) << 4u);
    let q2 = ((qa >> 4u) & 0x0F0F0F0Fu) | (((qh >> 4u) & 0x03030303u) << 4u);
    let q3 = ((qb >> 4u) & 0x0F0F0F0Fu) | (((qh >> 6u) & 0x03030303u) << 4u);
    let sc = blk + 192u + 8u * h + l4 / 16u;
    let sum = (i8_at(sc) * dot6(q0, x0) + i8_at(sc + 2u) * dot6(q1, x1))
        + (i8_at(sc + 4u) * dot6(q2, x2) + i8_at(sc + 6u) * dot6(q3, x3));
    return (f16_at(blk + 208u) * dx) * f32(sum);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let row0 = (wg.y * p.groups_x + wg.x) * ROWS;
    if row0 >= p.n_rows {
        return;
    }
    var acc = vec2<f32>(0.0);
    let s = lane.lid % TPB;
    let h = s / 8u;
    let l4 = (s % 8u) * 4u;
    let r0 = row0 * p.row_bytes;
    let r1 = min(row0 + 1u, p.n_rows - 1u) * p.row_bytes;
    for (var b = lane.lid / TPB; b < p.cols / 256u; b += WG / TPB) {
        // Words of elements 128h + 32k + l4.. for k = 0..4.
        let xb = p.x_off + 64u * b + 32u * h + s % 8u;
        let x0 = xw(xb);
        let x1 = xw(xb + 8u);
        let x2 = xw(xb + 16u);
        let x3 = xw(xb + 24u);
        let dx = bitcast<f32>(xw(p.x_off + p.cols / 4u + 8u * b));
        let at = 210u * b;
        acc += vec2<f32>(row_part(r0 + at, h, l4, x0, x1, x2, x3, dx), row_part(r1 + at, h, l4, x0, x1, x2, x3, dx));
    }
    let total = reduce_rows(array<f32, ROWS>(acc.x, acc.y), lane);
    if lane.lid < ROWS && row0 + lane.lid < p.n_rows {
        let r = row0 + lane.lid;
        let i = p.y_off + r + select(0u, p.gap1, r >= p.split1) + select(0u, p.gap2, r >= p.split2);
        y[i] = select(total, y[i] + total, p.add != 0u);
    }
}

// ---- reduce: the row reduction, spliced on at load (gpu::shaders::splice_reduce).
