// matvec_q3_k.wgsl — y[y_off + r] = Σ_c W[r, c] · x[x_off + c] for the n_rows rows of one piece
// of a Q3_K tensor, decoded straight from its GGUF bytes. CPU twin: gpu::matvec_cpu (quant::dot
// per row); launcher: core/src/gpu/matvec.rs.
//
// Layout: 110-byte blocks of 256: hmask[32], qs[64], scales[12], f16 d. Element
// e = 128h + 32j + l: bits 2j.. of qs[32h + l], minus 4 unless bit 4h + j of hmask[l] is set;
// sub-block e / 16 has a 6-bit scale biased by 32; y = (d * sc) * q. Blocks start on 2-byte
// boundaries.
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

// The f16 at byte `byte` (even) of w, as f32.
fn f16_at(byte: u32) -> f32 {
    return unpack2x16float(w[byte >> 2u] >> ((byte & 2u) * 8u)).x;
}

fn xv(i: u32) -> vec4<f32> {
    return vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
}

// Scale of sub-block k (0..16) of the Q3_K block whose 12 packed scale bytes start at byte sb:
// low nibbles in bytes 0..8, high bit pairs in bytes 8..12, biased by 32.
fn q3_scale(sb: u32, k: u32) -> f32 {
    let lo = (u8_at(sb + k % 8u) >> (4u * (k / 8u))) & 15u;
    let hi = (u8_at(sb + 8u + k % 4u) >> (2u * (k / 4u))) & 3u;
    return f32(i32(lo | (hi << 4u)) - 32);
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
            for (var r = 0u; r < ROWS; r++) {
                let blk = min(row0 + r, p.n_rows - 1u) * p.row_bytes + 110u * b;
                let lo = (load_u32(blk + 32u + 32u * h + l4) >> (2u * j)) & 0x03030303u;
                let hb = (load_u32(blk + l4) >> (4u * h + j)) & 0x01010101u;
                let q = vec4<f32>(unpack4xU8(lo | (hb << 2u))) - 4.0;
                let sc = q3_scale(blk + 96u, 8u * h + 2u * j + l4 / 16u);
                acc[r] += f16_at(blk + 108u) * sc * dot(q, xj);
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
