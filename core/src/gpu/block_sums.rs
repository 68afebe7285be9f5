//! Launcher for `shaders/block_sums.wgsl` and its CPU twin [`block_sums_cpu`]. Key:
//! `block_sums`.
//!
//! The CPU's (and llama.cpp's) Q4_1 and Q5_1 dot products add, per 32-element block, `m·s`: the
//! weight block's minimum times the Q8_1 activation block's sum `s`, which the quantizer stores
//! rounded to f16. The tiled matmul multiplies the decoded weights with the f32 input `d·q` and so
//! adds `m·Σ d·q` instead — off by half an f16 ulp of s per block, a thousand times the f32
//! rounding of the rest of the product, and enough to move SmolLM2's logits by KL ~5e-3 over a
//! prompt. [`BlockSums`] adds the difference to the matmul's output:
//! `Y[t, r] += Σ_b m[r, b]·(s[t, b] − d[t, b]·Σ_j q[t, b, j])`, from the packed levels and scale
//! words act_quant writes for Q8_1 (`act_quant.rs`). The mat-vec kernel of Q4_1 multiplies the
//! levels and adds `m·s` itself and needs none of this.

use half::f16;

use super::launch::u32_of;
use super::params::{PieceParams, check_fits};
use super::pipelines::Family;
use super::shaders::{const_u32, source};
use super::{Gpu, GpuTensor, StepBuffer, packed_stride};
use crate::quant::{self, GgmlType};
use crate::{Error, Result};

/// Mirrors `struct Params` of block_sums.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n_rows: u32,
    cols: u32,
    row_bytes: u32,
    block_bytes: u32,
    q_off: u32,
    q_stride: u32,
    y_off: u32,
    y_stride: u32,
}

const _: () = assert!(size_of::<Params>() == 32);

/// Whether a matmul of weights of type `ty` needs a [`BlockSums`] after it to give the CPU's
/// product.
pub fn needs_block_sums(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1)
}

/// `Y[t, r] += Σ_b m[r, b]·(s[t, b] − d[t, b]·Σq[t, b])` for one Q4_1 or Q5_1 tensor, ready to
/// encode.
pub struct BlockSums {
    pipeline: wgpu::ComputePipeline,
    /// Per piece: its bind group and row groups.
    pieces: Vec<(wgpu::BindGroup, u32)>,
    max_tokens: u32,
    _params: PieceParams,
}

impl BlockSums {
    /// xq: the packed Q8_1 input (`[max_tokens, packed_stride(cols)]` words from word `q_off`);
    /// y: the matmul's output `[max_tokens, rows]` from element `y_off`.
    pub fn new(
        gpu: &Gpu,
        w: &GpuTensor,
        xq: (&wgpu::Buffer, u64),
        y: (&wgpu::Buffer, u64),
        step: &StepBuffer,
        max_tokens: u32,
    ) -> Result<BlockSums> {
        let key = "block_sums";
        if !needs_block_sums(w.ty) {
            return Err(Error::UnsupportedType { ty: w.ty, op: "GPU block sums" });
        }
        let kernel = source("block_sums.wgsl").ok_or_else(|| Error::GpuValidation {
            context: format!("preparing `{key}`"),
            message: "block_sums.wgsl is not in shaders::ALL".into(),
        })?;
        let wg = const_u32(kernel, "WG").filter(|&v| v > 0).unwrap_or(64);
        let pipeline = gpu.pipeline(key, Family::Auto, || Ok(kernel.into()))?;
        let cols = w.cols as u32;
        let q_stride = packed_stride(cols);
        check_fits("block_sums xq buffer bytes", xq.0, xq.1, q_stride as u64 * max_tokens as u64)?;
        check_fits("block_sums y buffer bytes", y.0, y.1, max_tokens as u64 * w.rows)?;
        let max_dim = gpu.caps().max_workgroups_per_dim as u64;
        let mut params = Vec::new();
        let mut groups = Vec::new();
        for piece in &w.pieces {
            let g = piece.rows.div_ceil(wg as u64);
            if g > max_dim || max_tokens as u64 > max_dim {
                return Err(Error::GpuTensorTooLarge {
                    name: w.name.clone(),
                    bytes: w.gpu_bytes(),
                    why: format!(
                        "block sums of {g} row groups × {max_tokens} tokens exceed {max_dim} workgroups"
                    ),
                });
            }
            groups.push(g as u32);
            params.push(Params {
                n_rows: piece.rows as u32,
                cols,
                row_bytes: w.row_bytes as u32,
                block_bytes: w.ty.type_size() as u32,
                q_off: u32_of("block_sums xq offset", xq.1)?,
                q_stride,
                y_off: u32_of("block_sums y offset", y.1 + piece.first_row)?,
                y_stride: w.rows as u32,
            });
        }
        let params = PieceParams::new(gpu, key, &params)?;
        let pieces = w
            .pieces
            .iter()
            .zip(groups)
            .enumerate()
            .map(|(i, (piece, g))| {
                let bind = gpu.bind(
                    key,
                    &pipeline,
                    &[
                        piece.binding(w.row_bytes),
                        xq.0.as_entire_binding(),
                        y.0.as_entire_binding(),
                        params.binding(i),
                        step.buffer().as_entire_binding(),
                    ],
                )?;
                Ok((bind, g))
            })
            .collect::<Result<_>>()?;
        Ok(BlockSums { pipeline, pieces, max_tokens, _params: params })
    }

