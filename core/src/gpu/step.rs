//! The per-step values kernels read, written with `queue.write_buffer` before each submission, so
//! a step creates nothing and its recorded passes are the same every step:
//!
//! - [`Step`], a small uniform: the step's token count. Kernels declare it as
//!   `struct Step { pos0: u32, n_tokens: u32, _pad0: u32, _pad1: u32 }` and bind it as
//!   `var<uniform>`. (`pos0` is no longer read: positions are per token, below; the word stays
//!   so the declaration is the same in every kernel.) The output head has a `Step` of its own,
//!   whose count is the step's output rows.
//! - [`StepTable`], storage buffers saying where each token goes. A step is a batch of runs, each
//!   some consecutive tokens of one sequence (a prompt chunk, or one decode token): every token
//!   has its (sequence, position), which rope, the KV store and attention read; attention also
//!   reads the rows of the one-token runs (the decode kernel's work) and the prefill tiles (up to
//!   `rows` consecutive tokens of one run); the output head reads the rows whose logits it
//!   computes. [`StepPlan`] builds the tables on the host.
//!
//! Because the buffers are written before a submission and read by all of it, one submission
//! carries one step.

use super::Gpu;
use crate::{Error, Result};

/// Mirrors WGSL `struct Step`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Step {
    /// Unused by the kernels (positions are per token, in the [`StepTable`]).
    pub pos0: u32,
    /// Tokens in this step (rows of the activations).
    pub n_tokens: u32,
    pub _pad: [u32; 2],
}

impl Step {
    pub fn new(pos0: u32, n_tokens: u32) -> Step {
        Step { pos0, n_tokens, _pad: [0; 2] }
    }
}

/// The uniform buffer holding the current [`Step`].
pub struct StepBuffer {
    buffer: wgpu::Buffer,
}

impl StepBuffer {
    pub fn new(gpu: &Gpu) -> Result<StepBuffer> {
        let buffer = gpu.uniform("step", &Step::default())?;
        Ok(StepBuffer { buffer })
    }

