//! Launcher for `shaders/rope.wgsl` (rotary position embedding of q or k, in place) and its CPU
//! twin [`rope_cpu`], which is the CPU forward pass's own `rope_angles` + `rope`.
//!
//! The launcher takes the CPU's [`RopeFreqs`] and uploads its per-pair factors (Llama 3's
//! `rope_freqs`, Phi-3's LongRoPE factors) into a small buffer of its own at load; missing factors
//! count as 1, as on the CPU. Key: `rope`.

use super::launch::{fits, grid, u32_of, variant_source};
use super::pipelines::Family;
use super::{Gpu, StepBuffer, StepTable};
use crate::cpu::ops::{self, RopeFreqs};
use crate::model::RopeKind;
use crate::{Error, Result};

/// Mirrors `struct Params` of rope.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    x_off: u32,
    n_heads: u32,
    head_dim: u32,
    n_rot: u32,
    neox: u32,
    has_factors: u32,
    theta_scale: f32,
    freq_scale: f32,
    attn_factor: f32,
    scale: f32,
    _pad: [u32; 2],
}

const _: () = assert!(size_of::<Params>() == 48);

const WG: u64 = 256;

/// Rope of `[tokens, n_heads, head_dim]` in place, ready to encode.
pub struct Rope {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    /// Invocations per token: one per pair of dims of every head.
    per_token: u64,
    max_dim: u32,
    _buffers: [wgpu::Buffer; 2],
}

impl Rope {
    /// x: `[tokens, n_heads, head_dim]` f32 from element `x_off`, token t rotated in place at its
    /// position in `table` (`at[t]`); the first `n_rot` dims of each head turn (paired as `kind` says), then
    /// every dim is multiplied by `scale`. `head_dim` and `n_rot` must be even, `n_rot <=
    /// head_dim`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        step: &StepBuffer,
        table: &StepTable,
        x: (&wgpu::Buffer, u64),
        n_heads: u32,
        head_dim: u32,
        n_rot: u32,
        kind: RopeKind,
        freqs: &RopeFreqs<'_>,
        scale: f32,
    ) -> Result<Rope> {
        let key = "rope";
        if !head_dim.is_multiple_of(2) || !n_rot.is_multiple_of(2) || n_rot > head_dim {
            return Err(Error::GpuKernelShape {
                kernel: key,
                why: format!("head_dim {head_dim} and n_rot {n_rot} must be even, with n_rot <= head_dim"),
            });
        }
        let pipeline = gpu.pipeline(key, Family::Auto, || variant_source(gpu, key, "rope", &[], false))?;
        fits("rope x buffer bytes", x.0, x.1, n_heads as u64 * head_dim as u64)?;

        // [n_rot/2] divisors, 1 where the CPU's slice ends; one unused value without factors.
        let half = (n_rot / 2) as usize;
        let factors: Vec<f32> = match freqs.factors {
            Some(f) => (0..half.max(1)).map(|i| f.get(i).copied().unwrap_or(1.0)).collect(),
            None => vec![1.0],
        };
        let factors_buf = gpu.storage("rope factors", factors.len() as u64 * 4)?;
        gpu.queue().write_buffer(&factors_buf, 0, bytemuck::cast_slice(&factors));
        let params = Params {
            x_off: u32_of("rope x offset", x.1)?,
            n_heads,
            head_dim,
            n_rot,
            neox: (kind == RopeKind::Neox) as u32,
            has_factors: freqs.factors.is_some() as u32,
            theta_scale: freqs.theta_scale,
            freq_scale: freqs.freq_scale,
            attn_factor: freqs.attn_factor,
            scale,
            _pad: [0; 2],
        };
        let params_buf = gpu.uniform(key, &params)?;
        let bind = gpu.bind(
            key,
            &pipeline,
            &[
                x.0.as_entire_binding(),
                factors_buf.as_entire_binding(),
                params_buf.as_entire_binding(),
                step.buffer().as_entire_binding(),
                table.at().as_entire_binding(),
            ],
        )?;
        Ok(Rope {
            pipeline,
            bind,
            per_token: n_heads as u64 * (head_dim / 2) as u64,
            max_dim: gpu.caps().max_workgroups_per_dim,
            _buffers: [factors_buf, params_buf],
        })
    }

    /// Records the rotation of a step of `n_tokens` tokens (the count in the step uniform, or
    /// more).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) {
        let [gx, gy] = grid(n_tokens as u64 * self.per_token, WG, self.max_dim);
        if gx == 0 {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(gx, gy, 1);
    }
}

/// CPU twin of [`Rope`]: x `[tokens, n_heads, head_dim]`, token t at position `pos[t]`, turned
/// with [`ops::rope_angles`] and [`ops::rope`] as the CPU forward pass does, then scaled.
#[allow(clippy::too_many_arguments)]
pub fn rope_cpu(
    x: &mut [f32],
    pos: &[usize],
    n_heads: usize,
    head_dim: usize,
    n_rot: usize,
    kind: RopeKind,
    freqs: &RopeFreqs<'_>,
    scale: f32,
) {
    let mut cs = vec![(0f32, 0f32); n_rot / 2];
    for (token, &pos) in x.chunks_mut((n_heads * head_dim).max(1)).zip(pos) {
        ops::rope_angles(&mut cs, pos, freqs);
        ops::rope(token, head_dim, &cs, kind);
        if scale != 1.0 {
            token.iter_mut().for_each(|v| *v *= scale);
        }
    }
}
