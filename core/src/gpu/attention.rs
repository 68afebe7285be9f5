//! Launcher for the attention kernels of the forward pass — `shaders/attn_decode.wgsl` with
//! `attn_merge.wgsl` (the step's one-token runs, flash-decoding) and `attn_prefill.wgsl` (tiles of
//! its longer runs) — and their CPU twin [`attention_cpu`].
//!
//! Inputs: q f32 `[n_tokens, n_head, head_dim]` (roped, and already scaled by `q_scale` where
//! the architecture does), one layer's K and V caches f16 packed two per u32, `[n_seq, n_ctx,
//! kv_dim]` (a region per sequence), holding each token's cells once the step's keys and values
//! are stored. Output: att f32 `[n_tokens, n_head · head_dim]`. A token at position `pos` of
//! sequence `s` (the step table) attends to cells `start..=pos` of region `s`, `start` being 0
//! or, on a sliding-window layer, `pos + 1 - window`; q head h reads kv head `h / (n_head /
//! n_head_kv)`; `p = softmax((q·k) · kq_scale)` rounded to f16, `out = Σ p·v`. This mirrors
//! `cpu::forward`'s attention over an un-transposed V cache, down to that rounding: llama.cpp's
//! P·V product takes p in f16 (the f16 V cache's `vec_dot_type`), so the kernels normalise each
//! p before the product — a pass for the softmax's max and sum, then one for Σ p·v — instead of
//! an online softmax that divides at the end (which moved SmolLM2's attention outputs by up to
//! 4e-4 of their size, a hundred times the f32 rounding).
//!
//! [`Attention::new`] builds the three pipelines, the parameters and the bind groups once (the
//! decode scratch, sized by [`Attention::scratch_bytes`], is the caller's: one serves every layer,
//! since they run one after another); [`Attention::encode`] dispatches the decode kernel over the
//! plan's one-token runs and the prefill kernel over its tiles. Decode splits a token's cells into
//! at most `n_split` chunks (enough workgroups to fill a large GPU even with few heads); a token
//! with one chunk (short contexts) has its row written by the decode kernel's phase 0; tokens
//! with more get a second dispatch of the decode kernel (phase 1: the chunks' Σ p·v, once every
//! chunk's max and sum are known) and the merge, neither dispatched when no token needs them.
//! Where a model's q heads per kv head are a multiple of 4, a step of many decode workgroups
//! (a batch of sequences, [`Caps::attn_grouped_min`](super::Caps::attn_grouped_min)) runs
//! `attn_decode_gqa.wgsl` instead: four q heads of a kv head a workgroup, each K and V row read
//! once for them, every head's output the same bits.
//! Prefill is tiled like a matmul (a workgroup per 64 tokens of a run and one head, scores and
//! outputs in register blocks, K/V tiles through 16 KiB of workgroup memory): it needs no
//! cross-lane reduction inside its loops, so it is one kernel (`attn_prefill`) with or without
//! subgroups. It keeps the two passes (the exact f16 probabilities), at 1.5× the arithmetic of a
//! one-pass flash kernel.

use half::f16;

use super::pipelines::Family;
use super::shaders::{const_u32, source};
use super::{Gpu, StepPlan, StepTable};
use crate::{Error, Result};

/// The shapes an [`Attention`] is built for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttnDims {
    pub n_head: u32,
    /// Divides `n_head`.
    pub n_head_kv: u32,
    /// A multiple of 8, at most 256 (64, 80, 96, 128, 256 in the supported models).
    pub head_dim: u32,
    /// Cells of each sequence's region of the cache.
    pub n_ctx: u32,
    /// Sequences (regions) in the cache.
    pub n_seq: u32,
    /// Most tokens in one step (rows of q and att).
    pub max_tokens: u32,
    /// Multiplies q·k inside the softmax.
    pub kq_scale: f32,
    /// Sliding-window layer: positions a token sees, itself included.
    pub window: Option<u32>,
}

impl AttnDims {
    pub fn q_dim(&self) -> u32 {
        self.n_head * self.head_dim
    }

    pub fn kv_dim(&self) -> u32 {
        self.n_head_kv * self.head_dim
    }

    /// The first cell position `pos` attends to.
    pub fn window_start(&self, pos: u32) -> u32 {
        self.window.map_or(0, |w| pos.saturating_add(1).saturating_sub(w))
    }

