//! Weights by GGUF tensor name, as views of the file's bytes. Every tensor's shape is checked
//! against the hyper-parameters at load, so the forward pass can index without checks.
//!
//! The architectures share one layout; what differs is which tensors a file must, may or must not
//! carry (see [`Weights::from_gguf`]). Fused projections are split here into row ranges of the
//! same bytes — Phi-3's `attn_qkv` into q, k, v and its `ffn_up` [n_embd, 2·n_ff] into gate (first
//! half) and up (second half) — so the forward pass sees one layout. A dot product per row does
//! not care which matrix the row sits in, so the numbers are those of llama.cpp's fused matmul.
//! Like llama.cpp, a tensor the architecture does not use is an error rather than silently
//! ignored.
//!
//! Reference: llama.cpp `src/models/*.cpp` (`load_arch_tensors`) and
//! `llama_model_base::create_tensor_qkv` in `src/llama-model.cpp`.

use std::cell::RefCell;
use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::gguf::{Gguf, TensorInfo};
use crate::model::{Arch, Config};
use crate::quant::{self, GgmlType};

/// A tensor as stored in the file: type, dims (`ne[0]` innermost) and its raw bytes.
#[derive(Clone, Copy, Debug)]
pub struct QTensor<'a> {
    pub name: &'a str,
    pub ty: GgmlType,
    pub ne: [u64; 4],
    pub data: &'a [u8],
}

impl<'a> QTensor<'a> {
    fn new(g: &Gguf<'a>, info: &TensorInfo<'a>) -> QTensor<'a> {
        QTensor { name: info.name, ty: info.ty, ne: info.ne, data: g.tensor_data(info) }
    }

    /// Elements per row.
    pub fn cols(&self) -> usize {
        self.ne[0] as usize
    }

    pub fn rows(&self) -> usize {
        (self.ne[1] * self.ne[2] * self.ne[3]) as usize
    }

    pub fn row_bytes(&self) -> usize {
        self.data.len() / self.rows().max(1)
    }

    /// The bytes of row `r`.
    pub fn row(&self, r: usize) -> &'a [u8] {
        let n = self.row_bytes();
        &self.data[r * n..(r + 1) * n]
    }

    /// Rows `start..start + n` of a 2-D tensor as a tensor of their own (a fused projection's
    /// part). The caller has checked the shape, so the range is inside the data.
    fn rows_view(&self, start: usize, n: usize) -> QTensor<'a> {
        let rb = self.row_bytes();
        QTensor { ne: [self.ne[0], n as u64, 1, 1], data: &self.data[start * rb..(start + n) * rb], ..*self }
    }

    /// Row `r` as f32.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<()> {
        quant::dequantize(self.ty, self.row(r), out)
    }

    /// The whole tensor as f32 (norm weights and other small vectors).
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        let mut out = vec![0.0; self.cols() * self.rows()];
        quant::dequantize(self.ty, self.data, &mut out)?;
        Ok(out)
    }
}

pub struct LayerWeights<'a> {
    /// [n_embd] f32
    pub attn_norm: Vec<f32>,
    /// [n_embd] -> [q_dim]
    pub attn_q: QTensor<'a>,
    /// [n_embd] -> [kv_dim]
    pub attn_k: QTensor<'a>,
    /// [n_embd] -> [kv_dim]
    pub attn_v: QTensor<'a>,
    /// [q_dim], [kv_dim], [kv_dim] f32 biases (Qwen 2; optional in every architecture, as in
    /// llama.cpp)
    pub attn_q_b: Option<Vec<f32>>,
    pub attn_k_b: Option<Vec<f32>>,
    pub attn_v_b: Option<Vec<f32>>,
    /// [head_dim] f32: RMS norm of each query / key head before rope (Qwen 3, Gemma 3)
    pub attn_q_norm: Option<Vec<f32>>,
    pub attn_k_norm: Option<Vec<f32>>,
    /// [q_dim] -> [n_embd]
    pub attn_output: QTensor<'a>,
    /// [n_embd] f32 (llama only, optional)
    pub attn_output_b: Option<Vec<f32>>,
    /// [n_embd] f32: RMS norm of the attention output before the residual add (Gemma 3's
    /// `post_attention_norm`)
    pub attn_post_norm: Option<Vec<f32>>,
    /// [n_embd] f32
    pub ffn_norm: Vec<f32>,
    /// [n_embd] -> [n_ff]
    pub ffn_gate: QTensor<'a>,
    /// [n_embd] -> [n_ff]
    pub ffn_up: QTensor<'a>,
    /// [n_ff] -> [n_embd]
    pub ffn_down: QTensor<'a>,
    /// [n_embd] f32: RMS norm of the FFN output before the residual add (Gemma 3's `post_ffw_norm`)
    pub ffn_post_norm: Option<Vec<f32>>,
}

