// block_sums.wgsl — Y[t, r] += Σ_b m[r, b] · (s[t, b] − d[t, b] · Σ_j q[t, b, j]) for the tokens
// t < n_tokens of a step and the n_rows rows of one piece of a Q4_1 or Q5_1 tensor: the term by
// which the tiled matmul (matmul.wgsl, on the f32 input d·q) misses the CPU's Q4_1/Q5_1 × Q8_1
// dot product, which adds m·s with s the activation block's sum rounded to f16 (act_quant.wgsl's
// Q8_1 scale word), not the exact Σ d·q. CPU twin: gpu::block_sums_cpu; launcher:
// core/src/gpu/block_sums.rs.
//
// Layout: the weight piece's GGUF bytes as array<u32>, blocks of block_bytes (20 for Q4_1, 24 for
// Q5_1; word-aligned) with f16 d, f16 m first (m: the high half of the block's first word); xq
// per token row q_stride words from q_off: cols/4 words of four int8 levels, then a word per
// block, f16 d (low half) and f16 s (high half); Y f32 [max_tokens, y_stride] from y_off (y_off
// includes the piece's first row).
// Dispatch: (ceil(n_rows / WG), n_tokens) workgroups of WG; workgroup (g, t) takes rows
// g·WG.. of token t, one per invocation. Per run of WG blocks the invocations first compute the
// run's corrections c[b] = s − d·Σq (invocation i: block i) into workgroup memory, then each
// adds Σ_b m[r, b]·c[b] for its row.

const WG: u32 = 64u;

struct Params {
    n_rows: u32,       // rows in this piece
    cols: u32,         // elements per row (ne[0])
    row_bytes: u32,
    block_bytes: u32,  // 20 (Q4_1) or 24 (Q5_1)
    q_off: u32,        // words
    q_stride: u32,     // words per token row of xq
    y_off: u32,        // elements: row 0 of this piece, token 0
    y_stride: u32,     // elements per token of Y (rows of the whole tensor)
}

struct Step {
    pos0: u32,
    n_tokens: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> w: array<u32>;        // [n_rows, row_bytes] bytes, padded to 4
@group(0) @binding(1) var<storage, read> xq: array<u32>;       // [q_off + max_tokens · q_stride]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // [y_off + max_tokens · y_stride]
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> step: Step;

var<workgroup> corr: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = wg.y;
    if t >= step.n_tokens {
        return;  // the whole workgroup: barriers stay uniform
    }
    let r = wg.x * WG + lid;
    let live = r < p.n_rows;
    let row = p.q_off + t * p.q_stride;
    let n_blocks = p.cols / 32u;
    let wr = min(r, p.n_rows - 1u) * p.row_bytes;
    var acc = 0.0;
    for (var b0 = 0u; b0 < n_blocks; b0 += WG) {
        let b = b0 + lid;
        var c = 0.0;
        if b < n_blocks {
            var sum = 0;
            for (var k = 0u; k < 8u; k++) {
                sum += dot4I8Packed(xq[row + 8u * b + k], 0x01010101u);
            }
            let ds = unpack2x16float(xq[row + n_blocks * 8u + b]);
            c = ds.y - ds.x * f32(sum);
        }
        corr[lid] = c;
        workgroupBarrier();
        let n = min(WG, n_blocks - b0);
        for (var i = 0u; i < n; i++) {
            let m = unpack2x16float(w[(wr + p.block_bytes * (b0 + i)) >> 2u]).y;
            acc += m * corr[i];
        }
        workgroupBarrier();
    }
    if live {
        let i = p.y_off + t * p.y_stride + r;
        y[i] = y[i] + acc;
    }
}
