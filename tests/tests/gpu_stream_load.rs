//! The streaming GPU loader (`GpuModelBuilder`): a model fed as the file's bytes in chunks of any
//! size gives exactly the logits of `GpuModel::upload` (every architecture's tiny synthetic model,
//! Phi-3's fused tensors included, and SmolLM2 with a small binding limit so tensors split across
//! buffers mid-chunk); a stream that stops early or skips bytes is an error naming where.

use aether_core::gguf::Gguf;
use aether_core::gpu::{Gpu, GpuBackend, GpuModel, GpuModelBuilder, GpuOptions};
use aether_core::model::{Arch, Config, Model};
use aether_core::quant::GgmlType;
use aether_core::synth::{Shape, Spec, Synth};
use aether_core::{Error, Result};
use aether_tests::arch_goldens::Logits;
use aether_tests::default_model_bytes;
use aether_tests::gpu::test_gpu;

/// Feeds `bytes` (a whole GGUF file) to a builder in chunks of `chunk` bytes.
fn stream(gpu: &Gpu, bytes: &[u8], chunk: usize) -> Result<GpuModel> {
    let g = Gguf::parse(bytes)?;
    let config = Config::from_metadata(g.metadata())?;
    let mut b = GpuModelBuilder::new(gpu, &g.header, config)?;
    let mut at = 0;
    for c in bytes.chunks(chunk) {
        b.push(at, c)?;
        at += c.len() as u64;
    }
    assert_eq!(b.progress().0, b.progress().1, "progress short of the total after the whole file");
    b.finish()
}

/// Logits after a 5-token prompt and two single-token steps.
fn logits(gpu: &Gpu, m: &GpuModel) -> Vec<Vec<f32>> {
    let mut b = GpuBackend::new(gpu, m, 64, 16).expect("backend");
    vec![b.logits(&[1, 5, 9, 2, 7]), b.logits(&[3]), b.logits(&[11])]
}

fn check_file(gpu: &Gpu, bytes: &[u8], chunks: &[usize], what: &str) {
    let g = Gguf::parse(bytes).expect("parse");
    let model = Model::from_gguf(&g).expect("model");
    let want = logits(gpu, &GpuModel::upload(gpu, &model, &mut |_, _| {}).expect("upload"));
    for &chunk in chunks {
        let got = logits(gpu, &stream(gpu, bytes, chunk).expect("stream"));
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            if let Some(j) = (0..w.len()).find(|&j| w[j].to_bits() != g[j].to_bits()) {
                panic!(
                    "{what}, chunks of {chunk} B: step {i} logit {j} is {} streamed, {} uploaded",
                    g[j], w[j]
                );
            }
        }
    }
}

fn synth(arch: Arch) -> Vec<u8> {
    let shape = Shape::named("tiny", arch).expect("tiny");
    let spec = Spec { arch, shape, weights: GgmlType::Q4K, output: GgmlType::Q6K, seed: 5 };
    Synth::new(&spec).and_then(|s| s.to_bytes()).expect("synth")
}

#[test]
fn streamed_tiny_models_equal_the_upload_in_any_chunking() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    for arch in [Arch::Llama, Arch::Qwen2, Arch::Qwen3, Arch::Phi3, Arch::Gemma3] {
        // Odd sizes split words and rows anywhere; a 13-byte chunking only once (it is slow).
        let odd = if arch == Arch::Phi3 { 13 } else { 4093 };
        check_file(&gpu, &synth(arch), &[1 << 10, 64 << 10, odd, 1 << 30], arch.name());
    }
}

#[test]
fn streamed_smollm2_split_across_buffers_equals_the_upload() {
    let opts = GpuOptions { max_storage_binding: Some(8 << 20), ..Default::default() };
    let Some(gpu) = test_gpu(opts) else { return };
    check_file(&gpu, &default_model_bytes(), &[(64 << 10) + 3, 1 << 20], "SmolLM2");
}

#[test]
fn a_short_or_gapped_stream_is_an_error() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let bytes = synth(Arch::Llama);
    let g = Gguf::parse(&bytes).expect("parse");
    let config = || Config::from_metadata(g.metadata()).expect("config");

    // The last tensor's final 100 bytes never arrive.
    let last = g.tensors().iter().map(|t| g.header.tensor_range(t)).max_by_key(|r| r.end).expect("tensors");
    let cut = last.end - 100;
    let mut b = GpuModelBuilder::new(&gpu, &g.header, config()).expect("builder");
    b.push(0, &bytes[..cut as usize]).expect("push");
    match b.finish() {
        Err(Error::TensorIncomplete { start, end, got, .. }) => {
            assert_eq!((start, end), (last.start, last.end), "wrong range named");
            assert_eq!(got, end - start - 100);
        }
        Err(e) => panic!("a truncated stream gave another error: {e}"),
        Ok(_) => panic!("a truncated stream loaded"),
    }

    // A chunk that skips bytes.
    let mut b = GpuModelBuilder::new(&gpu, &g.header, config()).expect("builder");
    b.push(0, &bytes[..4096]).expect("push");
    match b.push(5000, &bytes[5000..6000]) {
        Err(Error::StreamOrder { expected: 4096, got: 5000 }) => {}
        other => panic!("a gap gave {:?}", other.err()),
    }
}
