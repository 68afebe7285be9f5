//! Hyper-parameters from the `{arch}.*` metadata keys, named as GGUF names them, and the
//! per-architecture choices that llama.cpp hard-codes in its graph builders (rope pairing, where
//! the attention scale is applied, the FFN activation, Gemma's embedding scale).
//!
//! Reference: llama.cpp `src/llama-model.cpp` (`load_hparams`, `llama_model_rope_type`),
//! `src/llama-context.cpp` (rope scaling defaults) and `src/models/{llama,qwen2,qwen3,phi3,gemma3}.cpp`.

use crate::error::{Error, Result};
use crate::gguf::{Metadata, Value};

/// The architectures aether runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Llama 2/3, Mistral, SmolLM, TinyLlama.
    Llama,
    /// Qwen 2 / 2.5: biases on the q/k/v projections.
    Qwen2,
    /// Qwen 3: per-head RMS norms on q and k; head size from `attention.key_length`.
    Qwen3,
    /// Phi-3 / Phi-3.5 / Phi-4-mini: fused `attn_qkv`, fused gate+up in `ffn_up`, LongRoPE factors.
    Phi3,
    /// Gemma 3: scaled embeddings, GeGLU, norms after attention and FFN, q/k norms, interleaved
    /// sliding-window and global layers.
    Gemma3,
}

impl Arch {
    pub const ALL: [Arch; 5] = [Arch::Llama, Arch::Qwen2, Arch::Qwen3, Arch::Phi3, Arch::Gemma3];

    pub fn from_name(name: &str) -> Result<Arch> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| Error::UnsupportedArchitecture { arch: name.into() })
    }

    /// The `general.architecture` value.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Phi3 => "phi3",
            Arch::Gemma3 => "gemma3",
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

/// The gated FFN's activation: `act(gate) · up`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FfnAct {
    /// SwiGLU: silu(gate) · up.
    Silu,
    /// GeGLU with the tanh approximation of GELU (Gemma).
    GeluTanh,
}

/// Sliding-window attention (Gemma 3): some layers attend only to the last `window` positions
/// and rotate with their own base.
#[derive(Clone, Debug, PartialEq)]
pub struct Swa {
    /// `attention.sliding_window`: a query at position p sees keys at p - window + 1 ..= p.
    pub window: usize,
    /// Per layer: true for a sliding-window layer. From `attention.sliding_window_pattern` (a u32
    /// n: every n-th layer is global, the others slide; default 6 as llama.cpp has it for Gemma 3,
    /// or one bool per layer).
    pub layers: Vec<bool>,
    /// `rope.freq_base_swa`, default 10000 (llama.cpp's default; Gemma 3 conversions omit it).
    pub rope_base: f32,
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
    /// Per-head dimension of queries, keys and values (`attention.key_length`).
    pub head_dim: usize,
    pub n_ff: usize,
    pub rms_eps: f32,
    pub rope_kind: RopeKind,
    pub rope_base: f32,
    /// Dimensions of each head that rotate (`rope.dimension_count`).
    pub n_rot: usize,
    /// Multiplies every rotary angle: 1/`rope.scaling.factor` for linear or LongRoPE scaling, 1
    /// without scaling. Sliding-window layers never scale (llama.cpp's `rope_freq_scale_train_swa`).
    pub rope_freq_scale: f32,
    /// Multiplies cos and sin, so q and k (`rope.scaling.attn_factor`, written for Phi-3 LongRoPE).
    pub rope_attn_factor: f32,
    /// The context the short rope factors serve (`rope.scaling.original_context_length`, else
    /// `context_length`): a longer context uses `rope_factors_long`, as llama.cpp chooses by
    /// context size.
    pub n_ctx_orig: usize,
    /// Multiplies q (f32, after rope, before the f16 KQ product): Phi-3 and Gemma 3 scale q.
    pub q_scale: f32,
    /// Multiplies the KQ scores inside the softmax: 1/sqrt(head_dim) where q is not scaled.
    pub kq_scale: f32,
    /// Multiplies the token embeddings (Gemma: sqrt(n_embd)).
    pub embd_scale: Option<f32>,
    pub ffn_act: FfnAct,
    /// `final_logit_softcapping`: logits become cap · tanh(logits / cap).
    pub final_logit_softcap: Option<f32>,
    pub swa: Option<Swa>,
}

