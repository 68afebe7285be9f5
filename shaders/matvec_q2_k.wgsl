// matvec_q2_k.wgsl — y[y_off + r] = Σ_c W[r, c] · x[x_off + c] for the n_rows rows of one piece
// of a Q2_K tensor, decoded straight from its GGUF bytes. CPU twin: gpu::matvec_cpu (quant::dot
// per row); launcher: core/src/gpu/matvec.rs.
//
// Layout: 84-byte blocks of 256: scales[16] (scale low nibble, min high), qs[64], f16 d,
// f16 dmin. Element e = 128h + 32j + l is bits 2j.. of qs[32h + l], in sub-block e / 16;
// y = (d * sc) * q - (dmin * m).
// Dispatch: ceil(n_rows / ROWS) workgroups of WG invocations, laid over x then y (groups_x per
// row of the grid). Invocation s (0..TPB) of a block takes
// half h = s / 8 and l = 4 (s % 8).. l + 4 of each of the four 32-element groups j.

override WG: u32 = 256u;
// Rows per workgroup: each invocation loads its slice of x once and uses it for all of them.
const ROWS: u32 = 4u;
// Invocations sharing one block; WG / TPB blocks of each row are in flight at once.
const TPB: u32 = 16u;

struct Params {
    n_rows: u32,     // rows in this piece
    cols: u32,       // elements per row (ne[0])
    row_bytes: u32,  // bytes per row
    x_off: u32,      // offsets in elements
    y_off: u32,
    groups_x: u32,   // workgroups per row of the dispatch grid
    add: u32,        // 1: y += W·x (a residual add), 0: y = W·x
    split1: u32,     // local rows from split1 on land gap1 further on in y, and from split2 on
    gap1: u32,       // gap2 more (a fused q|k|v's parts into their own regions; none: splits
    split2: u32,     // past the rows)
    gap2: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> w: array<u32>;        // [n_rows, row_bytes] bytes, padded to 4
@group(0) @binding(1) var<storage, read> x: array<f32>;        // [x_off + cols]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // [y_off + n_rows]
@group(0) @binding(3) var<uniform> p: Params;

fn xv(i: u32) -> vec4<f32> {
    return vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
}

fn hsum(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let row0 = (wg.y * p.groups_x + wg.x) * ROWS;
    if row0 >= p.n_rows {
        return;
    }
    var acc: array<f32, ROWS>;
    let s = lane.lid % TPB;
    let h = s / 8u;
    let l4 = (s % 8u) * 4u;
    for (var b = lane.lid / TPB; b < p.cols / 256u; b += WG / TPB) {
        let xb = p.x_off + 256u * b + 128u * h + l4;
        for (var j = 0u; j < 4u; j++) {
            let xj = xv(xb + 32u * j);
            let xsum = hsum(xj);
            let k = 8u * h + 2u * j + l4 / 16u;
            for (var r = 0u; r < ROWS; r++) {
                let wb = (min(row0 + r, p.n_rows - 1u) * p.row_bytes + 84u * b) >> 2u;
                let dm = unpack2x16float(w[wb + 20u]);
                let q = (w[wb + 4u + 8u * h + l4 / 4u] >> (2u * j)) & 0x03030303u;
                let sm = (w[wb + k / 4u] >> (8u * (k % 4u))) & 0xFFu;
                acc[r] += dm.x * f32(sm & 15u) * dot(vec4<f32>(unpack4xU8(q)), xj) - dm.y * f32(sm >> 4u) * xsum;
            }
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
