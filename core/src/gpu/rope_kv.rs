//! Launcher for `shaders/rope_kv.wgsl` — a step's rope of q and k and the store of k and v into
//! one layer's KV cache in one dispatch, where the forward pass would otherwise run [`Rope`] twice
//! and [`KvStore`] — and its CPU twin [`rope_kv_cpu`], which is exactly those three twins in turn.
//! Key: `rope_kv`.
//!
//! q, k and v must lie in one buffer (a kernel cannot bind one buffer both writable and
//! read-only); the forward pass keeps them there for its fused q|k|v mat-vec anyway. The rotated
//! k goes only to the cache: its activation keeps the unrotated values.
//!
//! [`Rope`]: super::Rope
//! [`KvStore`]: super::KvStore

use super::launch::{fits, grid, u32_of, variant_source};
use super::pipelines::Family;
use super::{Gpu, RopePut, StepBuffer, StepTable, kv_store_cpu, rope_cpu};
use crate::cpu::ops::RopeFreqs;
use crate::model::RopeKind;
use crate::{Error, Result};

/// Mirrors `struct Params` of rope_kv.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    q_off: u32,
    k_off: u32,
    v_off: u32,
    cache_off: u32,
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    n_rot: u32,
    neox: u32,
    has_factors: u32,
    theta_scale: f32,
    freq_scale: f32,
    attn_factor: f32,
    q_scale: f32,
    n_ctx: u32,
    n_seq: u32,
    /// 0, which the kernel cannot know (`shaders/exact_fp.wgsl`).
    zero: u32,
    _pad: [u32; 3],
}

const _: () = assert!(size_of::<Params>() == 80);

/// Mirrors `struct RopePut` of put_rope.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct PutParams {
    q_rows: u32,
    kv_rows: u32,
    head_dim: u32,
    n_rot: u32,
    theta_scale: f32,
    freq_scale: f32,
    attn_factor: f32,
    q_scale: f32,
    has_factors: u32,
    n_ctx: u32,
    n_seq: u32,
    cache_off: u32,
}

const _: () = assert!(size_of::<PutParams>() == 48);

const WG: u64 = 256;

/// The heads of q and k and the cache's shape, for [`RopeKv::new`].
#[derive(Clone, Copy, Debug)]
pub struct RopeKvDims {
    pub n_head: u32,
    pub n_head_kv: u32,
    pub head_dim: u32,
    pub n_rot: u32,
    pub n_ctx: u32,
    pub n_seq: u32,
}

/// Rope of q and k and the store of k and v, ready to encode.
pub struct RopeKv {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    /// Invocations per token: q's pairs and the cache words of a row.
    per_token: u64,
    max_dim: u32,
    /// A step of one token leaves its work to the fused q|k|v mat-vec's store ([`RopeKv::put`]).
    in_matvec: bool,
    /// What that store needs, where it can do this kernel's work: rope of adjacent pairs (not
    /// NeoX).
    put: Option<RopePut>,
    _buffers: [wgpu::Buffer; 2],
}

