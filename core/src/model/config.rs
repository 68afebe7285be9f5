//! Hyper-parameters from the `{arch}.*` metadata keys, named as GGUF names them.

use crate::error::{Error, Result};
use crate::gguf::Metadata;

/// The architectures aether runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Llama 2/3, Mistral, SmolLM, TinyLlama.
    Llama,
}

impl Arch {
    pub fn from_name(name: &str) -> Result<Arch> {
        match name {
            "llama" => Ok(Arch::Llama),
            other => Err(Error::UnsupportedArchitecture { arch: other.into() }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
        }
    }
}

/// How rotary embeddings pair dimensions: `Normal` rotates adjacent pairs (2i, 2i+1) — llama's
/// GGUF conversion permutes Q/K rows for this; `Neox` rotates (i, i + n_rot/2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeKind {
    Normal,
    Neox,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub arch: Arch,
    pub n_vocab: usize,
    /// Context length the model was trained for.
    pub n_ctx_train: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Per-head dimension of queries and keys (`attention.key_length`).
    pub head_dim: usize,
    pub n_ff: usize,
    pub rms_eps: f32,
    pub rope_kind: RopeKind,
    pub rope_base: f32,
    /// Dimensions of each head that rotate (`rope.dimension_count`).
    pub n_rot: usize,
}

impl Config {
    pub fn from_metadata(meta: &Metadata<'_>) -> Result<Config> {
        let arch = Arch::from_name(meta.get_str("general.architecture")?)?;
        let a = arch.name();
        let key = |k: &str| format!("{a}.{k}");
        let usize_of = |k: &str| meta.get_u32(&key(k)).map(|v| v as usize);
        let n_embd = usize_of("embedding_length")?;
        let n_head = usize_of("attention.head_count")?;
        let n_head_kv = if meta.contains(&key("attention.head_count_kv")) {
            usize_of("attention.head_count_kv")?
        } else {
            n_head
        };
        let invalid = |what: &str| Error::InvalidHyperParameter { key: key(what) };
        if n_head == 0 || n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(invalid("attention.head_count_kv"));
        }
        let head_dim = if meta.contains(&key("attention.key_length")) {
            usize_of("attention.key_length")?
        } else {
            n_embd / n_head
        };
        let n_rot = if meta.contains(&key("rope.dimension_count")) {
            usize_of("rope.dimension_count")?
        } else {
            head_dim
        };
        if head_dim == 0 || n_rot > head_dim || n_rot % 2 != 0 {
            return Err(invalid("rope.dimension_count"));
        }
        let rope_base = if meta.contains(&key("rope.freq_base")) {
            meta.get_f32(&key("rope.freq_base"))?
        } else {
            10_000.0
        };
        let n_vocab = match usize_of("vocab_size") {
            Ok(n) => n,
            Err(_) => meta.get_array("tokenizer.ggml.tokens")?.len(),
        };
        let config = Config {
            arch,
            n_vocab,
            n_ctx_train: usize_of("context_length")?,
            n_embd,
            n_layer: usize_of("block_count")?,
            n_head,
            n_head_kv,
            head_dim,
            n_ff: usize_of("feed_forward_length")?,
            rms_eps: meta.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
            rope_kind: match arch {
                Arch::Llama => RopeKind::Normal,
            },
            rope_base,
            n_rot,
        };
        for (v, k) in [
            (config.n_embd, "embedding_length"),
            (config.n_layer, "block_count"),
            (config.n_ff, "feed_forward_length"),
        ] {
            if v == 0 {
                return Err(invalid(k));
            }
        }
        Ok(config)
    }

    /// Width of the query projection (`n_head * head_dim`).
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of the key/value projections (`n_head_kv * head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}
