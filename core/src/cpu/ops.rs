//! The forward pass's elementwise and matrix operations, each the CPU twin of a GPU kernel to come.
//!
//! Numerics follow ggml's CPU backend (the llama.cpp reference), in its scalar form: `rmsnorm`
//! sums squares in f64 (`ggml_compute_forward_rms_norm_f32`); `matmul` converts each activation row
//! to the weight type's `vec_dot_type` and takes integer dot products (`ggml_compute_forward_mul_mat`
//! with `quant::dot_quantized`); `rope` builds its angles by repeated multiplication by
//! `base^(-2/n_rot)` as `ggml_rope_cache_init` does; `silu` is `x/(1+e^-x)` in f32; `gelu` goes
//! through f16 as ggml's table-driven `ggml_vec_geglu_f32` does.

use super::Exec;
use crate::error::Result;
use crate::model::{QTensor, RopeKind};
use crate::quant;

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

/// Weight rows per parallel task.
const ROWS_PER_TASK: usize = 16;

/// out[b, r] = w[r, :] · x[b, :] for `n_tok` tokens.
///
/// x: [n_tok, cols] f32; out: [n_tok, rows] f32; w: [cols] -> [rows] in its GGUF type.
/// acts: receives x in `vec_dot_type(w.ty)`, [n_tok, act_row_bytes] (reserved at load, so it does
/// not grow); scratch: at least [rows, n_tok], the transposed result, so each task owns a
/// contiguous piece.
///
/// Each (row, token) dot product is computed the same way whatever `n_tok` is, so a batch gives
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
    let (rows, cols) = (w.rows(), w.cols());
    quant::quantize_activations(w.ty, &x[..n_tok * cols], acts)?;
    let act_row = acts.len() / n_tok.max(1);
    let acts = &acts[..];
    let scratch = &mut scratch[..rows * n_tok];
    exec.chunks(scratch, ROWS_PER_TASK * n_tok, &|task, piece| {
        for (i, dst) in piece.chunks_mut(n_tok).enumerate() {
            let row = w.row(task * ROWS_PER_TASK + i);
            for (b, d) in dst.iter_mut().enumerate() {
                let a = &acts[b * act_row..(b + 1) * act_row];
                *d = quant::dot_quantized(w.ty, row, a).unwrap_or(f32::NAN);
            }
        }
    });
    for (r, col) in scratch.chunks(n_tok).enumerate() {
        for (b, &v) in col.iter().enumerate() {
            out[b * rows + r] = v;
        }
    }
    Ok(())
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
pub fn rope(x: &mut [f32], head_dim: usize, cs: &[(f32, f32)], kind: RopeKind) {
    let half = cs.len();
    for head in x.chunks_mut(head_dim) {
        for (i, &(cos, sin)) in cs.iter().enumerate() {
            let (a, b) = match kind {
                RopeKind::Normal => (2 * i, 2 * i + 1),
                RopeKind::Neox => (i, i + half),
            };
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0 * cos - x1 * sin;
            head[b] = x0 * sin + x1 * cos;
        }
    }
}

/// gate[i] = silu(gate[i]) · up[i] (SwiGLU), silu(x) = x / (1 + e^-x) in f32.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
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