impl Config {
    pub fn from_metadata(meta: &Metadata<'_>) -> Result<Config> {
        let arch = Arch::from_name(meta.get_str("general.architecture")?)?;
        let a = arch.name();
        let key = |k: &str| format!("{a}.{k}");
        let has = |k: &str| meta.contains(&key(k));
        let usize_of = |k: &str| meta.get_u32(&key(k)).map(|v| v as usize);
        let usize_or = |k: &str, default: usize| if has(k) { usize_of(k) } else { Ok(default) };
        let f32_or = |k: &str, default: f32| if has(k) { meta.get_f32(&key(k)) } else { Ok(default) };
        let invalid = |what: &str| Error::InvalidHyperParameter { key: key(what) };

        let n_embd = usize_of("embedding_length")?;
        let n_layer = usize_of("block_count")?;
        let n_head = usize_of("attention.head_count")?;
        let n_head_kv = usize_or("attention.head_count_kv", n_head)?;
        if n_head == 0 || n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(invalid("attention.head_count_kv"));
        }
        let head_dim = usize_or("attention.key_length", n_embd / n_head)?;
        if usize_or("attention.value_length", head_dim)? != head_dim {
            return Err(invalid("attention.value_length"));
        }
        let n_rot = usize_or("rope.dimension_count", head_dim)?;
        // Sliding-window layers with their own head or rotary size (llama.cpp reads these keys
        // for a few newer architectures) are not supported.
        for (k, full) in [
            ("attention.key_length_swa", head_dim),
            ("attention.value_length_swa", head_dim),
            ("rope.dimension_count_swa", n_rot),
        ] {
            if usize_or(k, full)? != full {
                return Err(invalid(k));
            }
        }
        if head_dim == 0 || n_rot > head_dim || n_rot % 2 != 0 {
            return Err(invalid("rope.dimension_count"));
        }
        // llama.cpp refuses partial rotation for llama and asserts full rotation for Qwen.
        if matches!(arch, Arch::Llama | Arch::Qwen2 | Arch::Qwen3) && n_rot != head_dim {
            return Err(invalid("rope.dimension_count"));
        }
        let n_ctx_train = usize_of("context_length")?;
        let n_vocab = match usize_of("vocab_size") {
            Ok(n) => n,
            Err(_) => meta.get_array("tokenizer.ggml.tokens")?.len(),
        };

        // Rope scaling, with llama.cpp's defaults: type "linear", factor 1.
        let scaling =
            if has("rope.scaling.type") { meta.get_str(&key("rope.scaling.type"))? } else { "linear" };
        let factor = f32_or("rope.scaling.factor", 0.0)?;
        let rope_freq_scale = match scaling {
            "none" => 1.0,
            "linear" | "longrope" if factor == 0.0 => 1.0,
            "linear" | "longrope" => 1.0 / factor,
            other => {
                return Err(Error::UnsupportedRopeScaling {
                    key: key("rope.scaling.type"),
                    value: other.into(),
                });
            }
        };

