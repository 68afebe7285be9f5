//! The SIMD kernel sets of `aether_core::quant::simd` against the scalar reference, through the
//! whole forward pass of the default model (SmolLM2-135M Q4_1: Q4_1 layers, a Q8_0 output matrix,
//! f16 attention): a prompt batch and then single tokens, past eight positions so the attention
//! kernels take their vector path, must give bit-identical logits under every kernel set this CPU
//! has, serially and split over threads. The kernels are also tested one by one in
//! `core/src/quant/simd/tests.rs`; this checks the wiring (activation layouts, row splits, tails).
//!
//! Kernel selection is process-wide, so this file holds this one test.

use aether_core::cpu::{Exec, Forward, Serial, State};
use aether_core::gguf::Gguf;
use aether_core::model::Model;
use aether_core::quant::simd::{self, Isa};
use aether_tests::default_model_bytes;

/// Splits each parallel loop over two scoped threads (pieces alternate between them).
struct TwoThreads;

impl Exec for TwoThreads {
    fn chunks(&self, out: &mut [f32], chunk: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
        let pieces: Vec<(usize, &mut [f32])> = out.chunks_mut(chunk.max(1)).enumerate().collect();
        let (even, odd): (Vec<_>, Vec<_>) = pieces.into_iter().partition(|(i, _)| i % 2 == 0);
        std::thread::scope(|s| {
            s.spawn(|| even.into_iter().for_each(|(i, c)| f(i, c)));
            odd.into_iter().for_each(|(i, c)| f(i, c));
        });
    }
}

/// Logits after a 5-token prompt batch and after each of 12 single tokens.
fn run(model: &Model<'_>, exec: &dyn Exec) -> Vec<Vec<f32>> {
    let fwd = Forward { model };
    let mut s = State::new(&model.config, 32, 8);
    let prompt = [504, 3575, 282, 4649, 314];
    let mut all = vec![fwd.eval(&mut s, &prompt, exec).expect("prompt").to_vec()];
    for t in [2295u32, 30, 198, 198, 504, 2360, 1727, 553, 253, 2735, 282, 4225] {
        all.push(fwd.eval(&mut s, &[t], exec).expect("decode").to_vec());
    }
    all
}

#[test]
fn every_kernel_set_gives_the_reference_logits() {
    let bytes = default_model_bytes();
    let g = Gguf::parse(&bytes).expect("parse");
    let model = Model::from_gguf(&g).expect("model");

    simd::select(Isa::SCALAR);
    let reference = run(&model, &Serial);
    for isa in Isa::available() {
        for (exec_name, exec) in [("serial", &Serial as &dyn Exec), ("two threads", &TwoThreads)] {
            simd::select(isa);
            let got = run(&model, exec);
            for (step, (g, w)) in got.iter().zip(&reference).enumerate() {
                let differ = g.iter().zip(w).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                if let Some(i) = g.iter().zip(w).position(|(a, b)| a.to_bits() != b.to_bits()) {
                    panic!(
                        "{} kernels, {exec_name}: logits after step {step} differ from the scalar reference at \
                         id {i}: {} vs {} ({differ} of {} ids differ)",
                        isa.name(),
                        g[i],
                        w[i],
                        g.len()
                    );
                }
            }
            eprintln!("{} kernels, {exec_name}: {} steps bit-identical to scalar", isa.name(), got.len());
        }
    }
    simd::select(Isa::best());
}
