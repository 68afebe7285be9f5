//! Launcher for `shaders/sample.wgsl` (sampling on the GPU: the token a [`Draw`] picks from a
//! row of logits — top-k, top-p, min-p, temperature, the uniform draw) and its CPU twin
//! [`sample_cpu`] (`sample::pick`). Key: `sample`.
//!
//! Four dispatches of one pipeline for all of a step's output rows: three over chunks of every
//! row (its maximum, the ladder of counts below it, the candidate list), then one workgroup per
//! row (see the kernel's header); before them a fifth, one workgroup per row, where a draw has
//! logit adjustments (bias, penalties: `sample::Adjustments`), applies them to the logits in
//! place. A row's draw and its adjusted tokens come from small storage buffers the launcher owns
//! and [`Sample::write`] fills before the step is submitted (rows that do not sample get top-k 0
//! and are left alone); the rows' meeting words and candidate lists are scratch buffers it owns
//! too, which the last stage leaves zeroed.

use super::launch::{fits, u32_of, variant_source};
use super::pipelines::Family;
use super::shaders::{const_u32, source};
use super::{Gpu, StepBuffer};
use crate::sample::{DRAW_ADJUST_MAX, DRAW_TOP_K_MAX, Draw};
use crate::{Error, Result};

/// Mirrors `struct Params` of sample.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n_vocab: u32,
    logits_off: u32,
    token_off: u32,
    stage: u32,
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
    n_adjust: u32,
    repeat_penalty: f32,
    frequency_penalty: f32,
    presence_penalty: f32,
    count_fed: u32,
    _pad: [u32; 2],
}

/// Mirrors `struct Adjust` of sample.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct RowAdjust {
    id: u32,
    biased: u32,
    bias: f32,
    n: u32,
}

const _: () =
    assert!(size_of::<Params>() == 16 && size_of::<RowDraw>() == 48 && size_of::<RowAdjust>() == 16);

impl From<&Draw> for RowDraw {
    fn from(d: &Draw) -> RowDraw {
        let a = &d.adjust;
        RowDraw {
            top_k: d.top_k,
            top_p: d.top_p,
            min_p: d.min_p,
            temperature: d.temperature,
            r: d.r,
            n_adjust: a.as_slice().len() as u32,
            repeat_penalty: a.repeat_penalty,
            frequency_penalty: a.frequency_penalty,
            presence_penalty: a.presence_penalty,
            count_fed: a.count_fed as u32,
            _pad: [0; 2],
        }
    }
}

/// `token[token_off + row]` = the token row `row`'s draw picks from its logits, for the output
/// rows of a step, ready to encode.
pub struct Sample {
    pipeline: wgpu::ComputePipeline,
    /// Per stage (0..=4) its bind group.
    stages: Vec<wgpu::BindGroup>,
    /// Workgroups per row in stages 0-2.
    chunks: u32,
    draws: wgpu::Buffer,
    /// `[max_rows, DRAW_ADJUST_MAX]` adjusted tokens.
    adjust: wgpu::Buffer,
    max_rows: u32,
    /// What [`Sample::write`] uploads, reused.
    staged: Vec<RowDraw>,
    staged_adjust: Vec<RowAdjust>,
    /// Whether the rows [`Sample::write`] gave have adjustments (stage 4 runs).
    adjusting: bool,
    /// The stages' params and the rows' scratch, kept alive for the bind groups.
    _buffers: Vec<wgpu::Buffer>,
}

