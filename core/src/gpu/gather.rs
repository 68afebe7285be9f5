//! Launcher for `shaders/gather.wgsl` (rows of an f32 matrix copied in a table's order: the output
//! head's rows of the step) and its CPU twin [`gather_cpu`]. Key: `gather`.

use super::launch::{fits, grid, u32_of, variant_source};
use super::pipelines::Family;
use super::{Gpu, StepBuffer};
use crate::Result;

/// Mirrors `struct Params` of gather.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    width: u32,
    src_off: u32,
    dst_off: u32,
    _pad: u32,
}

const _: () = assert!(size_of::<Params>() == 16);

const WG: u64 = 256;

/// `dst[i, :] = src[rows[i], :]` for the step's rows, ready to encode.
pub struct Gather {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    width: u32,
    max_dim: u32,
    _params: wgpu::Buffer,
}

impl Gather {
    /// src: f32 rows of `width` from element `src.1`; dst: `[max_rows, width]` f32 from element
    /// `dst.1`; rows: u32 row indices of src, one per row of dst. `step` counts the rows copied.
    pub fn new(
        gpu: &Gpu,
        step: &StepBuffer,
        rows: &wgpu::Buffer,
        src: (&wgpu::Buffer, u64),
        dst: (&wgpu::Buffer, u64),
        width: u32,
        max_rows: u32,
    ) -> Result<Gather> {
        let key = "gather";
        let pipeline = gpu.pipeline(key, Family::Auto, || variant_source(gpu, key, "gather", &[], false))?;
        fits("gather src buffer bytes", src.0, src.1, width as u64)?;
        fits("gather dst buffer bytes", dst.0, dst.1, max_rows as u64 * width as u64)?;
        fits("gather rows buffer bytes", rows, 0, max_rows as u64)?;
        let params = Params {
            width,
            src_off: u32_of("gather src offset", src.1)?,
            dst_off: u32_of("gather dst offset", dst.1)?,
            _pad: 0,
        };
        let params_buf = gpu.uniform(key, &params)?;
        let bind = gpu.bind(
            key,
            &pipeline,
            &[
                src.0.as_entire_binding(),
                dst.0.as_entire_binding(),
                rows.as_entire_binding(),
                params_buf.as_entire_binding(),
                step.buffer().as_entire_binding(),
            ],
        )?;
        Ok(Gather { pipeline, bind, width, max_dim: gpu.caps().max_workgroups_per_dim, _params: params_buf })
    }

    /// Records the copy of `n_rows` rows (the count in the step uniform, or more).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_rows: u32) {
        let [gx, gy] = grid(n_rows as u64 * self.width as u64, WG, self.max_dim);
        if gx == 0 {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(gx, gy, 1);
    }
}

/// CPU twin of [`Gather`]: `[rows.len(), width]`, row i a copy of row `rows[i]` of src (zeros
/// where src has no such row).
pub fn gather_cpu(src: &[f32], rows: &[u32], width: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows.len() * width];
    for (dst, &r) in out.chunks_mut(width.max(1)).zip(rows) {
        if let Some(row) = src.get(r as usize * width..(r as usize + 1) * width) {
            dst.copy_from_slice(row);
        }
    }
    out
}
