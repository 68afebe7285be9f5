//! Times the GPU sampler (`gpu::Sample`, `shaders/sample.wgsl`) on this machine's adapter: one
//! row of `n_vocab` logits (default 128256, llama3's vocabulary) shaped like a language model's
//! (a normal bulk and a thin top tail), llama.cpp's default chain, 200 dispatches in one pass,
//! median wall time per dispatch of 5 passes. A program, not a timed test:
//!
//!     cargo run --release -p aether-tests --example gpu_sample_bench [-- N_VOCAB SPREAD]
//!
//! SPREAD scales the logits (default 1.5; SmolLM2's own top 40 lie within ~6 logits of the
//! maximum, a synthetic model's within ~1).

use std::time::Instant;

use aether_core::gpu::{Gpu, GpuOptions, Sample, Step, StepBuffer};
use aether_core::sample::Draw;
use aether_tests::gpu::Rng;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(128_256);
    let spread: f32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1.5);
    let gpu = pollster::block_on(Gpu::new(GpuOptions::default())).expect("adapter");
    println!("adapter: {}", gpu.describe());
    let mut rng = Rng::new(7);
    // Sums of four uniforms: a bell, spread times wide.
    let logits: Vec<f32> = (0..n).map(|_| (0..4).map(|_| rng.f32()).sum::<f32>() * spread).collect();
    let lb = gpu.storage("logits", (n * 4) as u64).expect("logits");
    gpu.queue().write_buffer(&lb, 0, bytemuck::cast_slice(&logits));
    let tb = gpu.storage("token", 4).expect("token");
    let step = StepBuffer::new(&gpu).expect("step");
    step.write(&gpu, Step::new(0, 1));
    let ib = gpu.storage("ids", 4).expect("ids");
    let mut kernel = Sample::new(&gpu, &step, (&lb, 0), n as u32, (&tb, 0), &ib, 1).expect("sample");
    let draw = Draw { temperature: 0.8, top_k: 40, top_p: 0.95, min_p: 0.05, r: 0.5, ..Default::default() };
    kernel.write(&gpu, [Some(&draw)]);
    const PER_PASS: usize = 200;
    let mut times = Vec::new();
    for rep in 0..6 {
        let t = Instant::now();
        let mut enc = gpu.device().create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for _ in 0..PER_PASS {
                kernel.encode(&mut pass, 1);
            }
        }
        let sub = gpu.submit(enc, "sample bench").expect("submit");
        gpu.wait(Some(sub), "sample bench").expect("wait");
        if rep > 0 {
            times.push(t.elapsed().as_secs_f64() / PER_PASS as f64);
        }
    }
    times.sort_by(f64::total_cmp);
    let within = |d: f32| {
        let m = logits.iter().cloned().fold(f32::MIN, f32::max);
        logits.iter().filter(|&&x| m - x < d).count()
    };
    println!(
        "n_vocab {n}, spread {spread}: {:.1} µs per row (median of 5 passes of {PER_PASS}); {} logits within 1 of the maximum, {} within 4",
        times[times.len() / 2] * 1e6,
        within(1.0),
        within(4.0)
    );
}
