//! Synthetic GGUF models: real shapes, random well-formed weights, every tensor and key an
//! architecture needs, so the files load in aether and in llama.cpp alike. `aether synth` writes
//! them to disk; the architecture tests regenerate the same bytes in memory from the same seed.
//!
//! Weight matrices are quantized from N(0, σ²) samples. For the big shapes their blocks are drawn
//! from a pool of blocks quantized once, so an 8B model is written at disk speed while every block
//! is one the quantizer really produced; the tiny shape quantizes every tensor from its own
//! samples, since pooled blocks would repeat whole rows (equal logits, ties in greedy). Norm
//! weights sit around 1 (Gemma's as its conversion stores them, with the +1 already added),
//! biases around 0; rope factors follow fixed curves. The vocabulary is byte-level BPE (`vocab.rs`).
//!
//! Everything random comes from one [`Rng`] consumed in tensor order, so a spec and a seed fix the
//! file byte for byte.

mod vocab;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::Write;

use crate::error::Result;
use crate::gguf::{MetaValue, Writer};
use crate::model::Arch;
use crate::quant::{self, GgmlType};
use crate::sample::Rng;

/// Hyper-parameters of a named shape, before an architecture adds its own.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    pub n_embd: u64,
    pub n_layer: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    /// `attention.key_length`; written only when it differs from n_embd / n_head.
    pub head_dim: u64,
    pub n_ff: u64,
    pub n_vocab: u64,
    pub n_ctx: u64,
    pub rope_base: f32,
    pub tied: bool,
    /// Llama's `rope_freqs` divisors, when the shape has them.
    pub rope_freqs: RopeFreqs,
    pub scales: Scales,
    /// Draw matrix blocks from a shared pool (fast for big shapes) rather than quantize each
    /// tensor from its own samples.
    pub pooled: bool,
}

/// The σ of each kind of matrix.
///
/// The big shapes (benchmarks: only speed matters) use 0.02 throughout, as trained models have.
/// The tiny shape is built for comparing with llama.cpp: an implementation that is not bit-exact
/// (aether sums some f32 products in another order) occasionally rounds an activation to the
/// other Q8 or f16 neighbour, and a model must neither blow such a flip up nor hide real
/// differences. So the residual stream is led by the embeddings (σ 1), each layer adds a modest
/// part (σ 0.02 matrices) — errors then neither grow nor vanish across layers — while q and k
/// are strong enough (σ 0.088: scores of σ ≈ 2) that attention is sharp and rope matters, and the
/// output matrix (σ 0.25) gives logits of σ ≈ 4, a next-token distribution as peaked as a trained
/// model's. Measured on these models, a rope pairing or frequency mistake moves KL(llama.cpp ‖
/// aether) by 1e-2 to 1e-1, rounding flips by 1e-5 to 1e-4.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scales {
    pub weights: f32,
    pub qk: f32,
    pub embeddings: f32,
    pub output: f32,
}

/// Which `rope_freqs.weight` a llama model of this shape carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeFreqs {
    None,
    /// Llama 3's divisors (factor 8, low/high frequency factors 1 and 4, original context 8192).
    Llama3,
    /// Divisors rising linearly from 1 to 8 across the pairs: unlike Llama 3's, they change
    /// angles within a few dozen positions, so a test of that length sees them.
    Ramp,
}

/// Shape names `Shape::named` knows.
pub const SHAPES: [&str; 4] = ["tiny", "smollm2-135m", "llama3-1b", "llama3-8b"];

impl Shape {
    /// A named shape as `arch` has it: the tiny shape gives Qwen 3 and Gemma 3 a head size other
    /// than n_embd / n_head (as the real models have) and Gemma 3 six layers, so that both its
    /// sliding-window and global layers are present, and its global base 1e6.
    pub fn named(name: &str, arch: Arch) -> Option<Shape> {
        #[rustfmt::skip]
        let s = |n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx, rope_base, tied, rope_freqs| Shape {
            n_embd, n_layer, n_head, n_head_kv, head_dim: n_embd / n_head, n_ff, n_vocab, n_ctx, rope_base, tied,
            rope_freqs, scales: Scales { weights: 0.02, qk: 0.02, embeddings: 0.02, output: 0.02 }, pooled: true,
        };
        use RopeFreqs::*;
        let mut shape = match name {
            "tiny" => Shape {
                scales: Scales { weights: 0.02, qk: 0.088, embeddings: 1.0, output: 0.25 },
                pooled: false,
                ..s(256, 4, 4, 2, 512, 512, 4096, 10_000.0, false, Ramp)
            },
            "smollm2-135m" => s(576, 30, 9, 3, 1536, 49152, 8192, 100_000.0, true, None),
            "llama3-1b" => s(2048, 16, 32, 8, 8192, 128_256, 131_072, 500_000.0, false, Llama3),
            "llama3-8b" => s(4096, 32, 32, 8, 14336, 128_256, 131_072, 500_000.0, false, Llama3),
            _ => return Option::None,
        };
        if name == "tiny" {
            match arch {
                Arch::Qwen3 => shape.head_dim = 128,
                Arch::Gemma3 => {
                    shape.head_dim = 128;
                    shape.n_layer = 6;
                    shape.rope_base = 1_000_000.0;
                }
                _ => {}
            }
        }
        Some(shape)
    }
}

