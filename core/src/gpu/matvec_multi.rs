//! Launcher for `shaders/matvec_multi*.wgsl`, the mat-vec over a few tokens of batched decode
//! (`Y[t, r] = Σ_c W[r, c] · X[t, c]` for a step of 2..N tokens, W in its GGUF encoding), and its
//! CPU twin [`matvec_multi_cpu`].
//!
//! Between the one-token [`MatVec`](super::MatVec) and the tiled [`MatMul`](super::MatMul) (64
//! rows × 64 tokens per workgroup, mostly idle for a handful of tokens): each workgroup reads its
//! rows' weights once per group of NT tokens and makes NT dot products per weight vector it
//! decodes, in registers. The packed-input types ([`packed_input`]: Q4_K, Q6_K, Q8_0) have
//! integer kernels of their own (`matvec_multi_<type>.wgsl`, x as `act_quant`'s packed levels,
//! `dot4I8Packed` as their mat-vecs); every other type takes `matvec_multi.wgsl` after its
//! decoder (x in f32, as the matmul). Like the mat-vecs, the kernels end at a `// ---- reduce`
//! line and take the subgroup or workgroup-memory reduction (key `_sg`/`_wg`) and the software
//! workgroup size (`_sw`); the reduction's `ROWS` is the kernel's NR × NT sums.
//!
//! NT is a `const` (a register array's length must be one), so a launcher builds one pipeline
//! per size in [`MULTI_TOKENS`] (key suffix `_nt4`) and `encode` takes the smallest that holds
//! the step's tokens; a larger step loops over groups of the largest inside the kernel, reading
//! the weights again from cache. Y is `[tokens, w.rows]` as the matmul's, and the product may be
//! added to it ([`MatVecMulti::new_add`]) as the mat-vec's: the residual add of o/down.

use super::params::{PieceParams, check_fits};
use super::pipelines::Family;
use super::shaders::{const_u32, matvec_multi_kernel, matvec_multi_source, override_u32};
use super::{Gpu, GpuTensor, MATVEC_SOFTWARE_WG, StepBuffer, matmul_cpu, packed_input};
use crate::quant::GgmlType;
use crate::{Error, Result};

/// Mirrors `struct Params` of the matvec_multi kernels.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n_rows: u32,
    cols: u32,
    row_bytes: u32,
    x_off: u32,
    x_stride: u32,
    y_off: u32,
    y_stride: u32,
    groups_x: u32,
    add: u32,
    max_tokens: u32,
    _pad: [u32; 2],
}

const _: () = assert!(size_of::<Params>() == 48);

/// The token-group sizes NT a launcher builds pipelines for, ascending. Few, since each is a
/// pipeline per weight type; a step takes the smallest that holds its tokens (3 tokens run as
/// 4 with one idle), and the largest bounds the accumulators per invocation (NR × NT ≤ the
/// software workgroup of 16).
pub const MULTI_TOKENS: [u32; 3] = [2, 4, 8];

/// The most tokens of a step whose projections run as [`MatVecMulti`]; one token takes the
/// mat-vec, more than this the tiled matmul. Each token group of the multi kernel reads the
/// weights again (from cache) and the matmul reads them once per 64 tokens but leaves most of
/// its 64 × 64 tile idle below that, so the crossing is the device's: on lavapipe the multi
/// kernel takes half the matmul's time at 2 tokens (docs/PERF.md); an H100 is expected to
/// favour it up to 32–64 tokens. Tune with [`GpuOptions::multi_max`](super::GpuOptions::multi_max)
/// (`aether bench --multi-max`, `gpu_matvec_bench`).
///
/// 1 (off) for now: with 16, gpu_forward's SmolLM2 check flips a top-1 at CPU margin 0.27 (its
/// 6-token prompt through the decoded Q4_1 kernel instead of the matmul; KL mean 2.9e-3, within
/// the bound), where the other reduction order moves that gap by only 0.08 — not yet shown to
/// be summation noise. gpu_batch and the kernel tests pass with 16.
pub const MULTI_MAX: u32 = 1;

/// A kernel geometry for tuning benchmarks: workgroup size, rows per workgroup, token-group
/// sizes.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct MultiShape {
    pub wg: u32,
    pub rows: u32,
    pub tokens: Vec<u32>,
}

/// One token-group size: its pipeline and, per piece, its bind group.
struct Variant {
    nt: u32,
    key: String,
    pipeline: wgpu::ComputePipeline,
    binds: Vec<wgpu::BindGroup>,
}

