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
//!
//! Tiled variants (`matmul_int_<type>.wgsl`, Q4_K so far; key `matmul_int_q4_k_bt64`): for a
//! step of more than `Caps::multi_max` tokens, where the type has one, a workgroup stages each
//! block of its 32 rows (a byte per level) and of up to [`TILE_TOKENS`] tokens in workgroup
//! memory and multiplies them with `dot4I8Packed`, 2 rows × 8 tokens per invocation: every
//! weight is decoded once per 64 tokens, and the sums are the mat-vec's integer sums, so a
//! batch's logits stay the one-token path's up to float order. The forward pass gives such a
//! type's steps of `Caps::tile_min` to `Caps::tile_max` tokens to them (H100: 1.1–2× the
//! tensor-core matmul's aggregate decode at 9–64 sequences, docs/PERF.md), and shorter steps to
//! the mat-vec's variants.

use super::params::{PieceParams, check_fits};
use super::pipelines::Family;
use super::shaders::{
    const_u32, for_backend, matmul_int_kernel, matvec_multi_kernel, matvec_multi_source, override_u32,
};
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
/// 4 with one idle), a longer one loops over groups of the largest. On the H100 two passes of 4
/// beat one of 8 (8B Q8_0, 8 sequences: 692 against 378 tok/s aggregate, docs/PERF.md): the
/// integer kernels are written for at most 4.
pub const MULTI_TOKENS: [u32; 2] = [2, 4];

/// The token tiles BT the tiled integer kernel is built for (`TG` = BT / `TPT`), where the
/// device's workgroup memory holds them ([`tile_workgroup_bytes`]): WebGPU's guaranteed 16 KiB
/// holds 16.
pub const TILE_TOKENS: [u32; 3] = [16, 32, 64];

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

/// The most tokens of a step whose projections run as [`MatVecMulti`] where the type's kernel is
/// an integer one of its own ([`packed_input`]: Q6_K, Q8_0; Q4_K's tiles take over from
/// [`TILE_MIN`]). H100 8B aggregate decode against the tensor-core matmul, Q8_0: 2 sequences 294
/// vs 70 tok/s, 4: 529 vs 140, 8: 686 vs 273, 16: 781 vs 526; Q6_K: 213 vs 80, 331 vs 159, 386
/// vs 311, 16: 421 vs 595, where the matmul wins (docs/PERF.md).
pub const INT_MULTI_MAX: u32 = 8;

/// The most tokens of a step whose projections run as [`MatVecMulti`]'s tiled integer kernel,
/// for the types that have one; more take the matmul. Past 64 a step loops over tiles, reading
/// the weights again. Where the type has its own tensor-core matmul (`matmul_coop_q4_k.wgsl`)
/// the default is [`TILE_MAX_COOP`] instead.
pub const TILE_MAX: u32 = 64;

/// [`TILE_MAX`] where the device takes the type's own tensor-core matmul: on the H100 that beats
/// the tiles from 20 tokens on (8B Q4_K aggregate decode, 20 sequences 1,157 vs 1,142 tok/s, 32:
/// 1,755 vs 1,692, 64: 3,066 vs 1,937) and loses below (16: 959 vs 1,047; docs/PERF.md).
pub const TILE_MAX_COOP: u32 = 16;

/// The fewest tokens of a step that a type's tiled integer kernel takes; fewer run its mat-vec
/// over a few tokens, whose workgroups of 2 rows keep more of the weights in flight. H100 8B
/// Q4_K aggregate decode, few-token kernel vs tiles: 2 sequences 331 vs 148 tok/s, 4: 471 vs
/// 293, 6: 467 vs ~430, 8: 585 vs 568 (docs/PERF.md).
pub const TILE_MIN: u32 = 9;

/// A kernel geometry for tuning benchmarks: workgroup size, rows per workgroup, token-group
/// sizes.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct MultiShape {
    pub wg: u32,
    pub rows: u32,
    pub tokens: Vec<u32>,
}

/// One token-group size of one kernel: its pipeline and, per piece, its bind group and grid.
struct Variant {
    /// Tokens per pass over the weights.
    nt: u32,
    /// The tiled integer kernel (`matmul_int_<type>.wgsl`) rather than the mat-vec's.
    tile: bool,
    key: String,
    pipeline: wgpu::ComputePipeline,
    binds: Vec<wgpu::BindGroup>,
    grids: Vec<[u32; 2]>,
}

/// `Y[y_off + t·w.rows + r] (+)= Σ_c W[r, c] · X[x_off + t·x_stride + c]` for the step's tokens,
/// ready to encode.
pub struct MatVecMulti {
    /// Ascending NT, the mat-vec's variants first.
    variants: Vec<Variant>,
    /// The most tokens a step runs on the mat-vec's variants where there are tiled ones:
    /// `Caps::multi_max` or `Caps::tile_min` - 1, the larger.
    few_max: u32,
    max_tokens: u32,
    _params: Vec<PieceParams>,
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

