// matvec_bf16.wgsl — y[y_off + r] = Σ_c W[r, c] · x[x_off + c] for the n_rows rows of one piece
// of a BF16 tensor, decoded straight from its GGUF bytes. CPU twin: gpu::matvec_cpu (quant::dot
// per row); launcher: core/src/gpu/matvec.rs.
//
// Layout: bfloat16 (the top 16 bits of an f32), row r at byte r * row_bytes.
// Dispatch: ceil(n_rows / ROWS) workgroups of WG invocations, laid over x then y (groups_x per
// row of the grid). Invocation i takes elements 4i.. of every WG * 4, then one each of the tail.

override WG: u32 = 256u;
// Rows per workgroup: each invocation loads its slice of x once and uses it for all of them.
const ROWS: u32 = 4u;

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

// Four bf16 from the 8 bytes at byte `byte` (even): bf16 is the top half of an f32.
fn bf16x2(v: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(v << 16u), bitcast<f32>(v & 0xFFFF0000u));
}

fn bf16x4(byte: u32) -> vec4<f32> {
    return vec4<f32>(bf16x2(load_u32(byte)), bf16x2(load_u32(byte + 4u)));
}

fn bf16_at(byte: u32) -> f32 {
    return bitcast<f32>(((w[byte >> 2u] >> ((byte & 2u) * 8u)) & 0xFFFFu) << 16u);
}

fn xv(i: u32) -> vec4<f32> {
    return vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let row0 = (wg.y * p.groups_x + wg.x) * ROWS;
    if row0 >= p.n_rows {
        return;
    }
    var acc: array<f32, ROWS>;
    let n4 = p.cols / 4u;
    for (var c = lane.lid; c < n4; c += WG) {
        let xc = xv(p.x_off + 4u * c);
        for (var r = 0u; r < ROWS; r++) {
            acc[r] += dot(bf16x4(min(row0 + r, p.n_rows - 1u) * p.row_bytes + 8u * c), xc);
        }
    }
    for (var c = 4u * n4 + lane.lid; c < p.cols; c += WG) {
        for (var r = 0u; r < ROWS; r++) {
            acc[r] += bf16_at(min(row0 + r, p.n_rows - 1u) * p.row_bytes + 2u * c) * x[p.x_off + c];
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
