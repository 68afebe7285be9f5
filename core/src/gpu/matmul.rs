//! Launcher for `shaders/matmul.wgsl`, the tiled product of prefill and batched decode
//! (`Y[t, r] = Σ_c W[r, c] · X[t, c]` with W in its GGUF encoding, any type with a decoder), and
//! its CPU twin [`matmul_cpu`].
//!
//! A [`MatMul`] is built once per (weight tensor, X, Y) at load: the pipeline `matmul_<type>` (the
//! type's decoder + the kernel), the parameters of every piece of a row-split tensor and their
//! bind groups. Every piece writes its rows into the same Y (`[tokens, w.rows]`), so a split
//! tensor's output is one matrix. `encode` sizes the grid's token side from the step's count.
//!
//! Two kernels, one interface: where the device has cooperative matrices ([`Caps::coop_matrix`],
//! native Vulkan/Metal GPUs with 16×16×16 f16 tiles) the pipeline is `matmul_coop_<type>`
//! (`shaders/matmul_coop.wgsl`: the tensor cores, f16 operands, f32 sums, 128 × 64 tiles);
//! everywhere else `matmul_<type>` (`shaders/matmul.wgsl`: f32 throughout, nothing optional —
//! no subgroups, no f16, 16 KiB of workgroup memory — so it runs on every device).
//! [`GpuOptions::no_coop_matrix`](super::GpuOptions) forces the portable one. A type may have its
//! own tensor-core kernel (`shaders/matmul_coop_q4_k.wgsl`: the blocks read with 16-byte loads,
//! the next stage's in flight), taken where the adapter's workgroup memory holds it.
//!
//! Split-K (tensor cores only): a step of up to [`SPLIT_TOKENS`] tokens on a tensor of few 128-row
//! tiles (a 4096-row projection has 32, an H100 132 SMs) would leave most of the GPU idle, each
//! workgroup decoding its tile over the whole width in turn. There the grid gets a third dimension
//! of `splits` column ranges, chosen at load from the rows, the width and
//! [`Caps::split_target`] (the workgroups to aim for); each writes its partial sums to the device's
//! shared split scratch and [`MatMulReduce`] sums them into Y. Longer steps fill the GPU with token
//! tiles and run unsplit.
//!
//! Staged product (tensor cores, [`Caps::gemm`]): a step of at least [`GEMM_MIN_TOKENS`] tokens
//! ([`Caps::gemm_min_tokens`]) does not decode weight tiles inside its multiply loop. `gemm_stage.wgsl` first decodes the
//! weights, a chunk of rows at a time, into f16 rows of the device's shared staging buffer (and
//! the step's X once, beside them), and `gemm_coop.wgsl` multiplies the staged rows with plain
//! 16-byte loads and 128 × 128 tiles: on an H100 ~130–155 TFLOP/s against the decoding kernel's
//! 40–46, for one f16 write and read of each weight per step (docs/PERF.md).
//!
//! [`Caps::coop_matrix`]: super::Caps::coop_matrix
//! [`Caps::split_target`]: super::Caps::split_target
//! [`Caps::gemm`]: super::Caps::gemm
//! [`Caps::gemm_min_tokens`]: super::Caps::gemm_min_tokens

use super::matmul_reduce::MatMulReduce;
use super::params::{PieceParams, check_fits};
use super::pipelines::Family;
use super::shaders::{const_u32, dequant_stem, matmul_coop_typed, source, with_decoder, with_includes};
use super::{Gpu, GpuTensor, StepBuffer};
use crate::quant::{self, GgmlType};
use crate::{Error, Result};

/// Mirrors `struct Params` of matmul.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n_rows: u32,
    cols: u32,
    row_bytes: u32,
    x_off: u32,
    y_off: u32,
    y_stride: u32,
    max_tokens: u32,
    first_row: u32,
    k_split: u32,
    split_tokens: u32,
    _pad: [u32; 2],
}

const _: () = assert!(size_of::<Params>() == 48);

/// Mirrors `struct Params` of gemm_stage.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct StageParams {
    n_rows: u32,
    cols: u32,
    row_bytes: u32,
    row0_byte: u32,
    kq: u32,
    x_off: u32,
    w_at: u32,
    max_tokens: u32,
}

