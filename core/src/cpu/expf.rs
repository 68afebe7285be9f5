//! e^x as ggml's x86 AVX2 build computes it (`ggml_v_expf`, vec.h), one lane at a time, and the
//! loops over it that the forward pass runs: the softmax's `exp(x − max)` and SwiGLU's SiLU
//! (`ggml_v_silu`: `x / (1 + e^(−x))`, times `up`). libm's `expf` differs from it in the last bit
//! now and then, and llama.cpp's goldens come from this one.
//!
//! Each loop is compiled for the CPU's FMA unit where it has one: `mul_add` is otherwise libm's
//! exact but slow `fmaf` (same results either way).

/// e^x as ggml's AVX2 `ggml_v_expf` computes it, one lane: x = n·ln2 + b with n rounded to an
/// integer, a degree-5 polynomial in b, scaled by 2^n through the exponent bits; |n| > 126 takes
/// the split-scale path, |n| > 192 saturates (to 0 for large negative x, as a masked −∞ does).
/// Every `mul_add` is a fused multiply-add, as in ggml; see [`exp_shifted`] for its speed.
#[inline(always)]
pub fn expf_ggml(x: f32) -> f32 {
    let c = |bits: u32| f32::from_bits(bits);
    let round = c(0x4b40_0000); // 0x1.8p23: adding it rounds to an integer
    let z = x.mul_add(c(0x3fb8_aa3b), round); // log2(e)
    let n = z - round;
    let b = (-n).mul_add(c(0x35bf_be8e), (-n).mul_add(c(0x3f31_7200), x)); // ln 2, low and high parts
    let e = z.to_bits() << 23;
    let k = c(e.wrapping_add(1f32.to_bits()));
    let u = b * b;
    let j = c(0x3c07_2010)
        .mul_add(b, c(0x3d2b_9f17))
        .mul_add(u, c(0x3e2a_af33).mul_add(b, c(0x3eff_fedb)))
        .mul_add(u, c(0x3f7f_fff6) * b);
    if n.abs() <= 126.0 {
        return k.mul_add(j, k);
    }
    let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
    let s1 = c(g.wrapping_add(0x7f00_0000));
    if n.abs() > 192.0 {
        return s1 * s1;
    }
    let s2 = c(e.wrapping_sub(g));
    s2.mul_add(j, s2) * s1
}

/// v[i] = expf_ggml(v[i] - max). Without a hardware FMA, `mul_add` is libm's `fmaf` (exact, about
/// 6× slower), so on x86-64 CPUs that have one the loop is compiled for it.
pub fn exp_shifted(v: &mut [f32], max: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        #[target_feature(enable = "fma")]
        fn with_fma(v: &mut [f32], max: f32) {
            v.iter_mut().for_each(|x| *x = expf_ggml(*x - max));
        }
        // SAFETY: the CPU supports FMA, checked just above.
        return unsafe { with_fma(v, max) };
    }
    v.iter_mut().for_each(|x| *x = expf_ggml(*x - max));
}

/// gate[i] = silu(gate[i]) · up[i] with silu(x) = x / (1 + expf_ggml(0 − x)), as ggml's AVX2
/// `ggml_vec_swiglu_f32` computes it.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    #[inline(always)]
    fn each(gate: &mut [f32], up: &[f32]) {
        for (g, &u) in gate.iter_mut().zip(up) {
            *g = *g / (1.0 + expf_ggml(0.0 - *g)) * u;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        #[target_feature(enable = "fma")]
        fn with_fma(gate: &mut [f32], up: &[f32]) {
            each(gate, up);
        }
        // SAFETY: the CPU supports FMA, checked just above.
        return unsafe { with_fma(gate, up) };
    }
    each(gate, up);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expf_ggml_is_exp_to_a_few_ulp() {
        for i in -2000..=200 {
            let x = i as f32 * 0.0437;
            let (got, want) = (expf_ggml(x), (x as f64).exp());
            let rel = ((got as f64 - want) / want).abs();
            assert!(
                rel < 3e-7 || want < 1e-37,
                "exp({x}) = {got}, expected {want} (relative error {rel:.1e})"
            );
        }
        assert_eq!(expf_ggml(0.0), 1.0);
        assert_eq!(expf_ggml(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn exp_shifted_is_the_same_with_and_without_hardware_fma() {
        // A fused multiply-add is exact either way; only the speed may differ.
        let xs: Vec<f32> = (0..20_000).map(|i| -(i as f32) * 0.00731 + 3.0).collect();
        let mut v = xs.clone();
        exp_shifted(&mut v, 0.0);
        for (x, got) in xs.iter().zip(&v) {
            assert_eq!(got.to_bits(), expf_ggml(*x).to_bits(), "exp({x})");
        }
    }

    #[test]
    fn silu_mul_is_silu_times_up() {
        let x: Vec<f32> = (0..4000).map(|i| (i as f32 - 2000.0) * 0.0531).collect();
        let up: Vec<f32> = (0..4000).map(|i| 1.0 + (i % 7) as f32 * 0.25).collect();
        let mut g = x.clone();
        silu_mul(&mut g, &up);
        for ((&x, &u), &got) in x.iter().zip(&up).zip(&g) {
            let want = x as f64 / (1.0 + (-x as f64).exp()) * u as f64;
            let err = (got as f64 - want).abs() / want.abs().max(1e-30);
            assert!(err < 1e-6 || want.abs() < 1e-30, "silu({x})·{u} = {got}, expected {want}");
            assert_eq!(got.to_bits(), (x / (1.0 + expf_ggml(-x)) * u).to_bits(), "silu({x})");
        }
    }
}
