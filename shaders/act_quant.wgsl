// act_quant.wgsl — y = the values a matmul's input takes once converted to its weight type's
// activation format, as the CPU reference converts it (quant::quantize_activations, then
// dequantized): Q8_0 / Q8_1 (32-element blocks, d = f16(amax/127), q = round(x·127/amax)),
// Q8_K (256-element blocks, iscale = −127/max by the signed extreme, q = min(127, round(iscale·x)),
// d = 1/iscale), f16 or bf16 (rounded to nearest even). The projections then multiply y in f32,
// so GPU and CPU see the same rounding of the activations and agree to f32 summation order.
// With `norm`, x is first RMS-normalized with weight `nw` (a layer's norm fused into the rounding
// of its projections' input: y = round(x / rms(x) · nw)); every workgroup sums the squares of its
// whole row itself, so the two need no dispatch between them. With `glu`, x is a gated
// feed-forward's gate and y = round(act(gate) · up) (the GLU fused into the rounding of the down
// projection's input; `act` is glu.wgsl's section, spliced in at load).
// For the Q8 formats the kernel also writes the levels themselves for the integer mat-vec kernels
// (`dot4I8Packed`): per token row of `xq`, cols/4 words of four int8 levels (element 4i in the
// low byte of word i), then one scale word per 32 elements, the row `q_stride` words long: the
// f32 scale (Q8_0; Q8_K's repeated for its eight 32-element runs), or for Q8_1 its f16 d (low
// half) and f16 s = f16(d'·Σq) (high half), d' = amax/127 before its rounding to f16, as ggml's
// x86 quantize_row_q8_1 computes the block's sum term.
// With EXACT (exact numerics, `GpuOptions::exact`) the norm's sum of squares and SiLU are the CPU
// reference's bit for bit: the squares summed as exactly as its f64 sum (exact_fp.wgsl's dd_add,
// the mean rounded once), SiLU as x / (1 + e^-x) with ggml's exp.
// WGSL's round() rounds half to even, as the CPU's round_ties_even. CPU twin: gpu::act_quant_cpu;
// launcher: core/src/gpu/act_quant.rs.
//
// Dispatch: (ceil(cols / WG), n_tokens) workgroups of WG; invocation lid of workgroup (c, t)
// handles element c·WG + lid of row t. Q8 blocks never straddle workgroups (WG is a multiple of
// 256 and of 32).

const WG: u32 = 256u;
override EXACT: bool = false;

struct Params {
    cols: u32,   // elements per row: a multiple of the block (32 for Q8_0/Q8_1, 256 for Q8_K)
    mode: u32,   // 0 Q8_0, 1 Q8_K, 2 f16, 3 bf16, 4 Q8_1 (Q8_0's levels; d and s in the scale word)
    x_off: u32,  // offsets in elements
    y_off: u32,
    q_off: u32,     // offset of xq in words
    q_stride: u32,  // words per token row of xq
    norm: u32,      // 1: RMS-normalize the row with nw first
    eps: f32,
    glu: u32,       // 0: x as it is, 1: act(x) · up with SiLU, 2: with GELU-tanh
    up_off: u32,    // in elements
    zero: u32,      // 0, which the compiler cannot know (exact_fp.wgsl)
    _pad1: u32,
}

