//! The GPU engine: WGSL compute kernels run through wgpu — one engine natively (Vulkan, Metal,
//! DX12) and in the browser (WebGPU). Built with the crate's `gpu` feature.
//!
//! Layout: `context.rs` opens the device ([`Gpu`], [`Caps`]) and turns wgpu's asynchronous errors
//! into [`crate::Error`]s; `weights.rs` puts tensors on the GPU in their GGUF bytes
//! ([`GpuTensor`], split by rows past the binding limit); `pipelines.rs` caches pipelines by kernel
//! key; `shaders.rs` holds the WGSL from `shaders/` and the subgroup splice; `readback.rs` brings
//! results back ([`Readback`], the one other async function); `step.rs` holds the per-step
//! uniform ([`Step`]: first position, token count) that position-dependent kernels read. One launcher per kernel, named as
//! its `.wgsl` file, beside its CPU twin: `matvec.rs` ([`MatVec`], [`matvec_cpu`]).
//!
//! Recording is synchronous: launchers are built once at load and `encode` into a caller's
//! compute pass; only [`Gpu::new`] and read-back are async, so the browser and native hosts drive
//! the same code (native blocks on the futures, the web awaits them).

mod context;
mod matvec;
mod pipelines;
mod readback;
pub mod shaders;
mod step;
mod weights;

#[cfg(test)]
mod tests;

pub use context::{Caps, Gpu, GpuOptions};
pub use matvec::{MatVec, matvec_cpu};
pub use readback::Readback;
pub use step::{Step, StepBuffer};
pub use weights::{GpuTensor, Piece, UPLOAD_CHUNK, rows_per_piece};
