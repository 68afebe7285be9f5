// matvec_q8_0.wgsl — y[y_off + r] = Σ_c W[r, c] · x[c] for the n_rows rows of one piece of a
// Q8_0 tensor, decoded straight from its GGUF bytes, with x as packed Q8_0 levels (act_quant.wgsl's
// `xq`): integer dot products of the two sets of levels (`dot4I8Packed`), then both scales — the
// CPU's Q8_0 × Q8_0 dot product. CPU twin: gpu::matvec_cpu (quant::dot per row); launcher:
// core/src/gpu/matvec.rs.
//
// Layout: 34-byte blocks of 32: f16 d, i8 qs[32]; y = q · d. Blocks start on 2-byte boundaries, so
// an invocation reads the five aligned words around its 16 bytes and shifts them into place.
// Dispatch: ceil(n_rows / ROWS) workgroups of WG invocations, laid over x then y (groups_x per
// row of the grid). Invocation s (0..TPB) of a block takes qs[16s..16s + 16].

override WG: u32 = 64u;
// Rows per workgroup: each invocation loads its slice of x once and uses it for all of them.
const ROWS: u32 = 2u;
// Invocations sharing one block; WG / TPB blocks of each row are in flight at once.
const TPB: u32 = 2u;

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

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let row0 = (wg.y * p.groups_x + wg.x) * ROWS;
    if row0 >= p.n_rows {
        return;
    }
    var acc: array<f32, ROWS>;
    let s = lane.lid % TPB;
    let xv = p.x_off / 4u;
    let scales_at = p.x_off + p.cols / 4u;
    for (var b = lane.lid / TPB; b < p.cols / 32u; b += WG / TPB) {
        let xs = x[xv + 2u * b + s];
        let sw = scales_at + b;
        let dx = bitcast<f32>(x[sw / 4u][sw % 4u]);
        for (var r = 0u; r < ROWS; r++) {
            let blk = min(row0 + r, p.n_rows - 1u) * p.row_bytes + 34u * b;
            let start = blk + 2u + 16u * s;
            let i = start / 4u;
            // 0 or 16: blocks start on even bytes.
            let sh = (start % 4u) * 8u;
            let a = vec4<u32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]);
            let hi = vec4<u32>(a.yzw, w[i + 4u]);
            let q = select((a >> vec4<u32>(sh)) | (hi << vec4<u32>(32u - sh)), a, sh == 0u);
            let dw = unpack2x16float(w[blk / 4u] >> ((blk % 4u) * 8u)).x;
            acc[r] += (dw * dx) * f32(dot4(q, xs));
        }
    }
    let total = reduce_rows(acc, lane);
    if lane.lid < ROWS && row0 + lane.lid < p.n_rows {
        let r = row0 + lane.lid;
        let i = p.y_off + r + select(0u, p.gap1, r >= p.split1) + select(0u, p.gap2, r >= p.split2);
        y[i] = select(total, y[i] + total, p.add != 0u);
    }
}

// ---- reduce: the row reduction, spliced on at load (gpu::shaders::splice_reduce).
