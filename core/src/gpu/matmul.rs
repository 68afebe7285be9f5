//! Launcher for `shaders/matmul.wgsl`, the tiled product of prefill and batched decode
//! (`Y[t, r] = Σ_c W[r, c] · X[t, c]` with W in its GGUF encoding, any type with a decoder), and
//! its CPU twin [`matmul_cpu`].
//!
//! A [`MatMul`] is built once per (weight tensor, X, Y) at load: the pipeline `matmul_<type>` (the
//! type's decoder + the kernel), the parameters of every piece of a row-split tensor and their
//! bind groups. Every piece writes its rows into the same Y (`[tokens, w.rows]`), so a split
//! tensor's output is one matrix. `encode` sizes the grid's token side from the step's count.
//!
//! Two kernels, one interface: where the device has cooperative matrices ([`Caps::coop_matrix`],
//! native Vulkan/Metal GPUs with 16×16×16 f16 tiles) the pipeline is `matmul_coop_<type>`
//! (`shaders/matmul_coop.wgsl`: the tensor cores, f16 operands, f32 sums, 128 × 64 tiles);
//! everywhere else `matmul_<type>` (`shaders/matmul.wgsl`: f32 throughout, nothing optional —
//! no subgroups, no f16, 16 KiB of workgroup memory — so it runs on every device).
//! [`GpuOptions::no_coop_matrix`](super::GpuOptions) forces the portable one.
//!
//! [`Caps::coop_matrix`]: super::Caps::coop_matrix

use super::params::{PieceParams, check_fits};
use super::pipelines::Family;
use super::shaders::{const_u32, dequant_stem, source, with_decoder};
use super::{Gpu, GpuTensor, StepBuffer};
use crate::quant::{self, GgmlType};
use crate::{Error, Result};

/// Mirrors `struct Params` of matmul.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n_rows: u32,
    cols: u32,
    row_bytes: u32,
    x_off: u32,
    y_off: u32,
    y_stride: u32,
    max_tokens: u32,
    _pad: u32,
}

const _: () = assert!(size_of::<Params>() == 32);

/// `Y[y_off + t·w.rows + r] = Σ_c W[r, c] · X[x_off + t·cols + c]` for the step's tokens, ready
/// to encode.
pub struct MatMul {
    key: String,
    pipeline: wgpu::ComputePipeline,
    /// Per piece: its bind group and its workgroups along the rows.
    pieces: Vec<(wgpu::BindGroup, u32)>,
    /// Tokens per workgroup tile (the kernel's `const TN`).
    tile_tokens: u32,
    max_tokens: u32,
    _params: PieceParams,
}