    fn check(&self) -> Result<()> {
        let bad = |why: String| Err(Error::GpuAttention { why });
        if self.n_head == 0 || self.n_head_kv == 0 || !self.n_head.is_multiple_of(self.n_head_kv) {
            return bad(format!("{} q heads cannot share {} kv heads", self.n_head, self.n_head_kv));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(8) || self.head_dim > MAX_HEAD_DIM {
            return bad(format!("head_dim {} is not a multiple of 8 up to {MAX_HEAD_DIM}", self.head_dim));
        }
        if self.n_ctx == 0 || self.n_seq == 0 || self.max_tokens == 0 || self.window == Some(0) {
            return bad(format!(
                "n_ctx {}, n_seq {}, max_tokens {}, window {:?}",
                self.n_ctx, self.n_seq, self.max_tokens, self.window
            ));
        }
        Ok(())
    }

    /// Most decode tokens in a step: one per sequence.
    fn max_decode(&self) -> u32 {
        self.n_seq.min(self.max_tokens)
    }

    /// Chunks per token at most (rows of the decode scratch per head and token).
    fn n_split(&self, decode_tile: u32) -> u32 {
        DECODE_WORKGROUPS.div_ceil(self.n_head).clamp(1, MAX_SPLIT).min(self.n_ctx.div_ceil(decode_tile))
    }

    /// Checks that `plan` fits these dims: its tokens, and each token's sequence and position
    /// (the kernels would read another sequence's cells, or none, for one that does not).
    fn check_plan(&self, plan: &StepPlan) -> Result<()> {
        let bad = plan.at.iter().find(|&&[s, p]| s >= self.n_seq || p >= self.n_ctx);
        if plan.n_tokens() > self.max_tokens || plan.decode.len() as u32 > self.max_decode() || bad.is_some()
        {
            return Err(Error::GpuAttention {
                why: format!(
                    "a step of {} tokens ({} decoding{}) does not fit {} tokens, {} sequences of {} cells",
                    plan.n_tokens(),
                    plan.decode.len(),
                    bad.map_or(String::new(), |[s, p]| format!(", sequence {s} at {p}")),
                    self.max_tokens,
                    self.n_seq,
                    self.n_ctx
                ),
            });
        }
        Ok(())
    }
}

/// The kernels' limit on head_dim (their workgroup arrays are sized for it).
const MAX_HEAD_DIM: u32 = 256;
/// Decode workgroups wanted per step, across heads and chunks: a few per SM of a large GPU.
const DECODE_WORKGROUPS: u32 = 512;
/// Most chunks per head (rows of the decode scratch).
const MAX_SPLIT: u32 = 64;
/// Default [`Caps::attn_grouped_min`](super::Caps::attn_grouped_min): a step whose decode would
/// have at least this many one-head workgroups takes a kv head's q heads together.
pub const ATTN_GROUPED_MIN: u32 = 1024;
/// Default [`Caps::attn_one_chunk`](super::Caps::attn_one_chunk): a decode token of at most this
/// many cells takes them in one chunk (two tiles), so a batch of short sequences runs one decode
/// dispatch, not three (H100, 64 sequences at 129–160 cells: 3,600 → 3,783 tok/s; one sequence
/// at 200 cells within 2%).
pub const ATTN_ONE_CHUNK: u32 = 256;
/// q heads a grouped decode workgroup takes (attn_decode_gqa.wgsl): models whose q heads per kv
/// head are a multiple of it run it on large steps.
const GROUPED_HEADS: u32 = 4;

/// Mirrors `struct Params` of the attention kernels (`shaders/attn_params.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n_head: u32,
    group: u32,
    head_dim: u32,
    kv_dim: u32,
    q_off: u32,
    att_off: u32,
    window: u32,
    n_split: u32,
    kq_scale: f32,
    n_ctx: u32,
    /// attn_decode's phase: 0 statistics (and one-chunk tokens' outputs), 1 the chunks' Σ p·v.
    phase: u32,
    /// A decode token of at most this many cells takes them in one chunk (whole tiles).
    one_chunk: u32,
    /// 0, which the kernels cannot know (`shaders/exact_fp.wgsl`).
    zero: u32,
    _pad: [u32; 3],
}

