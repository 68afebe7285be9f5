// exact_matvec.wgsl — y[y_off + r] = Σ_c W[r, c] · x[c] (or y += …) for the rows of one piece of
// a Q4_0, Q4_1 or Q8_0 tensor, bit for bit as the CPU reference computes it (quant::dot_quantized,
// in the shape of ggml's x86 AVX2 kernels): the exact numerics' mat-vec (`GpuOptions::exact`).
// Per row, eight f32 lane sums: lane j takes each block's elements 4j..4j+4, their integer dot
// product with the activation levels (`dot4I8Packed`, exact) times the block's d = d_w·d_x added
// with one rounding (`fma_exact`); Q4_1 also sums m_w·s_x with one rounding each. At the end the
// lanes are added as ggml's hsum_float_8: (l+4) + l, then (0 + 2) + (1 + 3); Q4_1 adds Σ m·s.
// Q4_0 follows ggml's scalar kernel instead (its block terms (Σq·d_w)·d_x added in order): the
// CPU reference's Q4_0 dot product.
// x: packed levels as act_quant.wgsl writes them (per token row, cols/4 words of four int8
// levels, then a scale word per block: Q8_0's d as f32, Q8_1's f16 d and f16 s). CPU twin:
// quant::dot_quantized of the CPU's own activations; launcher: core/src/gpu/matvec.rs.
//
// Layout: W [n_rows, row_bytes] bytes in u32 words; Q4_1 blocks of 20 bytes (f16 d, f16 m,
// qs[16]: element i in the low nibble of byte i, i + 16 in the high), Q4_0 blocks of 18 (f16 d,
// qs[16], levels offset by 8), Q8_0 blocks of 34 (f16 d, 32 int8): blocks of 18 and 34 bytes
// start on any 2-byte boundary.
// Dispatch: ceil(n_rows / ROWS) workgroups over x then y (groups_x per row of the grid); one row
// an invocation, no barriers (a software adapter runs it without coroutines).

const WG: u32 = 64u;
const ROWS: u32 = 64u;
// 0: Q4_1 × Q8_1, 1: Q8_0 × Q8_0, 2: Q4_0 × Q8_0.
override TYPE: u32 = 0u;

struct Params {
    n_rows: u32,
    cols: u32,
    row_bytes: u32,
    x_off: u32,
    y_off: u32,
    groups_x: u32,
    add: u32,
    split1: u32,
    gap1: u32,
    split2: u32,
    gap2: u32,
    zero: u32,  // 0, which the compiler cannot know (exact_fp.wgsl)
}

@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn zero_bits() -> u32 {
    return p.zero;
}

// include: exact_fp.wgsl

// The four bytes of W from byte `at` (a multiple of 2).
fn word_at(at: u32) -> u32 {
    let i = at >> 2u;
    if (at & 3u) == 0u {
        return w[i];
    }
    return (w[i] >> 16u) | (w[i + 1u] << 16u);
}

fn f16_at(at: u32) -> f32 {
    return unpack2x16float(word_at(at)).x;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r = (wg.y * p.groups_x + wg.x) * ROWS + lid;
    if r >= p.n_rows {
        return;
    }
    var lanes = array<f32, 8>();
    var summs = 0.0;
    var sum = 0.0;
    let scales = p.x_off + p.cols / 4u;
    let row = r * p.row_bytes;
    for (var b = 0u; b < p.cols / 32u; b++) {
        let xl = p.x_off + 8u * b;
        if TYPE == 0u {
            let at = (row + 20u * b) >> 2u;
            let dm = unpack2x16float(w[at]);
            let ds = unpack2x16float(x[scales + b]);
            let d = dm.x * ds.x;
            for (var j = 0u; j < 4u; j++) {
                let q = w[at + 1u + j];
                let lo = dot4I8Packed(q & 0x0F0F0F0Fu, x[xl + j]);
                let hi = dot4I8Packed((q >> 4u) & 0x0F0F0F0Fu, x[xl + 4u + j]);
                lanes[j] = fma_exact(d, f32(lo), lanes[j]);
                lanes[4u + j] = fma_exact(d, f32(hi), lanes[4u + j]);
            }
            summs = fma_exact(dm.y, ds.y, summs);
        } else if TYPE == 1u {
            let at = row + 34u * b;
            let d = f16_at(at) * bitcast<f32>(x[scales + b]);
            for (var j = 0u; j < 8u; j++) {
                let s = dot4I8Packed(word_at(at + 2u + 4u * j), x[xl + j]);
                lanes[j] = fma_exact(d, f32(s), lanes[j]);
            }
        } else {
            let at = row + 18u * b;
            var sumi = 0;
            for (var j = 0u; j < 4u; j++) {
                let q = word_at(at + 2u + 4u * j);
                // Levels 0..15 offset by 8: the dot of (q − 8) is dot(q) − 8·Σx.
                let lo = dot4I8Packed(q & 0x0F0F0F0Fu, x[xl + j]) - 8 * dot4I8Packed(0x01010101u, x[xl + j]);
                let hi = dot4I8Packed((q >> 4u) & 0x0F0F0F0Fu, x[xl + 4u + j])
                    - 8 * dot4I8Packed(0x01010101u, x[xl + 4u + j]);
                sumi += lo + hi;
            }
            sum += opaque((f32(sumi) * f16_at(at)) * bitcast<f32>(x[scales + b]));
        }
    }
    var total = sum;
    if TYPE != 2u {
        let h0 = lanes[4] + lanes[0];
        let h1 = lanes[5] + lanes[1];
        let h2 = lanes[6] + lanes[2];
        let h3 = lanes[7] + lanes[3];
        total = ((h0 + h2) + (h1 + h3)) + summs;
    }
    let i = p.y_off + r + select(0u, p.gap1, r >= p.split1) + select(0u, p.gap2, r >= p.split2);
    y[i] = select(total, y[i] + total, p.add != 0u);
}
