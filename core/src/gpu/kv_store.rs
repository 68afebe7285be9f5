//! Launcher for `shaders/kv_store.wgsl` (the step's keys and values into one layer's f16 KV
//! cache) and its CPU twin [`kv_store_cpu`]. Key: `kv_store`.
//!
//! Cache layout, per layer: `[n_seq, n_ctx, kv_dim]` f16 (a region of `n_ctx` cells per
//! sequence), packed two per u32 (`pack2x16float`), so a cache buffer is `[n_seq, n_ctx, kv_dim /
//! 2]` u32 and kv_dim must be even. Each token's destination is its (sequence, position) in the
//! step table. The twin rounds with the
//! `half` crate (to nearest, ties to even, as `pack2x16float` on the GPUs we know).

use half::f16;

use super::launch::{fits, grid, u32_of, variant_source};
use super::pipelines::Family;
use super::{Gpu, StepBuffer, StepTable};
use crate::{Error, Result};

/// Mirrors `struct Params` of kv_store.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    kv_dim: u32,
    k_off: u32,
    v_off: u32,
    cache_off: u32,
    n_ctx: u32,
    n_seq: u32,
    _pad: [u32; 2],
}

const _: () = assert!(size_of::<Params>() == 32);

const WG: u64 = 256;

/// Appends a step's k and v rows to one layer's cache, ready to encode.
pub struct KvStore {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    kv_dim: u32,
    max_dim: u32,
    _params: wgpu::Buffer,
}

impl KvStore {
    /// k, v: `[tokens, kv_dim]` f32 from their offsets (elements); k_cache, v_cache: `[n_seq,
    /// n_ctx, kv_dim]` f16 pairs in u32 from f16 element `cache_off` (even; a layer's start when
    /// the layers share one buffer). Token t goes to its (sequence, position) of `table`;
    /// positions past `n_ctx` and sequences past `n_seq` are skipped (the caller refuses a full
    /// context first).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        step: &StepBuffer,
        table: &StepTable,
        k: (&wgpu::Buffer, u64),
        v: (&wgpu::Buffer, u64),
        k_cache: &wgpu::Buffer,
        v_cache: &wgpu::Buffer,
        cache_off: u64,
        kv_dim: u32,
        n_ctx: u32,
        n_seq: u32,
    ) -> Result<KvStore> {
        let key = "kv_store";
        if !kv_dim.is_multiple_of(2) || !cache_off.is_multiple_of(2) {
            return Err(Error::GpuKernelShape {
                kernel: key,
                why: format!(
                    "kv_dim {kv_dim} and cache offset {cache_off} must be even (f16 values are stored in pairs)"
                ),
            });
        }
        let pipeline =
            gpu.pipeline(key, Family::Auto, || variant_source(gpu, key, "kv_store", &[], false))?;
        fits("kv_store k buffer bytes", k.0, k.1, kv_dim as u64)?;
        fits("kv_store v buffer bytes", v.0, v.1, kv_dim as u64)?;
        // In u32 words: two f16 each.
        let (words_off, cache_words) = (cache_off / 2, n_seq as u64 * n_ctx as u64 * (kv_dim / 2) as u64);
        fits("kv_store K cache bytes", k_cache, words_off, cache_words)?;
        fits("kv_store V cache bytes", v_cache, words_off, cache_words)?;
        let params = Params {
            kv_dim,
            k_off: u32_of("kv_store k offset", k.1)?,
            v_off: u32_of("kv_store v offset", v.1)?,
            cache_off: u32_of("kv_store cache offset", words_off)?,
            n_ctx,
            n_seq,
            _pad: [0; 2],
        };
        let params_buf = gpu.uniform(key, &params)?;
        let bind = gpu.bind(
            key,
            &pipeline,
            &[
                k.0.as_entire_binding(),
                v.0.as_entire_binding(),
                k_cache.as_entire_binding(),
                v_cache.as_entire_binding(),
                params_buf.as_entire_binding(),
                step.buffer().as_entire_binding(),
                table.at().as_entire_binding(),
            ],
        )?;
        Ok(KvStore {
            pipeline,
            bind,
            kv_dim,
            max_dim: gpu.caps().max_workgroups_per_dim,
            _params: params_buf,
        })
    }

    /// Records the store of a step of `n_tokens` tokens (the count in the step uniform, or more).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) {
        let [gx, gy] = grid(n_tokens as u64 * (self.kv_dim / 2) as u64, WG, self.max_dim);
        if gx == 0 {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(gx, gy, 1);
    }
}

/// CPU twin of [`KvStore`]: rows t of k and v (`[tokens, kv_dim]`) rounded to f16 into cell
/// `at[t].1` of sequence `at[t].0`'s region of the caches (`[n_seq, n_ctx, kv_dim / 2]` u32, the
/// low half the even element), skipping positions past `n_ctx` and cells past the caches' end.
/// Errors on an odd kv_dim.
pub fn kv_store_cpu(
    k: &[f32],
    v: &[f32],
    at: &[(usize, usize)],
    kv_dim: usize,
    n_ctx: usize,
    k_cache: &mut [u32],
    v_cache: &mut [u32],
) -> Result<()> {
    if !kv_dim.is_multiple_of(2) {
        return Err(Error::GpuKernelShape {
            kernel: "kv_store",
            why: format!("kv_dim {kv_dim} must be even"),
        });
    }
    let words = kv_dim / 2;
    for (src, cache) in [(k, k_cache), (v, v_cache)] {
        for (row, &(seq, pos)) in src.chunks_exact(kv_dim.max(2)).zip(at) {
            let cell = seq * n_ctx + pos;
            let Some(dst) = cache.get_mut(cell * words..(cell + 1) * words).filter(|_| pos < n_ctx) else {
                continue;
            };
            for (w, pair) in dst.iter_mut().zip(row.chunks_exact(2)) {
                *w = pack_f16(pair[0], pair[1]);
            }
        }
    }
    Ok(())
}

/// `pack2x16float(vec2(a, b))`: a in the low 16 bits.
fn pack_f16(a: f32, b: f32) -> u32 {
    f16::from_f32(a).to_bits() as u32 | (f16::from_f32(b).to_bits() as u32) << 16
}