/// Mirrors `struct Params` of gemm_coop.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct GemmParams {
    n_rows: u32,
    kq8: u32,
    w_at8: u32,
    y_off: u32,
    y_stride: u32,
    max_tokens: u32,
    _pad: [u32; 2],
}

/// Default of [`Caps::gemm_min_tokens`](super::Caps::gemm_min_tokens): steps longer than the
/// split-K ones. Shorter steps keep the decoding kernel, where staging every weight as f16 would
/// cost more than the multiply saves.
pub const GEMM_MIN_TOKENS: u32 = SPLIT_TOKENS + 1;

/// Bytes of the device's staging buffer for the staged product (X region and W region), at most
/// one storage binding: llama3-8b's widest weight (4096 × 14336) and a 512-token X fit whole, its
/// fused gate|up (28672 rows) in two chunks.
const GEMM_SCRATCH_BYTES: u64 = 144 << 20;

/// Default of [`Caps::split_target`](super::Caps::split_target): about two workgroups per SM of an
/// H100 (132 SMs), so one's loads overlap the other's multiplies.
pub const SPLIT_TARGET: u32 = 256;
/// Steps of at most this many tokens may split their columns (the split scratch holds this many
/// tokens per split): up to two token tiles.
pub const SPLIT_TOKENS: u32 = 128;
/// The fewest columns a split takes (at least one TK-column step), and the most splits: past these
/// the partial sums cost more traffic than the extra workgroups save.
const MIN_SPLIT_COLS: u64 = 128;
const MAX_SPLITS: u64 = 16;

/// How a [`MatMul`] splits its columns for a step of few tokens.
struct Split {
    /// Grid depth: column ranges of `k_split` columns (the last one shorter).
    splits: u32,
    /// Steps of at most this many tokens split.
    tokens: u32,
    reduce: MatMulReduce,
    /// The reduce adds into the residual stream ([`MatMul::new_residual`]).
    residual: bool,
}

/// `Y[y_off + t·w.rows + r] = Σ_c W[r, c] · X[x_off + t·cols + c]` for the step's tokens, ready
/// to encode.
pub struct MatMul {
    key: String,
    pipeline: wgpu::ComputePipeline,
    /// Per piece: its bind group and its workgroups along the rows.
    pieces: Vec<(wgpu::BindGroup, u32)>,
    /// Tokens per workgroup tile (the kernel's `const TN`).
    tile_tokens: u32,
    max_tokens: u32,
    split: Option<Split>,
    /// The staged product, for steps of at least `Caps::gemm_min_tokens` tokens.
    gemm: Option<Box<Gemm>>,
    _params: PieceParams,
}

/// A [`MatMul`]'s staged product: per chunk of a piece's rows, a staging dispatch
/// (`gemm_stage_<type>`) and a product dispatch (`gemm_coop`) over the device's staging buffer.
struct Gemm {
    stage: wgpu::ComputePipeline,
    gemm: wgpu::ComputePipeline,
    chunks: Vec<Chunk>,
    /// Workgroups along a staged row.
    stage_groups: u32,
    /// Tokens per tile of `gemm_coop`.
    tile_tokens: u32,
    max_tokens: u32,
    /// Steps of at least this many tokens take it.
    min_tokens: u32,
    _params: [PieceParams; 2],
}

struct Chunk {
    stage: wgpu::BindGroup,
    gemm: wgpu::BindGroup,
    rows: u32,
    /// The tensor's first chunk also stages the step's X.
    stages_x: bool,
    row_tiles: u32,
}

