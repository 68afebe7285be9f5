//! The streaming loader over a synthetic model: any chunking yields the engine a whole-file parse
//! would; truncated, unsupported and oversized inputs fail with the right kind, at the right time.

use aether_core::cpu::Serial;
use aether_core::gguf::Gguf;
use aether_core::model::{Arch, Model};
use aether_core::quant::GgmlType;
use aether_core::sample::SamplingParams;
use aether_core::session::{CpuBackend, GenerateParams, Session};
use aether_core::synth::{Shape, Spec, Synth};
use aether_core::tokenizer::Tokenizer;
use sha2::{Digest, Sha256};

use super::*;
use crate::engine::EngineCore;

fn tiny() -> Vec<u8> {
    let shape = Shape::named("tiny", Arch::Llama).expect("tiny");
    let spec = Spec { arch: Arch::Llama, shape, weights: GgmlType::Q8_0, output: GgmlType::Q8_0, seed: 7 };
    Synth::new(&spec).and_then(|s| s.to_bytes()).expect("synth")
}

fn load(bytes: &[u8], total: Option<u64>, chunk: usize) -> Result<Loader> {
    let mut l = Loader::new(total, true);
    for c in bytes.chunks(chunk) {
        l.push(c)?;
    }
    Ok(l)
}

/// Greedy text straight from the core over the whole file.
fn reference(bytes: &[u8], prompt: &str, n: usize) -> String {
    let g = Gguf::parse(bytes).expect("parse");
    let model = Model::from_gguf(&g).expect("model");
    let tok = Tokenizer::from_metadata(g.metadata()).expect("tokenizer");
    let mut s = Session::new(CpuBackend::new(&model, 64, &Serial), &tok);
    let params = GenerateParams { max_tokens: n, sampling: SamplingParams::greedy(), ..Default::default() };
    crate::engine::ready(s.start(&tok.encode(prompt, true, true).expect("encode"), params)).expect("start");
    let mut out = String::new();
    loop {
        let step = crate::engine::ready(s.step()).expect("step");
        out += &step.text;
        if step.finish.is_some() {
            return out;
        }
    }
}

