//! Launcher for `shaders/glu.wgsl` (the gated feed-forward's activation, `gate = act(gate) · up`)
//! and its CPU twin [`glu_cpu`] (the CPU's `swiglu` / `geglu`). Keys: `glu_silu`, `glu_gelu`.

use super::launch::{fits, grid, u32_of, variant_source};
use super::pipelines::Family;
use super::{Gpu, StepBuffer};
use crate::Result;
use crate::cpu::ops;
use crate::model::FfnAct;

/// Mirrors `struct Params` of glu.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    width: u32,
    gate_off: u32,
    up_off: u32,
    gelu: u32,
}

const _: () = assert!(size_of::<Params>() == 16);

const WG: u64 = 256;

/// `gate[t, i] = act(gate[t, i]) · up[t, i]` in place, ready to encode.
pub struct Glu {
    key: &'static str,
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    width: u32,
    max_dim: u32,
    _params: wgpu::Buffer,
}

impl Glu {
    /// gate and up: `[tokens, width]` f32 from their offsets (distinct buffers: up is read-only).
    pub fn new(
        gpu: &Gpu,
        step: &StepBuffer,
        gate: (&wgpu::Buffer, u64),
        up: (&wgpu::Buffer, u64),
        width: u32,
        act: FfnAct,
    ) -> Result<Glu> {
        // Both variants are one pipeline: the activation is a parameter, so the key only names it.
        let key = match act {
            FfnAct::Silu => "glu_silu",
            FfnAct::GeluTanh => "glu_gelu",
        };
        let pipeline = gpu.pipeline("glu", Family::Auto, || variant_source(gpu, "glu", "glu", &[], false))?;
        fits("glu gate buffer bytes", gate.0, gate.1, width as u64)?;
        fits("glu up buffer bytes", up.0, up.1, width as u64)?;
        let params = Params {
            width,
            gate_off: u32_of("glu gate offset", gate.1)?,
            up_off: u32_of("glu up offset", up.1)?,
            gelu: (act == FfnAct::GeluTanh) as u32,
        };
        let params_buf = gpu.uniform(key, &params)?;
        let bind = gpu.bind(
            key,
            &pipeline,
            &[
                gate.0.as_entire_binding(),
                up.0.as_entire_binding(),
                params_buf.as_entire_binding(),
                step.buffer().as_entire_binding(),
            ],
        )?;
        Ok(Glu {
            key,
            pipeline,
            bind,
            width,
            max_dim: gpu.caps().max_workgroups_per_dim,
            _params: params_buf,
        })
    }

    /// `glu_silu` or `glu_gelu` (one pipeline, `glu`, runs both).
    pub fn key(&self) -> &str {
        self.key
    }

    /// Records the activation of a step of `n_tokens` tokens (the count in the step uniform, or
    /// more).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) {
        let [gx, gy] = grid(n_tokens as u64 * self.width as u64, WG, self.max_dim);
        if gx == 0 {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(gx, gy, 1);
    }
}

/// CPU twin of [`Glu`]: `gate[i] = act(gate[i]) · up[i]` ([`ops::swiglu`] / [`ops::geglu`]).
pub fn glu_cpu(gate: &mut [f32], up: &[f32], act: FfnAct) {
    match act {
        FfnAct::Silu => ops::swiglu(gate, up),
        FfnAct::GeluTanh => ops::geglu(gate, up),
    }
}