impl RopeKv {
    /// `x` holds q `[tokens, n_head, head_dim]`, k and v `[tokens, n_head_kv, head_dim]` f32 at
    /// element offsets `(q, k, v)`; q turns in place and is scaled by `q_scale`, k turned and v go
    /// to the caches (`[n_seq, n_ctx, kv_dim]` f16 pairs in u32 from f16 element `cache_off`) at
    /// each token's (sequence, position) of `table`, as [`Rope`](super::Rope) and
    /// [`KvStore`](super::KvStore) do.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        step: &StepBuffer,
        table: &StepTable,
        x: &wgpu::Buffer,
        (q_off, k_off, v_off): (u64, u64, u64),
        (k_cache, v_cache, cache_off): (&wgpu::Buffer, &wgpu::Buffer, u64),
        dims: RopeKvDims,
        kind: RopeKind,
        freqs: &RopeFreqs<'_>,
        q_scale: f32,
    ) -> Result<RopeKv> {
        RopeKv::build(
            gpu,
            step,
            table,
            x,
            (q_off, k_off, v_off),
            (k_cache, v_cache, cache_off),
            dims,
            kind,
            freqs,
            q_scale,
            None,
        )
    }

    /// [`RopeKv::new`] under exact numerics: the angles of each step's tokens come from the host
    /// in `angles` ([`exact_angles`], written before each step), and each pair turns with the CPU
    /// reference's fused multiply-adds.
    #[allow(clippy::too_many_arguments)]
    pub fn new_exact(
        gpu: &Gpu,
        step: &StepBuffer,
        table: &StepTable,
        x: &wgpu::Buffer,
        offs: (u64, u64, u64),
        cache: (&wgpu::Buffer, &wgpu::Buffer, u64),
        dims: RopeKvDims,
        kind: RopeKind,
        angles: &wgpu::Buffer,
        q_scale: f32,
    ) -> Result<RopeKv> {
        let freqs = RopeFreqs { theta_scale: 1.0, freq_scale: 1.0, attn_factor: 1.0, factors: None };
        RopeKv::build(gpu, step, table, x, offs, cache, dims, kind, &freqs, q_scale, Some(angles))
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        gpu: &Gpu,
        step: &StepBuffer,
        table: &StepTable,
        x: &wgpu::Buffer,
        (q_off, k_off, v_off): (u64, u64, u64),
        (k_cache, v_cache, cache_off): (&wgpu::Buffer, &wgpu::Buffer, u64),
        dims: RopeKvDims,
        kind: RopeKind,
        freqs: &RopeFreqs<'_>,
        q_scale: f32,
        angles: Option<&wgpu::Buffer>,
    ) -> Result<RopeKv> {
        let key = if angles.is_some() { "rope_kv_exact" } else { "rope_kv" };
        let RopeKvDims { n_head, n_head_kv, head_dim, n_rot, n_ctx, n_seq } = dims;
        if !head_dim.is_multiple_of(2)
            || !n_rot.is_multiple_of(2)
            || n_rot > head_dim
            || !cache_off.is_multiple_of(2)
        {
            return Err(Error::GpuKernelShape {
                kernel: key,
                why: format!(
                    "head_dim {head_dim}, n_rot {n_rot} and cache offset {cache_off} must be even, with n_rot <= head_dim"
                ),
            });
        }
        let overrides = [("EXACT", angles.is_some() as u32 as f64)];
        let pipeline = gpu.pipeline_with(key, Family::Auto, &overrides, || {
            variant_source(gpu, key, "rope_kv", &[], false)
        })?;
        let kv_dim = n_head_kv as u64 * head_dim as u64;
        fits("rope_kv q bytes", x, q_off, n_head as u64 * head_dim as u64)?;
        fits("rope_kv k bytes", x, k_off, kv_dim)?;
        fits("rope_kv v bytes", x, v_off, kv_dim)?;
        let (words_off, cache_words) = (cache_off / 2, n_seq as u64 * n_ctx as u64 * kv_dim / 2);
        fits("rope_kv K cache bytes", k_cache, words_off, cache_words)?;
        fits("rope_kv V cache bytes", v_cache, words_off, cache_words)?;

        // [n_rot/2] divisors, 1 where the CPU's slice ends; one unused value without factors.
        let half = (n_rot / 2) as usize;
        let factors: Vec<f32> = match freqs.factors {
            Some(f) => (0..half.max(1)).map(|i| f.get(i).copied().unwrap_or(1.0)).collect(),
            None => vec![1.0],
        };
        let factors_buf = gpu.storage("rope factors", factors.len() as u64 * 4)?;
        gpu.queue().write_buffer(&factors_buf, 0, bytemuck::cast_slice(&factors));
        let params = Params {
            q_off: u32_of("rope_kv q offset", q_off)?,
            k_off: u32_of("rope_kv k offset", k_off)?,
            v_off: u32_of("rope_kv v offset", v_off)?,
            cache_off: u32_of("rope_kv cache offset", words_off)?,
            n_head,
            n_head_kv,
            head_dim,
            n_rot,
            neox: (kind == RopeKind::Neox) as u32,
            has_factors: freqs.factors.is_some() as u32,
            theta_scale: freqs.theta_scale,
            freq_scale: freqs.freq_scale,
            attn_factor: freqs.attn_factor,
            q_scale,
            n_ctx,
            n_seq,
            zero: 0,
            _pad: [0; 3],
        };
        let params_buf = gpu.uniform(key, &params)?;
        let (q_rows, kv_rows) = (n_head as u64 * head_dim as u64, kv_dim);
        let put = match kind == RopeKind::Normal && angles.is_none() {
            true => Some(RopePut {
                params: gpu.uniform(
                    "put_rope",
                    &PutParams {
                        q_rows: params.n_head * head_dim,
                        kv_rows: params.n_head_kv * head_dim,
                        head_dim,
                        n_rot,
                        theta_scale: params.theta_scale,
                        freq_scale: params.freq_scale,
                        attn_factor: params.attn_factor,
                        q_scale,
                        has_factors: params.has_factors,
                        n_ctx,
                        n_seq,
                        cache_off: params.cache_off,
                    },
                )?,
                factors: factors_buf.clone(),
                k_cache: k_cache.clone(),
                v_cache: v_cache.clone(),
                at: table.at().clone(),
                parts: [(q_rows, q_off), (kv_rows, k_off), (kv_rows, v_off)],
            }),
            false => None,
        };
        let bind = gpu.bind(
            key,
            &pipeline,
            &[
                x.as_entire_binding(),
                angles.unwrap_or(&factors_buf).as_entire_binding(),
                k_cache.as_entire_binding(),
                v_cache.as_entire_binding(),
                params_buf.as_entire_binding(),
                step.buffer().as_entire_binding(),
                table.at().as_entire_binding(),
            ],
        )?;
        Ok(RopeKv {
            pipeline,
            bind,
            per_token: (n_head as u64 + n_head_kv as u64) * (head_dim / 2) as u64,
            max_dim: gpu.caps().max_workgroups_per_dim,
            in_matvec: false,
            put,
            _buffers: [factors_buf, params_buf],
        })
    }

    /// What the fused q|k|v mat-vec needs to do this kernel's work in a step of one token
    /// ([`MatVec::new_rope`](super::MatVec::new_rope)); `None` where it can't (NeoX pairs).
    pub fn put(&self) -> Option<&RopePut> {
        self.put.as_ref()
    }

    /// From now on a step of one token records nothing: a mat-vec built with [`RopeKv::put`]
    /// does the work.
    pub fn leave_single_token_to_matvec(&mut self) {
        self.in_matvec = true;
    }

    /// Whether a step of `n_tokens` records a dispatch.
    pub fn dispatches(&self, n_tokens: u32) -> bool {
        n_tokens > 0 && !(self.in_matvec && n_tokens == 1)
    }

    /// Records the step of `n_tokens` tokens (the count in the step uniform, or more); nothing
    /// for one token left to the mat-vec.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) {
        let [gx, gy] = grid(n_tokens as u64 * self.per_token, WG, self.max_dim);
        if gx == 0 || !self.dispatches(n_tokens) {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(gx, gy, 1);
    }
}

