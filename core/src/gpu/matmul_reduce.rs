//! Launcher for `shaders/matmul_reduce.wgsl`, the second pass of the tensor-core matmul's split-K
//! (`Y[t, r] = Σ_z part[z, t, r]`), and its CPU twin [`matmul_reduce_cpu`]. Key: `matmul_reduce`.
//!
//! [`MatMul`](super::MatMul) builds one where it splits its columns: `part` is the device's shared
//! split scratch `[splits, split_tokens, rows]`, Y the matmul's output `[max_tokens, rows]`.

use super::launch::{fits, grid, u32_of, variant_source};
use super::pipelines::Family;
use super::{Gpu, StepBuffer};
use crate::{Error, Result};

/// Mirrors `struct Params` of matmul_reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    splits: u32,
    split_tokens: u32,
    y_off: u32,
}

const _: () = assert!(size_of::<Params>() == 16);

const WG: u64 = 256;

/// `Y[t, :] = Σ_z part[z, t, :]` for the step's tokens (at most `split_tokens`), ready to encode.
pub struct MatMulReduce {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    rows: u32,
    split_tokens: u32,
    max_dim: u32,
    _params: wgpu::Buffer,
}

impl MatMulReduce {
    /// `part`: f32 `[splits, split_tokens, rows]` from element 0; `y`: f32
    /// `[y.1 + split_tokens · rows]` (distinct buffers).
    pub fn new(
        gpu: &Gpu,
        step: &StepBuffer,
        part: &wgpu::Buffer,
        y: (&wgpu::Buffer, u64),
        rows: u32,
        splits: u32,
        split_tokens: u32,
    ) -> Result<MatMulReduce> {
        let key = "matmul_reduce";
        if splits == 0 || split_tokens == 0 {
            return Err(Error::GpuValidation {
                context: format!("preparing `{key}`"),
                message: format!("{splits} splits of {split_tokens} tokens"),
            });
        }
        let pipeline = gpu.pipeline(key, Family::Auto, || variant_source(gpu, key, key, &[], false))?;
        let slice = split_tokens as u64 * rows as u64;
        fits("matmul_reduce part buffer bytes", part, 0, splits as u64 * slice)?;
        fits("matmul_reduce y buffer bytes", y.0, y.1, slice)?;
        let params = Params { rows, splits, split_tokens, y_off: u32_of("matmul_reduce y offset", y.1)? };
        let params_buf = gpu.uniform(key, &params)?;
        let bind = gpu.bind(
            key,
            &pipeline,
            &[
                part.as_entire_binding(),
                y.0.as_entire_binding(),
                params_buf.as_entire_binding(),
                step.buffer().as_entire_binding(),
            ],
        )?;
        Ok(MatMulReduce {
            pipeline,
            bind,
            rows,
            split_tokens,
            max_dim: gpu.caps().max_workgroups_per_dim,
            _params: params_buf,
        })
    }

    /// Records the sum for a step of `n_tokens` tokens (the step uniform's count; at most
    /// `split_tokens` are summed).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) {
        let n = n_tokens.min(self.split_tokens) as u64 * self.rows as u64;
        let [gx, gy] = grid(n, WG, self.max_dim);
        if gx == 0 {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(gx, gy, 1);
    }
}

/// CPU twin of [`MatMulReduce`]: `y[t·rows + r] = Σ_z part[(z·split_tokens + t)·rows + r]` for
/// `t < n_tokens`, splits added in order (as the kernel does).
pub fn matmul_reduce_cpu(
    part: &[f32],
    y: &mut [f32],
    rows: usize,
    splits: usize,
    split_tokens: usize,
    n_tokens: usize,
) {
    let slice = split_tokens * rows;
    for (e, out) in y.iter_mut().take(n_tokens.min(split_tokens) * rows).enumerate() {
        *out = (1..splits).fold(part[e], |s, z| s + part[z * slice + e]);
    }
}
