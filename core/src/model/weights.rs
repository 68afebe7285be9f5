//! Weights by GGUF tensor name, as views of the file's bytes. Every tensor's shape is checked
//! against the hyper-parameters at load, so the forward pass can index without checks.
//!
//! One description serves every loader: [`Layout::from_header`] reads only the header (tensor
//! table and metadata) and says, for every weight a model needs, where its bytes lie in the data
//! section ([`MatrixPart`], [`VectorPart`]). [`Weights::from_gguf`] maps that layout onto a file in
//! memory (views and decoded vectors); the GPU's streaming loader maps it onto GPU buffers before
//! any tensor byte has arrived. Both are the one generic [`WeightSet`], so the field list exists
//! once.
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
use crate::gguf::{Gguf, Header, TensorInfo};
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

/// A weight matrix's place in the file: `rows` whole rows of tensor `name` (all of them, or one
/// part of a fused projection), `len` bytes from `offset` in the data section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatrixPart {
    pub name: String,
    pub ty: GgmlType,
    pub cols: u64,
    pub rows: u64,
    /// Byte offset of the first row from the start of the data section.
    pub offset: u64,
    pub len: u64,
}

/// A vector weight's place in the file: elements `start..start + len` of tensor `name`, which
/// holds `n` elements of type `ty` in `bytes` bytes from `offset` in the data section (a fused
/// bias holds three vectors; every other tensor one, whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VectorPart {
    pub name: String,
    pub ty: GgmlType,
    pub n: usize,
    pub offset: u64,
    pub bytes: u64,
    pub start: usize,
    pub len: usize,
}

impl VectorPart {
    /// The vector as f32, from the tensor's `bytes` bytes.
    pub fn decode(&self, data: &[u8]) -> Result<Vec<f32>> {
        let mut all = vec![0.0; self.n];
        quant::dequantize(self.ty, data, &mut all)?;
        all.truncate(self.start + self.len);
        all.drain(..self.start);
        Ok(all)
    }

    /// Elements `start..start + len` of this part.
    fn slice(&self, start: usize, len: usize) -> VectorPart {
        VectorPart { start: self.start + start, len, ..self.clone() }
    }
}

/// A layer's weights: matrices of type `M`, f32 vectors of type `V` (views and decoded vectors in
/// [`LayerWeights`], file places in a [`Layout`], GPU buffers in the GPU loader).
#[derive(Clone)]
pub struct LayerSet<M, V> {
    /// [n_embd] f32
    pub attn_norm: V,
    /// [n_embd] -> [q_dim]
    pub attn_q: M,
    /// [n_embd] -> [kv_dim]
    pub attn_k: M,
    /// [n_embd] -> [kv_dim]
    pub attn_v: M,
    /// [q_dim], [kv_dim], [kv_dim] f32 biases (Qwen 2; optional in every architecture, as in
    /// llama.cpp)
    pub attn_q_b: Option<V>,
    pub attn_k_b: Option<V>,
    pub attn_v_b: Option<V>,
    /// [head_dim] f32: RMS norm of each query / key head before rope (Qwen 3, Gemma 3)
    pub attn_q_norm: Option<V>,
    pub attn_k_norm: Option<V>,
    /// [q_dim] -> [n_embd]
    pub attn_output: M,
    /// [n_embd] f32 (llama only, optional)
    pub attn_output_b: Option<V>,
    /// [n_embd] f32: RMS norm of the attention output before the residual add (Gemma 3's
    /// `post_attention_norm`)
    pub attn_post_norm: Option<V>,
    /// [n_embd] f32
    pub ffn_norm: V,
    /// [n_embd] -> [n_ff]
    pub ffn_gate: M,
    /// [n_embd] -> [n_ff]
    pub ffn_up: M,
    /// [n_ff] -> [n_embd]
    pub ffn_down: M,
    /// [n_embd] f32: RMS norm of the FFN output before the residual add (Gemma 3's `post_ffw_norm`)
    pub ffn_post_norm: Option<V>,
}

