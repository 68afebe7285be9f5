//! Launcher for `shaders/softcap.wgsl` (Gemma's final logit soft-capping, in place) and its CPU
//! twin [`softcap_cpu`] (the CPU's `softcap`). Key: `softcap`.

use super::Gpu;
use super::launch::{fits, grid, u32_of, variant_source};
use super::pipelines::Family;
use crate::Result;
use crate::cpu::ops;

/// Mirrors `struct Params` of softcap.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    y_off: u32,
    cap: f32,
    inv_cap: f32,
}

const _: () = assert!(size_of::<Params>() == 16);

const WG: u64 = 256;

/// `y = cap · tanh(y / cap)` over `n` elements, ready to encode.
pub struct Softcap {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    grid: [u32; 2],
    _params: wgpu::Buffer,
}

impl Softcap {
    /// y: `n` f32 from element `y.1`, capped in place.
    pub fn new(gpu: &Gpu, y: (&wgpu::Buffer, u64), n: u32, cap: f32) -> Result<Softcap> {
        let key = "softcap";
        let pipeline = gpu.pipeline(key, Family::Auto, || variant_source(gpu, key, "softcap", &[], false))?;
        fits("softcap buffer bytes", y.0, y.1, n as u64)?;
        let params = Params { n, y_off: u32_of("softcap offset", y.1)?, cap, inv_cap: 1.0 / cap };
        let params_buf = gpu.uniform(key, &params)?;
        let bind = gpu.bind(key, &pipeline, &[y.0.as_entire_binding(), params_buf.as_entire_binding()])?;
        let grid = grid(n as u64, WG, gpu.caps().max_workgroups_per_dim);
        Ok(Softcap { pipeline, bind, grid, _params: params_buf })
    }

    /// Records the capping; the element count is fixed, so `_n_tokens` is ignored.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, _n_tokens: u32) {
        let [gx, gy] = self.grid;
        if gx == 0 {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(gx, gy, 1);
    }
}

/// CPU twin of [`Softcap`]: [`ops::softcap`].
pub fn softcap_cpu(y: &mut [f32], cap: f32) {
    ops::softcap(y, cap);
}
