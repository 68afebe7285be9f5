//! The forward pass's elementwise and matrix operations, each the CPU twin of a GPU kernel to come.
//!
//! Numerics follow ggml's CPU backend (the llama.cpp reference), in its scalar form: `rmsnorm`
//! sums squares in f64 (`ggml_compute_forward_rms_norm_f32`); `matmul` converts each activation row
//! to the weight type's `vec_dot_type` and takes integer dot products (`ggml_compute_forward_mul_mat`
//! with `quant::dot_quantized`, computed by its bit-identical SIMD twins in `quant::simd`); `rope`
//! builds its angles by repeated multiplication by `base^(-2/n_rot)` as `ggml_rope_cache_init`
//! does; `silu` is `x/(1+e^-x)` in f32 with ggml's AVX2 exp; `gelu` goes through f16 as ggml's table-driven
//! `ggml_vec_geglu_f32` does.

use super::Exec;
use crate::error::Result;
use crate::model::{QTensor, RopeKind};
use crate::quant::{self, simd};

/// out[i] = (x[i] · s) · w[i] with s = 1/sqrt(mean(x²) + eps); the sum of squares (each square
/// rounded to f32) is accumulated in f64, the mean rounded to f32, as ggml does.
pub fn rmsnorm(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let scale = rms_scale(x, eps);
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * g;
    }
}

/// 1/sqrt(mean(x²) + eps), the sum of squares in f64 as ggml sums it.
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum / x.len() as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// [`rmsnorm`] of each `w.len()`-wide head of x, in place (the q/k norms of Qwen 3 and Gemma 3).
/// x: [n_heads, head_dim]; w: [head_dim].
pub fn rmsnorm_heads(x: &mut [f32], w: &[f32], eps: f32) {
    for head in x.chunks_mut(w.len().max(1)) {
        let scale = rms_scale(head, eps);
        for (v, &g) in head.iter_mut().zip(w) {
            *v = *v * scale * g;
        }
    }
}

/// Weight rows per parallel task: a multiple of the eight rows the SIMD kernels take at once.
const ROWS_PER_TASK: usize = 32;

/// out[b, r] = w[r, :] · x[b, :] for `n_tok` tokens.
///
/// x: [n_tok, cols] f32; out: [n_tok, rows] f32; w: [cols] -> [rows] in its GGUF type.
/// acts: receives x in `vec_dot_type(w.ty)`, [n_tok, act_row_bytes] (reserved at load, so it does
/// not grow); scratch: at least [rows, n_tok], the transposed result, so each task owns a
/// contiguous piece.
///
/// The kernels are `quant::simd`'s selected set, bit-identical to `quant::dot_quantized`. Each
/// (row, token) dot product is computed the same way whatever `n_tok` is, so a batch gives
/// bit-identical results to its tokens one at a time. Errors only for a weight type without an
/// integer dot product; mismatched sizes from a caller show up as NaN rather than a panic.
pub fn matmul(
    exec: &dyn Exec,
    w: &QTensor<'_>,
    x: &[f32],
    out: &mut [f32],
    n_tok: usize,
    acts: &mut Vec<u8>,
    scratch: &mut [f32],
) -> Result<()> {
    matmuls(exec, &[w], x, &mut [out], n_tok, acts, scratch)
}

/// [`matmul`] of one input by several weights (q, k and v; gate and up): the input is converted
/// once and all the rows share one parallel loop. outs[i]: [n_tok, ws[i].rows()]; scratch: at
/// least [Σ rows, n_tok]. Weights whose activation formats differ, or too little scratch, fall
/// back to one `matmul` each (same results).
pub fn matmuls(
    exec: &dyn Exec,
    ws: &[&QTensor<'_>],
    x: &[f32],
    outs: &mut [&mut [f32]],
    n_tok: usize,
    acts: &mut Vec<u8>,
    scratch: &mut [f32],
) -> Result<()> {
    let Some(first) = ws.first() else { return Ok(()) };
    let cols = first.cols();
    let act = quant::vec_dot_type(first.ty)?;
    let total: usize = ws.iter().map(|w| w.rows()).sum();
    let fits = total * n_tok <= scratch.len();
    if ws.len() > 1 && (!fits || ws.iter().any(|w| w.cols() != cols || quant::vec_dot_type(w.ty) != Ok(act)))
    {
        for (w, out) in ws.iter().zip(outs.iter_mut()) {
            matmuls(exec, &[w], x, &mut [&mut **out], n_tok, acts, scratch)?;
        }
        return Ok(());
    }
    let isa = simd::selected();
    simd::prepare_activations(isa, first.ty, &x[..n_tok * cols], acts)?;
    let acts = &acts[..];
    // One weight and one token: the transposed layout is the output's, so the tasks write it.
    let direct = ws.len() == 1 && n_tok == 1;
    let target = if direct { &mut outs[0][..total] } else { &mut scratch[..total * n_tok] };
    exec.chunks(target, ROWS_PER_TASK * n_tok, &|task, piece| {
        // Rows r0.. of the weights laid end to end; a piece may straddle two weights.
        let (mut r, mut piece, mut w0) = (task * ROWS_PER_TASK, piece, 0);
        for w in ws {
            let rows = w.rows();
            if r < w0 + rows && !piece.is_empty() {
                let (local, rb) = (r - w0, w.row_bytes());
                let n = (rows - local).min(piece.len() / n_tok.max(1));
                let (here, rest) = piece.split_at_mut(n * n_tok);
                let w_rows = w.data.get(local * rb..(local + n) * rb).unwrap_or(&[]);
                if simd::dot_rows(isa, w.ty, w_rows, cols, acts, n_tok, here).is_err() {
                    here.fill(f32::NAN);
                }
                (piece, r) = (rest, r + n);
            }
            w0 += rows;
        }
    });
    if !direct {
        let mut w0 = 0;
        for (w, out) in ws.iter().zip(outs.iter_mut()) {
            let rows = w.rows();
            transpose(&scratch[w0 * n_tok..(w0 + rows) * n_tok], out, rows, n_tok);
            w0 += rows;
        }
    }
    Ok(())
}

/// out[b, r] = src[r, b]: src [rows, n_tok] -> out [n_tok, rows], a band of 16 rows at a time, so
/// the band's reads stay in cache while each token's 16 results are written together.
fn transpose(src: &[f32], out: &mut [f32], rows: usize, n_tok: usize) {
    if n_tok == 1 {
        out[..rows].copy_from_slice(src);
        return;
    }
    for (band, src) in src.chunks(16 * n_tok).enumerate() {
        let (r0, n) = (band * 16, src.len() / n_tok);
        for b in 0..n_tok {
            for (i, d) in out[b * rows + r0..][..n].iter_mut().enumerate() {
                *d = src[i * n_tok + b];
            }
        }
    }
}

/// How positions become rotary angles, beyond the base.
#[derive(Clone, Copy, Debug)]
pub struct RopeFreqs<'f> {
    /// base^(-2/n_rot): the ratio between successive pairs' frequencies.
    pub theta_scale: f32,
    /// Multiplies every angle (1/linear scaling factor).
    pub freq_scale: f32,
    /// Multiplies cos and sin.
    pub attn_factor: f32,
    /// [n_rot/2] per-pair divisors of the angle (Llama 3's `rope_freqs`, LongRoPE's factors).
    pub factors: Option<&'f [f32]>,
}