/// A model's weights: matrices of type `M`, f32 vectors of type `V`.
#[derive(Clone)]
pub struct WeightSet<M, V> {
    /// [n_vocab] rows of [n_embd]
    pub token_embd: M,
    pub layers: Vec<LayerSet<M, V>>,
    /// [n_embd] f32
    pub output_norm: V,
    /// [n_embd] -> [n_vocab]; `token_embd` again when the file ties the embeddings.
    pub output: M,
    /// [n_vocab] f32 (Qwen 2, optional)
    pub output_b: Option<V>,
    /// [n_rot/2] f32: Llama 3's per-pair frequency divisors (`rope_freqs.weight`).
    pub rope_freqs: Option<V>,
    /// [n_rot/2] f32: LongRoPE divisors for contexts up to / beyond `Config::n_ctx_orig`.
    pub rope_factors_short: Option<V>,
    pub rope_factors_long: Option<V>,
}

/// Weights as views of the file's bytes, vectors decoded.
pub type LayerWeights<'a> = LayerSet<QTensor<'a>, Vec<f32>>;
pub type Weights<'a> = WeightSet<QTensor<'a>, Vec<f32>>;
/// Where each weight lies in the file, from the header alone.
pub type Layout = WeightSet<MatrixPart, VectorPart>;

fn map_opt<V, V2>(x: Option<V>, f: &mut impl FnMut(V) -> Result<V2>) -> Result<Option<V2>> {
    x.map(f).transpose()
}

impl<M, V> LayerSet<M, V> {
    /// The same layer with every matrix passed through `m` and every vector through `v`, in
    /// field order.
    pub fn try_map<M2, V2>(
        self,
        m: &mut impl FnMut(M) -> Result<M2>,
        v: &mut impl FnMut(V) -> Result<V2>,
    ) -> Result<LayerSet<M2, V2>> {
        Ok(LayerSet {
            attn_norm: v(self.attn_norm)?,
            attn_q: m(self.attn_q)?,
            attn_k: m(self.attn_k)?,
            attn_v: m(self.attn_v)?,
            attn_q_b: map_opt(self.attn_q_b, v)?,
            attn_k_b: map_opt(self.attn_k_b, v)?,
            attn_v_b: map_opt(self.attn_v_b, v)?,
            attn_q_norm: map_opt(self.attn_q_norm, v)?,
            attn_k_norm: map_opt(self.attn_k_norm, v)?,
            attn_output: m(self.attn_output)?,
            attn_output_b: map_opt(self.attn_output_b, v)?,
            attn_post_norm: map_opt(self.attn_post_norm, v)?,
            ffn_norm: v(self.ffn_norm)?,
            ffn_gate: m(self.ffn_gate)?,
            ffn_up: m(self.ffn_up)?,
            ffn_down: m(self.ffn_down)?,
            ffn_post_norm: map_opt(self.ffn_post_norm, v)?,
        })
    }
}

impl<M, V> WeightSet<M, V> {
    /// The same weights with every matrix passed through `m` and every vector through `v`
    /// (a tied output matrix is passed twice).
    pub fn try_map<M2, V2>(
        self,
        mut m: impl FnMut(M) -> Result<M2>,
        mut v: impl FnMut(V) -> Result<V2>,
    ) -> Result<WeightSet<M2, V2>> {
        Ok(WeightSet {
            token_embd: m(self.token_embd)?,
            layers: self.layers.into_iter().map(|l| l.try_map(&mut m, &mut v)).collect::<Result<_>>()?,
            output_norm: v(self.output_norm)?,
            output: m(self.output)?,
            output_b: map_opt(self.output_b, &mut v)?,
            rope_freqs: map_opt(self.rope_freqs, &mut v)?,
            rope_factors_short: map_opt(self.rope_factors_short, &mut v)?,
            rope_factors_long: map_opt(self.rope_factors_long, &mut v)?,
        })
    }
}

