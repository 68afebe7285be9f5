//! Launcher for `shaders/get_rows.wgsl`, the embedding lookup (`y[t, :] = scale · W[ids[t], :]`
//! with W in its GGUF encoding, any type with a decoder), and its CPU twin [`get_rows_cpu`].
//!
//! A [`GetRows`] is built once per (embedding tensor, ids, y) at load: the pipeline
//! `get_rows_<type>` (the type's decoder + the kernel), the parameters of every piece of a
//! row-split tensor and their bind groups. The caller writes the step's token ids into `ids`
//! (`queue.write_buffer`) and the [`Step`](super::Step) into the step buffer; `encode` dispatches
//! one grid row per token. An id past the tensor gives a row of zeros (the twin agrees); the
//! engine checks ids against the vocabulary before they get here.

use super::params::{PieceParams, check_fits};
use super::pipelines::Family;
use super::shaders::{dequant_stem, source, with_decoder};
use super::{Gpu, GpuTensor, StepBuffer};
use crate::quant::{self, GgmlType};
use crate::{Error, Result};

/// Mirrors `struct Params` of get_rows.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    cols: u32,
    row_bytes: u32,
    y_off: u32,
    first_row: u32,
    n_rows: u32,
    zero_past: u32,
    max_tokens: u32,
    scale: f32,
}

const _: () = assert!(size_of::<Params>() == 32);

/// The kernel's workgroup size (`const WG`): invocations per grid row, 4 elements each.
const WG: u64 = 64;

/// `y[y_off + t·cols + c] = scale · W[ids[t], c]` for the step's tokens, ready to encode.
pub struct GetRows {
    key: String,
    pipeline: wgpu::ComputePipeline,
    /// One per piece of the tensor.
    binds: Vec<wgpu::BindGroup>,
    groups_x: u32,
    max_tokens: u32,
    _params: PieceParams,
}

impl GetRows {
    /// `ids`: u32 `[max_tokens]`; `y`: f32 `[y_off + max_tokens · cols]` (offset in elements).
    #[allow(clippy::too_many_arguments)] // buffers and sizes fixed at load, as every launcher's
    pub fn new(
        gpu: &Gpu,
        w: &GpuTensor,
        ids: &wgpu::Buffer,
        y: &wgpu::Buffer,
        y_off: u64,
        scale: f32,
        step: &StepBuffer,
        max_tokens: u32,
    ) -> Result<GetRows> {
        let stem = dequant_stem(w.ty).ok_or(Error::UnsupportedType { ty: w.ty, op: "GPU get_rows" })?;
        let key = format!("get_rows_{}", &stem["dequant_".len()..]);
        let kernel = source("get_rows.wgsl").ok_or_else(|| Error::GpuValidation {
            context: format!("preparing `{key}`"),
            message: "get_rows.wgsl is not in shaders::ALL".into(),
        })?;
        let pipeline = gpu.pipeline(&key, Family::Auto, || {
            with_decoder(kernel, w.ty).ok_or(Error::UnsupportedType { ty: w.ty, op: "GPU get_rows" })
        })?;

        let max_dim = gpu.caps().max_workgroups_per_dim as u64;
        let groups_x = w.cols.div_ceil(4 * WG);
        if max_tokens == 0 || max_tokens as u64 > max_dim || groups_x > max_dim {
            return Err(Error::GpuTensorTooLarge {
                name: w.name.clone(),
                bytes: w.gpu_bytes(),
                why: format!(
                    "get_rows grid of {groups_x} x {max_tokens} workgroups (limit {max_dim} a side)"
                ),
            });
        }
        check_fits("get_rows ids buffer bytes", ids, 0, max_tokens as u64)?;
        check_fits("get_rows y buffer bytes", y, y_off, max_tokens as u64 * w.cols)?;

        let params: Vec<Params> = w
            .pieces
            .iter()
            .enumerate()
            .map(|(i, piece)| Params {
                cols: w.cols as u32,
                row_bytes: w.row_bytes as u32,
                y_off: y_off as u32,
                first_row: piece.first_row as u32,
                n_rows: piece.rows as u32,
                zero_past: (i + 1 == w.pieces.len()) as u32,
                max_tokens,
                scale,
            })
            .collect();
        let params = PieceParams::new(gpu, &key, &params)?;
        let binds = w
            .pieces
            .iter()
            .enumerate()
            .map(|(i, piece)| {
                gpu.bind(
                    &key,
                    &pipeline,
                    &[
                        piece.binding(w.row_bytes),
                        ids.as_entire_binding(),
                        y.as_entire_binding(),
                        params.binding(i),
                        step.buffer().as_entire_binding(),
                    ],
                )
            })
            .collect::<Result<_>>()?;
        Ok(GetRows { key, pipeline, binds, groups_x: groups_x as u32, max_tokens, _params: params })
    }

    /// The pipeline key (`get_rows_q4_k`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Records the lookup of `n_tokens` tokens (the step buffer's count; at most `max_tokens`):
    /// one dispatch per piece of the tensor.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) {
        let n = n_tokens.min(self.max_tokens);
        if n == 0 {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        for bind in &self.binds {
            pass.set_bind_group(0, bind, &[]);
            pass.dispatch_workgroups(self.groups_x, n, 1);
        }
    }
}

/// CPU twin of [`GetRows`]: `y[t·cols + c] = scale · W[ids[t], c]` for the `ids.len()` tokens,
/// W being GGUF bytes of type `ty` with rows of `cols` elements; an id past W gives zeros.
pub fn get_rows_cpu(
    ty: GgmlType,
    w: &[u8],
    cols: usize,
    ids: &[u32],
    y: &mut [f32],
    scale: f32,
) -> Result<()> {
    let block = ty.block_size();
    let row_bytes =
        ty.row_bytes(cols as u64).ok_or(Error::PartialBlockElements { ty, len: cols, block_elems: block })?
            as usize;
    if y.len() != ids.len() * cols {
        return Err(Error::LengthMismatch {
            what: "get_rows output",
            expected: ids.len() * cols,
            got: y.len(),
        });
    }
    if row_bytes == 0 || !w.len().is_multiple_of(row_bytes) {
        return Err(Error::PartialBlock { ty, len: w.len(), block_bytes: row_bytes.max(1) });
    }
    let rows = w.len() / row_bytes;
    for (&id, out) in ids.iter().zip(y.chunks_exact_mut(cols.max(1))) {
        let id = id as usize;
        if id >= rows {
            out.fill(0.0);
            continue;
        }
        quant::dequantize(ty, &w[id * row_bytes..(id + 1) * row_bytes], out)?;
        for v in out.iter_mut() {
            *v *= scale;
        }
    }
    Ok(())
}
