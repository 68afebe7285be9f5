// exact_fp.wgsl — the f32 arithmetic of the CPU reference that WGSL does not promise, for the
// kernels of exact numerics (`GpuOptions::exact`): a fused multiply-add rounded once (WGSL's fma
// may round twice, and does on lavapipe and SwiftShader), ggml's exp, and sums as exact as f64's.
// Built from error-free transformations: every +, −, × rounds to nearest even, as on every
// adapter measured, but a compiler may simplify them algebraically ((a + b) − a to b: lavapipe
// does), so each intermediate a transformation relies on goes through `opaque`, an identity the
// compiler cannot see through. The includer declares `fn zero_bits() -> u32`, returning a 0 the
// host writes (a uniform field).

fn opaque(v: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(v) | zero_bits());
}

// a + b = s + e exactly (Knuth's TwoSum): (s, e). The arguments go through `opaque` too: an
// argument that is a product must be rounded before the sum (a compiler may contract a·b + c
// into one fused operation).
fn two_sum(x: f32, y: f32) -> vec2<f32> {
    let a = opaque(x);
    let b = opaque(y);
    let s = opaque(a + b);
    let bb = opaque(s - a);
    return vec2<f32>(s, (a - opaque(s - bb)) + (b - bb));
}

// a = hi + lo with hi of 12 significant bits (Veltkamp's split; |a| < 2^115).
fn split(a: f32) -> vec2<f32> {
    let c = opaque(4097.0 * a);
    let hi = opaque(c - opaque(c - a));
    return vec2<f32>(hi, a - hi);
}

// a · b = p + e exactly (Dekker's product; no underflow): (p, e).
fn two_prod(a: f32, b: f32) -> vec2<f32> {
    let p = opaque(a * b);
    let x = split(a);
    let y = split(b);
    return vec2<f32>(p, opaque(opaque(opaque(x.x * y.x - p) + x.x * y.y) + x.y * y.x) + x.y * y.y);
}

// a · b + c rounded once, as a hardware FMA (Boldo and Melquiond's emulation: the exact product,
// its high part added to c exactly, the two low parts summed rounding to odd, then one rounding
// to nearest). Finite arguments, no underflow.
fn fma_exact(a: f32, b: f32, c: f32) -> f32 {
    let u = two_prod(a, b);
    let t = two_sum(c, u.x);
    let v = two_sum(t.y, u.y);
    var bits = bitcast<u32>(v.x);
    // Inexact with an even last bit: the odd neighbour on the side of the exact sum.
    if v.y != 0.0 && (bits & 1u) == 0u {
        bits = select(bits - 1u, bits + 1u, (v.y > 0.0) == (v.x > 0.0));
    }
    return opaque(t.x + bitcast<f32>(bits));
}

// A sum of f32 values as (hi, lo), hi + lo within ~2^-44 of the exact sum: what ggml sums in f64
// (ggml_float) gives the same f32 once rounded, but in the rarest cases.
fn dd_add(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let s = two_sum(a.x, b.x);
    let e = opaque(s.y + a.y) + b.y;
    return two_sum(s.x, e);
}

// (hi + lo) / n rounded to f32: the quotient corrected by its remainder (hi − q·n exact).
fn dd_div(a: vec2<f32>, n: f32) -> f32 {
    let q = opaque(a.x / n);
    let qn = two_prod(q, n);
    let r = opaque(opaque(a.x - qn.x) - qn.y) + a.y;
    return opaque(q + r / n);
}

// The float after v toward +∞ (`up`) or −∞; v finite and nonzero.
fn step_float(v: f32, up: bool) -> f32 {
    let b = bitcast<u32>(v);
    return bitcast<f32>(select(b - 1u, b + 1u, up == (v > 0.0)));
}