struct Step {
    pos0: u32,
    n_tokens: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;         // [x_off + tokens · cols]
@group(0) @binding(1) var<storage, read_write> y: array<f32>;   // [y_off + tokens · cols]
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<uniform> step: Step;
@group(0) @binding(4) var<storage, read_write> xq: array<u32>;  // [q_off + tokens · q_stride]
@group(0) @binding(5) var<storage, read> nw: array<f32>;        // [cols] when norm
@group(0) @binding(6) var<storage, read> up: array<f32>;        // [up_off + tokens · cols] when glu

// |x| of each lane, then the block's maximum (a tree inside each block's lanes).
var<workgroup> mag: array<f32, WG>;
// Q8_K: the lane holding the maximum (the first on ties).
var<workgroup> at: array<u32, WG>;
// Each lane's level as a byte, for packing four to a word.
var<workgroup> lev: array<u32, WG>;
// Each lane's value (Q8_K reads the signed extreme back).
var<workgroup> val: array<f32, WG>;
// Each lane's level (Q8_1 sums its blocks').
var<workgroup> lq: array<i32, WG>;

fn zero_bits() -> u32 {
    return p.zero;
}

// include: exact_fp.wgsl

// a / b: rounded to nearest under EXACT whatever the adapter's division; otherwise the adapter's,
// by an opaque b (a compiler may multiply by a rounded reciprocal of a constant: SwiftShader's
// does).
fn div(a: f32, b: f32) -> f32 {
    if EXACT {
        return div_exact(a, b);
    }
    return a / opaque(b);
}

// Round to nearest even at bit 16; NaN stays NaN (quiet).
fn round_bf16(v: f32) -> f32 {
    let b = bitcast<u32>(v);
    if (b & 0x7fffffffu) > 0x7f800000u {
        return bitcast<f32>((b | 0x00400000u) & 0xffff0000u);
    }
    return bitcast<f32>((b + 0x7fffu + ((b >> 16u) & 1u)) & 0xffff0000u);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let t = wg.y;
    if t >= step.n_tokens {
        return;  // the whole workgroup: barriers stay uniform
    }
    let c = wg.x * WG + lid;
    let live = c < p.cols;
    let i = t * p.cols + c;
    var v = 0.0;
    if live {
        v = x[p.x_off + i];
        if EXACT && p.glu == 1u {
            v = div_exact(v, 1.0 + exp_ggml(0.0 - v)) * up[p.up_off + i];
        } else if p.glu != 0u {
            v = activate(v, p.glu == 2u) * up[p.up_off + i];
        }
    }
    if EXACT && p.norm != 0u {
        // The squares (each rounded, as the CPU rounds them) summed as (hi, lo) pairs.
        let xr = p.x_off + t * p.cols;
        var ss = vec2<f32>(0.0);
        for (var k = lid; k < p.cols; k += WG) {
            let a = x[xr + k];
            ss = dd_add(ss, vec2<f32>(a * a, 0.0));
        }
        mag[lid] = ss.x;
        val[lid] = ss.y;
        workgroupBarrier();
        for (var s = WG / 2u; s > 0u; s >>= 1u) {
            if lid < s {
                let sum = dd_add(vec2<f32>(mag[lid], val[lid]), vec2<f32>(mag[lid + s], val[lid + s]));
                mag[lid] = sum.x;
                val[lid] = sum.y;
            }
            workgroupBarrier();
        }
        let mean = dd_div(vec2<f32>(mag[0], val[0]), f32(p.cols));
        let scale = div_exact(1.0, sqrt_exact(mean + p.eps));
        workgroupBarrier();
        if live {
            v = v * scale * nw[c];
        }
    } else if p.norm != 0u {
        // Four independent loads per lane and round: the row is read at full speed.
        let xr = p.x_off + t * p.cols;
        let last = xr + p.cols - 1u;
        var ss = vec4<f32>(0.0);
        for (var k = lid; k < p.cols; k += 4u * WG) {
            let e = vec4<u32>(k, k + WG, k + 2u * WG, k + 3u * WG);
            let a = vec4<f32>(x[min(xr + e.x, last)], x[min(xr + e.y, last)], x[min(xr + e.z, last)], x[min(xr + e.w, last)]);
            ss += select(vec4<f32>(0.0), a * a, e < vec4<u32>(p.cols));
        }
        mag[lid] = (ss.x + ss.y) + (ss.z + ss.w);
        workgroupBarrier();
        for (var s = WG / 2u; s > 0u; s >>= 1u) {
            if lid < s {
                mag[lid] += mag[lid + s];
            }
            workgroupBarrier();
        }
        let scale = 1.0 / sqrt(mag[0] / f32(p.cols) + p.eps);
        workgroupBarrier();
        if live {
            v = v * scale * nw[c];
        }
    }
    if p.mode == 2u || p.mode == 3u {
        if live {
            y[p.y_off + i] = select(round_bf16(v), round_f16(v), p.mode == 2u);
        }
        return;
    }
    mag[lid] = abs(v);
    at[lid] = lid;
    val[lid] = v;
    workgroupBarrier();
    // Blocks of 32 lanes (Q8_0/Q8_1) or the whole workgroup (Q8_K).
    let span = select(32u, WG, p.mode == 1u);
    for (var s = span / 2u; s > 0u; s >>= 1u) {
        if (lid % span) < s {
            let o = lid + s;
            // The larger wins; on a tie the lower lane (the first, as the CPU scans).
            if mag[o] > mag[lid] || (mag[o] == mag[lid] && at[o] < at[lid]) {
                mag[lid] = mag[o];
                at[lid] = at[o];
            }
        }
        workgroupBarrier();
    }
    let head = lid - lid % span;
    let amax = mag[head];
    var q = 0.0;
    var d = 0.0;
    if live {
        if p.mode != 1u {
            d = round_f16(div(amax, 127.0));
            let id = select(0.0, div(127.0, amax), amax != 0.0);
            q = clamp(round(v * id), -128.0, 127.0);
        } else if amax != 0.0 {
            // The signed extreme: the element at lane at[head] of this workgroup's block.
            let max = val[at[head]];
            let iscale = div(-127.0, max);
            q = min(127.0, round(iscale * v));
            d = div(1.0, iscale);
        }
        y[p.y_off + i] = d * q;
    }
    lev[lid] = bitcast<u32>(i32(q)) & 0xFFu;
    lq[lid] = i32(q);
    workgroupBarrier();
    let row = p.q_off + t * p.q_stride;
    let w0 = wg.x * (WG / 4u);  // this workgroup's first word
    if lid < WG / 4u && 4u * (w0 + lid) < p.cols {
        let l = 4u * lid;
        xq[row + w0 + lid] = lev[l] | (lev[l + 1u] << 8u) | (lev[l + 2u] << 16u) | (lev[l + 3u] << 24u);
    }
    if live && c % 32u == 0u {
        var word = bitcast<u32>(d);
        if p.mode == 4u {
            var sum = 0;
            for (var k = 0u; k < 32u; k++) {
                sum += lq[lid + k];
            }
            word = pack2x16float(vec2<f32>(d, round_f16(div(amax, 127.0) * f32(sum))));
        }
        xq[row + p.cols / 4u + c / 32u] = word;
    }
}

// ---- round_f16: stand-in, replaced at load by f16_round.wgsl's exact section (a device may
// fold this round trip away).
fn round_f16(v: f32) -> f32 {
    return unpack2x16float(pack2x16float(vec2<f32>(v, 0.0))).x;
}

// ---- act: replaced at load by glu.wgsl's section of the same name; this stand-in only makes the
// file a module of its own for naga.
fn activate(g: f32, gelu: bool) -> f32 {
    return g;
}
