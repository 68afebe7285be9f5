//! The forward pass's operations, each the CPU twin of a GPU kernel to come.

use super::Exec;
use crate::model::{QTensor, RopeKind};
use crate::quant::{self, QK_K};

/// out[i] = x[i] / sqrt(mean(x²) + eps) * w[i]
pub fn rmsnorm(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let ss: f32 = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let scale = 1.0 / (ss + eps).sqrt();
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * g;
    }
}

/// Blocks decoded at a time when one weight row serves several tokens.
const WINDOW: usize = 8 * QK_K;

/// out[b, r] = Σ_k w[r, k] · x[b, k] for `n_tok` tokens; `w` is [cols] -> [rows] in its GGUF type.
/// `scratch` holds rows × n_tok (the transposed result, so each task owns a contiguous piece).
///
/// Types and shapes were checked at load; a failure here would only come from a caller
/// mismatching sizes, and shows up as NaN rather than a panic.
pub fn matmul(
    exec: &dyn Exec,
    w: &QTensor<'_>,
    x: &[f32],
    out: &mut [f32],
    n_tok: usize,
    scratch: &mut [f32],
) {
    let (rows, cols) = (w.rows(), w.cols());
    let scratch = &mut scratch[..rows * n_tok];
    const ROWS_PER_TASK: usize = 16;
    exec.chunks(scratch, ROWS_PER_TASK * n_tok, &|task, piece| {
        let r0 = task * ROWS_PER_TASK;
        for (i, dst) in piece.chunks_mut(n_tok).enumerate() {
            let row = w.row(r0 + i);
            if n_tok == 1 {
                dst[0] = quant::dot(w.ty, row, &x[..cols]).unwrap_or(f32::NAN);
                continue;
            }
            // Decode a window of the row once, use it for every token.
            dst.fill(0.0);
            let mut buf = [0f32; WINDOW];
            let window_bytes = w.ty.row_bytes(WINDOW as u64).unwrap_or(0) as usize;
            let (mut k0, mut byte0) = (0usize, 0usize);
            while k0 < cols {
                let n = WINDOW.min(cols - k0);
                let nbytes = w.ty.row_bytes(n as u64).unwrap_or(0) as usize;
                if quant::dequantize(w.ty, &row[byte0..byte0 + nbytes], &mut buf[..n]).is_err() {
                    dst.fill(f32::NAN);
                    break;
                }
                for (b, d) in dst.iter_mut().enumerate() {
                    let xb = &x[b * cols + k0..b * cols + k0 + n];
                    *d += buf[..n].iter().zip(xb).map(|(a, b)| a * b).sum::<f32>();
                }
                k0 += n;
                byte0 += window_bytes;
            }
        }
    });
    for (r, col) in scratch.chunks(n_tok).enumerate() {
        for (b, &v) in col.iter().enumerate() {
            out[b * rows + r] = v;
        }
    }
}

/// Rotates the first `n_rot` dims of each `head_dim`-wide head in `x` by position `pos`.
/// `inv_freq[i] = base^(-2i/n_rot)`.
pub fn rope(x: &mut [f32], head_dim: usize, pos: usize, inv_freq: &[f32], kind: RopeKind) {
    let half = inv_freq.len();
    for head in x.chunks_mut(head_dim) {
        for (i, &f) in inv_freq.iter().enumerate() {
            let (sin, cos) = (pos as f32 * f).sin_cos();
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

pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// Causal attention for one query head against cached keys/values at positions `0..=pos`,
/// with a streaming (online) softmax so no score buffer is needed.
/// `q`: [head_dim]; `k_cache`, `v_cache`: [n_ctx, kv_dim] for this layer; `out`: [head_dim].
pub fn attend(
    out: &mut [f32],
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    kv_dim: usize,
    kv_off: usize,
    pos: usize,
) {
    let hd = q.len();
    let scale = 1.0 / (hd as f32).sqrt();
    let (mut max, mut sum) = (f32::NEG_INFINITY, 0.0f32);
    out.fill(0.0);
    for t in 0..=pos {
        let k = &k_cache[t * kv_dim + kv_off..][..hd];
        let v = &v_cache[t * kv_dim + kv_off..][..hd];
        let s = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
        let new_max = max.max(s);
        let (old, w) = ((max - new_max).exp(), (s - new_max).exp());
        sum = sum * old + w;
        for (o, &vv) in out.iter_mut().zip(v) {
            *o = *o * old + w * vv;
        }
        max = new_max;
    }
    let inv = 1.0 / sum;
    out.iter_mut().for_each(|o| *o *= inv);
}