impl<M> WeightSet<M, Vec<f32>> {
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

impl<'a> Weights<'a> {
    /// Views of `g`'s bytes for every weight [`Layout::from_header`] finds.
    pub fn from_gguf(g: &Gguf<'a>, c: &Config) -> Result<Weights<'a>> {
        let layout = Layout::from_header(&g.header, c)?;
        // The layout's names come from this header, so every lookup succeeds; the part lies
        // inside its tensor's bytes by construction.
        let bytes = |name: &str, offset: u64, len: u64| -> Result<(&'a str, &'a [u8])> {
            let info = g.header.require_tensor(name)?;
            let data = g.tensor_data(info);
            let at = (offset - info.offset) as usize;
            let part = data.get(at..at + len as usize).ok_or(Error::LengthMismatch {
                what: "tensor bytes",
                expected: at + len as usize,
                got: data.len(),
            })?;
            Ok((info.name, part))
        };
        layout.try_map(
            |m| {
                let (name, data) = bytes(&m.name, m.offset, m.len)?;
                Ok(QTensor { name, ty: m.ty, ne: [m.cols, m.rows, 1, 1], data })
            },
            |v| v.decode(bytes(&v.name, v.offset, v.bytes)?.1),
        )
    }
}

/// Looks tensors up by name, checks their shapes and remembers which ones were taken.
struct Loader<'h, 'a> {
    h: &'h Header<'a>,
    used: RefCell<HashSet<&'a str>>,
}

impl<'a> Loader<'_, 'a> {
    fn optional_info(&self, name: &str, shape: &[usize]) -> Result<Option<TensorInfo<'a>>> {
        let Some(info) = self.h.tensor(name) else { return Ok(None) };
        let want: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        if info.dims() != want.as_slice() {
            return Err(Error::TensorShape {
                name: name.into(),
                expected: want,
                found: info.dims().to_vec(),
            });
        }
        self.used.borrow_mut().insert(info.name);
        Ok(Some(*info))
    }

    /// A `[cols, rows]` matrix, whole.
    fn optional(&self, name: &str, shape: &[usize; 2]) -> Result<Option<MatrixPart>> {
        Ok(self.optional_info(name, shape)?.map(|t| MatrixPart {
            name: t.name.into(),
            ty: t.ty,
            cols: t.ne[0],
            rows: t.ne[1],
            offset: t.offset,
            len: t.size,
        }))
    }

    fn tensor(&self, name: &str, shape: &[usize; 2]) -> Result<MatrixPart> {
        self.optional(name, shape)?.ok_or_else(|| Error::MissingTensor { name: name.into() })
    }

    fn optional_vector(&self, name: &str, n: usize) -> Result<Option<VectorPart>> {
        Ok(self.optional_info(name, &[n])?.map(|t| VectorPart {
            name: t.name.into(),
            ty: t.ty,
            n,
            offset: t.offset,
            bytes: t.size,
            start: 0,
            len: n,
        }))
    }

    fn vector(&self, name: &str, n: usize) -> Result<VectorPart> {
        self.optional_vector(name, n)?.ok_or_else(|| Error::MissingTensor { name: name.into() })
    }

    /// Errors on the first tensor of the file that nothing took.
    fn finish(self, arch: Arch) -> Result<()> {
        let used = self.used.into_inner();
        match self.h.tensors.iter().find(|t| !used.contains(t.name)) {
            Some(t) => Err(Error::UnexpectedTensor { name: t.name.into(), arch: arch.name() }),
            None => Ok(()),
        }
    }
}

/// Rows `start..start + n` of a matrix (a fused projection's part). The caller has checked the
/// shape, so the rows are inside the tensor.
fn rows_of(m: &MatrixPart, start: u64, n: u64) -> MatrixPart {
    let rb = m.len / m.rows.max(1);
    MatrixPart { rows: n, offset: m.offset + start * rb, len: n * rb, ..m.clone() }
}