/// `Y[y_off + t·w.rows + r] (+)= Σ_c W[r, c] · X[x_off + t·x_stride + c]` for the step's tokens,
/// ready to encode.
pub struct MatVecMulti {
    /// Ascending NT.
    variants: Vec<Variant>,
    /// Per piece: its workgroup grid.
    grids: Vec<[u32; 2]>,
    max_tokens: u32,
    _params: PieceParams,
}

impl MatVecMulti {
    /// `x`: `[max_tokens]` rows from `x_off`, f32 rows of `w.cols` elements or packed levels of
    /// [`packed_stride`](super::packed_stride)`(w.cols)` words as [`packed_input`] says (offsets
    /// in elements, words for packed x); `y`: f32 `[max_tokens, w.rows]` from `y_off` (distinct
    /// buffers). The token count comes from `step` (and `encode`).
    #[allow(clippy::too_many_arguments)] // buffers and sizes fixed at load, as every launcher's
    pub fn new(
        gpu: &Gpu,
        w: &GpuTensor,
        x: &wgpu::Buffer,
        x_off: u64,
        y: &wgpu::Buffer,
        y_off: u64,
        step: &StepBuffer,
        max_tokens: u32,
    ) -> Result<MatVecMulti> {
        MatVecMulti::build(gpu, w, (x, x_off), (y, y_off), step, max_tokens, false, None)
    }

    /// `Y += W·X`, otherwise as [`MatVecMulti::new`].
    #[allow(clippy::too_many_arguments)]
    pub fn new_add(
        gpu: &Gpu,
        w: &GpuTensor,
        x: &wgpu::Buffer,
        x_off: u64,
        y: &wgpu::Buffer,
        y_off: u64,
        step: &StepBuffer,
        max_tokens: u32,
    ) -> Result<MatVecMulti> {
        MatVecMulti::build(gpu, w, (x, x_off), (y, y_off), step, max_tokens, true, None)
    }