        // Per piece, for workgroups of `rows` rows: its grid and parameters.
        let layout = |rows: u32| -> Result<(Vec<[u32; 2]>, Vec<Params>)> {
            let mut grids = Vec::new();
            let mut params = Vec::new();
            for piece in &w.pieces {
                let groups = piece.rows.div_ceil(rows as u64);
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
            Ok((grids, params))
        };
        let set = |key: &str, src: String, name: &str, to: u32| -> Result<String> {
            let from = const_u32(&src, name).ok_or_else(|| bad_kernel(key, format!("no `const {name}`")))?;
            let old = format!("const {name}: u32 = {from}u;");
            Ok(src.replace(&old, &format!("const {name}: u32 = {to}u;")))
        };
        let binds = |key: &str, pipeline: &wgpu::ComputePipeline, params: &PieceParams| -> Result<Vec<_>> {
            w.pieces
                .iter()
                .enumerate()
                .map(|(i, piece)| {
                    gpu.bind(
                        key,
                        pipeline,
                        &[
                            piece.binding(w.row_bytes),
                            x.as_entire_binding(),
                            y.as_entire_binding(),
                            params.binding(i),
                            step.buffer().as_entire_binding(),
                        ],
                    )
                })
                .collect()
        };

        let mut variants = Vec::new();
        let mut all_params = Vec::new();
        let (grids, params) = layout(nr)?;
        let params = PieceParams::new(gpu, &base, &params)?;
        let mut sorted = tokens;
        sorted.sort_unstable();
        sorted.dedup();
        for nt in sorted {
            let key = format!("{base}{suffix}_nt{nt}");
            let overrides = [("WG", wg as f64)];
            let pipeline = gpu.pipeline_with(&key, Family::Auto, &overrides, || {
                let src = matvec_multi_source(ty, subgroups, browser).ok_or_else(unsupported)?;
                set(&key, set(&key, src, "NT", nt)?, "NR", nr)
            })?;
            let binds = binds(&key, &pipeline, &params)?;
            variants.push(Variant { nt, tile: false, key, pipeline, binds, grids: grids.clone() });
        }
        all_params.push(params);

        // The tiled integer kernel, at each token tile that fits the device's workgroup memory.
        let tiled = matmul_int_kernel(ty).filter(|_| shape.is_none() && caps.tile_max > 1);
        if let Some(kernel) = tiled {
            let tile_base = format!("matmul_int_{}", ty.name().to_ascii_lowercase());
            let geometry = |name: &str| {
                const_u32(kernel, name).ok_or_else(|| bad_kernel(&tile_base, format!("no `const {name}`")))
            };
            let (rg, kg, rpt, tpt) = (geometry("RG")?, geometry("KG")?, geometry("RPT")?, geometry("TPT")?);
            let (grids, params) = layout(rg * rpt)?;
            let params = PieceParams::new(gpu, &tile_base, &params)?;
            for nt in TILE_TOKENS {
                let invocations = kg * rg * (nt / tpt);
                if tile_workgroup_bytes(rg * rpt, nt) > caps.max_workgroup_storage
                    || invocations > caps.max_invocations_per_workgroup
                {
                    continue;
                }
                let key = format!("{tile_base}_bt{nt}");
                let pipeline = gpu.pipeline_with(&key, Family::Auto, &[], || {
                    set(&key, for_backend(kernel.to_string(), false, browser), "TG", nt / tpt)
                })?;
                let binds = binds(&key, &pipeline, &params)?;
                variants.push(Variant { nt, tile: true, key, pipeline, binds, grids: grids.clone() });
            }
            all_params.push(params);
        }
        gpu.check(&format!("preparing `{base}` for `{}`", w.name))?;
        let few_max = caps.multi_max.max(caps.tile_min.saturating_sub(1));
        Ok(MatVecMulti { variants, few_max, max_tokens, _params: all_params })
    }

    /// The variant a step of `n_tokens` runs: where there are tiled variants and the step has
    /// more than `few_max` tokens, one of them, else one of the mat-vec's; of those the smallest
    /// that holds the tokens, else the largest.
    fn variant(&self, n_tokens: u32) -> &Variant {
        let tiled = n_tokens > self.few_max && self.variants.iter().any(|v| v.tile);
        let mut set = self.variants.iter().filter(|v| v.tile == tiled);
        let last = set.clone().next_back().expect("a variant of each kind built");
        set.find(|v| v.nt >= n_tokens).unwrap_or(last)
    }

    /// The pipeline key a step of `n_tokens` runs (`matvec_multi_q4_k_sg_nt4`,
    /// `matmul_int_q4_k_bt64`).
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
        for (bind, [gx, gy]) in v.binds.iter().zip(&v.grids) {
            pass.set_bind_group(0, bind, &[]);
            pass.dispatch_workgroups(*gx, *gy, 1);
        }
    }
}

/// Workgroup memory of `matmul_int_<type>.wgsl` with `rows` rows and `tokens` tokens a pass,
/// bytes: levels of both (17 vectors a row), each row's scales and d, each token's sums and
/// scale. A unit test holds it to the kernel's declarations.
pub fn tile_workgroup_bytes(rows: u32, tokens: u32) -> u32 {
    rows * 17 * 16 + tokens * 17 * 16 + rows * (16 + 8) + tokens * (32 + 4)
}

/// CPU twin of [`MatVecMulti`]: `Y[t, r] = Σ_c W[r, c] · X[t, c]` for `n_tokens` rows of `x`
/// (`[n_tokens, cols]` f32, as the kernel's levels or floats dequantize) and every row of `w`
/// (GGUF bytes of type `ty`); returns Y as `[n_tokens, rows]`, one `quant::dot` per (token,
/// row) — the matmul's product, which this kernel computes for fewer tokens.
pub fn matvec_multi_cpu(ty: GgmlType, w: &[u8], x: &[f32], n_tokens: usize, cols: usize) -> Result<Vec<f32>> {
    matmul_cpu(ty, w, x, n_tokens, cols)
}
