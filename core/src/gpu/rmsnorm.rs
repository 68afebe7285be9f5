//! Launcher for `shaders/rmsnorm.wgsl` (RMS norm of rows, the layer norms and the per-head q/k
//! norms) and its CPU twin [`rmsnorm_cpu`].
//!
//! Variants: out of place (x and y bound apart) or in place (one read_write binding, swapped in
//! from `rmsnorm_inplace.wgsl`), each reducing with subgroups (`_sg`, `rmsnorm_sg.wgsl`) or a
//! workgroup-memory tree (`_wg`). Keys: `rmsnorm_sg`, `rmsnorm_inplace_wg`, …

use super::launch::{Rows, fits, u32_of, variant_source};
use super::pipelines::Family;
use super::{Gpu, StepBuffer};
use crate::Result;
use crate::cpu::ops;

/// Mirrors `struct Params` of rmsnorm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    width: u32,
    groups: u32,
    x_off: u32,
    y_off: u32,
    eps: f32,
    rows_mode: u32,
    rows_fixed: u32,
    _pad0: u32,
}

const _: () = assert!(size_of::<Params>() == 32);

/// `y[row] = rmsnorm(x[row]) · w` for `groups` rows of `width` per token, ready to encode.
pub struct RmsNorm {
    key: String,
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    groups: u32,
    rows: Rows,
    _params: wgpu::Buffer,
}

impl RmsNorm {
    /// x: `[tokens, groups, width]` f32 from element `x_off`; w: `[width]` f32; y: the output
    /// buffer and offset, or `None` to normalize x in place. `rows` picks the tokens (see
    /// [`Rows`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        step: &StepBuffer,
        x: (&wgpu::Buffer, u64),
        w: &wgpu::Buffer,
        y: Option<(&wgpu::Buffer, u64)>,
        width: u32,
        groups: u32,
        eps: f32,
        rows: Rows,
    ) -> Result<RmsNorm> {
        let subgroups = gpu.caps().subgroups;
        let inplace = y.is_none();
        let key = format!(
            "rmsnorm{}_{}",
            if inplace { "_inplace" } else { "" },
            if subgroups { "sg" } else { "wg" }
        );
        let mut swaps = Vec::new();
        if inplace {
            swaps.push(("rmsnorm_inplace.wgsl", "io"));
        }
        if subgroups {
            swaps.push(("rmsnorm_sg.wgsl", "reduce"));
        }
        let pipeline =
            gpu.pipeline(&key, Family::Auto, || variant_source(gpu, &key, "rmsnorm", &swaps, subgroups))?;

        let row = groups as u64 * width as u64;
        fits("rmsnorm x buffer bytes", x.0, x.1, row)?;
        fits("rmsnorm w buffer bytes", w, 0, width as u64)?;
        let (y_buf, y_off) = y.unwrap_or(x);
        fits("rmsnorm y buffer bytes", y_buf, y_off, row)?;
        let (rows_mode, rows_fixed) = rows.params();
        let params = Params {
            width,
            groups,
            x_off: u32_of("rmsnorm x offset", x.1)?,
            y_off: u32_of("rmsnorm y offset", y_off)?,
            eps,
            rows_mode,
            rows_fixed,
            _pad0: 0,
        };
        let params_buf = gpu.uniform(&key, &params)?;
        let mut resources = vec![
            w.as_entire_binding(),
            params_buf.as_entire_binding(),
            step.buffer().as_entire_binding(),
            x.0.as_entire_binding(),
        ];
        if let Some((y, _)) = y {
            resources.push(y.as_entire_binding());
        }
        let bind = gpu.bind(&key, &pipeline, &resources)?;
        Ok(RmsNorm { key, pipeline, bind, groups, rows, _params: params_buf })
    }

    /// The pipeline key (`rmsnorm_inplace_sg`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Records the norm of a step of `n_tokens` tokens (the count in the step uniform, or more).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) {
        let rows = self.rows.count(n_tokens);
        if rows == 0 || self.groups == 0 {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(self.groups, rows, 1);
    }
}

/// CPU twin of [`RmsNorm`]: `y[row] = rmsnorm(x[row]) · w` for every `w.len()`-wide row of x (rows
/// of all groups and tokens lie end to end), as [`ops::rmsnorm`]. In place: [`ops::rmsnorm_heads`].
pub fn rmsnorm_cpu(x: &[f32], w: &[f32], y: &mut [f32], eps: f32) {
    let width = w.len().max(1);
    for (out, row) in y.chunks_mut(width).zip(x.chunks(width)) {
        ops::rmsnorm(out, row, w, eps);
    }
}