impl Gemm {
    /// The plan for `w`, or `None` where the device has no staged product or its staging buffer
    /// cannot hold X and one tile of rows.
    fn new(
        gpu: &Gpu,
        w: &GpuTensor,
        (x, x_off): (&wgpu::Buffer, u64),
        (y, y_off): (&wgpu::Buffer, u64),
        step: &StepBuffer,
        max_tokens: u32,
    ) -> Result<Option<Gemm>> {
        let min_tokens = gpu.caps().gemm_min_tokens;
        if !gpu.caps().gemm || max_tokens < min_tokens {
            return Ok(None);
        }
        let unsupported = || Error::UnsupportedType { ty: w.ty, op: "GPU matmul" };
        let missing = |name: &str| Error::GpuValidation {
            context: "preparing the staged matmul".into(),
            message: format!("{name} is not in shaders::ALL or lacks its tile constants"),
        };
        let kernel = source("gemm_coop.wgsl").ok_or_else(|| missing("gemm_coop.wgsl"))?;
        let stage_src = source("gemm_stage.wgsl").ok_or_else(|| missing("gemm_stage.wgsl"))?;
        let tile = |name| const_u32(kernel, name).filter(|&t| t > 0).ok_or_else(|| missing("gemm_coop.wgsl"));
        let (tm, tn, tk) = (tile("TM")? as u64, tile("TN")?, tile("TK")? as u64);
        let stage_wg =
            const_u32(stage_src, "WG").filter(|&t| t > 0).ok_or_else(|| missing("gemm_stage.wgsl"))?;

        // Staged rows: the width rounded up to whole steps, as f16 (8 bytes per vec4<f16>).
        let kq = w.cols.next_multiple_of(tk) / 4;
        let row_unit = kq * 8;
        let scratch = gemm_scratch(gpu)?;
        let x_bytes = (max_tokens as u64).next_multiple_of(tn as u64) * row_unit;
        let room = scratch.size().saturating_sub(x_bytes) / row_unit / tm * tm;
        let max_dim = gpu.caps().max_workgroups_per_dim as u64;
        let most_rows = room.min((max_dim.saturating_sub(max_tokens as u64)) / tm * tm);
        if most_rows == 0 || kq.div_ceil(2 * stage_wg as u64) > max_dim {
            return Ok(None);
        }

        let key = format!("gemm_stage_{}", w.ty.name().to_ascii_lowercase());
        let stage =
            gpu.pipeline(&key, Family::Auto, || with_decoder(stage_src, w.ty).ok_or_else(unsupported))?;
        let gemm = gpu.pipeline("gemm_coop", Family::Auto, || Ok(kernel.to_string()))?;
        let (mut stage_params, mut gemm_params, mut spans) = (Vec::new(), Vec::new(), Vec::new());
        for (i, piece) in w.pieces.iter().enumerate() {
            // Chunks of equal rows (whole tiles but the last), as few as the buffer allows.
            let n = piece.rows.div_ceil(most_rows);
            let per = piece.rows.div_ceil(n.max(1)).next_multiple_of(tm);
            let mut first = 0;
            while first < piece.rows {
                let rows = per.min(piece.rows - first);
                stage_params.push(StageParams {
                    n_rows: rows as u32,
                    cols: w.cols as u32,
                    row_bytes: w.row_bytes as u32,
                    row0_byte: (first * w.row_bytes) as u32,
                    kq: kq as u32,
                    x_off: x_off as u32,
                    w_at: (x_bytes / 8) as u32,
                    max_tokens,
                });
                gemm_params.push(GemmParams {
                    n_rows: rows as u32,
                    kq8: (kq / 2) as u32,
                    w_at8: (x_bytes / 16) as u32,
                    y_off: (y_off + piece.first_row + first) as u32,
                    y_stride: w.rows as u32,
                    max_tokens,
                    _pad: [0; 2],
                });
                spans.push((i, rows));
                first += rows;
            }
        }
        let params =
            [PieceParams::new(gpu, &key, &stage_params)?, PieceParams::new(gpu, "gemm_coop", &gemm_params)?];
        let chunks = spans
            .iter()
            .enumerate()
            .map(|(c, &(i, rows))| {
                let piece = &w.pieces[i];
                let stage_bind = gpu.bind(
                    &key,
                    &stage,
                    &[
                        piece.binding(w.row_bytes),
                        x.as_entire_binding(),
                        scratch.as_entire_binding(),
                        params[0].binding(c),
                        step.buffer().as_entire_binding(),
                    ],
                )?;
                let gemm_bind = gpu.bind(
                    "gemm_coop",
                    &gemm,
                    &[
                        scratch.as_entire_binding(),
                        y.as_entire_binding(),
                        params[1].binding(c),
                        step.buffer().as_entire_binding(),
                    ],
                )?;
                Ok(Chunk {
                    stage: stage_bind,
                    gemm: gemm_bind,
                    rows: rows as u32,
                    stages_x: c == 0,
                    row_tiles: rows.div_ceil(tm) as u32,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Some(Gemm {
            stage,
            gemm,
            chunks,
            stage_groups: kq.div_ceil(2 * stage_wg as u64) as u32,
            tile_tokens: tn,
            max_tokens,
            min_tokens,
            _params: params,
        }))
    }

    /// Records the staging and, with `multiply`, the product of every chunk.
    fn encode_with(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32, multiply: bool) {
        let n = n_tokens.min(self.max_tokens);
        for c in &self.chunks {
            pass.set_pipeline(&self.stage);
            pass.set_bind_group(0, &c.stage, &[]);
            pass.dispatch_workgroups(self.stage_groups, c.rows + if c.stages_x { n } else { 0 }, 1);
            if multiply {
                pass.set_pipeline(&self.gemm);
                pass.set_bind_group(0, &c.gemm, &[]);
                pass.dispatch_workgroups(c.row_tiles, n.div_ceil(self.tile_tokens), 1);
            }
        }
    }
}

impl MatMul {
    /// `x`: f32 `[x_off + max_tokens · w.cols]`; `y`: f32 `[y_off + max_tokens · w.rows]` (distinct
    /// buffers; offsets in elements).
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
    ) -> Result<MatMul> {
        MatMul::build(gpu, w, (x, x_off), (y, &[(w.rows, y_off)]), step, max_tokens, None, None)
    }

    /// [`MatMul::new`] of a projection into the residual stream `r` (`[max_tokens, w.rows]` from
    /// element 0): a split step's reduce adds the sums to `r` itself
    /// ([`MatMul::adds_to_residual`]), so the add kernel after it is left out; other steps write
    /// Y as [`MatMul::new`] does, for the caller to add.
    #[allow(clippy::too_many_arguments)] // buffers and sizes fixed at load, as every launcher's
    pub fn new_residual(
        gpu: &Gpu,
        w: &GpuTensor,
        (x, x_off): (&wgpu::Buffer, u64),
        (y, y_off): (&wgpu::Buffer, u64),
        r: &wgpu::Buffer,
        step: &StepBuffer,
        max_tokens: u32,
    ) -> Result<MatMul> {
        MatMul::build(gpu, w, (x, x_off), (y, &[(w.rows, y_off)]), step, max_tokens, None, Some(r))
    }

    /// The product of a fused tensor whose rows are `parts` end to end (q|k|v, gate|up), each
    /// part's output its own region of `y`, `[max_tokens, part rows]` from the part's offset (as
    /// [`MatMul::new`] of each part's view would write it) — in one dispatch over all the rows
    /// and one split-K reduce that puts each row in its part's region, where the parts' products
    /// would take one of each per part, the small ones filling a fraction of the GPU. Tensor cores
    /// only, for steps of up to [`SPLIT_TOKENS`] tokens (always split: the reduce places the
    /// rows); `None` where that does not hold or the split scratch has no room for it.
    pub fn new_parts(
        gpu: &Gpu,
        w: &GpuTensor,
        (x, x_off): (&wgpu::Buffer, u64),
        y: &wgpu::Buffer,
        parts: &[(u64, u64)],
        step: &StepBuffer,
        max_tokens: u32,
    ) -> Result<Option<MatMul>> {
        if !gpu.caps().coop_matrix
            || max_tokens > SPLIT_TOKENS
            || parts.iter().map(|&(r, _)| r).sum::<u64>() != w.rows
        {
            return Ok(None);
        }
        let m = MatMul::build(gpu, w, (x, x_off), (y, parts), step, max_tokens, None, None)?;
        Ok(m.split.is_some().then_some(m))
    }

    /// [`MatMul::new`] with `source` (a whole kernel in the form of `shaders/matmul_coop.wgsl`, or
    /// of `matmul.wgsl` without cooperative matrices: the decoder is spliced in front as for the
    /// built-in one; or in the form of a type's own kernel such as `matmul_coop_q4_k.wgsl`, which
    /// declares binding 0 and gets no decoder) in place of the built-in kernel, keyed
    /// `{stem}_{type}_{label}`: for trying kernel variants in benchmarks only.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub fn with_source(
        gpu: &Gpu,
        w: &GpuTensor,
        (x, x_off): (&wgpu::Buffer, u64),
        (y, y_off): (&wgpu::Buffer, u64),
        step: &StepBuffer,
        max_tokens: u32,
        label: &str,
        source: &str,
    ) -> Result<MatMul> {
        let variant = Some((label, source));
        MatMul::build(gpu, w, (x, x_off), (y, &[(w.rows, y_off)]), step, max_tokens, variant, None)
    }

    /// `parts`: (rows, offset in y) of each part of w's rows, in order; one for a plain product,
    /// several for [`MatMul::new_parts`] (always split then: only the reduce places rows by part).
    /// `residual`: the split reduce adds into this buffer instead ([`MatMul::new_residual`]).
    #[allow(clippy::too_many_arguments)]
    fn build(
        gpu: &Gpu,
        w: &GpuTensor,
        (x, x_off): (&wgpu::Buffer, u64),
        (y, parts): (&wgpu::Buffer, &[(u64, u64)]),
        step: &StepBuffer,
        max_tokens: u32,
        variant: Option<(&str, &str)>,
        residual: Option<&wgpu::Buffer>,
    ) -> Result<MatMul> {
        let fused = parts.len() > 1;
        let y_off = parts.first().map_or(0, |&(_, off)| off);
        let unsupported = || Error::UnsupportedType { ty: w.ty, op: "GPU matmul" };
        let stem = dequant_stem(w.ty).ok_or_else(unsupported)?;
        let coop = gpu.caps().coop_matrix;
        let kernel_stem = if coop { "matmul_coop" } else { "matmul" };
        let mut key = format!("{kernel_stem}_{}", &stem["dequant_".len()..]);
        // The type's own tensor-core kernel where there is one and the workgroup memory holds it.
        // It reads X in 16-byte units.
        let typed = matmul_coop_typed(w.ty).filter(|_| gpu.caps().coop_typed && x_off % 4 == 0);
        let variant_src;
        let kernel = match variant {
            Some((label, source)) => {
                key += &format!("_{label}");
                variant_src = with_includes(source);
                Some(variant_src.as_str())
            }
            None if typed.is_some() => {
                key = format!("matmul_coop_typed_{}", &stem["dequant_".len()..]);
                typed
            }
            None => source(&format!("{kernel_stem}.wgsl")),
        };
        let kernel = kernel.ok_or_else(|| Error::GpuValidation {
            context: format!("preparing `{key}`"),
            message: format!("{kernel_stem}.wgsl is not in shaders::ALL"),
        })?;
        let bad_kernel =
            |m: &str| Error::GpuValidation { context: format!("preparing `{key}`"), message: m.into() };
        let tile_rows =
            const_u32(kernel, "TM").filter(|&t| t > 0).ok_or_else(|| bad_kernel("no `const TM`"))?;
        let tile_tokens =
            const_u32(kernel, "TN").filter(|&t| t > 0).ok_or_else(|| bad_kernel("no `const TN`"))?;
        // A kernel that declares binding 0 reads the weights itself, as the type's own kernel
        // does (so only for a type that has one, and X 16-byte aligned); any other gets the
        // decoder.
        let reads_weights = kernel.contains("@binding(0)");
        if reads_weights && (matmul_coop_typed(w.ty).is_none() || x_off % 4 != 0) {
            return Err(bad_kernel(&format!(
                "it reads the weights itself: only for a type with its own kernel and X at a \
                 multiple of 4 elements ({} at {x_off})",
                w.ty
            )));
        }
        let pipeline = gpu.pipeline(&key, Family::Auto, || match reads_weights {
            true => Ok(kernel.to_string()),
            false => with_decoder(kernel, w.ty).ok_or_else(unsupported),
        })?;

        let max_dim = gpu.caps().max_workgroups_per_dim as u64;
        let too_large =
            |why: String| Error::GpuTensorTooLarge { name: w.name.clone(), bytes: w.gpu_bytes(), why };
        if max_tokens == 0 || (max_tokens as u64).div_ceil(tile_tokens as u64) > max_dim {
            return Err(too_large(format!("matmul for {max_tokens} tokens")));
        }
        check_fits("matmul x buffer bytes", x, x_off, max_tokens as u64 * w.cols)?;
        for &(rows, off) in parts {
            check_fits("matmul y buffer bytes", y, off, max_tokens as u64 * rows)?;
        }

        let split_tokens = max_tokens.min(SPLIT_TOKENS);
        let (scratch, splits, k_split) = match coop {
            true => {
                let tile_cols =
                    const_u32(kernel, "TK").filter(|&t| t > 0).ok_or_else(|| bad_kernel("no `const TK`"))?;
                let widest = w.pieces.iter().map(|p| p.rows.div_ceil(tile_rows as u64)).max().unwrap_or(0);
                let scratch = split_scratch(gpu, tile_rows)?;
                let token_bytes = split_tokens as u64 * w.rows * 4;
                let fit = scratch.size() / token_bytes.max(1);
                let (splits, k_split) =
                    plan_split(gpu.caps().split_target, widest, w.cols, tile_cols as u64, fit);
                // A fused product always splits (its reduce puts the rows in their parts), in
                // two at least where the plan would not.
                let (splits, k_split) = match fused && splits < 2 && fit >= 2 {
                    true => {
                        let steps = w.cols.div_ceil(tile_cols as u64);
                        let k = steps.div_ceil(2) * tile_cols as u64;
                        (w.cols.div_ceil(k) as u32, k as u32)
                    }
                    false => (splits, k_split),
                };
                (Some(scratch), splits, k_split)
            }
            false => (None, 1, w.cols as u32),
        };

        let mut params = Vec::new();
        let mut groups = Vec::new();
        for piece in &w.pieces {
            let g = piece.rows.div_ceil(tile_rows as u64);
            if g > max_dim {
                return Err(too_large(format!("{g} row tiles exceed {max_dim} workgroups")));
            }
            groups.push(g as u32);
            params.push(Params {
                n_rows: piece.rows as u32,
                cols: w.cols as u32,
                row_bytes: w.row_bytes as u32,
                x_off: x_off as u32,
                y_off: (y_off + piece.first_row) as u32,
                y_stride: w.rows as u32,
                max_tokens,
                first_row: piece.first_row as u32,
                k_split,
                split_tokens,
                _pad: [0; 2],
            });
        }
        let params = PieceParams::new(gpu, &key, &params)?;
        let pieces = w
            .pieces
            .iter()
            .zip(groups)
            .enumerate()
            .map(|(i, (piece, g))| {
                let mut resources = vec![
                    piece.binding(w.row_bytes),
                    x.as_entire_binding(),
                    y.as_entire_binding(),
                    params.binding(i),
                    step.buffer().as_entire_binding(),
                ];
                if let Some(scratch) = &scratch {
                    resources.push(scratch.as_entire_binding());
                }
                Ok((gpu.bind(&key, &pipeline, &resources)?, g))
            })
            .collect::<Result<_>>()?;
        let split = match (&scratch, splits > 1) {
            (Some(scratch), true) => {
                let reduce = match residual {
                    Some(r) => {
                        let whole = [(w.rows, 0)];
                        MatMulReduce::new(gpu, step, scratch, r, &whole, splits, split_tokens, true)?
                    }
                    None => MatMulReduce::new(gpu, step, scratch, y, parts, splits, split_tokens, false)?,
                };
                Some(Split { splits, tokens: split_tokens, reduce, residual: residual.is_some() })
            }
            _ => None,
        };
        let gemm = match variant {
            None if !fused => Gemm::new(gpu, w, (x, x_off), (y, y_off), step, max_tokens)?.map(Box::new),
            _ => None,
        };
        Ok(MatMul { key, pipeline, pieces, tile_tokens, max_tokens, split, gemm, _params: params })
    }

    /// Whether a step of `n_tokens` tokens adds its product to the residual stream itself (a
    /// split step of [`MatMul::new_residual`]); otherwise it writes Y.
    pub fn adds_to_residual(&self, n_tokens: u32) -> bool {
        self.staged_chunks(n_tokens) == 0
            && self.splits(n_tokens) > 1
            && self.split.as_ref().is_some_and(|s| s.residual)
    }

    /// The most tokens a step may have (the buffers' rows).
    pub fn max_tokens(&self) -> u32 {
        self.max_tokens
    }

    /// Column ranges a step of `n_tokens` tokens is split into (1: unsplit).
    pub fn splits(&self, n_tokens: u32) -> u32 {
        match &self.split {
            Some(s) if n_tokens <= s.tokens => s.splits,
            _ => 1,
        }
    }

    /// Chunks of rows a step of `n_tokens` tokens stages and multiplies (0: the step runs
    /// unstaged).
    pub fn staged_chunks(&self, n_tokens: u32) -> usize {
        match &self.gemm {
            Some(g) if n_tokens >= g.min_tokens => g.chunks.len(),
            _ => 0,
        }
    }

    /// Records only the staging dispatches of a staged step (nothing for an unstaged one): for
    /// timing the staging apart from the product in benchmarks.
    #[doc(hidden)]
    pub fn encode_staging(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) {
        if let Some(gemm) = self.gemm.as_ref().filter(|_| self.staged_chunks(n_tokens) > 0) {
            gemm.encode_with(pass, n_tokens, false);
        }
    }

    /// The pipeline key (`matmul_q4_k`, or `matmul_coop_q4_k` on the tensor cores).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Records the product for `n_tokens` tokens (the step buffer's count; at most `max_tokens`):
    /// one dispatch per piece of the weight tensor (and the split-K reduce), or, staged, two per
    /// chunk of rows.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) {
        if let Some(gemm) = self.gemm.as_ref().filter(|_| self.staged_chunks(n_tokens) > 0) {
            gemm.encode_with(pass, n_tokens, true);
            return;
        }
        let gy = n_tokens.min(self.max_tokens).div_ceil(self.tile_tokens);
        if gy == 0 {
            return;
        }
        let splits = self.splits(n_tokens);
        pass.set_pipeline(&self.pipeline);
        for (bind, gx) in &self.pieces {
            pass.set_bind_group(0, bind, &[]);
            pass.dispatch_workgroups(*gx, gy, splits);
        }
        if let Some(split) = self.split.as_ref().filter(|_| splits > 1) {
            split.reduce.encode(pass, n_tokens);
        }
    }
}