/// A layer's q, k, v projections and their biases, separate or fused.
struct Qkv {
    q: MatrixPart,
    k: MatrixPart,
    v: MatrixPart,
    /// q, k, v biases.
    bias: [Option<VectorPart>; 3],
}

/// `attn_qkv` when the file has it (Phi-3 always does), else `attn_q`/`attn_k`/`attn_v`. Biases
/// are optional, as llama.cpp's `create_tensor_qkv` has them: each separate projection's on its
/// own; a fused projection's as one `attn_qkv.bias` or as all three separate ones.
fn load_qkv(ld: &Loader<'_, '_>, i: usize, d: usize, q: usize, kv: usize) -> Result<Qkv> {
    let n = |s: &str, kind: &str| format!("blk.{i}.{s}.{kind}");
    let separate_biases = || -> Result<[Option<VectorPart>; 3]> {
        Ok([
            ld.optional_vector(&n("attn_q", "bias"), q)?,
            ld.optional_vector(&n("attn_k", "bias"), kv)?,
            ld.optional_vector(&n("attn_v", "bias"), kv)?,
        ])
    };
    if let Some(qkv) = ld.optional(&n("attn_qkv", "weight"), &[d, q + 2 * kv])? {
        let bias = match ld.optional_vector(&n("attn_qkv", "bias"), q + 2 * kv)? {
            Some(b) => [Some(b.slice(0, q)), Some(b.slice(q, kv)), Some(b.slice(q + kv, kv))],
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
        let (q, kv) = (q as u64, kv as u64);
        return Ok(Qkv {
            q: rows_of(&qkv, 0, q),
            k: rows_of(&qkv, q, kv),
            v: rows_of(&qkv, q + kv, kv),
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

impl Layout {
    /// Which tensors a model needs and where their bytes lie, from the header alone (shapes
    /// checked; a tensor the architecture does not use is an error). What each architecture
    /// reads, beyond the llama layout (norm, q/k/v, output, norm, SwiGLU FFN, output norm,
    /// optional output matrix):
    /// - llama: optional `attn_output.bias`, `rope_freqs` (or `rope_factors_long/short` when
    ///   `rope.scaling.type` is longrope);
    /// - qwen2: optional `output.bias`;
    /// - qwen3: `attn_q_norm`, `attn_k_norm`;
    /// - phi3: gate and up fused in `ffn_up`, optional `rope_factors_long/short`;
    /// - gemma3: `attn_q_norm`, `attn_k_norm`, `post_attention_norm`, `post_ffw_norm`.
    pub fn from_header(h: &Header<'_>, c: &Config) -> Result<Layout> {
        let ld = Loader { h, used: RefCell::new(HashSet::new()) };
        let arch = c.arch;
        let (d, q, kv, ff, hd) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff, c.head_dim);
        let qk_norm = matches!(arch, Arch::Qwen3 | Arch::Gemma3);
        let post_norms = arch == Arch::Gemma3;
        let longrope = match arch {
            Arch::Phi3 => true,
            Arch::Llama => h.metadata.get_str("llama.rope.scaling.type").is_ok_and(|t| t == "longrope"),
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
                    (rows_of(&fused, 0, ff as u64), rows_of(&fused, ff as u64, ff as u64))
                } else {
                    (ld.tensor(&n("ffn_gate"), &[d, ff])?, ld.tensor(&n("ffn_up"), &[d, ff])?)
                };
                let required_if = |yes: bool, name: &str, len: usize| -> Result<Option<VectorPart>> {
                    if yes { ld.vector(&n(name), len).map(Some) } else { Ok(None) }
                };
                Ok(LayerSet {
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
        let output = ld.optional("output.weight", &[d, c.n_vocab])?.unwrap_or_else(|| token_embd.clone());
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
        Ok(WeightSet {
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

    /// True when the output matrix is the token embedding.
    pub fn tied(&self) -> bool {
        self.output == self.token_embd
    }
}
