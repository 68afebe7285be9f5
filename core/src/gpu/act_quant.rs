//! Launcher for `shaders/act_quant.wgsl`, which gives a matmul's f32 input the rounding the CPU
//! reference gives it (its weight type's activation format, `quant::act`), and its CPU twin
//! [`act_quant_cpu`]. Key: `act_quant`.
//!
//! The CPU path, like llama.cpp's, multiplies quantized weights with activations quantized to 8
//! bits (or rounded to f16/bf16 for float weights). That rounding moves the logits as much as any
//! other numeric choice in the model, so the GPU reproduces it — quantizing and dequantizing the
//! input in place of a projection's x — and then multiplies in f32: the two paths then differ by
//! summation order only. F32 weights need no conversion ([`ActQuant::new`] returns `None`).
//!
//! For the Q8 formats it also writes the levels themselves, packed four to a word with a scale
//! word per 32 elements ([`packed_stride`], CPU twin [`act_pack_cpu`]): the integer mat-vec kernels
//! multiply them with the weights' own integer levels through `dot4I8Packed`, as the CPU's dot
//! products do — exact integer sums, then the scales. Q8_1's scale word holds its f16 d and its
//! f16 s = d·Σq (d taken before its rounding to f16, as ggml's quantizer takes it): the Q4_1 and
//! Q5_1 dots add `m·s`, and s rounded to f16 is not the exact sum of the rounded values.

use super::launch::{fits, u32_of, variant_source};
use super::pipelines::Family;
use super::{Gpu, StepBuffer};
use crate::Result;
use crate::error::Error;
use crate::quant::{self, GgmlType};

/// Mirrors `struct Params` of act_quant.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    cols: u32,
    mode: u32,
    x_off: u32,
    y_off: u32,
    q_off: u32,
    q_stride: u32,
    norm: u32,
    eps: f32,
    glu: u32,
    up_off: u32,
    _pad: [u32; 2],
}

