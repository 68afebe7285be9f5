//! The CPU reference forward pass: clear, one function per op, reading like the math — the oracle
//! for every GPU kernel and the engine's fallback when there is no GPU.
//!
//! The core starts no threads. Parallel loops go through [`Exec`], which the host provides: the
//! native binary hands in a thread pool, the browser a serial executor (or a worker pool later).

pub mod attention;
mod expf;
pub use expf::expf_ggml;
mod forward;
pub mod ops;

pub use forward::{Forward, State};

/// Runs independent pieces of work, possibly in parallel.
pub trait Exec: Sync {
    /// Calls `f(i, chunk)` for each `chunk`-element piece of `out` (the last may be shorter),
    /// `i` being the piece's index.
    fn chunks(&self, out: &mut [f32], chunk: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync));

    /// Runs `f`, whose parallel loops use this executor, where they start cheapest: a thread pool
    /// runs it on one of its own threads, so each loop is split among the workers directly
    /// instead of being handed over from an outside thread and waited for (a sleep and a wake-up
    /// per loop, hundreds of loops per token).
    fn run(&self, f: &mut (dyn FnMut() + Send)) {
        f()
    }
}

/// Everything on the calling thread.
pub struct Serial;

impl Exec for Serial {
    fn chunks(&self, out: &mut [f32], chunk: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
        for (i, c) in out.chunks_mut(chunk.max(1)).enumerate() {
            f(i, c);
        }
    }
}
