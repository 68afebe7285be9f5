// matvec_q5_k.wgsl — y[y_off + r] = Σ_c W[r, c] · x[x_off + c] for the n_rows rows of one piece
// of a Q5_K tensor, decoded straight from its GGUF bytes. CPU twin: gpu::matvec_cpu (quant::dot
// per row); launcher: core/src/gpu/matvec.rs.
//
// Layout: 176-byte blocks of 256: f16 d, f16 dmin, scales[12], qh[32], qs[128]. As Q4_K, with
// bit u of qh[l] as bit 4 of element l of sub-block u; y = (d * sc) * q - (dmin * m).
// Dispatch: ceil(n_rows / ROWS) workgroups of WG invocations, laid over x then y (groups_x per
// row of the grid). Invocation s (0..TPB) of a block takes
// pair p = s / 4 and elements l = 8 (s % 4).. l + 8 of both its sub-blocks.

const WG: u32 = 256u;
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
    _pad0: u32,
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

// Scale and min (6 bits each) of sub-block j of the Q4_K/Q5_K block at word wb (12 packed bytes
// from byte 4; see quant/kquants.rs `scale_min_k4`).
fn scale_byte(wb: u32, k: u32) -> u32 {
    return (w[wb + 1u + k / 4u] >> ((k % 4u) * 8u)) & 0xFFu;
}

fn scale_min_k4(wb: u32, j: u32) -> vec2<f32> {
    if j < 4u {
        return vec2<f32>(f32(scale_byte(wb, j) & 63u), f32(scale_byte(wb, j + 4u) & 63u));
    }
    let b = scale_byte(wb, j + 4u);
    let sc = (b & 15u) | ((scale_byte(wb, j - 4u) >> 6u) << 4u);
    let m = (b >> 4u) | ((scale_byte(wb, j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(m));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let row0 = (wg.y * p.groups_x + wg.x) * ROWS;
    if row0 >= p.n_rows {
        return;
    }
    var acc: array<f32, ROWS>;
    let s = lane.lid % TPB;
    let pr = s / 4u;
    let l8 = (s % 4u) * 8u;
    for (var b = lane.lid / TPB; b < p.cols / 256u; b += WG / TPB) {
        let xb = p.x_off + 256u * b + 64u * pr + l8;
        let xl0 = xv(xb);
        let xl1 = xv(xb + 4u);
        let xh0 = xv(xb + 32u);
        let xh1 = xv(xb + 36u);
        let sum_l = hsum(xl0) + hsum(xl1);
        let sum_h = hsum(xh0) + hsum(xh1);
        for (var r = 0u; r < ROWS; r++) {
            let wb = (min(row0 + r, p.n_rows - 1u) * p.row_bytes + 176u * b) >> 2u;
            let dm = unpack2x16float(w[wb]);
            let sm_l = scale_min_k4(wb, 2u * pr);
            let sm_h = scale_min_k4(wb, 2u * pr + 1u);
            let q0 = w[wb + 12u + 8u * pr + l8 / 4u];
            let q1 = w[wb + 13u + 8u * pr + l8 / 4u];
            let h0 = w[wb + 4u + l8 / 4u];
            let h1 = w[wb + 5u + l8 / 4u];
            let u = 2u * pr;
            let l0 = (q0 & 0x0F0F0F0Fu) | (((h0 >> u) & 0x01010101u) << 4u);
            let l1 = (q1 & 0x0F0F0F0Fu) | (((h1 >> u) & 0x01010101u) << 4u);
            let u0 = ((q0 >> 4u) & 0x0F0F0F0Fu) | (((h0 >> (u + 1u)) & 0x01010101u) << 4u);
            let u1 = ((q1 >> 4u) & 0x0F0F0F0Fu) | (((h1 >> (u + 1u)) & 0x01010101u) << 4u);
            let dl = dot(vec4<f32>(unpack4xU8(l0)), xl0) + dot(vec4<f32>(unpack4xU8(l1)), xl1);
            let dh = dot(vec4<f32>(unpack4xU8(u0)), xh0) + dot(vec4<f32>(unpack4xU8(u1)), xh1);
            acc[r] += dm.x * (sm_l.x * dl + sm_h.x * dh) - dm.y * (sm_l.y * sum_l + sm_h.y * sum_h);
        }
    }
    let total = reduce_rows(acc, lane);
    if lane.lid < ROWS && row0 + lane.lid < p.n_rows {
        y[p.y_off + row0 + lane.lid] = total;
    }
}

// ---- reduce (workgroup memory): a tree over the WG partials of each row. When the adapter has
// subgroups, gpu::shaders::splice_reduce replaces this section with shaders/reduce_subgroup.wgsl's.
struct Lane {
    @builtin(local_invocation_index) lid: u32,
}

// [ROWS, WG] partial sums.
var<workgroup> red: array<f32, ROWS * WG>;

fn reduce_rows(acc: array<f32, ROWS>, lane: Lane) -> f32 {
    for (var r = 0u; r < ROWS; r++) {
        red[r * WG + lane.lid] = acc[r];
    }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lane.lid < s {
            for (var r = 0u; r < ROWS; r++) {
                red[r * WG + lane.lid] += red[r * WG + lane.lid + s];
            }
        }
        workgroupBarrier();
    }
    return red[min(lane.lid, ROWS - 1u) * WG];
}