/// What to synthesize.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub arch: Arch,
    pub shape: Shape,
    /// Type of the weight matrices and the token embeddings.
    pub weights: GgmlType,
    /// Type of the output matrix (unused when the shape ties embeddings).
    pub output: GgmlType,
    pub seed: u64,
}

impl Spec {
    /// The output type llama.cpp's quantizer would pick: q6_k beside k-quants, else the weights'.
    pub fn default_output(weights: GgmlType) -> GgmlType {
        match weights {
            GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => GgmlType::Q6K,
            other => other,
        }
    }
}

/// Sliding window of the tiny Gemma 3 (shorter than the tests' 32 tokens, so the window bites).
const GEMMA3_WINDOW: u32 = 8;
/// Gemma 2's value; Gemma 3 has none, but the key is exercised here.
const GEMMA3_SOFTCAP: f32 = 30.0;
/// Phi-3's LongRoPE: the context the short factors serve, and the attention factor its
/// conversion writes for a 4× longer context: sqrt(1 + ln 4 / ln 1024).
const PHI3_ORIG_CTX: u32 = 1024;

/// How a tensor's values are made.
#[derive(Clone, Debug)]
enum Init {
    /// Quantized from N(0, std²) samples (its own, or the pool's).
    Matrix { std: f32 },
    /// Like `Matrix`, row ranges with their own σ: (rows, σ) in order (a fused projection); always
    /// quantized from its own samples.
    Rows(Vec<(u64, f32)>),
    /// f32 around 1: 1 + U(-0.05, 0.05).
    Norm,
    /// f32 around 0: U(-0.25, 0.25).
    Bias,
    /// Fixed f32 values (rope factors).
    Values(Vec<f32>),
}

struct Planned {
    ty: GgmlType,
    ne: Vec<u64>,
    init: Init,
}

/// A synthetic model, planned: its header and how each tensor's bytes are drawn.
pub struct Synth {
    spec: Spec,
    writer: Writer,
    tensors: Vec<Planned>,
}

impl Synth {
    pub fn new(spec: &Spec) -> Result<Synth> {
        let (arch, sh) = (spec.arch, spec.shape);
        let a = arch.name();
        let mut w = Writer::new();
        let k = |s: &str| format!("{a}.{s}");
        let (tokens, types) = vocab::tokens(sh.n_vocab);
        w.set("general.architecture", a)
            // Not the architecture: llama.cpp keys vocabulary quirks on names containing "phi3".
            .set("general.name", format!("aether synthetic {}", spec.weights.name()))
            .set("general.alignment", 32u32)
            .set(&k("context_length"), sh.n_ctx as u32)
            .set(&k("embedding_length"), sh.n_embd as u32)
            .set(&k("block_count"), sh.n_layer as u32)
            .set(&k("feed_forward_length"), sh.n_ff as u32)
            .set(&k("attention.head_count"), sh.n_head as u32)
            .set(&k("attention.head_count_kv"), sh.n_head_kv as u32)
            .set(&k("rope.freq_base"), sh.rope_base)
            .set(&k("rope.dimension_count"), sh.head_dim as u32)
            .set(&k("attention.layer_norm_rms_epsilon"), if arch == Arch::Gemma3 { 1e-6f32 } else { 1e-5f32 })
            .set(&k("vocab_size"), sh.n_vocab as u32);
        if sh.head_dim != sh.n_embd / sh.n_head {
            w.set(&k("attention.key_length"), sh.head_dim as u32)
                .set(&k("attention.value_length"), sh.head_dim as u32);
        }
        match arch {
            Arch::Phi3 => {
                let attn_factor = (1.0
                    + (sh.n_ctx as f64 / PHI3_ORIG_CTX as f64).ln() / (PHI3_ORIG_CTX as f64).ln())
                .sqrt() as f32;
                w.set(&k("rope.scaling.original_context_length"), PHI3_ORIG_CTX)
                    .set(&k("rope.scaling.attn_factor"), attn_factor);
            }
            Arch::Gemma3 => {
                w.set(&k("attention.sliding_window"), GEMMA3_WINDOW)
                    .set(&k("final_logit_softcapping"), GEMMA3_SOFTCAP);
            }
            _ => {}
        }
        w.set("tokenizer.ggml.model", "gpt2")
            .set("tokenizer.ggml.pre", "default")
            .set("tokenizer.ggml.tokens", MetaValue::strings(tokens))
            .set("tokenizer.ggml.token_type", MetaValue::i32s(types))
            .set("tokenizer.ggml.merges", MetaValue::strings(Vec::<String>::new()))
            .set("tokenizer.ggml.bos_token_id", vocab::BOS)
            .set("tokenizer.ggml.eos_token_id", vocab::EOS)
            .set("general.quantization_version", 2u32);

        let tensors = plan(spec);
        for (name, t) in &tensors {
            w.add_tensor(name, t.ty, &t.ne)?;
        }
        Ok(Synth { spec: spec.clone(), writer: w, tensors: tensors.into_iter().map(|(_, t)| t).collect() })
    }