    /// [`MatVecMulti::new`] (offsets 0) with the kernel's geometry replaced: for tuning
    /// benchmarks only.
    #[doc(hidden)]
    pub fn with_shape(
        gpu: &Gpu,
        w: &GpuTensor,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        step: &StepBuffer,
        max_tokens: u32,
        shape: MultiShape,
    ) -> Result<MatVecMulti> {
        MatVecMulti::build(gpu, w, (x, 0), (y, 0), step, max_tokens, false, Some(shape))
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        gpu: &Gpu,
        w: &GpuTensor,
        (x, x_off): (&wgpu::Buffer, u64),
        (y, y_off): (&wgpu::Buffer, u64),
        step: &StepBuffer,
        max_tokens: u32,
        add: bool,
        shape: Option<MultiShape>,
    ) -> Result<MatVecMulti> {
        let ty = w.ty;
        let unsupported = || Error::UnsupportedType { ty, op: "GPU mat-vec over a few tokens" };
        let (kernel, _) = matvec_multi_kernel(ty).ok_or_else(unsupported)?;
        let caps = gpu.caps();
        let (subgroups, software) = (caps.subgroups, caps.software);
        let browser = gpu.info().backend == wgpu::Backend::BrowserWebGpu;
        let base = format!(
            "matvec_multi_{}_{}",
            ty.name().to_ascii_lowercase(),
            if subgroups { "sg" } else { "wg" }
        );
        let bad_kernel = |key: &str, message: String| Error::GpuValidation {
            context: format!("preparing `{key}`"),
            message,
        };
        let default_nr = const_u32(kernel, "NR").ok_or_else(|| bad_kernel(&base, "no `const NR`".into()))?;
        let default_wg =
            override_u32(kernel, "WG").ok_or_else(|| bad_kernel(&base, "no `override WG`".into()))?;
        let (wg, nr, tokens, suffix) = match &shape {
            Some(s) => (s.wg, s.rows, s.tokens.clone(), format!("_{}x{}", s.wg, s.rows)),
            None if software => (MATVEC_SOFTWARE_WG, default_nr, MULTI_TOKENS.to_vec(), "_sw".into()),
            None => (default_wg, default_nr, MULTI_TOKENS.to_vec(), String::new()),
        };
        if nr == 0 || tokens.is_empty() || tokens.iter().any(|&nt| nt == 0 || nr * nt > wg) {
            return Err(bad_kernel(&base, format!("{nr} rows × {tokens:?} tokens per workgroup of {wg}")));
        }

        let max_dim = caps.max_workgroups_per_dim.max(1) as u64;
        let too_large =
            |why: String| Error::GpuTensorTooLarge { name: w.name.clone(), bytes: w.gpu_bytes(), why };
        let x_stride = if packed_input(ty) {
            if !x_off.is_multiple_of(4) {
                return Err(bad_kernel(&base, "packed x offset not a multiple of 4 words".into()));
            }
            super::packed_stride(w.cols as u32) as u64
        } else {
            w.cols
        };
        if max_tokens == 0 {
            return Err(too_large("a mat-vec over 0 tokens".into()));
        }
        check_fits("multi-token mat-vec x buffer bytes", x, x_off, max_tokens as u64 * x_stride)?;
        check_fits("multi-token mat-vec y buffer bytes", y, y_off, max_tokens as u64 * w.rows)?;

        let mut params = Vec::new();
        let mut grids = Vec::new();
        for piece in &w.pieces {
            let groups = piece.rows.div_ceil(nr as u64);
            let gx = groups.min(max_dim);
            let gy = groups.div_ceil(gx.max(1));
            if gy > max_dim {
                return Err(too_large(format!("{groups} workgroups exceed a {max_dim}² grid")));
            }
            grids.push([gx as u32, gy as u32]);
            params.push(Params {
                n_rows: piece.rows as u32,
                cols: w.cols as u32,
                row_bytes: w.row_bytes as u32,
                x_off: x_off as u32,
                x_stride: x_stride as u32,
                y_off: (y_off + piece.first_row) as u32,
                y_stride: w.rows as u32,
                groups_x: gx as u32,
                add: add as u32,
                max_tokens,
                _pad: [0; 2],
            });
        }
        let params = PieceParams::new(gpu, &base, &params)?;

        let mut sorted = tokens;
        sorted.sort_unstable();
        sorted.dedup();
        let mut variants = Vec::new();
        for nt in sorted {
            let key = format!("{base}{suffix}_nt{nt}");
            let overrides = [("WG", wg as f64)];
            let pipeline = gpu.pipeline_with(&key, Family::Auto, &overrides, || {
                let src = matvec_multi_source(ty, subgroups, browser).ok_or_else(unsupported)?;
                let set = |src: String, name: &str, from: u32, to: u32| {
                    let old = format!("const {name}: u32 = {from}u;");
                    if !src.contains(&old) {
                        return Err(bad_kernel(&key, format!("no `{old}`")));
                    }
                    Ok(src.replace(&old, &format!("const {name}: u32 = {to}u;")))
                };
                let default_nt =
                    const_u32(&src, "NT").ok_or_else(|| bad_kernel(&key, "no `const NT`".into()))?;
                set(set(src, "NT", default_nt, nt)?, "NR", default_nr, nr)
            })?;
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
                            x.as_entire_binding(),
                            y.as_entire_binding(),
                            params.binding(i),
                            step.buffer().as_entire_binding(),
                        ],
                    )
                })
                .collect::<Result<_>>()?;
            variants.push(Variant { nt, key, pipeline, binds });
        }
        gpu.check(&format!("preparing `{base}` for `{}`", w.name))?;
        Ok(MatVecMulti { variants, grids, max_tokens, _params: params })
    }

    /// The variant a step of `n_tokens` runs: the smallest NT that holds them, else the largest.
    fn variant(&self, n_tokens: u32) -> &Variant {
        let last = self.variants.len() - 1;
        &self.variants[self.variants.iter().position(|v| v.nt >= n_tokens).unwrap_or(last)]
    }

    /// The pipeline key a step of `n_tokens` runs (`matvec_multi_q4_k_sg_nt4`).
    pub fn key(&self, n_tokens: u32) -> &str {
        &self.variant(n_tokens).key
    }

    /// Records the product for `n_tokens` tokens (the step buffer's count; at most
    /// `max_tokens`): one dispatch per piece of the weight tensor.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) {
        let n = n_tokens.min(self.max_tokens);
        if n == 0 {
            return;
        }
        let v = self.variant(n);
        pass.set_pipeline(&v.pipeline);
        for (bind, [gx, gy]) in v.binds.iter().zip(&self.grids) {
            pass.set_bind_group(0, bind, &[]);
            pass.dispatch_workgroups(*gx, *gy, 1);
        }
    }
}

/// CPU twin of [`MatVecMulti`]: `Y[t, r] = Σ_c W[r, c] · X[t, c]` for `n_tokens` rows of `x`
/// (`[n_tokens, cols]` f32, as the kernel's levels or floats dequantize) and every row of `w`
/// (GGUF bytes of type `ty`); returns Y as `[n_tokens, rows]`, one `quant::dot` per (token,
/// row) — the matmul's product, which this kernel computes for fewer tokens.
pub fn matvec_multi_cpu(ty: GgmlType, w: &[u8], x: &[f32], n_tokens: usize, cols: usize) -> Result<Vec<f32>> {
    matmul_cpu(ty, w, x, n_tokens, cols)
}
