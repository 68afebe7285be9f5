//! Writes a few small valid GGUF files into the directory given (the fuzz corpus), built with
//! `gguf::Writer`, so the fuzzer starts from well-formed headers instead of discovering the magic.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds -- fuzz/corpus/gguf_parse`

use aether_core::gguf::{MetaValue, ValueType, Writer};
use aether_core::quant::GgmlType;

fn file(w: &Writer) -> Vec<u8> {
    let mut out = Vec::new();
    w.write(&mut out, |i| {
        let (_, size) = sizes(w)[i];
        Ok((0..size).map(|b| b as u8).collect())
    })
    .expect("seed file");
    out
}

/// Every declared tensor's size, from the header the writer produced (the writer keeps its specs
/// private, so re-derive them from a parse).
fn sizes(w: &Writer) -> Vec<(String, usize)> {
    let header = w.header().expect("header");
    let mut full = header.clone();
    full.resize(header.len() + (1 << 16), 0);
    let g = aether_core::gguf::Gguf::parse(&full).expect("seed header parses");
    g.tensors().iter().map(|t| (t.name.to_string(), t.size as usize)).collect()
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: gen_seeds DIR");
    std::fs::create_dir_all(&dir).expect("create corpus dir");
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();

    seeds.push(("empty", file(&Writer::new())));

    let mut w = Writer::new();
    w.set("general.architecture", "llama")
        .set("llama.context_length", 2048u32)
        .set("llama.rope.freq_base", 10000.0f32)
        .set("tokenizer.ggml.model", "gpt2")
        .set("tokenizer.ggml.tokens", MetaValue::strings(["<s>", "a", "b", "ab", "Ġthe"]))
        .set("tokenizer.ggml.scores", MetaValue::f32s([0.0, -1.0, -2.0, -3.0, -4.0]))
        .set("tokenizer.ggml.token_type", MetaValue::i32s([3, 1, 1, 1, 1]))
        .set("tokenizer.ggml.merges", MetaValue::strings(["a b"]))
        .set("tokenizer.ggml.add_bos_token", true);
    w.add_tensor("token_embd.weight", GgmlType::Q4_1, &[32, 5]).unwrap();
    w.add_tensor("output_norm.weight", GgmlType::F32, &[32]).unwrap();
    seeds.push(("llama_tiny", file(&w)));

    let mut w = Writer::new();
    w.set("general.alignment", 64u32)
        .set("u8", MetaValue::U8(7))
        .set("i8", MetaValue::I8(-7))
        .set("u16", MetaValue::U16(700))
        .set("i16", MetaValue::I16(-700))
        .set("i32", MetaValue::I32(-70000))
        .set("u64", MetaValue::U64(1 << 40))
        .set("i64", MetaValue::I64(-1 << 40))
        .set("f64", MetaValue::F64(0.5))
        .set("bools", MetaValue::Array(ValueType::Bool, vec![MetaValue::Bool(true), MetaValue::Bool(false)]))
        .set(
            "nested",
            MetaValue::Array(
                ValueType::Array,
                vec![MetaValue::i32s([1, 2]), MetaValue::i32s([]), MetaValue::i32s([3])],
            ),
        )
        .set("empty", "");
    w.add_tensor("q8", GgmlType::Q8_0, &[32, 2]).unwrap();
    w.add_tensor("k4", GgmlType::Q4K, &[256]).unwrap();
    w.add_tensor("f16", GgmlType::F16, &[3, 2, 2, 1]).unwrap();
    seeds.push(("all_types_align64", file(&w)));

    let mut w = Writer::new();
    w.set("general.alignment", 1u32).set("general.name", "packed");
    w.add_tensor("a", GgmlType::F32, &[3]).unwrap();
    w.add_tensor("b", GgmlType::I8, &[5]).unwrap();
    seeds.push(("align1", file(&w)));

    // Version 2: same layout, version field 2.
    let mut v2 = seeds[1].1.clone();
    v2[4..8].copy_from_slice(&2u32.to_le_bytes());
    seeds.push(("llama_tiny_v2", v2));

    for (name, bytes) in &seeds {
        let path = format!("{dir}/seed_{name}.gguf");
        std::fs::write(&path, bytes).expect("write seed");
        println!("{path}: {} bytes", bytes.len());
    }
}
