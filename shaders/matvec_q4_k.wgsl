// matvec_q4_k.wgsl — y[y_off + r] = Σ_c W[r, c] · x[c] for the n_rows rows of one piece of a
// Q4_K tensor, decoded straight from its GGUF bytes, with x as packed Q8_K levels (act_quant.wgsl's
// `xq`): integer dot products of the 4-bit and 8-bit levels (`dot4I8Packed`), then the scales —
// the CPU's Q4_K × Q8_K dot product. CPU twin: gpu::matvec_cpu (quant::dot per row); launcher:
// core/src/gpu/matvec.rs.
//
// Layout: 144-byte blocks of 256 (nine 16-byte vectors): f16 d, f16 dmin, scales[12] (eight 6-bit
// scales and mins), then qs[128]. Sub-block 2p takes the low nibbles of qs[32p..32p+32], sub-block
// 2p + 1 the high ones; y = (d · sc) · q − (dmin · m). Rows are whole blocks (a multiple of 16
// bytes), so every block is one header vector and eight level vectors.
// Dispatch: ceil(n_rows / ROWS) workgroups of WG invocations, laid over x then y (groups_x per
// row of the grid). Invocation s (0..TPB) of a block takes level vector s: 16 bytes of pair
// p = s / 2, elements 16 (s % 2).. + 16 of sub-blocks 2p and 2p + 1. One 16-byte load of levels
// and one of the header per row and block: the loads are as wide as WGSL has. Partial sums live in
// named registers (a vector), not an indexed array, which the driver does not keep in registers:
// 5–10% more GB/s on the H100 (docs/PERF.md).

override WG: u32 = 64u;
// Rows per workgroup: each invocation loads its slice of x once and uses it for all of them. The
// kernel is written for two (`blk` returns both rows' sums).
const ROWS: u32 = 2u;
// Invocations sharing one block; WG / TPB blocks of each row are in flight at once.
const TPB: u32 = 8u;
// Blocks per row and loop iteration of an invocation (1, 2 or 4): more loads in flight. 2 and 4
// measured within noise of 1 on the H100.
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

@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;  // [n_rows, row_bytes] bytes
@group(0) @binding(1) var<storage, read> x: array<vec4<u32>>;  // levels [cols / 4 words], scales [cols / 32]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;   // [y_off + n_rows]
@group(0) @binding(3) var<uniform> p: Params;

// `scales` and `mins`: the packed 6-bit scale and min bytes of sub-blocks 0..4 (`lo`) or 4..8.
// include: q4_k_scales.wgsl

// Σ of four products of the int8 lanes of `a` and `b`.
fn dot4(a: vec4<u32>, b: vec4<u32>) -> i32 {
    return (dot4I8Packed(a.x, b.x) + dot4I8Packed(a.y, b.y)) + (dot4I8Packed(a.z, b.z) + dot4I8Packed(a.w, b.w));
}

// Level vector s of the block at vector `at` against x's levels xa (sub-block 2 (s / 2)) and xb
// (the next sub-block); sums: those levels' sums, for the mins.
fn part(at: u32, s: u32, xa: vec4<u32>, xb: vec4<u32>, sums: vec2<f32>) -> f32 {
    let pr = s / 2u;           // the pair of sub-blocks 2pr, 2pr + 1
    let lo = pr < 2u;          // sub-blocks 0..4: scales in the low words
    let sh = 16u * (pr % 2u);  // their bytes 2 (pr % 2), + 1 of the scale word
    let hd = w[at];
    let q = w[at + 1u + s];
    let dm = unpack2x16float(hd.x);
    let sc = (scales(hd.y, hd.w, lo) >> sh) & 0xFFFFu;
    let mn = (mins(hd.z, hd.w, lo) >> sh) & 0xFFFFu;
    let dot_a = dot4(q & vec4<u32>(0x0F0F0F0Fu), xa);
    let dot_b = dot4((q >> vec4<u32>(4u)) & vec4<u32>(0x0F0F0F0Fu), xb);
    let prod = f32(sc & 0xFFu) * f32(dot_a) + f32(sc >> 8u) * f32(dot_b);
    let bias = f32(mn & 0xFFu) * sums.x + f32(mn >> 8u) * sums.y;
    return dm.x * prod - dm.y * bias;
}

// Block b's share of the sums of the rows starting at vectors r0 and r1, in x's Q8_K scale.
fn blk(r0: u32, r1: u32, b: u32, s: u32, xv: u32, scales_at: u32) -> vec2<f32> {
    // Levels of sub-block 2pr (elements 16 (s % 2).. of it) and of 2pr + 1, 32 further.
    let pr = s / 2u;
    let xa = x[xv + 16u * b + 4u * pr + s % 2u];
    let xb = x[xv + 16u * b + 4u * pr + s % 2u + 2u];
    let ones = vec4<u32>(0x01010101u);
    let sums = vec2<f32>(f32(dot4(ones, xa)), f32(dot4(ones, xb)));
    let dx = bitcast<f32>(x[scales_at + 2u * b].x);
    return dx * vec2<f32>(part(r0 + 9u * b, s, xa, xb, sums), part(r1 + 9u * b, s, xa, xb, sums));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let row0 = (wg.y * p.groups_x + wg.x) * ROWS;
    if row0 >= p.n_rows {
        return;
    }
    let s = lane.lid % TPB;
    let xv = p.x_off / 4u;
    let scales_at = (p.x_off + p.cols / 4u) / 4u;
    let row_v = p.row_bytes / 16u;
    let r0 = row0 * row_v;
    let r1 = min(row0 + 1u, p.n_rows - 1u) * row_v;
    let nb = p.cols / 256u;
    let st = WG / TPB;
    var acc = vec2<f32>(0.0);
    // U blocks per iteration while U remain, then one at a time.
    var b = lane.lid / TPB;
    for (; b + (U - 1u) * st < nb; b += U * st) {
        var t = blk(r0, r1, b, s, xv, scales_at);
        if U >= 2u {
            t += blk(r0, r1, b + st, s, xv, scales_at);
        }
        if U >= 4u {
            t += blk(r0, r1, b + 2u * st, s, xv, scales_at) + blk(r0, r1, b + 3u * st, s, xv, scales_at);
        }
        acc += t;
    }
    for (; b < nb; b += st) {
        acc += blk(r0, r1, b, s, xv, scales_at);
    }
    let total = reduce_rows(array<f32, ROWS>(acc.x, acc.y), lane);
    put_rows(row0, total, lane.lid);
}

// ---- put: each row's total to y (swapped for put_rope.wgsl's in the fused q|k|v mat-vec of a
// one-token step).
// include: put_rows.wgsl

// ---- reduce: the row reduction, spliced on at load (gpu::shaders::splice_reduce).