    pub fn n_tensors(&self) -> usize {
        self.tensors.len()
    }

    /// Bytes of tensor data (without alignment padding).
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| t.ty.row_bytes(t.ne[0]).unwrap_or(0) * t.ne[1..].iter().product::<u64>())
            .sum()
    }

    /// Streams the file to `out`, calling `progress` with each tensor's byte count.
    pub fn write<W: Write>(&self, out: &mut W, mut progress: impl FnMut(u64)) -> Result<()> {
        let mut rng = Rng::new(self.spec.seed);
        // Pools by type and σ.
        let mut pools: HashMap<(GgmlType, u32), Vec<u8>> = HashMap::new();
        let pooled = self.spec.shape.pooled;
        self.writer.write(out, |i| {
            let t = &self.tensors[i];
            let n: u64 = t.ne.iter().product();
            let f32s = |v: Vec<f32>| v.into_iter().flat_map(f32::to_le_bytes).collect::<Vec<u8>>();
            let bytes = match &t.init {
                Init::Norm => f32s((0..n).map(|_| 1.0 + 0.1 * (rng.next_f32() - 0.5)).collect()),
                Init::Bias => f32s((0..n).map(|_| 0.5 * (rng.next_f32() - 0.5)).collect()),
                Init::Values(v) => f32s(v.clone()),
                Init::Matrix { std } if !pooled => {
                    quant::quantize(t.ty, &normal(n as usize, *std, &mut rng))?
                }
                Init::Rows(parts) => {
                    let mut x = Vec::with_capacity(n as usize);
                    for &(rows, std) in parts {
                        x.extend(normal((rows * t.ne[0]) as usize, std, &mut rng));
                    }
                    quant::quantize(t.ty, &x)?
                }
                Init::Matrix { std } => {
                    let pool = match pools.entry((t.ty, std.to_bits())) {
                        Entry::Occupied(e) => e.into_mut(),
                        Entry::Vacant(e) => e.insert(quant::quantize(
                            t.ty,
                            &normal(4096 * t.ty.block_size(), *std, &mut rng),
                        )?),
                    };
                    let bs = t.ty.type_size();
                    let n_blocks = (n / t.ty.block_size() as u64) as usize;
                    let pool_blocks = (pool.len() / bs) as u64;
                    let mut v = Vec::with_capacity(n_blocks * bs);
                    for _ in 0..n_blocks {
                        let j = (rng.next_u64() % pool_blocks) as usize;
                        v.extend_from_slice(&pool[j * bs..(j + 1) * bs]);
                    }
                    v
                }
            };
            progress(bytes.len() as u64);
            Ok(bytes)
        })
    }

    /// The whole file in memory (small shapes).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write(&mut out, |_| {})?;
        Ok(out)
    }
}

