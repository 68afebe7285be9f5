//! The thread pool the native binary lends the core's parallel loops.

use aether_core::cpu::Exec;
use rayon::prelude::*;

/// Runs the core's chunked loops on a rayon pool.
pub struct Pool(rayon::ThreadPool);

impl Pool {
    /// A pool of `threads` workers (0: one per core).
    pub fn new(threads: usize) -> anyhow::Result<Pool> {
        Ok(Pool(rayon::ThreadPoolBuilder::new().num_threads(threads).build()?))
    }
}

impl Exec for Pool {
    fn chunks(&self, out: &mut [f32], chunk: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
        self.0.install(|| out.par_chunks_mut(chunk.max(1)).enumerate().for_each(|(i, c)| f(i, c)));
    }

    fn run(&self, f: &mut (dyn FnMut() + Send)) {
        self.0.install(f)
    }
}
