//! `aether synth`: synthetic GGUF models with the real shapes and random, well-formed weights,
//! for architecture tests and GPU benchmarks where no real model of that size can be fetched.
//!
//! Weights are drawn from a pool of blocks quantized once from N(0, σ²) values, so an 8B model is
//! written at disk speed while every block is one the quantizer really produced. The metadata
//! carries a byte-level BPE vocabulary (256 byte tokens, specials, fillers up to the shape's vocab
//! size), so the files load in aether and in llama.cpp alike.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use aether_core::gguf::{MetaValue, Writer};
use aether_core::quant::{self, GgmlType};
use aether_core::sample::Rng;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Args)]
pub struct SynthArgs {
    /// Where to write the model.
    out: PathBuf,
    /// Architecture.
    #[arg(long, default_value = "llama")]
    arch: String,
    /// Shape: tiny, smollm2-135m, llama3-1b, llama3-8b.
    #[arg(long, default_value = "tiny")]
    shape: String,
    /// Type of the weight matrices: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k.
    #[arg(long, default_value = "q4_k")]
    quant: String,
    /// Type of the output matrix (default: q6_k for k-quants, else as --quant).
    #[arg(long)]
    output_quant: Option<String>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Hyper-parameters of a named shape.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub n_embd: u64,
    pub n_layer: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    pub n_ff: u64,
    pub n_vocab: u64,
    pub n_ctx: u64,
    pub rope_base: f32,
    pub tied: bool,
}

pub fn shape(name: &str) -> Result<Shape> {
    let s = |n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx, rope_base, tied| Shape {
        n_embd,
        n_layer,
        n_head,
        n_head_kv,
        n_ff,
        n_vocab,
        n_ctx,
        rope_base,
        tied,
    };
    Ok(match name {
        "tiny" => s(256, 2, 4, 2, 512, 512, 512, 10_000.0, true),
        "smollm2-135m" => s(576, 30, 9, 3, 1536, 49152, 8192, 100_000.0, true),
        "llama3-1b" => s(2048, 16, 32, 8, 8192, 128_256, 131_072, 500_000.0, false),
        "llama3-8b" => s(4096, 32, 32, 8, 14336, 128_256, 131_072, 500_000.0, false),
        other => bail!("unknown shape `{other}` (tiny, smollm2-135m, llama3-1b, llama3-8b)"),
    })
}

pub fn parse_type(name: &str) -> Result<GgmlType> {
    GgmlType::ALL
        .into_iter()
        .find(|t| t.name().eq_ignore_ascii_case(name))
        .with_context(|| format!("unknown tensor type `{name}`"))
}

/// GPT-2's reversible byte → printable-character map: printable bytes stand for themselves, the
/// others are moved to U+0100 and up in byte order.
fn byte_char(b: u8) -> char {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return b as char;
    }
    let shift = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + shift).unwrap_or('?')
}

fn vocab(n_vocab: u64) -> (Vec<String>, Vec<i32>) {
    let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_char(b).to_string()).collect();
    let mut types = vec![1i32; 256];
    for special in ["<|begin_of_text|>", "<|end_of_text|>"] {
        tokens.push(special.into());
        types.push(3);
    }
    while (tokens.len() as u64) < n_vocab {
        tokens.push(format!("<|synth_{}|>", tokens.len()));
        types.push(4);
    }
    (tokens, types)
}