#[test]
fn any_chunking_gives_the_same_engine() {
    let bytes = tiny();
    let want = reference(&bytes, "hello world", 8);
    let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    for (total, chunk) in [(Some(bytes.len() as u64), 1000), (None, 65536), (None, bytes.len())] {
        let l = load(&bytes, total, chunk).expect("push");
        assert_eq!(l.sha256_hex().as_deref(), Some(sha.as_str()), "sha256 with chunks of {chunk}");
        let (plan, sink) = l.finish().expect("finish");
        assert_eq!(plan.architecture, "llama");
        let mut e = EngineCore::new(plan, sink, 64).expect("engine");
        let n =
            e.begin_completion(r#"{"prompt":"hello world","max_tokens":8,"temperature":0}"#).expect("begin");
        assert!(n > 0);
        let mut got = String::new();
        let finish = loop {
            let s = crate::engine::ready(e.step()).expect("step");
            got += &s.text;
            if let Some(f) = s.finish {
                break f;
            }
        };
        assert_eq!(got, want, "chunks of {chunk}, total {total:?}");
        assert_eq!((finish, e.n_generated()), ("length", 8));
    }
}

#[test]
fn header_is_checked_before_the_weights() {
    let bytes = tiny();
    let mut l = Loader::new(None, false);
    let mut pushed = 0;
    for c in bytes.chunks(4096) {
        l.push(c).expect("push");
        pushed += c.len();
        if l.plan().is_some() {
            break;
        }
    }
    let plan = l.plan().expect("header parsed");
    assert!(pushed < bytes.len() / 2, "header known after {pushed} of {} bytes", bytes.len());
    assert!(plan.data_offset <= pushed as u64);
    assert_eq!(plan.keep_len, bytes.len() as u64);
}

#[test]
fn truncated_streams_are_model_format_errors() {
    let bytes = tiny();
    let half = &bytes[..bytes.len() / 2];
    // The stream stops early (length unknown): found at the end.
    let e = load(half, None, 4096).expect("push").finish().err().expect("must fail");
    assert_eq!(e.kind, Kind::ModelFormat, "{e}");
    assert!(e.message.contains("truncated"), "{e}");
    // A truncated file served with its own length: found as soon as the header is in.
    let e = load(half, Some(half.len() as u64), 4096).err().expect("must fail");
    assert_eq!(e.kind, Kind::ModelFormat, "{e}");
    // Inside the header.
    let e = load(&bytes[..100], None, 30).expect("push").finish().err().expect("must fail");
    assert_eq!(e.kind, Kind::ModelFormat, "{e}");
    // Not GGUF at all; the loader then keeps failing.
    let mut l = Loader::new(None, false);
    let e = l.push(b"<!doctype html><html>").expect_err("must fail");
    assert_eq!(e.kind, Kind::ModelFormat, "{e}");
    assert_eq!(l.push(b"more").err(), Some(e));
}

#[test]
fn unknown_architecture_is_unsupported_model() {
    let mut bytes = tiny();
    // Patch the value of general.architecture ("llama" → "llamx"), same length.
    let key = b"general.architecture";
    let at = bytes.windows(key.len()).position(|w| w == key).expect("key") + key.len() + 4 + 8;
    assert_eq!(&bytes[at..at + 5], b"llama");
    bytes[at + 4] = b'x';
    let e = load(&bytes, Some(bytes.len() as u64), 65536).err().expect("must fail");
    assert_eq!(e.kind, Kind::UnsupportedModel, "{e}");
    assert!(e.message.contains("llamx"), "{e}");
}

#[test]
fn bytes_past_the_file_are_counted_not_kept() {
    let mut bytes = tiny();
    let len = bytes.len();
    bytes.extend_from_slice(&[0xAB; 100]);
    let l = load(&bytes, None, 4096).expect("push");
    assert_eq!(l.received(), bytes.len() as u64);
    let Ok((plan, Sink::Cpu { bytes: kept })) = l.finish() else { panic!("finish: not a CPU load") };
    // Kept: the file up to its padded end, which the header implies.
    assert_eq!(kept.len() as u64, plan.keep_len);
    assert!((len..len + 32).contains(&kept.len()), "kept {} of a {len}-byte file", kept.len());
    assert_eq!(&kept[..len], &bytes[..len]);
}

/// The GPU path, natively on whatever adapter there is: weights streamed to the GPU in chunks,
/// the engine on the GPU backend, its greedy text that of the GPU backend over the whole file.
#[test]
fn the_gpu_loader_streams_into_a_gpu_engine() {
    use aether_core::gpu::{Gpu, GpuBackend, GpuModel, GpuOptions};
    let Ok(gpu) = pollster::block_on(Gpu::new(GpuOptions::default())) else {
        eprintln!("skipped: no GPU adapter");
        return;
    };
    let gpu: &'static Gpu = Box::leak(Box::new(gpu));
    let bytes = tiny();
    let want = {
        let g = Gguf::parse(&bytes).expect("parse");
        let model = Model::from_gguf(&g).expect("model");
        let tok = Tokenizer::from_metadata(g.metadata()).expect("tokenizer");
        let gm = GpuModel::upload(gpu, &model, &mut |_, _| {}).expect("upload");
        let batch = crate::engine::gpu_max_batch(gpu);
        let mut s = Session::new(GpuBackend::new(gpu, &gm, 64, batch).expect("backend"), &tok);
        let params =
            GenerateParams { max_tokens: 8, sampling: SamplingParams::greedy(), ..Default::default() };
        pollster::block_on(s.start(&tok.encode("hello world", true, true).expect("encode"), params))
            .expect("start");
        let mut out = String::new();
        loop {
            let step = pollster::block_on(s.step()).expect("step");
            out += &step.text;
            if step.finish.is_some() {
                break out;
            }
        }
    };
    for chunk in [1000, 65537] {
        let mut l = Loader::with_gpu(None, false, Some(gpu));
        for c in bytes.chunks(chunk) {
            l.push(c).expect("push");
        }
        let (plan, sink) = l.finish().expect("finish");
        assert!(matches!(sink, Sink::Gpu { .. }), "a GPU loader made a CPU sink");
        let mut e = EngineCore::new(plan, sink, 64).expect("engine");
        assert_eq!(e.backend(), "webgpu");
        e.begin_completion(r#"{"prompt":"hello world","max_tokens":8,"temperature":0}"#).expect("begin");
        let mut got = String::new();
        loop {
            let s = pollster::block_on(e.step()).expect("step");
            got += &s.text;
            if s.finish.is_some() {
                break;
            }
        }
        assert_eq!(got, want, "chunks of {chunk}: GPU engine text differs from the GPU backend's");
    }
}