impl Sample {
    /// logits: `[max_rows, n_vocab]` f32 from element `logits.1`; token: u32 from element
    /// `token.1`, one per row; ids: u32 from element 0, row r's fed token at r (read by draws
    /// that count it, `Adjustments::count_fed`). `step` counts the rows of a step (the output
    /// head's step).
    pub fn new(
        gpu: &Gpu,
        step: &StepBuffer,
        logits: (&wgpu::Buffer, u64),
        n_vocab: u32,
        token: (&wgpu::Buffer, u64),
        ids: &wgpu::Buffer,
        max_rows: u32,
    ) -> Result<Sample> {
        let key = "sample";
        let file = source("sample.wgsl").unwrap_or_default();
        let bad = |message: String| Error::GpuValidation { context: format!("preparing `{key}`"), message };
        if const_u32(file, "K") != Some(DRAW_TOP_K_MAX as u32)
            || const_u32(file, "ADJ") != Some(DRAW_ADJUST_MAX as u32)
        {
            return Err(bad(format!(
                "sample.wgsl's `const K` or `const ADJ` is not sample::DRAW_TOP_K_MAX ({DRAW_TOP_K_MAX}) or \
                 DRAW_ADJUST_MAX ({DRAW_ADJUST_MAX})"
            )));
        }
        let (Some(chunk), Some(hdr), Some(list)) =
            (const_u32(file, "CHUNK"), const_u32(file, "HDR"), const_u32(file, "L"))
        else {
            return Err(bad("sample.wgsl lacks `const CHUNK`, `HDR` or `L`".into()));
        };
        let pipeline = gpu.pipeline(key, Family::Auto, || variant_source(gpu, key, "sample", &[], false))?;
        fits("sample logits buffer bytes", logits.0, logits.1, max_rows as u64 * n_vocab as u64)?;
        fits("sample token buffer bytes", token.0, token.1, max_rows as u64)?;
        fits("sample ids buffer bytes", ids, 0, max_rows as u64)?;
        let rows = max_rows.max(1) as u64;
        let draws = gpu.storage("sample draws", rows * size_of::<RowDraw>() as u64)?;
        let adjust =
            gpu.storage("sample adjustments", rows * (DRAW_ADJUST_MAX * size_of::<RowAdjust>()) as u64)?;
        let words = gpu.storage("sample row words", rows * hdr as u64 * 4)?;
        let cands = gpu.storage("sample candidates", rows * list as u64 * 8)?;
        let (logits_off, token_off) =
            (u32_of("sample logits offset", logits.1)?, u32_of("sample token offset", token.1)?);
        let mut buffers = Vec::new();
        let mut stages = Vec::new();
        for stage in 0..5 {
            let params = gpu.uniform(key, &Params { n_vocab, logits_off, token_off, stage })?;
            stages.push(gpu.bind(
                key,
                &pipeline,
                &[
                    logits.0.as_entire_binding(),
                    token.0.as_entire_binding(),
                    draws.as_entire_binding(),
                    params.as_entire_binding(),
                    step.buffer().as_entire_binding(),
                    words.as_entire_binding(),
                    cands.as_entire_binding(),
                    adjust.as_entire_binding(),
                    ids.as_entire_binding(),
                ],
            )?);
            buffers.push(params);
        }
        buffers.extend([words, cands]);
        let chunks = n_vocab.div_ceil(chunk).max(1);
        if chunks > gpu.caps().max_workgroups_per_dim {
            return Err(bad(format!("{n_vocab} logits need {chunks} workgroups per row")));
        }
        Ok(Sample {
            pipeline,
            stages,
            chunks,
            draws,
            adjust,
            max_rows,
            staged: Vec::new(),
            staged_adjust: Vec::new(),
            adjusting: false,
            _buffers: buffers,
        })
    }

    /// Uploads the draws of a step's output rows (`None`: the row does not sample); rows past
    /// `max_rows` are ignored. Returns whether any row samples.
    pub fn write<'d>(&mut self, gpu: &Gpu, rows: impl IntoIterator<Item = Option<&'d Draw>>) -> bool {
        self.staged.clear();
        self.staged_adjust.clear();
        for (i, d) in rows.into_iter().take(self.max_rows as usize).enumerate() {
            self.staged.push(d.map(RowDraw::from).unwrap_or_default());
            // Rows' entries up to the last row with any (the kernel reads a row's n_adjust only).
            let entries = d.map_or(&[][..], |d| d.adjust.as_slice());
            if !entries.is_empty() {
                self.staged_adjust.resize(i * DRAW_ADJUST_MAX, RowAdjust::default());
                let row = entries.iter().map(|a| RowAdjust {
                    id: a.id,
                    biased: a.biased as u32,
                    bias: a.bias,
                    n: a.n,
                });
                self.staged_adjust
                    .extend(row.chain(std::iter::repeat(RowAdjust::default())).take(DRAW_ADJUST_MAX));
            }
        }
        let any = self.staged.iter().any(|d| d.top_k > 0);
        self.adjusting = self.staged.iter().any(|d| d.top_k > 0 && (d.n_adjust > 0 || d.count_fed != 0));
        if any {
            gpu.queue().write_buffer(&self.draws, 0, bytemuck::cast_slice(&self.staged));
        }
        if !self.staged_adjust.is_empty() {
            gpu.queue().write_buffer(&self.adjust, 0, bytemuck::cast_slice(&self.staged_adjust));
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
        if self.adjusting {
            pass.set_bind_group(0, &self.stages[4], &[]);
            pass.dispatch_workgroups(n, 1, 1);
        }
        for (stage, bind) in self.stages[..4].iter().enumerate() {
            pass.set_bind_group(0, bind, &[]);
            match stage {
                3 => pass.dispatch_workgroups(n, 1, 1),
                _ => pass.dispatch_workgroups(self.chunks, n, 1),
            }
        }
    }
}

/// CPU twin of [`Sample`]: the token `draw` picks from one row of logits whose fed token is `fed`
/// (`sample::pick_fed`).
pub fn sample_cpu(logits: &[f32], draw: &Draw, fed: u32) -> u32 {
    crate::sample::pick_fed(logits, draw, fed)
}