        let rope_kind = match arch {
            Arch::Llama => RopeKind::Normal,
            Arch::Qwen2 | Arch::Qwen3 | Arch::Phi3 | Arch::Gemma3 => RopeKind::Neox,
        };
        let inv_sqrt_head = 1.0 / (head_dim as f32).sqrt();
        let (q_scale, kq_scale) = match arch {
            Arch::Llama | Arch::Qwen2 | Arch::Qwen3 => (1.0, inv_sqrt_head),
            Arch::Phi3 => (inv_sqrt_head, 1.0),
            // llama.cpp keys this on the model size rather than `query_pre_attn_scalar`: Gemma 3
            // 27B (62 layers) scales by n_embd/n_head, every other size by the head size.
            Arch::Gemma3 if n_layer == 62 => (1.0 / ((n_embd / n_head) as f32).sqrt(), 1.0),
            Arch::Gemma3 => (inv_sqrt_head, 1.0),
        };
        let ffn_act = if arch == Arch::Gemma3 { FfnAct::GeluTanh } else { FfnAct::Silu };
        let embd_scale = (arch == Arch::Gemma3).then(|| (n_embd as f32).sqrt());
        // Only Gemma 3 reads these keys in llama.cpp (Phi-3's sliding window is disabled there).
        let (final_logit_softcap, swa) = match arch {
            Arch::Gemma3 => (
                Some(f32_or("final_logit_softcapping", 0.0)?).filter(|&c| c != 0.0),
                Self::sliding_window(meta, &key, n_layer)?,
            ),
            _ => (None, None),
        };

        let config = Config {
            arch,
            n_vocab,
            n_ctx_train,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_ff: usize_of("feed_forward_length")?,
            rms_eps: meta.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
            rope_kind,
            rope_base: f32_or("rope.freq_base", 10_000.0)?,
            n_rot,
            rope_freq_scale,
            rope_attn_factor: f32_or("rope.scaling.attn_factor", 1.0)?,
            n_ctx_orig: usize_or("rope.scaling.original_context_length", n_ctx_train)?,
            q_scale,
            kq_scale,
            embd_scale,
            ffn_act,
            final_logit_softcap,
            swa,
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

    /// Gemma 3's sliding-window layers, or None when `attention.sliding_window` is absent or 0.
    fn sliding_window(
        meta: &Metadata<'_>,
        key: &dyn Fn(&str) -> String,
        n_layer: usize,
    ) -> Result<Option<Swa>> {
        let k_window = key("attention.sliding_window");
        let window = if meta.contains(&k_window) { meta.get_u32(&k_window)? as usize } else { 0 };
        if window == 0 {
            return Ok(None);
        }
        let k_pattern = key("attention.sliding_window_pattern");
        let layers = match meta.get(&k_pattern) {
            None => (0..n_layer).map(|l| l % 6 < 5).collect(),
            Some(v) if v.as_array().is_some() => {
                let flags: Vec<bool> = meta
                    .get_array(&k_pattern)?
                    .iter()
                    .map_while(|v| match v {
                        Value::Bool(b) => Some(b),
                        _ => None,
                    })
                    .collect();
                if flags.len() != n_layer {
                    return Err(Error::InvalidHyperParameter { key: k_pattern });
                }
                flags
            }
            Some(_) => {
                // n = 0 makes every layer slide, as in llama.cpp.
                let n = meta.get_u32(&k_pattern)? as usize;
                (0..n_layer).map(|l| n == 0 || l % n < n - 1).collect()
            }
        };
        let k_base = key("rope.freq_base_swa");
        let rope_base = if meta.contains(&k_base) { meta.get_f32(&k_base)? } else { 10_000.0 };
        Ok(Some(Swa { window, layers, rope_base }))
    }

    /// Width of the query projection (`n_head * head_dim`).
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of the key/value projections (`n_head_kv * head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Whether layer `l` is a sliding-window layer.
    pub fn is_swa(&self, l: usize) -> bool {
        self.swa.as_ref().is_some_and(|s| s.layers.get(l).copied().unwrap_or(false))
    }

    /// How many past positions (the current one included) layer `l` attends to; None for all.
    pub fn window(&self, l: usize) -> Option<usize> {
        self.swa.as_ref().filter(|_| self.is_swa(l)).map(|s| s.window)
    }
}