pub struct Weights<'a> {
    /// [n_vocab] rows of [n_embd]
    pub token_embd: QTensor<'a>,
    pub layers: Vec<LayerWeights<'a>>,
    /// [n_embd] f32
    pub output_norm: Vec<f32>,
    /// [n_embd] -> [n_vocab]; `token_embd` when the file ties the embeddings.
    pub output: QTensor<'a>,
    /// [n_vocab] f32 (Qwen 2, optional)
    pub output_b: Option<Vec<f32>>,
    /// [n_rot/2] f32: Llama 3's per-pair frequency divisors (`rope_freqs.weight`).
    pub rope_freqs: Option<Vec<f32>>,
    /// [n_rot/2] f32: LongRoPE divisors for contexts up to / beyond `Config::n_ctx_orig`.
    pub rope_factors_short: Option<Vec<f32>>,
    pub rope_factors_long: Option<Vec<f32>>,
}

impl Weights<'_> {
    /// The rope frequency divisors for a context of `n_ctx` tokens, as llama.cpp's
    /// `get_rope_factors`: `rope_freqs` when present, else the long LongRoPE factors for a
    /// context beyond the original one and the short ones otherwise.
    pub fn rope_factors(&self, c: &Config, n_ctx: usize) -> Option<&[f32]> {
        if let Some(f) = &self.rope_freqs {
            return Some(f);
        }
        if n_ctx > c.n_ctx_orig {
            self.rope_factors_long.as_deref()
        } else {
            self.rope_factors_short.as_deref()
        }
    }
}

/// Looks tensors up by name, checks their shapes and remembers which ones were taken.
struct Loader<'g, 'a> {
    g: &'g Gguf<'a>,
    used: RefCell<HashSet<&'a str>>,
}

impl<'a> Loader<'_, 'a> {
    fn optional(&self, name: &str, shape: &[usize]) -> Result<Option<QTensor<'a>>> {
        let Some(info) = self.g.header.tensor(name) else { return Ok(None) };
        let want: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        if info.dims() != want.as_slice() {
            return Err(Error::TensorShape {
                name: name.into(),
                expected: want,
                found: info.dims().to_vec(),
            });
        }
        self.used.borrow_mut().insert(info.name);
        Ok(Some(QTensor::new(self.g, info)))
    }

    fn tensor(&self, name: &str, shape: &[usize]) -> Result<QTensor<'a>> {
        self.optional(name, shape)?.ok_or_else(|| Error::MissingTensor { name: name.into() })
    }

    fn optional_vector(&self, name: &str, n: usize) -> Result<Option<Vec<f32>>> {
        self.optional(name, &[n])?.map(|t| t.to_f32()).transpose()
    }

    fn vector(&self, name: &str, n: usize) -> Result<Vec<f32>> {
        self.tensor(name, &[n])?.to_f32()
    }

    /// Errors on the first tensor of the file that nothing took.
    fn finish(self, arch: Arch) -> Result<()> {
        let used = self.used.into_inner();
        match self.g.tensors().iter().find(|t| !used.contains(t.name)) {
            Some(t) => Err(Error::UnexpectedTensor { name: t.name.into(), arch: arch.name() }),
            None => Ok(()),
        }
    }
}

/// A layer's q, k, v projections and their biases, separate or fused.
struct Qkv<'a> {
    q: QTensor<'a>,
    k: QTensor<'a>,
    v: QTensor<'a>,
    /// q, k, v biases.
    bias: [Option<Vec<f32>>; 3],
}

/// `attn_qkv` when the file has it (Phi-3 always does), else `attn_q`/`attn_k`/`attn_v`. Biases
/// are optional, as llama.cpp's `create_tensor_qkv` has them: each separate projection's on its
/// own; a fused projection's as one `attn_qkv.bias` or as all three separate ones.
fn load_qkv<'a>(ld: &Loader<'_, 'a>, i: usize, d: usize, q: usize, kv: usize) -> Result<Qkv<'a>> {
    let n = |s: &str, kind: &str| format!("blk.{i}.{s}.{kind}");
    let separate_biases = || -> Result<[Option<Vec<f32>>; 3]> {
        Ok([
            ld.optional_vector(&n("attn_q", "bias"), q)?,
            ld.optional_vector(&n("attn_k", "bias"), kv)?,
            ld.optional_vector(&n("attn_v", "bias"), kv)?,
        ])
    };
    if let Some(qkv) = ld.optional(&n("attn_qkv", "weight"), &[d, q + 2 * kv])? {
        let bias = match ld.optional_vector(&n("attn_qkv", "bias"), q + 2 * kv)? {
            Some(b) => [Some(b[..q].to_vec()), Some(b[q..q + kv].to_vec()), Some(b[q + kv..].to_vec())],
            None => match separate_biases()? {
                all @ ([Some(_), Some(_), Some(_)] | [None, None, None]) => all,
                // llama.cpp adds separate biases to a fused projection only all three together.
                [qb, kb, _] => {
                    let missing = if qb.is_none() {
                        "attn_q"
                    } else if kb.is_none() {
                        "attn_k"
                    } else {
                        "attn_v"
                    };
                    return Err(Error::MissingTensor { name: n(missing, "bias") });
                }
            },
        };
        return Ok(Qkv {
            q: qkv.rows_view(0, q),
            k: qkv.rows_view(q, kv),
            v: qkv.rows_view(q + kv, kv),
            bias,
        });
    }
    Ok(Qkv {
        q: ld.tensor(&n("attn_q", "weight"), &[d, q])?,
        k: ld.tensor(&n("attn_k", "weight"), &[d, kv])?,
        v: ld.tensor(&n("attn_v", "weight"), &[d, kv])?,
        bias: separate_biases()?,
    })
}