/// What the conversion computes from x before rounding it.
#[derive(Clone, Copy)]
enum Pre<'a> {
    Nothing,
    /// RMSNorm with this weight and epsilon.
    Norm(&'a wgpu::Buffer, f32),
    /// x is a gate: `act(x) · up` (up, its offset in elements), GELU-tanh when `true`, else SiLU.
    Glu(&'a wgpu::Buffer, u64, bool),
}

const WG: u32 = 256;

/// The kernel's mode for the activation format of weights of type `ty`; `None` for f32.
fn mode(ty: GgmlType) -> Result<Option<u32>> {
    use GgmlType::*;
    Ok(match quant::vec_dot_type(ty)? {
        F32 => None,
        Q8_0 => Some(0),
        Q8K => Some(1),
        F16 => Some(2),
        Bf16 => Some(3),
        Q8_1 => Some(4),
        other => return Err(Error::UnsupportedType { ty: other, op: "GPU activation rounding" }),
    })
}

/// `y = dequantize(quantize_activations(ty, x))` for the rows of a step, ready to encode.
pub struct ActQuant {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    groups_x: u32,
    _params: wgpu::Buffer,
}

impl ActQuant {
    /// x and y: `[tokens, cols]` f32 from their offsets (distinct buffers); xq: `[tokens,
    /// packed_stride(cols)]` words from its offset, the packed levels (written for the Q8
    /// formats only). `None` when weights of type `ty` take f32 input as it is.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        step: &StepBuffer,
        ty: GgmlType,
        x: (&wgpu::Buffer, u64),
        y: (&wgpu::Buffer, u64),
        xq: (&wgpu::Buffer, u64),
        cols: u32,
        max_tokens: u32,
    ) -> Result<Option<ActQuant>> {
        ActQuant::build(gpu, step, ty, x, y, xq, Pre::Nothing, cols, max_tokens)
    }

    /// [`ActQuant::new`] of `rmsnorm(x) · norm.0` (epsilon `norm.1`): a layer's RMSNorm fused
    /// into the conversion of its projections' input.
    #[allow(clippy::too_many_arguments)]
    pub fn new_normed(
        gpu: &Gpu,
        step: &StepBuffer,
        ty: GgmlType,
        x: (&wgpu::Buffer, u64),
        y: (&wgpu::Buffer, u64),
        xq: (&wgpu::Buffer, u64),
        norm: (&wgpu::Buffer, f32),
        cols: u32,
        max_tokens: u32,
    ) -> Result<Option<ActQuant>> {
        ActQuant::build(gpu, step, ty, x, y, xq, Pre::Norm(norm.0, norm.1), cols, max_tokens)
    }

    /// [`ActQuant::new`] of `act(x) · up` (x a gated feed-forward's gate; `up` with its offset in
    /// elements; GELU-tanh with `gelu`, else SiLU): the GLU fused into the conversion of the down
    /// projection's input, computed as `glu.wgsl` computes it.
    #[allow(clippy::too_many_arguments)]
    pub fn new_glu(
        gpu: &Gpu,
        step: &StepBuffer,
        ty: GgmlType,
        x: (&wgpu::Buffer, u64),
        y: (&wgpu::Buffer, u64),
        xq: (&wgpu::Buffer, u64),
        up: (&wgpu::Buffer, u64),
        gelu: bool,
        cols: u32,
        max_tokens: u32,
    ) -> Result<Option<ActQuant>> {
        ActQuant::build(gpu, step, ty, x, y, xq, Pre::Glu(up.0, up.1, gelu), cols, max_tokens)
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        gpu: &Gpu,
        step: &StepBuffer,
        ty: GgmlType,
        x: (&wgpu::Buffer, u64),
        y: (&wgpu::Buffer, u64),
        xq: (&wgpu::Buffer, u64),
        pre: Pre<'_>,
        cols: u32,
        max_tokens: u32,
    ) -> Result<Option<ActQuant>> {
        let exact = gpu.caps().exact;
        let key = if exact { "act_quant_exact" } else { "act_quant" };
        let Some(mode) = mode(ty)? else { return Ok(None) };
        if exact && matches!(pre, Pre::Glu(_, _, true)) {
            return Err(Error::ExactUnsupported { what: "GELU".into() });
        }
        let block = quant::vec_dot_type(ty)?.block_size() as u32;
        if !cols.is_multiple_of(block) {
            return Err(Error::PartialBlockElements {
                ty: quant::vec_dot_type(ty)?,
                len: cols as usize,
                block_elems: block as usize,
            });
        }
        let overrides = [("EXACT", exact as u32 as f64)];
        let pipeline = gpu.pipeline_with(key, Family::Auto, &overrides, || {
            variant_source(gpu, key, "act_quant", &[("glu.wgsl", "act")], false)
        })?;
        let n = cols as u64 * max_tokens as u64;
        fits("act_quant x buffer bytes", x.0, x.1, n)?;
        fits("act_quant y buffer bytes", y.0, y.1, n)?;
        let q_stride = packed_stride(cols);
        fits("act_quant xq buffer bytes", xq.0, xq.1, q_stride as u64 * max_tokens as u64)?;
        let params = Params {
            cols,
            mode,
            x_off: u32_of("act_quant x offset", x.1)?,
            y_off: u32_of("act_quant y offset", y.1)?,
            q_off: u32_of("act_quant xq offset", xq.1)?,
            q_stride,
            norm: matches!(pre, Pre::Norm(..)) as u32,
            eps: if let Pre::Norm(_, eps) = pre { eps } else { 0.0 },
            glu: match pre {
                Pre::Glu(_, _, gelu) => 1 + gelu as u32,
                _ => 0,
            },
            up_off: if let Pre::Glu(_, off, _) = pre { u32_of("act_quant up offset", off)? } else { 0 },
            _pad: [0; 2],
        };
        match pre {
            Pre::Norm(w, _) => fits("act_quant norm weight bytes", w, 0, cols as u64)?,
            Pre::Glu(up, off, _) => fits("act_quant up buffer bytes", up, off, n)?,
            Pre::Nothing => {}
        }
        let (nw, up) = match pre {
            Pre::Norm(w, _) => (w, x.0),
            Pre::Glu(up, _, _) => (x.0, up),
            Pre::Nothing => (x.0, x.0),
        };
        let params_buf = gpu.uniform(key, &params)?;
        let bind = gpu.bind(
            key,
            &pipeline,
            &[
                x.0.as_entire_binding(),
                y.0.as_entire_binding(),
                params_buf.as_entire_binding(),
                step.buffer().as_entire_binding(),
                xq.0.as_entire_binding(),
                nw.as_entire_binding(),
                up.as_entire_binding(),
            ],
        )?;
        Ok(Some(ActQuant { pipeline, bind, groups_x: cols.div_ceil(WG), _params: params_buf }))
    }

    /// Records the conversion of a step of `n_tokens` rows (the count in the step uniform, or
    /// more).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) {
        if n_tokens == 0 || self.groups_x == 0 {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(self.groups_x, n_tokens, 1);
    }
}