impl MatMul {
    /// `x`: f32 `[x_off + max_tokens · w.cols]`; `y`: f32 `[y_off + max_tokens · w.rows]` (distinct
    /// buffers; offsets in elements).
    #[allow(clippy::too_many_arguments)] // buffers and sizes fixed at load, as every launcher's
    pub fn new(
        gpu: &Gpu,
        w: &GpuTensor,
        x: &wgpu::Buffer,
        x_off: u64,
        y: &wgpu::Buffer,
        y_off: u64,
        step: &StepBuffer,
        max_tokens: u32,
    ) -> Result<MatMul> {
        let unsupported = || Error::UnsupportedType { ty: w.ty, op: "GPU matmul" };
        let stem = dequant_stem(w.ty).ok_or_else(unsupported)?;
        let kernel_stem = if gpu.caps().coop_matrix { "matmul_coop" } else { "matmul" };
        let key = format!("{kernel_stem}_{}", &stem["dequant_".len()..]);
        let kernel = source(&format!("{kernel_stem}.wgsl")).ok_or_else(|| Error::GpuValidation {
            context: format!("preparing `{key}`"),
            message: format!("{kernel_stem}.wgsl is not in shaders::ALL"),
        })?;
        let bad_kernel =
            |m: &str| Error::GpuValidation { context: format!("preparing `{key}`"), message: m.into() };
        let tile_rows =
            const_u32(kernel, "TM").filter(|&t| t > 0).ok_or_else(|| bad_kernel("no `const TM`"))?;
        let tile_tokens =
            const_u32(kernel, "TN").filter(|&t| t > 0).ok_or_else(|| bad_kernel("no `const TN`"))?;
        let pipeline =
            gpu.pipeline(&key, Family::Auto, || with_decoder(kernel, w.ty).ok_or_else(unsupported))?;

        let max_dim = gpu.caps().max_workgroups_per_dim as u64;
        let too_large =
            |why: String| Error::GpuTensorTooLarge { name: w.name.clone(), bytes: w.gpu_bytes(), why };
        if max_tokens == 0 || (max_tokens as u64).div_ceil(tile_tokens as u64) > max_dim {
            return Err(too_large(format!("matmul for {max_tokens} tokens")));
        }
        check_fits("matmul x buffer bytes", x, x_off, max_tokens as u64 * w.cols)?;
        check_fits("matmul y buffer bytes", y, y_off, max_tokens as u64 * w.rows)?;

        let mut params = Vec::new();
        let mut groups = Vec::new();
        for piece in &w.pieces {
            let g = piece.rows.div_ceil(tile_rows as u64);
            if g > max_dim {
                return Err(too_large(format!("{g} row tiles exceed {max_dim} workgroups")));
            }
            groups.push(g as u32);
            params.push(Params {
                n_rows: piece.rows as u32,
                cols: w.cols as u32,
                row_bytes: w.row_bytes as u32,
                x_off: x_off as u32,
                y_off: (y_off + piece.first_row) as u32,
                y_stride: w.rows as u32,
                max_tokens,
                _pad: 0,
            });
        }
        let params = PieceParams::new(gpu, &key, &params)?;
        let pieces = w
            .pieces
            .iter()
            .zip(groups)
            .enumerate()
            .map(|(i, (piece, g))| {
                let bind = gpu.bind(
                    &key,
                    &pipeline,
                    &[
                        piece.binding(w.row_bytes),
                        x.as_entire_binding(),
                        y.as_entire_binding(),
                        params.binding(i),
                        step.buffer().as_entire_binding(),
                    ],
                )?;
                Ok((bind, g))
            })
            .collect::<Result<_>>()?;
        Ok(MatMul { key, pipeline, pieces, tile_tokens, max_tokens, _params: params })
    }

    /// The pipeline key (`matmul_q4_k`, or `matmul_coop_q4_k` on the tensor cores).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Records the product for `n_tokens` tokens (the step buffer's count; at most `max_tokens`):
    /// one dispatch per piece of the weight tensor.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) {
        let gy = n_tokens.min(self.max_tokens).div_ceil(self.tile_tokens);
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

/// CPU twin of [`MatMul`]: `Y[t, r] = Σ_c W[r, c] · X[t, c]` for `n_tokens` rows of `x`
/// (`[n_tokens, cols]`) and every row of `w` (GGUF bytes of type `ty`); returns Y as
/// `[n_tokens, rows]`, one [`quant::dot`] per (token, row).
pub fn matmul_cpu(ty: GgmlType, w: &[u8], x: &[f32], n_tokens: usize, cols: usize) -> Result<Vec<f32>> {
    let row_bytes = ty.row_bytes(cols as u64).ok_or(Error::PartialBlockElements {
        ty,
        len: cols,
        block_elems: ty.block_size(),
    })? as usize;
    if x.len() != n_tokens * cols {
        return Err(Error::LengthMismatch { what: "matmul x", expected: n_tokens * cols, got: x.len() });
    }
    if row_bytes == 0 || !w.len().is_multiple_of(row_bytes) {
        return Err(Error::PartialBlock { ty, len: w.len(), block_bytes: row_bytes.max(1) });
    }
    let rows = w.len() / row_bytes;
    let mut y = vec![0f32; n_tokens * rows];
    for (t, out) in y.chunks_exact_mut(rows.max(1)).enumerate() {
        let xt = &x[t * cols..(t + 1) * cols];
        for (r, o) in out.iter_mut().enumerate() {
            *o = quant::dot(ty, &w[r * row_bytes..(r + 1) * row_bytes], xt)?;
        }
    }
    Ok(y)
}
