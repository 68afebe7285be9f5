//! aether-core: GGUF bytes + WGSL kernels → tokens.
//!
//! The crate is pure: bytes in, `Result` out. It reads no files, no environment variables and
//! starts no threads of its own, so the same code runs natively (over a memory-mapped file) and in
//! the browser (over chunks of a `fetch`).

pub mod chat_template;
pub mod error;
pub mod gguf;
#[cfg(feature = "gpu")]
pub mod gpu;
#[cfg(feature = "openai")]
pub mod openai;
pub mod quant;
pub mod tokenizer;

pub use error::{Error, Result};
pub mod cpu;
pub mod model;
pub mod sample;
pub mod session;
pub mod synth;