/// CPU twin of [`ActQuant`]: `x` (whole rows) converted to the activation format of weights of
/// type `ty` and back to f32, as the CPU's matmul sees it.
pub fn act_quant_cpu(ty: GgmlType, x: &[f32]) -> Result<Vec<f32>> {
    let act = quant::vec_dot_type(ty)?;
    let mut bytes = Vec::new();
    quant::quantize_activations(ty, x, &mut bytes)?;
    let mut y = vec![0.0; x.len()];
    quant::dequantize(act, &bytes, &mut y)?;
    Ok(y)
}

/// Words per token row of the packed levels of a `cols`-wide input: the levels (cols/4 words),
/// then a scale per 32 elements, padded to whole 16-byte vectors.
pub fn packed_stride(cols: u32) -> u32 {
    (cols / 4 + cols / 32).next_multiple_of(4)
}

/// CPU twin of [`ActQuant`]'s packed output: `x` (rows of `cols`) quantized to the Q8 activation
/// format of weights of type `ty` by the CPU's own quantizer, laid out as the kernel writes it
/// ([`packed_stride`] words per row, padding zero).
pub fn act_pack_cpu(ty: GgmlType, x: &[f32], cols: usize) -> Result<Vec<u32>> {
    use GgmlType::*;
    let act = quant::vec_dot_type(ty)?;
    let stride = packed_stride(cols as u32) as usize;
    let mut out = vec![0u32; x.len() / cols.max(1) * stride];
    let mut bytes = Vec::new();
    for (row, xs) in out.chunks_mut(stride).zip(x.chunks(cols)) {
        quant::quantize_activations(ty, xs, &mut bytes)?;
        // Per block: (scale, levels) at their byte offsets in the block, and the block's length.
        // The scale word: Q8_0's f16 d as f32, Q8_1's f16 d and s as they are (d low), Q8_K's f32.
        let (scale_of, levels_at): (fn(&[u8]) -> u32, usize) = match act {
            Q8_0 => (|b| quant::f16_bits_to_f32(u16::from_le_bytes([b[0], b[1]])).to_bits(), 2),
            Q8_1 => (|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]), 4),
            Q8K => (|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]), 4),
            other => return Err(Error::UnsupportedType { ty: other, op: "packed activations" }),
        };
        let bs = act.block_size();
        let levels: Vec<u8> = bytes
            .chunks(act.type_size())
            .flat_map(|b| b[levels_at..levels_at + bs].iter().copied())
            .collect();
        let scales: Vec<u32> =
            bytes.chunks(act.type_size()).flat_map(|b| std::iter::repeat_n(scale_of(b), bs / 32)).collect();
        let (q, d) = row.split_at_mut(cols / 4);
        for (w, l) in q.iter_mut().zip(levels.as_chunks::<4>().0) {
            *w = u32::from_le_bytes(*l);
        }
        d.iter_mut().zip(scales).for_each(|(w, s)| *w = s);
    }
    Ok(out)
}
