//! Launcher for `shaders/argmax.wgsl` (greedy sampling on the GPU: the index of the largest
//! logit) and its CPU twin [`argmax_cpu`]. Keys: `argmax_sg`, `argmax_wg`.
//!
//! Two dispatches of one pipeline: per-workgroup bests into a partials buffer the launcher owns,
//! then one workgroup over the partials. Each has its own params uniform and bind group, made at
//! load.

use super::launch::{fits, grid, u32_of, variant_source};
use super::pipelines::Family;
use super::shaders::const_u32;
use super::{Gpu, shaders};
use crate::{Error, Result};

/// Mirrors `struct Params` of argmax.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    in_off: u32,
    out_off: u32,
    stage: u32,
}

const _: () = assert!(size_of::<Params>() == 16);

/// `out[out_off] = argmax(logits[in_off..in_off + n])` as a u32, ready to encode.
pub struct Argmax {
    key: String,
    pipeline: wgpu::ComputePipeline,
    /// Stage 0 (logits → partials) and stage 1 (partials → out).
    stages: [(wgpu::BindGroup, [u32; 2]); 2],
    _buffers: [wgpu::Buffer; 3],
}

impl Argmax {
    /// logits: `n` f32 from element `logits.1`; out: a u32 buffer, written at element `out.1`.
    pub fn new(gpu: &Gpu, logits: (&wgpu::Buffer, u64), n: u32, out: (&wgpu::Buffer, u64)) -> Result<Argmax> {
        let subgroups = gpu.caps().subgroups;
        let key = format!("argmax_{}", if subgroups { "sg" } else { "wg" });
        let swaps: &[(&str, &str)] = if subgroups { &[("argmax_sg.wgsl", "reduce")] } else { &[] };
        let pipeline =
            gpu.pipeline(&key, Family::Auto, || variant_source(gpu, &key, "argmax", swaps, subgroups))?;
        let file = shaders::source("argmax.wgsl").unwrap_or_default();
        let per_group = match (const_u32(file, "WG"), const_u32(file, "PER")) {
            (Some(wg), Some(per)) if wg * per > 0 => (wg * per) as u64,
            _ => {
                return Err(Error::GpuValidation {
                    context: format!("preparing `{key}`"),
                    message: "argmax.wgsl lacks `const WG` or `const PER`".into(),
                });
            }
        };
        fits("argmax logits buffer bytes", logits.0, logits.1, n as u64)?;
        fits("argmax out buffer bytes", out.0, out.1, 1)?;
        let first = grid(n as u64, per_group, gpu.caps().max_workgroups_per_dim);
        let partials = (first[0] as u64 * first[1] as u64).max(1);
        let partial = gpu.storage("argmax partials", partials * 8)?;
        let (in_off, out_off) =
            (u32_of("argmax logits offset", logits.1)?, u32_of("argmax out offset", out.1)?);
        let p0 = gpu.uniform(&key, &Params { n, in_off, out_off, stage: 0 })?;
        let p1 = gpu.uniform(&key, &Params { n: partials as u32, in_off, out_off, stage: 1 })?;
        let bind = |params: &wgpu::Buffer| {
            gpu.bind(
                &key,
                &pipeline,
                &[
                    logits.0.as_entire_binding(),
                    partial.as_entire_binding(),
                    out.0.as_entire_binding(),
                    params.as_entire_binding(),
                ],
            )
        };
        let stages = [(bind(&p0)?, first), (bind(&p1)?, [1, 1])];
        Ok(Argmax { key, pipeline, stages, _buffers: [partial, p0, p1] })
    }

    /// The pipeline key (`argmax_sg`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Records both dispatches; the logit count is fixed, so `_n_tokens` is ignored.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, _n_tokens: u32) {
        pass.set_pipeline(&self.pipeline);
        for (bind, [gx, gy]) in &self.stages {
            pass.set_bind_group(0, bind, &[]);
            pass.dispatch_workgroups(*gx, *gy, 1);
        }
    }
}

/// CPU twin of [`Argmax`]: the index of the largest value, the lowest on ties; NaN and -inf are
/// never picked, and 0 comes back when nothing else is there (as `sample::argmax`).
pub fn argmax_cpu(logits: &[f32]) -> u32 {
    let mut best = (0u32, f32::NEG_INFINITY);
    for (i, &v) in logits.iter().enumerate() {
        if v > best.1 {
            best = (i as u32, v);
        }
    }
    best.0
}