/// `(splits, k_split)` for a tensor whose widest piece has `row_tiles` tiles of rows, `cols`
/// columns in steps of `tile_cols`, and a scratch of room for `fit` splits: enough splits to bring
/// a one-token-tile grid up to `target` workgroups, each at least [`MIN_SPLIT_COLS`] columns wide,
/// at most [`MAX_SPLITS`]; `k_split` columns each (a multiple of `tile_cols`, so no split is
/// empty). `(1, cols)` where splitting would not help.
fn plan_split(target: u32, row_tiles: u64, cols: u64, tile_cols: u64, fit: u64) -> (u32, u32) {
    let steps = cols.div_ceil(tile_cols.max(1));
    let want = (target as u64).div_ceil(row_tiles.max(1));
    let min_steps = MIN_SPLIT_COLS.div_ceil(tile_cols.max(1));
    let splits = want.min(MAX_SPLITS).min(steps / min_steps).min(fit);
    if row_tiles == 0 || splits < 2 {
        return (1, cols as u32);
    }
    let k_split = steps.div_ceil(splits) * tile_cols;
    (cols.div_ceil(k_split) as u32, k_split as u32)
}

/// The device's split scratch (made on first use): room for [`SPLIT_TOKENS`] tokens of twice the
/// rows a grid of `split_target` row tiles covers (a tensor splits only while its tiles are fewer
/// than the target, so splits × rows stay under twice that), within one storage binding.
fn split_scratch(gpu: &Gpu, tile_rows: u32) -> Result<wgpu::Buffer> {
    let mut slot = gpu.pipelines.split_scratch.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(b) = slot.as_ref() {
        return Ok(b.clone());
    }
    let caps = gpu.caps();
    let want = 2 * caps.split_target.max(1) as u64 * tile_rows as u64 * SPLIT_TOKENS as u64 * 4;
    let bytes = want.min(caps.max_storage_binding).min(caps.max_buffer_size) / 4 * 4;
    let buffer = gpu.storage("matmul split scratch", bytes)?;
    *slot = Some(buffer.clone());
    Ok(buffer)
}