pub fn run(a: SynthArgs) -> Result<()> {
    if a.arch != "llama" {
        bail!("synth supports --arch llama for now (asked for `{}`)", a.arch);
    }
    let sh = shape(&a.shape)?;
    let wty = parse_type(&a.quant)?;
    let is_k = matches!(wty, GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K);
    let oty = match &a.output_quant {
        Some(q) => parse_type(q)?,
        None if is_k => GgmlType::Q6K,
        None => wty,
    };
    let arch = a.arch.as_str();
    let head_dim = sh.n_embd / sh.n_head;
    let (tokens, types) = vocab(sh.n_vocab);

    let mut w = Writer::new();
    w.set("general.architecture", arch)
        .set("general.name", format!("aether synthetic {} {}", a.shape, a.quant))
        .set("general.alignment", 32u32)
        .set(&format!("{arch}.context_length"), sh.n_ctx as u32)
        .set(&format!("{arch}.embedding_length"), sh.n_embd as u32)
        .set(&format!("{arch}.block_count"), sh.n_layer as u32)
        .set(&format!("{arch}.feed_forward_length"), sh.n_ff as u32)
        .set(&format!("{arch}.attention.head_count"), sh.n_head as u32)
        .set(&format!("{arch}.attention.head_count_kv"), sh.n_head_kv as u32)
        .set(&format!("{arch}.rope.freq_base"), sh.rope_base)
        .set(&format!("{arch}.rope.dimension_count"), head_dim as u32)
        .set(&format!("{arch}.attention.layer_norm_rms_epsilon"), 1e-5f32)
        .set(&format!("{arch}.vocab_size"), sh.n_vocab as u32)
        .set("tokenizer.ggml.model", "gpt2")
        .set("tokenizer.ggml.pre", "default")
        .set("tokenizer.ggml.tokens", MetaValue::strings(tokens))
        .set("tokenizer.ggml.token_type", MetaValue::i32s(types))
        .set("tokenizer.ggml.merges", MetaValue::strings(Vec::<String>::new()))
        .set("tokenizer.ggml.bos_token_id", 256u32)
        .set("tokenizer.ggml.eos_token_id", 257u32)
        .set("general.quantization_version", 2u32);

    let (d, kv, ff) = (sh.n_embd, sh.n_head_kv * head_dim, sh.n_ff);
    let mut tensors: Vec<(String, GgmlType, Vec<u64>)> =
        vec![("token_embd.weight".into(), wty, vec![d, sh.n_vocab])];
    for i in 0..sh.n_layer {
        let n = |s: &str| format!("blk.{i}.{s}.weight");
        tensors.extend([
            (n("attn_norm"), GgmlType::F32, vec![d]),
            (n("attn_q"), wty, vec![d, d]),
            (n("attn_k"), wty, vec![d, kv]),
            (n("attn_v"), wty, vec![d, kv]),
            (n("attn_output"), wty, vec![d, d]),
            (n("ffn_norm"), GgmlType::F32, vec![d]),
            (n("ffn_gate"), wty, vec![d, ff]),
            (n("ffn_up"), wty, vec![d, ff]),
            (n("ffn_down"), wty, vec![ff, d]),
        ]);
    }
    tensors.push(("output_norm.weight".into(), GgmlType::F32, vec![d]));
    if !sh.tied {
        tensors.push(("output.weight".into(), oty, vec![d, sh.n_vocab]));
    }
    for (name, ty, ne) in &tensors {
        w.add_tensor(name, *ty, ne)?;
    }

    let total: u64 = tensors
        .iter()
        .map(|(_, ty, ne)| ty.row_bytes(ne[0]).unwrap_or(0) * ne[1..].iter().product::<u64>())
        .sum();
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("writing {}", a.out.display()));
    let mut pools = std::collections::HashMap::new();
    let mut rng = Rng::new(a.seed);
    let file = File::create(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut out = BufWriter::with_capacity(1 << 22, file);
    w.write(&mut out, |i| {
        let (_, ty, ne) = &tensors[i];
        let n: u64 = ne.iter().product();
        let bytes = if *ty == GgmlType::F32 && ne.len() == 1 {
            // Norm weights: around 1, as trained models have them.
            (0..n).flat_map(|_| (1.0 + 0.1 * (rng.next_f32() - 0.5)).to_le_bytes()).collect()
        } else {
            let pool: &Vec<u8> = match pools.entry(*ty) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(block_pool(*ty, &mut rng)?),
            };
            let bs = ty.type_size();
            let n_blocks = (n / ty.block_size() as u64) as usize;
            let pool_blocks = pool.len() / bs;
            let mut v = Vec::with_capacity(n_blocks * bs);
            for _ in 0..n_blocks {
                let j = (rng.next_u64() % pool_blocks as u64) as usize;
                v.extend_from_slice(&pool[j * bs..(j + 1) * bs]);
            }
            v
        };
        bar.inc(bytes.len() as u64);
        Ok(bytes)
    })?;
    std::io::Write::flush(&mut out)?;
    bar.finish_and_clear();
    eprintln!(
        "wrote {} ({} tensors, {:.2} GB of tensor data)",
        a.out.display(),
        tensors.len(),
        total as f64 / 1e9
    );
    Ok(())
}

/// 4096 blocks of `ty` quantized from N(0, 0.02²) samples.
fn block_pool(ty: GgmlType, rng: &mut Rng) -> Result<Vec<u8>, aether_core::Error> {
    let n = 4096 * ty.block_size();
    let x: Vec<f32> = (0..n)
        .map(|_| {
            // Box–Muller.
            let (u1, u2) = (rng.next_f32().max(1e-7), rng.next_f32());
            0.02 * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect();
    quant::quantize(ty, &x)
}
