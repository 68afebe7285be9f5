//! Times the CPU reference forward pass on the default model, single-threaded: a 5-token prompt
//! evaluated as one batch, then greedy decoding one token at a time. Prints the medians of a few
//! repetitions. A program, not a timed test:
//!
//!     cargo run --release -p aether-tests --example cpu_decode_bench [-- <n_decode> <reps>]

use std::time::Instant;

use aether_core::cpu::{Forward, Serial, State};
use aether_core::gguf::Gguf;
use aether_core::model::Model;
use aether_tests::default_model_bytes;
use aether_tests::logits::argmax;

/// "The capital of France is" in SmolLM2's vocabulary.
const PROMPT: [u32; 5] = [504, 3575, 282, 4649, 314];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("numeric argument"));
    let n_decode = args.next().unwrap_or(32);
    let reps = args.next().unwrap_or(3).max(1);

    let bytes = default_model_bytes();
    let g = Gguf::parse(&bytes).expect("parse");
    let model = Model::from_gguf(&g).expect("model");
    let fwd = Forward { model: &model };

    let (mut prefill, mut decode) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let mut s = State::new(&model.config, PROMPT.len() + n_decode + 1, 64);
        let t0 = Instant::now();
        let mut next = argmax(fwd.eval(&mut s, &PROMPT, &Serial).expect("prefill"));
        prefill.push(PROMPT.len() as f64 / t0.elapsed().as_secs_f64());
        let t1 = Instant::now();
        for _ in 0..n_decode {
            next = argmax(fwd.eval(&mut s, &[next], &Serial).expect("decode"));
        }
        decode.push(n_decode as f64 / t1.elapsed().as_secs_f64());
    }
    println!("model      SmolLM2-135M-Instruct Q4_1, CPU reference, 1 thread");
    println!("prefill    {:8.1} tok/s  ({} tokens, one batch)", median(prefill), PROMPT.len());
    println!("decode     {:8.1} tok/s  ({n_decode} tokens, median of {reps})", median(decode));
}
