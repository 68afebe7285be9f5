// matvec_q4_1.wgsl — y[y_off + r] = Σ_c W[r, c] · x[c] for the n_rows rows of one piece of a
// Q4_1 tensor, decoded straight from its GGUF bytes, with x as packed Q8_1 levels (act_quant.wgsl's
// `xq`): per block, the integer dot product of the two sets of levels (`dot4I8Packed`) times
// d_w·d_x, plus m_w·s_x — the CPU's Q4_1 × Q8_1 dot product, whose s_x is the activation block's
// sum rounded to f16 (not the exact sum of its rounded values: taking that instead moved
// SmolLM2's projections by up to 1e-3 of their size). CPU twin: gpu::matvec_cpu (quant::dot per
// row); launcher: core/src/gpu/matvec.rs.
//
// Layout: 20-byte blocks of 32: f16 d, f16 m, qs[16]; byte i holds element i (low nibble) and
// element i + 16 (high); w = q · d + m. x: per token row, cols/4 words of four int8 levels, then a
// word per block: f16 d_x (low half), f16 s_x (high half).
// Dispatch: ceil(n_rows / ROWS) workgroups of WG invocations, laid over x then y (groups_x per
// row of the grid). Invocation s (0..TPB) of a block takes qs[4s..4s+4]: elements 4s.. and
// 16 + 4s.., levels words s and 4 + s of x.

override WG: u32 = 256u;
// Rows per workgroup: each invocation loads its slice of x once and uses it for all of them.
const ROWS: u32 = 4u;
// Invocations sharing one block; WG / TPB blocks of each row are in flight at once.
const TPB: u32 = 4u;

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
@group(0) @binding(1) var<storage, read> x: array<u32>;        // levels [cols / 4 words], scales [cols / 32]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // [y_off + n_rows]
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let row0 = (wg.y * p.groups_x + wg.x) * ROWS;
    if row0 >= p.n_rows {
        return;
    }
    var acc: array<f32, ROWS>;
    let s = lane.lid % TPB;
    let scales_at = p.x_off + p.cols / 4u;
    for (var b = lane.lid / TPB; b < p.cols / 32u; b += WG / TPB) {
        let xl = x[p.x_off + 8u * b + s];
        let xh = x[p.x_off + 8u * b + 4u + s];
        let ds = unpack2x16float(x[scales_at + b]);
        // The block's m·s once, from its first invocation.
        let sx = select(0.0, ds.y, s == 0u);
        for (var r = 0u; r < ROWS; r++) {
            let wb = (min(row0 + r, p.n_rows - 1u) * p.row_bytes + 20u * b) >> 2u;
            let dm = unpack2x16float(w[wb]);
            let q = w[wb + 1u + s];
            let sumi = dot4I8Packed(q & 0x0F0F0F0Fu, xl) + dot4I8Packed((q >> 4u) & 0x0F0F0F0Fu, xh);
            acc[r] += (dm.x * ds.x) * f32(sumi) + dm.y * sx;
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