/// The angles [`RopeKv::new_exact`] reads for a step of tokens at `positions`: per token, the
/// `n_rot/2` pairs' (cos φ_i, sin φ_i) · attn_factor as the CPU reference computes them
/// ([`rope_angles`](crate::cpu::ops::rope_angles)), flattened.
pub fn exact_angles(freqs: &RopeFreqs<'_>, n_rot: usize, positions: impl Iterator<Item = usize>) -> Vec<f32> {
    let mut cs = vec![(0f32, 0f32); n_rot / 2];
    let mut out = Vec::new();
    for pos in positions {
        crate::cpu::ops::rope_angles(&mut cs, pos, freqs);
        out.extend(cs.iter().flat_map(|&(c, s)| [c, s]));
    }
    out
}

/// CPU twin of [`RopeKv`]: [`rope_cpu`] of q (scaled by `q_scale`) and of k, then
/// [`kv_store_cpu`] of k and v at `at` (sequence, position) — k is left rotated here, which the
/// GPU kernel does not write back.
#[allow(clippy::too_many_arguments)]
pub fn rope_kv_cpu(
    q: &mut [f32],
    k: &mut [f32],
    v: &[f32],
    at: &[(usize, usize)],
    dims: RopeKvDims,
    kind: RopeKind,
    freqs: &RopeFreqs<'_>,
    q_scale: f32,
    k_cache: &mut [u32],
    v_cache: &mut [u32],
) -> Result<()> {
    let (hd, n_rot) = (dims.head_dim as usize, dims.n_rot as usize);
    let pos: Vec<usize> = at.iter().map(|a| a.1).collect();
    rope_cpu(q, &pos, dims.n_head as usize, hd, n_rot, kind, freqs, q_scale);
    rope_cpu(k, &pos, dims.n_head_kv as usize, hd, n_rot, kind, freqs, 1.0);
    let kv_dim = dims.n_head_kv as usize * hd;
    kv_store_cpu(k, v, at, kv_dim, dims.n_ctx as usize, k_cache, v_cache)
}
