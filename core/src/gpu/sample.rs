//! Launcher for `shaders/sample.wgsl` (sampling on the GPU: the token a [`Draw`] picks from a
//! row of logits — top-k, top-p, min-p, temperature, the uniform draw) and its CPU twin
//! [`sample_cpu`] (`sample::pick`). Key: `sample`.
//!
//! One dispatch for all of a step's output rows, one workgroup each; a row's draw comes from a
//! small storage buffer the launcher owns and [`Sample::write`] fills before the step is
//! submitted (rows that do not sample get top-k 0 and are left alone).

use super::launch::{fits, u32_of, variant_source};
use super::pipelines::Family;
use super::shaders::{const_u32, source};
use super::{Gpu, StepBuffer};
use crate::sample::{DRAW_TOP_K_MAX, Draw};
use crate::{Error, Result};

/// Mirrors `struct Params` of sample.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n_vocab: u32,
    logits_off: u32,
    token_off: u32,
    _pad: u32,
}

/// Mirrors `struct Draw` of sample.wgsl: one row's draw (top_k 0: the row does not sample).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct RowDraw {
    top_k: u32,
    top_p: f32,
    min_p: f32,
    temperature: f32,
    r: f32,
    _pad: [u32; 3],
}

const _: () = assert!(size_of::<Params>() == 16 && size_of::<RowDraw>() == 32);

impl From<&Draw> for RowDraw {
    fn from(d: &Draw) -> RowDraw {
        RowDraw {
            top_k: d.top_k,
            top_p: d.top_p,
            min_p: d.min_p,
            temperature: d.temperature,
            r: d.r,
            _pad: [0; 3],
        }
    }
}

/// `token[token_off + row]` = the token row `row`'s draw picks from its logits, for the output
/// rows of a step, ready to encode.
pub struct Sample {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    draws: wgpu::Buffer,
    max_rows: u32,
    /// What [`Sample::write`] uploads, reused.
    staged: Vec<RowDraw>,
    _params: wgpu::Buffer,
}

impl Sample {
    /// logits: `[max_rows, n_vocab]` f32 from element `logits.1`; token: u32 from element
    /// `token.1`, one per row. `step` counts the rows of a step (the output head's step).
    pub fn new(
        gpu: &Gpu,
        step: &StepBuffer,
        logits: (&wgpu::Buffer, u64),
        n_vocab: u32,
        token: (&wgpu::Buffer, u64),
        max_rows: u32,
    ) -> Result<Sample> {
        let key = "sample";
        let file = source("sample.wgsl").unwrap_or_default();
        if const_u32(file, "K") != Some(DRAW_TOP_K_MAX as u32) {
            return Err(Error::GpuValidation {
                context: format!("preparing `{key}`"),
                message: format!("sample.wgsl's `const K` is not sample::DRAW_TOP_K_MAX ({DRAW_TOP_K_MAX})"),
            });
        }
        let pipeline = gpu.pipeline(key, Family::Auto, || variant_source(gpu, key, "sample", &[], false))?;
        fits("sample logits buffer bytes", logits.0, logits.1, max_rows as u64 * n_vocab as u64)?;
        fits("sample token buffer bytes", token.0, token.1, max_rows as u64)?;
        let params = Params {
            n_vocab,
            logits_off: u32_of("sample logits offset", logits.1)?,
            token_off: u32_of("sample token offset", token.1)?,
            _pad: 0,
        };
        let params_buf = gpu.uniform(key, &params)?;
        let draws = gpu.storage("sample draws", max_rows.max(1) as u64 * size_of::<RowDraw>() as u64)?;
        let bind = gpu.bind(
            key,
            &pipeline,
            &[
                logits.0.as_entire_binding(),
                token.0.as_entire_binding(),
                draws.as_entire_binding(),
                params_buf.as_entire_binding(),
                step.buffer().as_entire_binding(),
            ],
        )?;
        Ok(Sample { pipeline, bind, draws, max_rows, staged: Vec::new(), _params: params_buf })
    }

    /// Uploads the draws of a step's output rows (`None`: the row does not sample); rows past
    /// `max_rows` are ignored. Returns whether any row samples.
    pub fn write<'d>(&mut self, gpu: &Gpu, rows: impl IntoIterator<Item = Option<&'d Draw>>) -> bool {
        self.staged.clear();
        let rows = rows.into_iter().take(self.max_rows as usize);
        self.staged.extend(rows.map(|d| d.map(RowDraw::from).unwrap_or_default()));
        let any = self.staged.iter().any(|d| d.top_k > 0);
        if any {
            gpu.queue().write_buffer(&self.draws, 0, bytemuck::cast_slice(&self.staged));
        }
        any
    }

    /// Records the sampling of `n_rows` rows (those [`Sample::write`] gave a draw).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_rows: u32) {
        let n = n_rows.min(self.max_rows);
        if n == 0 {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(n, 1, 1);
    }
}

/// CPU twin of [`Sample`]: the token `draw` picks from one row of logits (`sample::pick`).
pub fn sample_cpu(logits: &[f32], draw: &Draw) -> u32 {
    crate::sample::pick(logits, draw)
}
