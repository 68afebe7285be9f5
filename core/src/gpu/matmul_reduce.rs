//! Launcher for `shaders/matmul_reduce.wgsl`, the second pass of the tensor-core matmul's split-K
//! (`Y[t, r] = Σ_z part[z, t, r]`), and its CPU twin [`matmul_reduce_cpu`]. Key: `matmul_reduce`.
//!
//! [`MatMul`](super::MatMul) builds one where it splits its columns: `part` is the device's shared
//! split scratch `[splits, split_tokens, rows]`, Y the matmul's output `[max_tokens, rows]` — or,
//! for a fused tensor's parts (q|k|v, gate|up: rows end to end), each part's own region
//! `[max_tokens, part rows]`, so one product serves the parts' consumers as it would separately.

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
    add: u32,
    start: [u32; 4],
    off: [u32; 4],
    width: [u32; 4],
}

const _: () = assert!(size_of::<Params>() == 64);

/// The most parts a reduce scatters its rows to.
pub const MAX_PARTS: usize = 3;

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
    /// `part`: f32 `[splits, split_tokens, rows]` from element 0, `rows` the sum of the parts';
    /// `y` (distinct from `part`): per part (its rows, its offset), a region f32
    /// `[split_tokens, part rows]` from that offset — one part for a plain tensor, up to
    /// [`MAX_PARTS`] for a fused one, in row order. `add`: add each sum to what y holds (a
    /// residual stream) instead of writing it.
    #[allow(clippy::too_many_arguments)] // buffers and sizes fixed at load, as every launcher's
    pub fn new(
        gpu: &Gpu,
        step: &StepBuffer,
        part: &wgpu::Buffer,
        y: &wgpu::Buffer,
        parts: &[(u64, u64)],
        splits: u32,
        split_tokens: u32,
        add: bool,
    ) -> Result<MatMulReduce> {
        let key = "matmul_reduce";
        let bad = |message: String| Error::GpuValidation { context: format!("preparing `{key}`"), message };
        if splits == 0 || split_tokens == 0 {
            return Err(bad(format!("{splits} splits of {split_tokens} tokens")));
        }
        if parts.is_empty() || parts.len() > MAX_PARTS || parts.iter().any(|&(r, _)| r == 0) {
            return Err(bad(format!("{} parts of rows {parts:?}", parts.len())));
        }
        let pipeline = gpu.pipeline(key, Family::Auto, || variant_source(gpu, key, key, &[], false))?;
        let rows: u64 = parts.iter().map(|&(r, _)| r).sum();
        let rows = u32_of("matmul_reduce rows", rows)?;
        fits("matmul_reduce part buffer bytes", part, 0, splits as u64 * split_tokens as u64 * rows as u64)?;
        let (mut start, mut off, mut width) = ([u32::MAX; 4], [0; 4], [0; 4]);
        let mut row = 0;
        for (k, &(r, y_off)) in parts.iter().enumerate() {
            fits("matmul_reduce y buffer bytes", y, y_off, split_tokens as u64 * r)?;
            (start[k], off[k], width[k]) = (row, u32_of("matmul_reduce y offset", y_off)?, r as u32);
            row += r as u32;
        }
        let params = Params { rows, splits, split_tokens, add: add as u32, start, off, width };
        let params_buf = gpu.uniform(key, &params)?;
        let bind = gpu.bind(
            key,
            &pipeline,
            &[
                part.as_entire_binding(),
                y.as_entire_binding(),
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

/// CPU twin of [`MatMulReduce`]: for `t < n_tokens` and row r of part k (rows `start_k..`, its
/// region at `off_k`), `y[off_k + t·rows_k + r − start_k] = Σ_z part[(z·split_tokens + t)·rows +
/// r]`, splits added in order (as the kernel does); with `add`, that sum added to y's value.
pub fn matmul_reduce_cpu(
    part: &[f32],
    y: &mut [f32],
    parts: &[(usize, usize)],
    (splits, split_tokens): (usize, usize),
    n_tokens: usize,
    add: bool,
) {
    let rows: usize = parts.iter().map(|&(r, _)| r).sum();
    let slice = split_tokens * rows;
    for t in 0..n_tokens.min(split_tokens) {
        let mut start = 0;
        for &(width, off) in parts {
            for r in 0..width {
                let e = t * rows + start + r;
                let sum = (1..splits).fold(part[e], |s, z| s + part[z * slice + e]);
                let out = &mut y[off + t * width + r];
                *out = if add { *out + sum } else { sum };
            }
            start += width;
        }
    }
}
