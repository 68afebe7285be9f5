//! A model's logits under exact GPU numerics against the CPU reference's, bit for bit, on this
//! machine's adapter: the prompt, then the CPU's greedy tokens one at a time. Prints the first
//! position that differs (exit 1) or that all agree; then each side's time per token.
//!
//!     cargo run --release -p aether-tests --example exact_vs_cpu -- MODEL.gguf [TOKENS] ["PROMPT"]
//!
//! For checking exact numerics on an adapter the tests do not run on (a real GPU), with models
//! made by `aether synth` where no real one can be fetched.

use std::time::Instant;

use aether_core::cpu::Serial;
use aether_core::gguf::Gguf;
use aether_core::gpu::{Gpu, GpuBackend, GpuModel, GpuOptions};
use aether_core::model::Model;
use aether_core::session::CpuBackend;
use aether_core::tokenizer::Tokenizer;
use aether_tests::arch_goldens::Logits;
use aether_tests::logits::argmax;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: exact_vs_cpu MODEL.gguf [TOKENS] [PROMPT]");
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(32);
    let text = args.next().unwrap_or_else(|| "The capital of France is".into());
    let bytes = std::fs::read(&path).expect("read the model");
    let g = Gguf::parse(&bytes).expect("parse");
    let model = Model::from_gguf(&g).expect("model");
    let tok = Tokenizer::from_metadata(g.metadata()).expect("tokenizer");
    let prompt = tok.encode(&text, true, false).expect("encode");

    let t0 = Instant::now();
    let mut cpu = CpuBackend::new(&model, 512, &Serial);
    let mut want = vec![cpu.logits(&prompt)];
    let mut ids = Vec::new();
    while ids.len() + 1 < n {
        let t = argmax(want.last().expect("logits"));
        ids.push(t);
        want.push(cpu.logits(&[t]));
    }
    let cpu_s = t0.elapsed().as_secs_f64();

    let gpu =
        pollster::block_on(Gpu::new(GpuOptions { exact: true, ..Default::default() })).expect("adapter");
    println!("adapter: {}", gpu.describe());
    let gm = GpuModel::upload(&gpu, &model, &mut |_, _| {}).expect("upload");
    let mut b = GpuBackend::new(&gpu, &gm, 512, 1).expect("backend");
    let t0 = Instant::now();
    let mut got = vec![b.logits(&prompt)];
    got.extend(ids.iter().map(|&t| b.logits(&[t])));
    let gpu_s = t0.elapsed().as_secs_f64();

    let steps = (prompt.len() + ids.len()) as f64;
    println!(
        "CPU (one thread) {:.1} ms/token, exact GPU {:.1} ms/token",
        cpu_s * 1e3 / steps,
        gpu_s * 1e3 / steps
    );
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        let differ = w.iter().zip(g).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        if differ > 0 {
            let worst = w.iter().zip(g).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            println!("position {i}: {differ} of {} logits differ (worst by {worst:e})", w.len());
            std::process::exit(1);
        }
    }
    println!("all {} positions: the CPU's logits bit for bit ({} greedy tokens)", want.len(), ids.len());
}