impl<'a> Weights<'a> {
    /// What each architecture reads, beyond the llama layout (norm, q/k/v, output, norm, SwiGLU
    /// FFN, output norm, optional output matrix):
    /// - llama: optional `attn_output.bias`, `rope_freqs` (or `rope_factors_long/short` when
    ///   `rope.scaling.type` is longrope);
    /// - qwen2: optional `output.bias`;
    /// - qwen3: `attn_q_norm`, `attn_k_norm`;
    /// - phi3: gate and up fused in `ffn_up`, optional `rope_factors_long/short`;
    /// - gemma3: `attn_q_norm`, `attn_k_norm`, `post_attention_norm`, `post_ffw_norm`.
    pub fn from_gguf(g: &Gguf<'a>, c: &Config) -> Result<Weights<'a>> {
        let ld = Loader { g, used: RefCell::new(HashSet::new()) };
        let arch = c.arch;
        let (d, q, kv, ff, hd) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff, c.head_dim);
        let qk_norm = matches!(arch, Arch::Qwen3 | Arch::Gemma3);
        let post_norms = arch == Arch::Gemma3;
        let longrope = match arch {
            Arch::Phi3 => true,
            Arch::Llama => g.metadata().get_str("llama.rope.scaling.type").is_ok_and(|t| t == "longrope"),
            _ => false,
        };

        let token_embd = ld.tensor("token_embd.weight", &[d, c.n_vocab])?;
        let layers = (0..c.n_layer)
            .map(|i| {
                let n = |s: &str| format!("blk.{i}.{s}.weight");
                let qkv = load_qkv(&ld, i, d, q, kv)?;
                let [attn_q_b, attn_k_b, attn_v_b] = qkv.bias;
                let (ffn_gate, ffn_up) = if arch == Arch::Phi3 {
                    let fused = ld.tensor(&n("ffn_up"), &[d, 2 * ff])?;
                    (fused.rows_view(0, ff), fused.rows_view(ff, ff))
                } else {
                    (ld.tensor(&n("ffn_gate"), &[d, ff])?, ld.tensor(&n("ffn_up"), &[d, ff])?)
                };
                let required_if = |yes: bool, name: &str, len: usize| -> Result<Option<Vec<f32>>> {
                    if yes { ld.vector(&n(name), len).map(Some) } else { Ok(None) }
                };
                Ok(LayerWeights {
                    attn_norm: ld.vector(&n("attn_norm"), d)?,
                    attn_q: qkv.q,
                    attn_k: qkv.k,
                    attn_v: qkv.v,
                    attn_q_b,
                    attn_k_b,
                    attn_v_b,
                    attn_q_norm: required_if(qk_norm, "attn_q_norm", hd)?,
                    attn_k_norm: required_if(qk_norm, "attn_k_norm", hd)?,
                    attn_output: ld.tensor(&n("attn_output"), &[q, d])?,
                    attn_output_b: match arch {
                        Arch::Llama => ld.optional_vector(&format!("blk.{i}.attn_output.bias"), d)?,
                        _ => None,
                    },
                    attn_post_norm: required_if(post_norms, "post_attention_norm", d)?,
                    ffn_norm: ld.vector(&n("ffn_norm"), d)?,
                    ffn_gate,
                    ffn_up,
                    ffn_down: ld.tensor(&n("ffn_down"), &[ff, d])?,
                    ffn_post_norm: required_if(post_norms, "post_ffw_norm", d)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let output = ld.optional("output.weight", &[d, c.n_vocab])?.unwrap_or(token_embd);
        let output_b = match arch {
            Arch::Qwen2 => ld.optional_vector("output.bias", c.n_vocab)?,
            _ => None,
        };
        let half_rot = c.n_rot / 2;
        let (rope_factors_long, rope_factors_short) = if longrope {
            (
                ld.optional_vector("rope_factors_long.weight", half_rot)?,
                ld.optional_vector("rope_factors_short.weight", half_rot)?,
            )
        } else {
            (None, None)
        };
        let rope_freqs = match arch {
            Arch::Llama if !longrope => ld.optional_vector("rope_freqs.weight", half_rot)?,
            _ => None,
        };
        let output_norm = ld.vector("output_norm.weight", d)?;
        ld.finish(arch)?;
        Ok(Weights {
            token_embd,
            layers,
            output_norm,
            output,
            output_b,
            rope_freqs,
            rope_factors_short,
            rope_factors_long,
        })
    }
}