const _: () = assert!(size_of::<Params>() == 64);

/// The decode kernel taking [`GROUPED_HEADS`] q heads of a kv head a workgroup.
struct Grouped {
    pipeline: wgpu::ComputePipeline,
    phases: [wgpu::BindGroup; 2],
}

/// One layer's attention, bound to its buffers, ready to encode.
pub struct Attention {
    dims: AttnDims,
    n_split: u32,
    decode_tile: u32,
    /// A decode token of at most this many cells takes them in one chunk.
    one_chunk: u32,
    decode: (wgpu::ComputePipeline, wgpu::BindGroup),
    /// The decode kernel's phase 1 (its own parameters).
    decode_values: wgpu::BindGroup,
    /// The decode kernel over [`GROUPED_HEADS`] q heads a workgroup (phase 0's and phase 1's
    /// bind groups), for steps of at least `grouped_min` one-head workgroups; `None` where the
    /// model's q heads per kv head are not a multiple of it.
    grouped: Option<Grouped>,
    grouped_min: u32,
    merge: (wgpu::ComputePipeline, wgpu::BindGroup),
    prefill: (wgpu::ComputePipeline, wgpu::BindGroup),
    prefill_key: String,
    /// Under exact numerics, the only kernel (`shaders/exact_attention.wgsl`) and its buffer of
    /// probabilities.
    exact: Option<(wgpu::ComputePipeline, wgpu::BindGroup, wgpu::Buffer)>,
    /// Kept alive for the bind groups: phase 0's and phase 1's.
    _params: [wgpu::Buffer; 2],
}

impl Attention {
    /// Bytes of the decode scratch for `dims`: f32 `[max decode tokens, n_head, n_split, 2 +
    /// head_dim]`.
    pub fn scratch_bytes(dims: &AttnDims) -> Result<u64> {
        dims.check()?;
        let tile = const_u32(source("attn_decode.wgsl").unwrap_or_default(), "TILE").unwrap_or(1).max(1);
        let rows = dims.max_decode() as u64 * dims.n_head as u64 * dims.n_split(tile) as u64;
        Ok(rows * (2 + dims.head_dim as u64) * 4)
    }

    /// The rows of a prefill tile (the prefill kernel's `BQ`): what [`StepPlan::new`] cuts runs
    /// into.
    pub fn tile_rows() -> Result<u32> {
        source("attn_prefill.wgsl")
            .and_then(|s| const_u32(s, "BQ"))
            .filter(|&v| v > 0)
            .ok_or_else(|| Error::GpuAttention { why: "no `const BQ` in attn_prefill.wgsl".into() })
    }