/// Every tensor of the model, in file order, with GGUF names and `ne[0]`-innermost dims.
fn plan(spec: &Spec) -> Vec<(String, Planned)> {
    let (arch, sh, wty) = (spec.arch, spec.shape, spec.weights);
    let (d, ff, hd) = (sh.n_embd, sh.n_ff, sh.head_dim);
    let (q, kv) = (sh.n_head * hd, sh.n_head_kv * hd);
    let matrix = |ne: Vec<u64>| Planned { ty: wty, ne, init: Init::Matrix { std: sh.scales.weights } };
    let qk_matrix = |ne: Vec<u64>| Planned { ty: wty, ne, init: Init::Matrix { std: sh.scales.qk } };
    let vector = |n: u64, init: Init| Planned { ty: GgmlType::F32, ne: vec![n], init };
    let embd = Planned { ty: wty, ne: vec![d, sh.n_vocab], init: Init::Matrix { std: sh.scales.embeddings } };
    let mut t: Vec<(String, Planned)> = vec![("token_embd.weight".into(), embd)];
    let half = (hd / 2) as usize;
    match arch {
        Arch::Llama => {
            let factors = match sh.rope_freqs {
                RopeFreqs::None => Option::None,
                RopeFreqs::Llama3 => Some(llama3_factors(sh)),
                RopeFreqs::Ramp => {
                    Some((0..half).map(|i| 1.0 + 7.0 * i as f32 / (half - 1) as f32).collect())
                }
            };
            if let Some(f) = factors {
                t.push(("rope_freqs.weight".into(), vector(half as u64, Init::Values(f))));
            }
        }
        Arch::Phi3 => {
            // Short factors near 1, long ones growing to 8 for the slowest pairs.
            let curve = |top: f32| {
                (0..half).map(|i| 1.0 + (top - 1.0) * (i as f32 / (half - 1) as f32).powi(2)).collect()
            };
            t.push(("rope_factors_long.weight".into(), vector(half as u64, Init::Values(curve(8.0)))));
            t.push(("rope_factors_short.weight".into(), vector(half as u64, Init::Values(curve(1.5)))));
        }
        _ => {}
    }
    for i in 0..sh.n_layer {
        let n = |s: &str| format!("blk.{i}.{s}");
        t.push((n("attn_norm.weight"), vector(d, Init::Norm)));
        if arch == Arch::Phi3 {
            let init = if sh.scales.qk == sh.scales.weights {
                Init::Matrix { std: sh.scales.weights }
            } else {
                Init::Rows(vec![(q + kv, sh.scales.qk), (kv, sh.scales.weights)])
            };
            t.push((n("attn_qkv.weight"), Planned { ty: wty, ne: vec![d, q + 2 * kv], init }));
        } else {
            t.push((n("attn_q.weight"), qk_matrix(vec![d, q])));
            t.push((n("attn_k.weight"), qk_matrix(vec![d, kv])));
            t.push((n("attn_v.weight"), matrix(vec![d, kv])));
        }
        if arch == Arch::Qwen2 {
            t.push((n("attn_q.bias"), vector(q, Init::Bias)));
            t.push((n("attn_k.bias"), vector(kv, Init::Bias)));
            t.push((n("attn_v.bias"), vector(kv, Init::Bias)));
        }
        if matches!(arch, Arch::Qwen3 | Arch::Gemma3) {
            t.push((n("attn_q_norm.weight"), vector(hd, Init::Norm)));
            t.push((n("attn_k_norm.weight"), vector(hd, Init::Norm)));
        }
        t.push((n("attn_output.weight"), matrix(vec![q, d])));
        if arch == Arch::Gemma3 {
            t.push((n("post_attention_norm.weight"), vector(d, Init::Norm)));
        }
        t.push((n("ffn_norm.weight"), vector(d, Init::Norm)));
        if arch == Arch::Phi3 {
            t.push((n("ffn_up.weight"), matrix(vec![d, 2 * ff])));
        } else {
            t.push((n("ffn_gate.weight"), matrix(vec![d, ff])));
            t.push((n("ffn_up.weight"), matrix(vec![d, ff])));
        }
        t.push((n("ffn_down.weight"), matrix(vec![ff, d])));
        if arch == Arch::Gemma3 {
            t.push((n("post_ffw_norm.weight"), vector(d, Init::Norm)));
        }
    }
    t.push(("output_norm.weight".into(), vector(d, Init::Norm)));
    if !sh.tied {
        let init = Init::Matrix { std: sh.scales.output };
        t.push(("output.weight".into(), Planned { ty: spec.output, ne: vec![d, sh.n_vocab], init }));
    }
    t
}

/// Llama 3's rope frequency divisors for this shape's base and head size: 1 for fast pairs, 8 for
/// slow ones, a smooth blend between.
fn llama3_factors(sh: Shape) -> Vec<f32> {
    let (factor, low, high, orig) = (8.0f64, 1.0f64, 4.0f64, 8192.0f64);
    let (low_wavelen, high_wavelen) = (orig / low, orig / high);
    (0..sh.head_dim / 2)
        .map(|i| {
            let freq = (sh.rope_base as f64).powf(-((2 * i) as f64) / sh.head_dim as f64);
            let wavelen = std::f64::consts::TAU / freq;
            let f = if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                factor
            } else {
                let smooth = (orig / wavelen - low) / (high - low);
                1.0 / ((1.0 - smooth) / factor + smooth)
            };
            f as f32
        })
        .collect()
}

/// n samples of N(0, std²) (Box–Muller).
fn normal(n: usize, std: f32, rng: &mut Rng) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let (u1, u2) = (rng.next_f32().max(1e-7), rng.next_f32());
            std * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect()
}
