//! Launcher for `shaders/add.wgsl` (the residual add `y += x`, and the broadcast bias add
//! `y[t] += b`) and its CPU twin [`add_cpu`]. Key: `add`.

use super::launch::{Rows, fits, grid, u32_of, variant_source};
use super::pipelines::Family;
use super::{Gpu, StepBuffer};
use crate::Result;

/// Mirrors `struct Params` of add.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    width: u32,
    y_off: u32,
    x_off: u32,
    x_stride: u32,
    rows_mode: u32,
    rows_fixed: u32,
    _pad: [u32; 2],
}

const _: () = assert!(size_of::<Params>() == 32);

const WG: u64 = 256;

/// `y[t, :] += x[t, :]` or, broadcast, `y[t, :] += b[:]`, ready to encode.
pub struct Add {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    width: u32,
    rows: Rows,
    max_dim: u32,
    _params: wgpu::Buffer,
}

impl Add {
    /// y: `[rows, width]` f32 from element `y.1`; x: `[rows, width]` from `x.1`, or with
    /// `broadcast` one row `[width]` added to every row of y. x and y are distinct buffers.
    pub fn new(
        gpu: &Gpu,
        step: &StepBuffer,
        y: (&wgpu::Buffer, u64),
        x: (&wgpu::Buffer, u64),
        width: u32,
        broadcast: bool,
        rows: Rows,
    ) -> Result<Add> {
        let key = "add";
        let pipeline = gpu.pipeline(key, Family::Auto, || variant_source(gpu, key, "add", &[], false))?;
        fits("add y buffer bytes", y.0, y.1, width as u64)?;
        fits("add x buffer bytes", x.0, x.1, width as u64)?;
        let (rows_mode, rows_fixed) = rows.params();
        let params = Params {
            width,
            y_off: u32_of("add y offset", y.1)?,
            x_off: u32_of("add x offset", x.1)?,
            x_stride: if broadcast { 0 } else { width },
            rows_mode,
            rows_fixed,
            _pad: [0; 2],
        };
        let params_buf = gpu.uniform(key, &params)?;
        let bind = gpu.bind(
            key,
            &pipeline,
            &[
                y.0.as_entire_binding(),
                x.0.as_entire_binding(),
                params_buf.as_entire_binding(),
                step.buffer().as_entire_binding(),
            ],
        )?;
        Ok(Add {
            pipeline,
            bind,
            width,
            rows,
            max_dim: gpu.caps().max_workgroups_per_dim,
            _params: params_buf,
        })
    }

    /// Records the add for a step of `n_tokens` tokens (the count in the step uniform, or more).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) {
        let [gx, gy] = grid(self.rows.count(n_tokens) as u64 * self.width as u64, WG, self.max_dim);
        if gx == 0 {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(gx, gy, 1);
    }
}

/// CPU twin of [`Add`]: `y[t, :] += x[t, :]` for every `width`-wide row of y, or with `broadcast`
/// `y[t, :] += x[0..width]` (the CPU forward pass's `add_bias`).
pub fn add_cpu(y: &mut [f32], x: &[f32], width: usize, broadcast: bool) {
    for (t, row) in y.chunks_mut(width.max(1)).enumerate() {
        let src = if broadcast { &x[..width] } else { &x[t * width..(t + 1) * width] };
        row.iter_mut().zip(src).for_each(|(v, b)| *v += b);
    }
}
