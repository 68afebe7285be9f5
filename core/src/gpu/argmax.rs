//! Launcher for `shaders/argmax.wgsl` (greedy sampling on the GPU: the index of the largest
//! logit of each row) and its CPU twin [`argmax_cpu`]. Keys: `argmax_sg`, `argmax_wg`.
//!
//! Two dispatches of one pipeline, whatever the rows: per-workgroup bests of every row into a
//! partials buffer the launcher owns, then one workgroup per row over its partials. Each has its
//! own params uniform and bind group, made at load. (A step of 64 outputs took 128 dispatches
//! when each row had its own; 0.55 ms of a 64-sequence step on the H100.)

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
    in_stride: u32,
    groups: u32,
    _pad: [u32; 2],
}

const _: () = assert!(size_of::<Params>() == 32);

/// `out[out_off + r] = argmax(logits[in_off + r·n..][..n])` as a u32 for each row r of a step
/// (at most `max_rows`), ready to encode.
pub struct Argmax {
    key: String,
    pipeline: wgpu::ComputePipeline,
    /// Stage 0 (logits → partials) and stage 1 (partials → out), each with its grid of one row.
    stages: [(wgpu::BindGroup, [u32; 2]); 2],
    max_rows: u32,
    _buffers: [wgpu::Buffer; 3],
}

impl Argmax {
    /// logits: rows of `n` f32, end to end from element `logits.1`; out: a u32 buffer, row r's
    /// index written at element `out.1 + r`; `max_rows`: the most rows a step encodes.
    pub fn new(
        gpu: &Gpu,
        logits: (&wgpu::Buffer, u64),
        n: u32,
        out: (&wgpu::Buffer, u64),
        max_rows: u32,
    ) -> Result<Argmax> {
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
        let max_rows = max_rows.max(1);
        if max_rows > gpu.caps().max_workgroups_per_dim {
            return Err(Error::GpuKernelShape {
                kernel: "argmax",
                why: format!("{max_rows} rows in one step"),
            });
        }
        fits("argmax logits buffer bytes", logits.0, logits.1, n as u64 * max_rows as u64)?;
        fits("argmax out buffer bytes", out.0, out.1, max_rows as u64)?;
        let first = grid(n as u64, per_group, gpu.caps().max_workgroups_per_dim);
        // Every workgroup of a row's grid writes a partial, those past its logits too.
        let groups = (first[0] as u64 * first[1] as u64).max(1);
        let partial = gpu.storage("argmax partials", groups * max_rows as u64 * 8)?;
        let (in_off, out_off) =
            (u32_of("argmax logits offset", logits.1)?, u32_of("argmax out offset", out.1)?);
        let groups = u32_of("argmax partials per row", groups)?;
        let params = |stage| Params { n, in_off, out_off, stage, in_stride: n, groups, _pad: [0; 2] };
        let p0 = gpu.uniform(&key, &params(0))?;
        let p1 = gpu.uniform(&key, &params(1))?;
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
        Ok(Argmax { key, pipeline, stages, max_rows, _buffers: [partial, p0, p1] })
    }

    /// The pipeline key (`argmax_sg`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Records both dispatches over the first `rows` rows (at most `max_rows`; none for 0).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, rows: u32) {
        let rows = rows.min(self.max_rows);
        if rows == 0 {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        for (bind, [gx, gy]) in &self.stages {
            pass.set_bind_group(0, bind, &[]);
            pass.dispatch_workgroups(*gx, *gy, rows);
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