/// The rotation of each dimension pair at position `pos`: `cs[i] = (cos φ_i, sin φ_i) · attn_factor`
/// with `φ_i = freq_scale · (θ_i / factor_i)`, `θ_0 = pos` and `θ_{i+1} = θ_i · theta_scale` —
/// ggml builds the angles by this running product (`ggml_rope_cache_init`, `rope_yarn` without
/// YaRN), not by a power per pair, and the roundings differ.
pub fn rope_angles(cs: &mut [(f32, f32)], pos: usize, f: &RopeFreqs<'_>) {
    let mut theta = pos as f32;
    for (i, c) in cs.iter_mut().enumerate() {
        let divisor = f.factors.and_then(|ff| ff.get(i).copied()).unwrap_or(1.0);
        let phi = f.freq_scale * (theta / divisor);
        *c = (phi.cos() * f.attn_factor, phi.sin() * f.attn_factor);
        theta *= f.theta_scale;
    }
}

/// Rotates the first `2·cs.len()` dims of each `head_dim`-wide head in `x` by the angles `cs`.
/// x: [n_heads, head_dim].
///
/// Each pair (x0, x1) becomes (x0·cos − x1·sin, x0·sin + x1·cos) with the products of x1 rounded
/// and those of x0 fused into the add, as ggml's x86 build computes them: its compiler contracts
/// `rotate_pairs` into fused multiply-adds (checked against llama.cpp's rotated Q and K).
pub fn rope(x: &mut [f32], head_dim: usize, cs: &[(f32, f32)], kind: RopeKind) {
    #[inline(always)]
    fn each(x: &mut [f32], head_dim: usize, cs: &[(f32, f32)], kind: RopeKind) {
        let half = cs.len();
        for head in x.chunks_mut(head_dim) {
            for (i, &(cos, sin)) in cs.iter().enumerate() {
                let (a, b) = match kind {
                    RopeKind::Normal => (2 * i, 2 * i + 1),
                    RopeKind::Neox => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0.mul_add(cos, -(x1 * sin));
                head[b] = x0.mul_add(sin, x1 * cos);
            }
        }
    }
    // `mul_add` is libm's exact but slow `fmaf` without a hardware FMA.
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        #[target_feature(enable = "fma")]
        fn with_fma(x: &mut [f32], head_dim: usize, cs: &[(f32, f32)], kind: RopeKind) {
            each(x, head_dim, cs, kind);
        }
        // SAFETY: the CPU supports FMA, checked just above.
        return unsafe { with_fma(x, head_dim, cs, kind) };
    }
    each(x, head_dim, cs, kind);
}

/// gate[i] = silu(gate[i]) · up[i] (SwiGLU), silu(x) = x / (1 + e^-x) in f32 with ggml's
/// vectorised exp (`expf::silu_mul`).
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    super::expf::silu_mul(gate, up);
}

/// gate[i] = gelu(gate[i]) · up[i] (GeGLU), with ggml's tanh-approximated GELU evaluated the way
/// its default CPU build does: through a table indexed by the input rounded to f16, holding the
/// f32 result rounded to f16; inputs at or below -10 give 0, at or above 10 the input itself.
pub fn geglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        let act = if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x
        } else {
            f16_round(gelu_tanh(f16_round(x)))
        };
        *g = act * u;
    }
}

/// 0.5·x·(1 + tanh(sqrt(2/π)·x·(1 + 0.044715·x²))) in f32, in ggml's order of operations.
fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const COEF_A: f32 = 0.044715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + COEF_A * x * x)).tanh())
}

/// x rounded to the nearest f16 (ties to even), back as f32.
fn f16_round(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// v[i] = cap · tanh(v[i] · (1/cap)): Gemma's final logit soft-capping, as llama.cpp's scale,
/// tanh, scale.
pub fn softcap(v: &mut [f32], cap: f32) {
    let inv = 1.0 / cap;
    for x in v.iter_mut() {
        *x = (*x * inv).tanh() * cap;
    }
}
