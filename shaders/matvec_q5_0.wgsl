// matvec_q5_0.wgsl — y[y_off + r] = Σ_c W[r, c] · x[x_off + c] for the n_rows rows of one piece
// of a Q5_0 tensor, decoded straight from its GGUF bytes. CPU twin: gpu::matvec_cpu (quant::dot
// per row); launcher: core/src/gpu/matvec.rs.
//
// Layout: 22-byte blocks of 32: f16 d, u32 qh, qs[16]; nibbles as Q4_0, bit j of qh is bit 4
// of element j; y = (q - 16) * d. Blocks start on 2-byte boundaries.
// Dispatch: ceil(n_rows / ROWS) workgroups of WG invocations, laid over x then y (groups_x per
// row of the grid). Invocation s (0..TPB) of a block takes qs[4s..4s+4]: elements 4s.. and 16 + 4s...

override WG: u32 = 256u;
// Rows per workgroup: each invocation loads its slice of x once and uses it for all of them.
const ROWS: u32 = 4u;
// Invocations sharing one block; WG / TPB blocks of each row are in flight at once.
const TPB: u32 = 4u;

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

// The f16 at byte `byte` (even) of w, as f32.
fn f16_at(byte: u32) -> f32 {
    return unpack2x16float(w[byte >> 2u] >> ((byte & 2u) * 8u)).x;
}

fn xv(i: u32) -> vec4<f32> {
    return vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
}

// Bits 0..4 of b moved to bit 0 of bytes 0..4.
fn spread4(b: u32) -> u32 {
    return (b & 1u) | ((b & 2u) << 7u) | ((b & 4u) << 14u) | ((b & 8u) << 21u);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let row0 = (wg.y * p.groups_x + wg.x) * ROWS;
    if row0 >= p.n_rows {
        return;
    }
    var acc: array<f32, ROWS>;
    let s = lane.lid % TPB;
    for (var b = lane.lid / TPB; b < p.cols / 32u; b += WG / TPB) {
        let xl = xv(p.x_off + 32u * b + 4u * s);
        let xh = xv(p.x_off + 32u * b + 16u + 4u * s);
        for (var r = 0u; r < ROWS; r++) {
            let blk = min(row0 + r, p.n_rows - 1u) * p.row_bytes + 22u * b;
            let qh = load_u32(blk + 2u);
            let q = load_u32(blk + 6u + 4u * s);
            let ql = (q & 0x0F0F0F0Fu) | (spread4((qh >> (4u * s)) & 15u) << 4u);
            let qu = ((q >> 4u) & 0x0F0F0F0Fu) | (spread4((qh >> (16u + 4u * s)) & 15u) << 4u);
            acc[r] += f16_at(blk) * (dot(vec4<f32>(unpack4xU8(ql)) - 16.0, xl) + dot(vec4<f32>(unpack4xU8(qu)) - 16.0, xh));
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
