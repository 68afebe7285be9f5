//! The per-step values every position-dependent kernel reads: one small uniform buffer, written
//! with `queue.write_buffer` before each submission, so a decode step creates nothing and its
//! recorded passes are the same every step.
//!
//! A step appends `n_tokens` tokens at positions `pos0..pos0 + n_tokens` of one sequence; after
//! it the cache holds `pos0 + n_tokens` positions. Kernels declare the struct as
//!
//! ```wgsl
//! struct Step { pos0: u32, n_tokens: u32, _pad0: u32, _pad1: u32 }
//! ```
//!
//! and bind the buffer as `var<uniform>`. Because the buffer is written before a submission and
//! read by all of it, one submission carries one step (a prefill chunk, or one decode token).

use super::Gpu;
use crate::Result;

/// Mirrors WGSL `struct Step`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Step {
    /// Position of the step's first token.
    pub pos0: u32,
    /// Tokens in this step (1 when decoding).
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
