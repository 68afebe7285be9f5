//! The CPU's greedy continuation of a prompt on the default model, as JSON: per step the piece it
//! picks, the runner-up piece and the logit margin between the two. The browser test
//! (tests/browser/run.sh) reads it to tell a GPU near tie — the GPU taking the CPU's runner-up
//! where the two are within a few hundredths of a logit — from a bug.
//!
//!     cargo run -q -p aether-tests --example greedy_margins -- "The capital of France is" 32
//!
//! The prompt is tokenized as the engines tokenize a completion's (BOS added, special tokens
//! parsed); the CPU backend is the llama.cpp-exact reference.

use aether_core::cpu::Serial;
use aether_core::gguf::Gguf;
use aether_core::model::Model;
use aether_core::session::{Backend, CpuBackend, Output, Want};
use aether_core::tokenizer::Tokenizer;
use aether_tests::logits::argmax;

fn main() {
    let mut args = std::env::args().skip(1);
    let prompt = args.next().expect("usage: greedy_margins PROMPT N");
    let n: usize = args.next().and_then(|s| s.parse().ok()).expect("usage: greedy_margins PROMPT N");
    let bytes = aether_tests::default_model_bytes();
    let g = Gguf::parse(&bytes).expect("parse the default model");
    let model = Model::from_gguf(&g).expect("load the default model");
    let tok = Tokenizer::from_metadata(g.metadata()).expect("tokenizer");
    let ids = tok.encode(&prompt, true, true).expect("encode");
    let mut cpu = CpuBackend::new(&model, ids.len() + n, &Serial);
    let piece = |t: u32| tok.decode(&[t], false).expect("decode");
    let mut steps = Vec::new();
    let mut next = ids;
    for _ in 0..n {
        let Output::Logits(l) = pollster::block_on(cpu.eval(&next, Want::Logits)).expect("eval") else {
            panic!("asked for logits");
        };
        let best = argmax(l);
        let mut rest = l.to_vec();
        rest[best as usize] = f32::NEG_INFINITY;
        let second = argmax(&rest);
        steps.push(serde_json::json!({
            "piece": piece(best),
            "runnerUp": piece(second),
            "margin": l[best as usize] - l[second as usize],
        }));
        next = vec![best];
    }
    println!("{}", serde_json::Value::Array(steps));
}
