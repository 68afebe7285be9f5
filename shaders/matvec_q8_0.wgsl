// matvec_q8_0.wgsl — y[y_off + r] = Σ_c W[r, c] · x[c] for the n_rows rows of one piece of a
// Q8_0 tensor, decoded straight from its GGUF bytes, with x as packed Q8_0 levels (act_quant.wgsl's
// `xq`): integer dot products of the two sets of levels (`dot4I8Packed`), then both scales — the
// CPU's Q8_0 × Q8_0 dot product. CPU twin: gpu::matvec_cpu (quant::dot per row); launcher:
// core/src/gpu/matvec.rs.
//
// Layout: 34-byte blocks of 32: f16 d, i8 qs[32]; y = q · d. Blocks start on 2-byte boundaries, so
// a block lies in the nine aligned words from the one it starts in: either d in the low half of
// word 0 and the levels two bytes into it (shifted into place), or d in the high half and the
// levels in words 1..9 as they are.
// Dispatch: ceil(n_rows / ROWS) workgroups of WG invocations, laid over x then y (groups_x per
// row of the grid). Invocation i takes whole blocks i, i + WG, ...: nine loads per block and row,
// where two invocations of 16 bytes each took twelve, and the block's scale comes with its levels.
// Partial sums live in named registers (a vector), not an indexed array, which the driver does
// not keep in registers. On the H100 this made 14336 × 4096 2,190 → 2,395 GB/s (docs/PERF.md).

override WG: u32 = 64u;
// Rows per workgroup: each invocation loads its slice of x once and uses it for all of them. The
// kernel is written for two (`blk` returns both rows' sums).
const ROWS: u32 = 2u;
// Invocations per block.
const TPB: u32 = 1u;
// Blocks per row and loop iteration of an invocation (1, 2 or 4): more loads in flight. 2 and 4
// measured no faster than 1 on the H100.
const U: u32 = 1u;

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
@group(0) @binding(2) var<storage, read_write> y: array<f32>;   // [y_off + n_rows]
@group(0) @binding(3) var<uniform> p: Params;

// Σ of four products of the int8 lanes of `a` and `b`.
fn dot4(a: vec4<u32>, b: vec4<u32>) -> i32 {
    return (dot4I8Packed(a.x, b.x) + dot4I8Packed(a.y, b.y)) + (dot4I8Packed(a.z, b.z) + dot4I8Packed(a.w, b.w));
}

// d · (levels · x levels) of block b of the row starting at byte r; xs0, xs1: x's 32 levels.
fn one(r: u32, b: u32, xs0: vec4<u32>, xs1: vec4<u32>) -> f32 {
    let blk = r + 34u * b;
    let i = blk / 4u;
    // 16: the block starts on a word (d in the low half of word 0); 0: mid-word (levels aligned).
    let sh = 16u - (blk % 4u) * 8u;
    let c0 = w[i];
    let a = vec4<u32>(w[i + 1u], w[i + 2u], w[i + 3u], w[i + 4u]);
    let bb = vec4<u32>(w[i + 5u], w[i + 6u], w[i + 7u], w[i + 8u]);
    let s = vec4<u32>(sh);
    let t = vec4<u32>(32u - sh);
    let qa = select((vec4<u32>(c0, a.xyz) >> s) | (a << t), a, sh == 0u);
    let qb = select((vec4<u32>(a.w, bb.xyz) >> s) | (bb << t), bb, sh == 0u);
    let dw = unpack2x16float(c0 >> (16u - sh)).x;
    return dw * f32(dot4(qa, xs0) + dot4(qb, xs1));
}

// Block b's share of the sums of the rows starting at bytes r0 and r1.
fn blk(r0: u32, r1: u32, b: u32, xv: u32, scales_at: u32) -> vec2<f32> {
    let xs0 = x[xv + 2u * b];
    let xs1 = x[xv + 2u * b + 1u];
    let sw = scales_at + b;
    let dx = bitcast<f32>(x[sw / 4u][sw % 4u]);
    return dx * vec2<f32>(one(r0, b, xs0, xs1), one(r1, b, xs0, xs1));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let row0 = (wg.y * p.groups_x + wg.x) * ROWS;
    if row0 >= p.n_rows {
        return;
    }
    let xv = p.x_off / 4u;
    let scales_at = p.x_off + p.cols / 4u;
    let r0 = row0 * p.row_bytes;
    let r1 = min(row0 + 1u, p.n_rows - 1u) * p.row_bytes;
    let nb = p.cols / 32u;
    let st = WG / TPB;
    var acc = vec2<f32>(0.0);
    // U blocks per iteration while U remain, then one at a time.
    var b = lane.lid / TPB;
    for (; b + (U - 1u) * st < nb; b += U * st) {
        var t = blk(r0, r1, b, xv, scales_at);
        if U >= 2u {
            t += blk(r0, r1, b + st, xv, scales_at);
        }
        if U >= 4u {
            t += blk(r0, r1, b + 2u * st, xv, scales_at) + blk(r0, r1, b + 3u * st, xv, scales_at);
        }
        acc += t;
    }
    for (; b < nb; b += st) {
        acc += blk(r0, r1, b, xv, scales_at);
    }
    let total = reduce_rows(array<f32, ROWS>(acc.x, acc.y), lane);
    put_rows(row0, total, lane.lid);
}

// ---- put: each row's total to y (swapped for put_rope.wgsl's in the fused q|k|v mat-vec of a
// one-token step).
// include: put_rows.wgsl

// ---- reduce: the row reduction, spliced on at load (gpu::shaders::splice_reduce).