    /// Sets the step the next submission computes.
    pub fn write(&self, gpu: &Gpu, step: Step) {
        gpu.queue().write_buffer(&self.buffer, 0, bytemuck::bytes_of(&step));
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

/// A step's tables on the host: what [`StepTable::write`] uploads, and what the launchers size
/// their dispatches from.
#[derive(Clone, Debug, Default)]
pub struct StepPlan {
    /// Rows of a prefill tile (the attention kernel's `BQ`).
    tile_rows: u32,
    /// [n_tokens] token ids.
    pub ids: Vec<u32>,
    /// [n_tokens] (sequence, position) of each token.
    pub at: Vec<[u32; 2]>,
    /// Rows of the tokens that are runs of their own (decode attention).
    pub decode: Vec<u32>,
    /// (first row, rows, sequence, first position) of each prefill tile.
    pub tiles: Vec<[u32; 4]>,
    /// Rows whose logits the head computes, in output order.
    pub outputs: Vec<u32>,
}

impl StepPlan {
    /// An empty plan whose prefill tiles hold up to `tile_rows` tokens.
    pub fn new(tile_rows: u32) -> StepPlan {
        StepPlan { tile_rows: tile_rows.max(1), ..Default::default() }
    }

    pub fn clear(&mut self) {
        self.ids.clear();
        self.at.clear();
        self.decode.clear();
        self.tiles.clear();
        self.outputs.clear();
    }

    /// Appends a run: `tokens` of sequence `seq` at positions `pos0..`; `output`: the head
    /// computes the logits of its last token.
    pub fn push(&mut self, seq: u32, pos0: u32, tokens: &[u32], output: bool) {
        let (t0, n) = (self.at.len() as u32, tokens.len() as u32);
        self.ids.extend_from_slice(tokens);
        self.at.extend((0..n).map(|i| [seq, pos0 + i]));
        if n == 1 {
            self.decode.push(t0);
        } else {
            let step = self.tile_rows;
            self.tiles
                .extend((0..n).step_by(step as usize).map(|i| [t0 + i, step.min(n - i), seq, pos0 + i]));
        }
        if output && n > 0 {
            self.outputs.push(t0 + n - 1);
        }
    }

    pub fn n_tokens(&self) -> u32 {
        self.at.len() as u32
    }

    pub fn n_outputs(&self) -> u32 {
        self.outputs.len() as u32
    }
}

/// The storage buffers of a [`StepPlan`], sized at load.
pub struct StepTable {
    /// [max_tokens] vec2<u32> (sequence, position).
    at: wgpu::Buffer,
    /// [max_decode] u32 rows.
    decode: wgpu::Buffer,
    /// [max_tiles] vec4<u32> (first row, rows, sequence, first position).
    tiles: wgpu::Buffer,
    /// [max_outputs] u32 rows.
    outputs: wgpu::Buffer,
    caps: [usize; 4],
}

impl StepTable {
    /// Tables for steps of up to `max_tokens` tokens over `n_seq` sequences (so at most
    /// `min(n_seq, max_tokens)` runs, decode tokens and outputs), cut into tiles of `tile_rows`.
    pub fn new(gpu: &Gpu, max_tokens: u32, n_seq: u32, tile_rows: u32) -> Result<StepTable> {
        let max_runs = n_seq.min(max_tokens).max(1) as usize;
        let max_tiles = (max_tokens.div_ceil(tile_rows.max(1)) as usize) + max_runs;
        let caps = [max_tokens.max(1) as usize, max_runs, max_tiles, max_runs];
        Ok(StepTable {
            at: gpu.storage("step positions", caps[0] as u64 * 8)?,
            decode: gpu.storage("step decode rows", caps[1] as u64 * 4)?,
            tiles: gpu.storage("step prefill tiles", caps[2] as u64 * 16)?,
            outputs: gpu.storage("step output rows", caps[3] as u64 * 4)?,
            caps,
        })
    }

    /// Uploads `plan` for the next submission; fails, writing nothing, if it does not fit.
    pub fn write(&self, gpu: &Gpu, plan: &StepPlan) -> Result<()> {
        let lens = [plan.at.len(), plan.decode.len(), plan.tiles.len(), plan.outputs.len()];
        if lens.iter().zip(&self.caps).any(|(n, cap)| n > cap) {
            return Err(Error::GpuKernelShape {
                kernel: "step table",
                why: format!(
                    "(tokens, decode tokens, prefill tiles, outputs) {lens:?} exceed the tables' {:?}",
                    self.caps
                ),
            });
        }
        let q = gpu.queue();
        for (buf, bytes) in [
            (&self.at, bytemuck::cast_slice::<[u32; 2], u8>(&plan.at)),
            (&self.decode, bytemuck::cast_slice(&plan.decode)),
            (&self.tiles, bytemuck::cast_slice(&plan.tiles)),
            (&self.outputs, bytemuck::cast_slice(&plan.outputs)),
        ] {
            if !bytes.is_empty() {
                q.write_buffer(buf, 0, bytes);
            }
        }
        Ok(())
    }

    /// [max_tokens] vec2<u32> (sequence, position) of each token.
    pub fn at(&self) -> &wgpu::Buffer {
        &self.at
    }

    /// [max_decode] u32 rows of the one-token runs.
    pub fn decode(&self) -> &wgpu::Buffer {
        &self.decode
    }

    /// [max_tiles] vec4<u32> prefill tiles.
    pub fn tiles(&self) -> &wgpu::Buffer {
        &self.tiles
    }

    /// [max_outputs] u32 output rows.
    pub fn outputs(&self) -> &wgpu::Buffer {
        &self.outputs
    }

    /// Capacity of (tokens, decode tokens, prefill tiles, outputs).
    pub fn capacity(&self) -> [usize; 4] {
        self.caps
    }
}