    /// Records the correction for `n_tokens` tokens (the step buffer's count): one dispatch per
    /// piece of the weight tensor.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) {
        let gy = n_tokens.min(self.max_tokens);
        if gy == 0 {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        for (bind, gx) in &self.pieces {
            pass.set_bind_group(0, bind, &[]);
            pass.dispatch_workgroups(*gx, gy, 1);
        }
    }
}

/// CPU twin of [`BlockSums`]: `y[t, r] += Σ_b m[r, b]·(s[t, b] − d[t, b]·Σq[t, b])` for the rows
/// of `x` (`[n_tokens, cols]` f32, quantized here to Q8_1 by the CPU's quantizer) and every row
/// of `w` (GGUF bytes of a Q4_1 or Q5_1 tensor); y: `[n_tokens, rows]`.
pub fn block_sums_cpu(ty: GgmlType, w: &[u8], x: &[f32], cols: usize, y: &mut [f32]) -> Result<()> {
    if !needs_block_sums(ty) {
        return Err(Error::UnsupportedType { ty, op: "block sums" });
    }
    let row_bytes = ty.row_bytes(cols as u64).ok_or(Error::PartialBlockElements {
        ty,
        len: cols,
        block_elems: ty.block_size(),
    })? as usize;
    if cols == 0 || !x.len().is_multiple_of(cols) || row_bytes == 0 || !w.len().is_multiple_of(row_bytes) {
        return Err(Error::LengthMismatch { what: "block sums x", expected: cols, got: x.len() });
    }
    let (rows, n_tokens) = (w.len() / row_bytes, x.len() / cols);
    if y.len() < rows * n_tokens {
        return Err(Error::LengthMismatch { what: "block sums y", expected: rows * n_tokens, got: y.len() });
    }
    let mut bytes = Vec::new();
    let f16_at = |b: &[u8], i: usize| f16::from_le_bytes([b[i], b[i + 1]]).to_f32();
    for (t, xs) in x.chunks(cols).enumerate() {
        quant::quantize_activations(ty, xs, &mut bytes)?;
        // Q8_1 blocks: f16 d, f16 s, 32 levels.
        let corr: Vec<f32> = bytes
            .chunks(36)
            .map(|b| {
                let sum: i32 = b[4..36].iter().map(|&q| q as i8 as i32).sum();
                f16_at(b, 2) - f16_at(b, 0) * sum as f32
            })
            .collect();
        for (r, out) in y[t * rows..(t + 1) * rows].iter_mut().enumerate() {
            let row = &w[r * row_bytes..(r + 1) * row_bytes];
            let fix: f32 = row.chunks(ty.type_size()).zip(&corr).map(|(blk, c)| f16_at(blk, 2) * c).sum();
            *out += fix;
        }
    }
    Ok(())
}