    /// q and att are f32 buffers (distinct), with `max_tokens` rows from element `q_off` /
    /// `att_off`; the caches hold `n_seq` regions of `n_ctx` rows of `kv_dim` f16; positions come
    /// from `table`; `scratch` holds at least [`Attention::scratch_bytes`] (shared by the layers).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        q: &wgpu::Buffer,
        q_off: u64,
        k_cache: &wgpu::Buffer,
        v_cache: &wgpu::Buffer,
        att: &wgpu::Buffer,
        att_off: u64,
        table: &StepTable,
        scratch: &wgpu::Buffer,
        dims: AttnDims,
    ) -> Result<Attention> {
        dims.check()?;
        let rows = dims.max_tokens as u64 * dims.q_dim() as u64;
        let fits = |what: &'static str, buf: &wgpu::Buffer, need: u64| {
            if need > buf.size() || need / 4 > u32::MAX as u64 {
                return Err(Error::LengthMismatch {
                    what,
                    expected: need as usize,
                    got: buf.size() as usize,
                });
            }
            Ok(())
        };
        fits("attention q buffer bytes", q, (q_off + rows) * 4)?;
        fits("attention output buffer bytes", att, (att_off + rows) * 4)?;
        let cache = dims.n_seq as u64 * dims.n_ctx as u64 * dims.kv_dim() as u64 * 2;
        fits("attention K cache bytes", k_cache, cache)?;
        fits("attention V cache bytes", v_cache, cache)?;

        let file = |name: &str| {
            source(name).ok_or_else(|| Error::GpuAttention { why: format!("{name} is not built in") })
        };
        let (decode_src, merge_src, prefill_src) =
            (file("attn_decode.wgsl")?, file("attn_merge.wgsl")?, file("attn_prefill.wgsl")?);
        let geometry = |src, name| {
            const_u32(src, name).filter(|&v| v > 0).ok_or_else(|| Error::GpuAttention {
                why: format!("no `const {name}` in an attention kernel"),
            })
        };
        let decode_tile = geometry(decode_src, "TILE")?;
        if geometry(merge_src, "TILE")? != decode_tile {
            return Err(Error::GpuAttention { why: "decode and merge disagree on TILE".into() });
        }
        let prefill_rows = geometry(prefill_src, "BQ")?;

        // The prefill kernel's tiles take 16 KiB, WebGPU's guaranteed minimum.
        let caps = gpu.caps();
        if caps.max_workgroup_storage < 16384 {
            return Err(Error::GpuAttention {
                why: format!("{} bytes of workgroup memory, 16384 needed", caps.max_workgroup_storage),
            });
        }
        let prefill_key = "attn_prefill".to_string();
        // head_dim as a pipeline constant: the kernels' loops over a row unroll.
        let decode_pipeline = |key: String, src: &str| {
            let src = src.to_string();
            gpu.pipeline_with(&key, Family::Auto, &[("HEAD_DIM", dims.head_dim as f64)], || Ok(src))
        };
        let decode = decode_pipeline(format!("attn_decode_hd{}", dims.head_dim), decode_src)?;
        let grouped_pipeline = match (dims.n_head / dims.n_head_kv).is_multiple_of(GROUPED_HEADS) {
            true => {
                let src = file("attn_decode_gqa.wgsl")?;
                if geometry(src, "TILE")? != decode_tile {
                    return Err(Error::GpuAttention { why: "the decode kernels disagree on TILE".into() });
                }
                Some(decode_pipeline(format!("attn_decode_gqa_hd{}", dims.head_dim), src)?)
            }
            false => None,
        };
        let merge = gpu.pipeline("attn_merge", Family::Auto, || Ok(merge_src.into()))?;
        let prefill = gpu.pipeline(&prefill_key, Family::Auto, || Ok(prefill_src.into()))?;

        let n_split = dims.n_split(decode_tile);
        let one_chunk = caps.attn_one_chunk.max(1).next_multiple_of(decode_tile);
        fits("attention decode scratch bytes", scratch, Attention::scratch_bytes(&dims)?)?;
        let [_, max_decode, max_tiles, _] = table.capacity();
        if (max_decode as u32) < dims.max_decode() || (max_tiles as u64) < prefill_tiles(&dims, prefill_rows)
        {
            return Err(Error::GpuAttention {
                why: format!(
                    "the step table's {max_decode} decode rows and {max_tiles} tiles are too few for {dims:?}"
                ),
            });
        }
        let params = Params {
            n_head: dims.n_head,
            group: dims.n_head / dims.n_head_kv,
            head_dim: dims.head_dim,
            kv_dim: dims.kv_dim(),
            q_off: q_off as u32,
            att_off: att_off as u32,
            window: dims.window.unwrap_or(0),
            n_split,
            kq_scale: dims.kq_scale,
            n_ctx: dims.n_ctx,
            phase: 0,
            one_chunk,
            zero: 0,
            _pad: [0; 3],
        };
        let params_buf = gpu.uniform("attn params", &params)?;
        let values_params = gpu.uniform("attn params, phase 1", &Params { phase: 1, ..params })?;
        let p = params_buf.as_entire_binding();
        let (at, dec, tiles) = (
            table.at().as_entire_binding(),
            table.decode().as_entire_binding(),
            table.tiles().as_entire_binding(),
        );
        let (qb, kb, vb, ab) = (
            q.as_entire_binding(),
            k_cache.as_entire_binding(),
            v_cache.as_entire_binding(),
            att.as_entire_binding(),
        );
        let bind_decode = |pipeline: &wgpu::ComputePipeline, params: wgpu::BindingResource<'_>| {
            gpu.bind(
                "attn_decode",
                pipeline,
                &[
                    qb.clone(),
                    kb.clone(),
                    vb.clone(),
                    ab.clone(),
                    scratch.as_entire_binding(),
                    params,
                    at.clone(),
                    dec.clone(),
                ],
            )
        };
        let (decode_values, decode_bind) =
            (bind_decode(&decode, values_params.as_entire_binding())?, bind_decode(&decode, p.clone())?);
        let grouped = match grouped_pipeline {
            Some(pipeline) => {
                let phases = [
                    bind_decode(&pipeline, p.clone())?,
                    bind_decode(&pipeline, values_params.as_entire_binding())?,
                ];
                Some(Grouped { pipeline, phases })
            }
            None => None,
        };
        let exact = match caps.exact {
            true => {
                let pipeline = gpu.pipeline("exact_attention", Family::Auto, || {
                    Ok(file("exact_attention.wgsl")?.to_string())
                })?;
                let n = dims.max_decode() as u64 * dims.n_head as u64 * dims.n_ctx as u64;
                let probs = gpu.storage("exact attention probabilities", n * 4)?;
                let bind = gpu.bind(
                    "exact_attention",
                    &pipeline,
                    &[
                        qb.clone(),
                        kb.clone(),
                        vb.clone(),
                        ab.clone(),
                        probs.as_entire_binding(),
                        p.clone(),
                        at.clone(),
                        dec.clone(),
                    ],
                )?;
                Some((pipeline, bind, probs))
            }
            false => None,
        };
        let merge_bind =
            gpu.bind("attn_merge", &merge, &[scratch.as_entire_binding(), ab.clone(), p.clone(), at, dec])?;
        let prefill_bind = gpu.bind(&prefill_key, &prefill, &[qb, kb, vb, ab, p, tiles])?;
        Ok(Attention {
            dims,
            n_split,
            decode_tile,
            one_chunk,
            decode: (decode, decode_bind),
            decode_values,
            grouped,
            grouped_min: caps.attn_grouped_min,
            merge: (merge, merge_bind),
            prefill: (prefill, prefill_bind),
            prefill_key,
            exact,
            _params: [params_buf, values_params],
        })
    }

    pub fn dims(&self) -> &AttnDims {
        &self.dims
    }

    /// The prefill pipeline's key (`attn_prefill`: one variant, with or without subgroups).
    pub fn prefill_key(&self) -> &str {
        &self.prefill_key
    }

    /// Chunks the decode kernel cuts the cells of the token at `pos` into (as the kernels compute
    /// it): one up to [`Caps::attn_one_chunk`](super::Caps::attn_one_chunk) cells, else chunks of
    /// `ceil(n_kv / n_split)` cells rounded up to whole tiles.
    pub fn decode_chunks(&self, pos: u32) -> u32 {
        let n_kv = pos.saturating_add(1) - self.dims.window_start(pos);
        if n_kv <= self.one_chunk {
            return 1;
        }
        n_kv.div_ceil(n_kv.div_ceil(self.n_split).next_multiple_of(self.decode_tile))
    }

    /// Records the attention of `plan`, which must be the plan written to the [`StepTable`] for
    /// this submission: the decode kernel (and the merge, where a token has several chunks) over
    /// its one-token runs, the prefill kernel over its tiles. Fails, recording nothing, if the plan
    /// does not fit the dims.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, plan: &StepPlan) -> Result<()> {
        self.dims.check_plan(plan)?;
        let n_head = self.dims.n_head;
        let n_decode = plan.decode.len() as u32;
        if let Some((pipeline, bind, _)) = &self.exact {
            if !plan.tiles.is_empty() {
                return Err(Error::ExactUnsupported {
                    what: "a step of more than one token a sequence".into(),
                });
            }
            if n_decode > 0 {
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, bind, &[]);
                pass.dispatch_workgroups(n_head, n_decode, 1);
            }
            return Ok(());
        }
        if n_decode > 0 {
            let pos = |t: &u32| plan.at.get(*t as usize).map_or(0, |a| a[1]);
            let chunks = plan.decode.iter().map(|t| self.decode_chunks(pos(t))).max().unwrap_or(1);
            let one_head = n_decode as u64 * n_head as u64 * chunks as u64;
            let (pipeline, phases, heads) = match &self.grouped {
                Some(g) if one_head >= self.grouped_min as u64 => {
                    (&g.pipeline, [&g.phases[0], &g.phases[1]], GROUPED_HEADS)
                }
                _ => (&self.decode.0, [&self.decode.1, &self.decode_values], 1),
            };
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, phases[0], &[]);
            pass.dispatch_workgroups(chunks, n_head / heads, n_decode);
            if chunks > 1 {
                pass.set_bind_group(0, phases[1], &[]);
                pass.dispatch_workgroups(chunks, n_head / heads, n_decode);
                pass.set_pipeline(&self.merge.0);
                pass.set_bind_group(0, &self.merge.1, &[]);
                pass.dispatch_workgroups(n_head, n_decode, 1);
            }
        }
        if !plan.tiles.is_empty() {
            pass.set_pipeline(&self.prefill.0);
            pass.set_bind_group(0, &self.prefill.1, &[]);
            pass.dispatch_workgroups(plan.tiles.len() as u32, n_head, 1);
        }
        Ok(())
    }
}

