//! The GPU engine: WGSL compute kernels run through wgpu — one engine natively (Vulkan, Metal,
//! DX12) and in the browser (WebGPU). Built with the crate's `gpu` feature.
//!
//! Layout: `context.rs` opens the device ([`Gpu`], [`Caps`]) and turns wgpu's asynchronous errors
//! into [`crate::Error`]s; `weights.rs` puts tensors on the GPU in their GGUF bytes
//! ([`GpuTensor`], split by rows past the binding limit); `pipelines.rs` caches pipelines by kernel
//! key; `shaders.rs` holds the WGSL from `shaders/` and its two splices; `readback.rs` brings
//! results back ([`Readback`], the one other async function); `step.rs` holds what a step writes
//! before its submission: the [`Step`] uniform (token count) and the [`StepTable`] (each token's
//! sequence and position, the attention's decode rows and prefill tiles, the output rows), built
//! on the host as a [`StepPlan`]. One launcher per kernel, named as
//! its `.wgsl` file, beside its CPU twin: `matvec.rs` ([`MatVec`], [`matvec_cpu`]) and
//! `matvec_multi.rs` ([`MatVecMulti`], [`matvec_multi_cpu`]: the same over a few tokens); `get_rows.rs`
//! ([`GetRows`], [`get_rows_cpu`]) and `matmul.rs` ([`MatMul`], [`matmul_cpu`]), which take their
//! weight type's decoder from `shaders/dequant_<type>.wgsl` (`params.rs`: their per-piece
//! parameters; `matmul_reduce.rs`: [`MatMulReduce`], the sum of the tensor-core matmul's split-K), with `block_sums.rs` ([`BlockSums`]) after a Q4_1/Q5_1 matmul; the element-wise kernels `rmsnorm.rs`, `rope.rs`, `rope_kv.rs` (rope of q and k with the cache store), `glu.rs`, `add.rs`,
//! `softcap.rs`, `kv_store.rs`, `argmax.rs`, `sample.rs` (the token a sampler's draw picks),
//! `gather.rs`, sharing `launch.rs`; `attention.rs` ([`Attention`],
//! [`attention_cpu`]) launches `attn_decode`/`attn_merge`/`attn_prefill`.
//!
//! Recording is synchronous: launchers are built once at load and `encode` into a caller's
//! compute pass; only [`Gpu::new`] and read-back are async, so the browser and native hosts drive
//! the same code (native blocks on the futures, the web awaits them).

mod act_quant;
mod attention;
mod block_sums;
mod context;
mod forward;
mod matvec;
mod matvec_multi;
// Tiled kernels on decoded weights: embedding lookup and the prefill product.
mod get_rows;
mod matmul;
mod matmul_reduce;
mod params;
mod pipelines;
mod readback;
pub mod shaders;
mod step;
mod stream_load;
mod stream_read;
mod weights;

#[cfg(test)]
mod tests;

// The element-wise kernels of the forward pass: one launcher and CPU twin per shader, and what
// they share (`launch.rs`: [`Rows`], grids, variant sources).
mod add;
mod argmax;
mod gather;
mod glu;
mod kv_store;
mod launch;
mod rmsnorm;
mod rope;
mod rope_kv;
mod sample;
mod softcap;
pub use add::{Add, add_cpu};
pub use argmax::{Argmax, argmax_cpu};
pub use gather::{Gather, gather_cpu};
pub use glu::{Glu, glu_cpu};
pub use kv_store::{KvStore, kv_store_cpu};
pub use launch::Rows;
pub use rmsnorm::{RmsNorm, rmsnorm_cpu};
pub use rope::{Rope, rope_cpu};
pub use rope_kv::{RopeKv, RopeKvDims, exact_angles, rope_kv_cpu};
pub use sample::{Sample, sample_cpu};
pub use softcap::{Softcap, softcap_cpu};

// Attention (decode, merge, prefill).
pub use act_quant::{ActQuant, act_pack_cpu, act_quant_cpu, packed_stride};
pub use attention::{ATTN_GROUPED_MIN, ATTN_ONE_CHUNK, Attention, AttnDims, attention_cpu};
pub use block_sums::{BlockSums, block_sums_cpu, needs_block_sums};
pub use context::{Caps, ErrorScope, Gpu, GpuOptions};
pub use forward::{GpuBackend, GpuModel, ProfileRow};
pub use matvec::{MATVEC_SOFTWARE_WG, MatVec, RopePut, matvec_cpu, packed_input, takes_packed};
pub use matvec_multi::{
    INT_MULTI_MAX, MULTI_MAX, MULTI_TOKENS, MatVecMulti, MultiShape, TILE_MAX, TILE_MAX_COOP, TILE_MIN,
    TILE_TOKENS, matvec_multi_cpu, tile_workgroup_bytes,
};
// Tiled kernels on decoded weights (shaders/dequant_*.wgsl + kernel).
pub use get_rows::{GetRows, get_rows_cpu};
pub use matmul::{GEMM_MIN_TOKENS, MatMul, SPLIT_TARGET, SPLIT_TOKENS, matmul_cpu};
pub use matmul_reduce::{MatMulReduce, matmul_reduce_cpu};
pub use readback::Readback;
pub use step::{Step, StepBuffer, StepPlan, StepTable};
pub use stream_load::GpuModelBuilder;
pub use stream_read::{StreamRead, stream_read_cpu};
pub use weights::{GpuTensor, Piece, UPLOAD_CHUNK, rows_per_piece};