/// The device's staging buffer for the staged product (made on first use):
/// [`GEMM_SCRATCH_BYTES`] within one storage binding.
fn gemm_scratch(gpu: &Gpu) -> Result<wgpu::Buffer> {
    let mut slot = gpu.pipelines.gemm_scratch.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(b) = slot.as_ref() {
        return Ok(b.clone());
    }
    let caps = gpu.caps();
    let bytes = GEMM_SCRATCH_BYTES.min(caps.max_storage_binding).min(caps.max_buffer_size) / 16 * 16;
    let buffer = gpu.storage("matmul staging", bytes)?;
    *slot = Some(buffer.clone());
    Ok(buffer)
}

/// CPU twin of [`MatMul`]: `Y[t, r] = Σ_c W[r, c] · X[t, c]` for `n_tokens` rows of `x`
/// (`[n_tokens, cols]`) and every row of `w` (GGUF bytes of type `ty`); returns Y as
/// `[n_tokens, rows]`, one [`quant::dot`] per (token, row).
pub fn matmul_cpu(ty: GgmlType, w: &[u8], x: &[f32], n_tokens: usize, cols: usize) -> Result<Vec<f32>> {
    let row_bytes = ty.row_bytes(cols as u64).ok_or(Error::PartialBlockElements {
        ty,
        len: cols,
        block_elems: ty.block_size(),
    })? as usize;
    if x.len() != n_tokens * cols {
        return Err(Error::LengthMismatch { what: "matmul x", expected: n_tokens * cols, got: x.len() });
    }
    if row_bytes == 0 || !w.len().is_multiple_of(row_bytes) {
        return Err(Error::PartialBlock { ty, len: w.len(), block_bytes: row_bytes.max(1) });
    }
    let rows = w.len() / row_bytes;
    let mut y = vec![0f32; n_tokens * rows];
    for (t, out) in y.chunks_exact_mut(rows.max(1)).enumerate() {
        let xt = &x[t * cols..(t + 1) * cols];
        for (r, o) in out.iter_mut().enumerate() {
            *o = quant::dot(ty, &w[r * row_bytes..(r + 1) * row_bytes], xt)?;
        }
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::plan_split;

    /// The llama3-8b projections at the default target, and the limits: no split past the
    /// target, too narrow a width, or a full scratch; splits never empty.
    #[test]
    fn split_plans() {
        let plan = |tiles, cols, fit| plan_split(256, tiles, cols, 32, fit);
        assert_eq!(plan(32, 4096, 100), (8, 512), "4096 x 4096");
        assert_eq!(plan(8, 4096, 100), (16, 256), "1024 x 4096 (k, v)");
        assert_eq!(plan(112, 4096, 100), (3, 1376), "14336 x 4096");
        assert_eq!(plan(32, 14336, 100), (8, 1792), "4096 x 14336");
        assert_eq!(plan(1002, 4096, 100), (1, 4096), "output: enough tiles");
        // The typed Q4_K kernel's steps are whole blocks: a split may be one block.
        let typed = |tiles, cols| plan_split(256, tiles, cols, 256, 100);
        assert_eq!(typed(32, 4096), (8, 512), "typed 4096 x 4096");
        assert_eq!(typed(224, 4096), (2, 2048), "typed 28672 x 4096 (gate|up)");
        assert_eq!(typed(32, 14336), (8, 1792), "typed 4096 x 14336");
        assert_eq!(typed(8, 512), (2, 256), "typed: one block a split at the least");
        assert_eq!(plan(1, 96, 100), (1, 96), "3 steps: too narrow");
        assert_eq!(plan(32, 4096, 1), (1, 4096), "scratch full");
        assert_eq!(plan_split(0, 32, 4096, 32, 100), (1, 4096), "off");
        for cols in 1..2000u64 {
            let (s, k) = plan(1, cols, 100);
            assert!(
                s >= 1 && (s as u64 - 1) * (k as u64) < cols && s as u64 * k as u64 >= cols,
                "{cols}: {s} x {k}"
            );
        }
    }
}