/// Most prefill tiles of a step: each run of more than one token cut into tiles of `rows`.
fn prefill_tiles(dims: &AttnDims, rows: u32) -> u64 {
    dims.max_tokens.div_ceil(rows.max(1)) as u64 + dims.max_decode() as u64
}

// The native host shares the engine with the server's tasks.
#[cfg(not(target_arch = "wasm32"))]
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Attention>();
};

/// CPU twin of [`Attention`]: att `[n_tokens, n_head · head_dim]` for q `[n_tokens, n_head,
/// head_dim]`, token t at (sequence, position) `at[t]`, over the f16 caches `[n_seq, n_ctx,
/// kv_dim]`, in plain f64 arithmetic but for the probabilities, rounded to f16 as the kernels
/// and the CPU reference round them.
pub fn attention_cpu(
    q: &[f32],
    k_cache: &[f16],
    v_cache: &[f16],
    at: &[(u32, u32)],
    dims: AttnDims,
) -> Result<Vec<f32>> {
    dims.check()?;
    let (n, hd) = (at.len(), dims.head_dim as usize);
    let (qd, kvd, group) =
        (dims.q_dim() as usize, dims.kv_dim() as usize, (dims.n_head / dims.n_head_kv) as usize);
    let n_ctx = dims.n_ctx as usize;
    let short = |what, expected: usize, got: usize| {
        (got < expected).then_some(Error::LengthMismatch { what, expected, got })
    };
    let cells = dims.n_seq as usize * n_ctx * kvd;
    if let Some(e) = short("attention q", n * qd, q.len())
        .or(short("attention K cache", cells, k_cache.len()))
        .or(short("attention V cache", cells, v_cache.len()))
    {
        return Err(e);
    }
    if let Some(&(s, p)) = at.iter().find(|&&(s, p)| s >= dims.n_seq || p >= dims.n_ctx) {
        return Err(Error::GpuAttention { why: format!("sequence {s} at {p} is outside the cache") });
    }
    let mut att = vec![0f32; n * qd];
    let mut scores = Vec::new();
    for (t, &(seq, pos)) in at.iter().enumerate() {
        let start = dims.window_start(pos) as usize;
        let region = seq as usize * n_ctx;
        for h in 0..dims.n_head as usize {
            let qh = &q[t * qd + h * hd..][..hd];
            let kv_off = (h / group) * hd;
            scores.clear();
            for cell in region + start..=region + pos as usize {
                let k = &k_cache[cell * kvd + kv_off..][..hd];
                let dot: f64 = qh.iter().zip(k).map(|(&a, b)| a as f64 * b.to_f64()).sum();
                scores.push(dot * dims.kq_scale as f64);
            }
            let max = scores.iter().fold(f64::NEG_INFINITY, |m, &s| m.max(s));
            scores.iter_mut().for_each(|s| *s = (*s - max).exp());
            let sum: f64 = scores.iter().sum();
            // Each probability rounded to f16, as the kernels (and the CPU reference) take it.
            scores.iter_mut().for_each(|p| *p = f16::from_f64(*p / sum).to_f64());
            let out = &mut att[t * qd + h * hd..][..hd];
            for (d, o) in out.iter_mut().enumerate() {
                let acc: f64 = scores
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| p * v_cache[(region + start + i) * kvd + kv_off + d].to_f64())
                    .sum();
                *o = acc as f32;
            }
        }
    }
    Ok(att)
}
