//! How far the GPU's summation order moves SmolLM2's logits: along the CPU's greedy continuation
//! of a prompt, per step, the CPU's top-2 margin and the same two tokens' margin on the GPU with
//! subgroup reductions and with workgroup-memory reductions, plus the largest logit difference of
//! each pair. The two GPU variants compute the same arithmetic in different orders, so their
//! difference is the order noise a GPU-vs-CPU comparison cannot get under without bit-exactness.
//!
//!     cargo run -q -p aether-tests --example gpu_noise -- "The capital of France is" 32
//!
//! Runs on whatever Vulkan adapter wgpu picks (VK_DRIVER_FILES selects lavapipe or SwiftShader).

use aether_core::cpu::Serial;
use aether_core::gguf::Gguf;
use aether_core::gpu::{GpuBackend, GpuModel, GpuOptions};
use aether_core::model::Model;
use aether_core::session::CpuBackend;
use aether_core::tokenizer::Tokenizer;
use aether_tests::arch_goldens::Logits;
use aether_tests::gpu::test_gpu;
use aether_tests::logits::{argmax, margin};

/// Logits after the prompt fed in one batch (or token by token) and after each of `then`.
fn along(b: &mut dyn Logits, prompt: &[u32], then: &[u32], one_by_one: bool) -> Vec<Vec<f32>> {
    b.reset();
    let mut out = Vec::new();
    if one_by_one {
        for &t in prompt {
            out = vec![b.logits(&[t])];
        }
    } else {
        out.push(b.logits(prompt));
    }
    out.extend(then.iter().map(|&t| b.logits(&[t])));
    out
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let prompt = args.next().unwrap_or_else(|| "The capital of France is".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(32);
    let one_by_one = std::env::var("ONE_BY_ONE").is_ok_and(|v| v == "1");
    let bytes = aether_tests::default_model_bytes();
    let g = Gguf::parse(&bytes).expect("parse");
    let model = Model::from_gguf(&g).expect("model");
    let tok = Tokenizer::from_metadata(g.metadata()).expect("tokenizer");
    let ids = tok.encode(&prompt, true, false).expect("encode");

    let mut cpu = CpuBackend::new(&model, 256, &Serial);
    let mut want = vec![cpu.logits(&ids)];
    let mut next = Vec::new();
    while next.len() < n {
        let t = argmax(want.last().expect("logits"));
        next.push(t);
        want.push(cpu.logits(&[t]));
    }
    want.pop();
    let then = &next[..n - 1];
    let run = |opts: GpuOptions| {
        let gpu = test_gpu(opts).expect("adapter");
        let gm = GpuModel::upload(&gpu, &model, &mut |_, _| {}).expect("upload");
        let mut b = GpuBackend::new(&gpu, &gm, 256, 64).expect("backend");
        along(&mut b, &ids, then, one_by_one)
    };
    let sg = run(GpuOptions::default());
    let wg = run(GpuOptions { no_subgroups: true, ..Default::default() });

    println!("step  token            cpu_margin  sg_margin  wg_margin  |cpu-sg|  |sg-wg|");
    let (mut worst_order, mut worst_cpu) = (0f32, 0f32);
    for (i, ((c, s), w)) in want.iter().zip(&sg).zip(&wg).enumerate() {
        let top = argmax(c) as usize;
        let second = c
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != top)
            .fold((0, f32::NEG_INFINITY), |b, (j, &x)| if x > b.1 { (j, x) } else { b })
            .0;
        let m = |l: &[f32]| l[top] - l[second];
        let (dc, dw) = (max_diff(c, s), max_diff(s, w));
        worst_order = worst_order.max((m(s) - m(w)).abs());
        worst_cpu = worst_cpu.max((m(c) - m(s)).abs());
        let piece = tok.decode(&[next[i]], false).unwrap_or_default();
        println!(
            "{i:>4}  {:<16} {:>10.4} {:>10.4} {:>10.4} {dc:>9.4} {dw:>8.4}",
            format!("{piece:?}"),
            margin(c),
            m(s),
            m(w)
        );
    }
    println!("largest margin change: sg vs wg {worst_order:.4}, cpu vs sg {worst_cpu:.4}");
}