// Of c and its two neighbours, the one whose residual |r(n)| is smallest (ties: the even one):
// one step of div_exact's and sqrt_exact's search, `sq` choosing the residual x − n² over x − n·b.
fn nearest_of(c: f32, x: f32, b: f32, sq: bool) -> f32 {
    var best = c;
    var rb = abs(fma_exact(-c, select(b, c, sq), x));
    for (var k = 0u; k < 2u; k++) {
        let n = step_float(c, k == 1u);
        let r = abs(fma_exact(-n, select(b, n, sq), x));
        if r < rb || (r == rb && (bitcast<u32>(n) & 1u) == 0u) {
            best = n;
            rb = r;
        }
    }
    return best;
}

// a / b rounded to nearest even, whatever the adapter's division (WGSL allows 2.5 ulp, and
// NVIDIA's takes it): the quotient of a and b's mantissas (in [0.5, 1), so every product of the
// search stays far from underflow, which software adapters flush), then twice the neighbour with
// the smaller exact residual, scaled back by the exponents (exact, but for a subnormal result).
// Zero, infinite and NaN operands as the adapter divides them.
fn div_exact(a: f32, b: f32) -> f32 {
    let finite = (bitcast<u32>(a) & 0x7f800000u) != 0x7f800000u && (bitcast<u32>(b) & 0x7f800000u) != 0x7f800000u;
    if a == 0.0 || b == 0.0 || !finite {
        return a / b;
    }
    let x = frexp(a);
    let y = frexp(b);
    let q = nearest_of(nearest_of(opaque(x.fract / y.fract), x.fract, y.fract, false), x.fract, y.fract, false);
    return ldexp(q, x.exp - y.exp);
}

// √x rounded to nearest even, whatever the adapter's sqrt: the neighbour search on x − s² (which
// picks the nearest but where √x lies within 2^-25 of an ulp of a midpoint).
fn sqrt_exact(x: f32) -> f32 {
    let s = opaque(sqrt(x));
    if s == 0.0 || !(s < 1.0e18) {
        return s;
    }
    return nearest_of(nearest_of(s, x, 0.0, true), x, 0.0, true);
}

// 1 / (hi + lo) rounded to f32.
fn dd_recip(a: vec2<f32>) -> f32 {
    let q = opaque(1.0 / a.x);
    let qa = two_prod(q, a.x);
    // 1 − q·(hi + lo): exact for the first two terms (q·hi is within an ulp of 1).
    let r = opaque(opaque(1.0 - qa.x) - qa.y) - opaque(q * a.y);
    return opaque(q + opaque(q * r));
}

// e^x as ggml's x86 AVX2 `ggml_v_expf` (cpu/expf.rs's expf_ggml), every multiply-add fused. Its
// last step fma(k, j, k) scales by a power of two k, so it is k · (j + 1) with one rounding (and
// no overflow in the exact product where k is near the top of the range).
fn exp_ggml(x: f32) -> f32 {
    let round = bitcast<f32>(0x4b400000u);
    let z = fma_exact(x, bitcast<f32>(0x3fb8aa3bu), round);
    let n = opaque(z - round);
    let b = fma_exact(-n, bitcast<f32>(0x35bfbe8eu), fma_exact(-n, bitcast<f32>(0x3f317200u), x));
    let e = bitcast<u32>(z) << 23u;
    let k = bitcast<f32>(e + 0x3f800000u);
    let u = b * b;
    let j0 = fma_exact(bitcast<f32>(0x3c072010u), b, bitcast<f32>(0x3d2b9f17u));
    let j1 = fma_exact(j0, u, fma_exact(bitcast<f32>(0x3e2aaf33u), b, bitcast<f32>(0x3efffedbu)));
    let j = fma_exact(j1, u, bitcast<f32>(0x3f7ffff6u) * b);
    if abs(n) <= 126.0 {
        return k * (j + 1.0);
    }
    let g = select(0u, 0x82000000u, n <= 0.0);
    let s1 = bitcast<f32>(g + 0x7f000000u);
    if abs(n) > 192.0 {
        return s1 * s1;
    }
    let s2 = bitcast<f32>(e - g);
    return (s2 * (j + 1.0)) * s1;
}
