// matvec_q5_k.wgsl — y[y_off + r] = Σ_c W[r, c] · x[x_off + c] for the n_rows rows of one piece
// of a Q5_K tensor, decoded straight from its GGUF bytes. CPU twin: gpu::matvec_cpu (quant::dot
// per row); launcher: core/src/gpu/matvec.rs.
//
// Layout: 176-byte blocks of 256: f16 d, f16 dmin, scales[12], qh[32], qs[128]. As Q4_K, with
// bit u of qh[l] as bit 4 of element l of sub-block u; y = (d * sc) * q - (dmin * m). Rows are
// whole blocks, so blocks start on word boundaries.
// Dispatch: ceil(n_rows / ROWS) workgroups of WG invocations, laid over x then y (groups_x per
// row of the grid). Invocation s (0..TPB) of a block takes bytes l = 4 (s % 8).. l + 4 of the
// 32-byte qs runs of pairs p = s / 8 and p + 2: neighbouring invocations read neighbouring words
// of qs and neighbouring 16-byte runs of x, and pair p < 2 <= p + 2 fixes which half of the
// packed scales each run needs, without branches.

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

@group(0) @binding(0) var<storage, read> w: array<u32>;        // [n_rows, row_bytes] bytes
@group(0) @binding(1) var<storage, read> x: array<f32>;        // [x_off + cols]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // [y_off + n_rows]
@group(0) @binding(3) var<uniform> p: Params;

fn xv(i: u32) -> vec4<f32> {
    return vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
}

fn bytes4(q: u32) -> vec4<f32> {
    return vec4<f32>(unpack4xU8(q));
}

fn hsum(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

// The packed scale (or min) bytes of sub-blocks 0..4 (`first`) or 4..8, from the 12 scale bytes
// as words s0, s1, s2 (see quant/kquants.rs `scale_min_k4`): sub-blocks 0..4 keep theirs in the
// low 6 bits of bytes 0..4 (scales) and 4..8 (mins); sub-blocks 4..8 their low nibbles in bytes
// 8..12 and their top two bits in the spare top bits of bytes 0..8.
fn scales_lo(s0: u32) -> u32 {
    return s0 & 0x3F3F3F3Fu;
}

fn scales_hi(s0: u32, s2: u32) -> u32 {
    return (s2 & 0x0F0F0F0Fu) | ((s0 >> 2u) & 0x30303030u);
}

fn mins_lo(s1: u32) -> u32 {
    return s1 & 0x3F3F3F3Fu;
}

fn mins_hi(s1: u32, s2: u32) -> u32 {
    return ((s2 >> 4u) & 0x0F0F0F0Fu) | ((s1 >> 2u) & 0x30303030u);
}

// Byte `k` of `v` as f32.
fn byte_f(v: u32, k: u32) -> f32 {
    return f32((v >> (8u * k)) & 0xFFu);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let row0 = (wg.y * p.groups_x + wg.x) * ROWS;
    if row0 >= p.n_rows {
        return;
    }
    var acc: array<f32, ROWS>;
    let s = lane.lid % TPB;
    let pr = s / 8u;   // pairs pr and pr + 2: sub-blocks 2pr, 2pr + 1, 2pr + 4, 2pr + 5
    let j = s % 8u;    // word j of each 32-byte qs run: bytes 4j..4j + 4
    for (var b = lane.lid / TPB; b < p.cols / 256u; b += WG / TPB) {
        let xb = p.x_off + 256u * b + 64u * pr + 4u * j;
        let xa_l = xv(xb);
        let xa_h = xv(xb + 32u);
        let xb_l = xv(xb + 128u);
        let xb_h = xv(xb + 160u);
        let sums = vec4<f32>(hsum(xa_l), hsum(xa_h), hsum(xb_l), hsum(xb_h));
        for (var r = 0u; r < ROWS; r++) {
            let wb = (min(row0 + r, p.n_rows - 1u) * p.row_bytes + 176u * b) >> 2u;
            let dm = unpack2x16float(w[wb]);
            let s0 = w[wb + 1u];
            let s1 = w[wb + 2u];
            let s2 = w[wb + 3u];
            // Sub-blocks 2pr, 2pr + 1 (bytes 2pr, 2pr + 1 of the low words) and 2pr + 4, 2pr + 5
            // (the same bytes of the high words).
            let scl = scales_lo(s0);
            let sch = scales_hi(s0, s2);
            let sc = vec4<f32>(byte_f(scl, 2u * pr), byte_f(scl, 2u * pr + 1u), byte_f(sch, 2u * pr), byte_f(sch, 2u * pr + 1u));
            let mnl = mins_lo(s1);
            let mnh = mins_hi(s1, s2);
            let mn = vec4<f32>(byte_f(mnl, 2u * pr), byte_f(mnl, 2u * pr + 1u), byte_f(mnh, 2u * pr), byte_f(mnh, 2u * pr + 1u));
            let qa = w[wb + 12u + 8u * pr + j];
            let qb = w[wb + 28u + 8u * pr + j];
            // Bit u of qh[l] is bit 4 of element l of sub-block u.
            let qh = w[wb + 4u + j];
            let ua = 2u * pr;
            let ub = 2u * pr + 4u;
            let d = vec4<f32>(
                dot(bytes4((qa & 0x0F0F0F0Fu) | (((qh >> ua) & 0x01010101u) << 4u)), xa_l),
                dot(bytes4(((qa >> 4u) & 0x0F0F0F0Fu) | (((qh >> (ua + 1u)) & 0x01010101u) << 4u)), xa_h),
                dot(bytes4((qb & 0x0F0F0F0Fu) | (((qh >> ub) & 0x01010101u) << 4u)), xb_l),
                dot(bytes4(((qb >> 4u) & 0x0F0F0F0Fu) | (((qh >> (ub + 1u)) & 0x01010101u) << 4u)), xb_h),
            );
            acc[r] += dm.x * dot(sc, d) - dm.y * dot(mn, sums);
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
