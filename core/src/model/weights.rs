//! Weights by GGUF tensor name, as views of the file's bytes. Every tensor's shape is checked
//! against the hyper-parameters at load, so the forward pass can index without checks.

use crate::error::{Error, Result};
use crate::gguf::{Gguf, TensorInfo};
use crate::model::Config;
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
    /// [q_dim] -> [n_embd]
    pub attn_output: QTensor<'a>,
    /// [n_embd] f32
    pub ffn_norm: Vec<f32>,
    /// [n_embd] -> [n_ff]
    pub ffn_gate: QTensor<'a>,
    /// [n_embd] -> [n_ff]
    pub ffn_up: QTensor<'a>,
    /// [n_ff] -> [n_embd]
    pub ffn_down: QTensor<'a>,
}

pub struct Weights<'a> {
    /// [n_vocab] rows of [n_embd]
    pub token_embd: QTensor<'a>,
    pub layers: Vec<LayerWeights<'a>>,
    /// [n_embd] f32
    pub output_norm: Vec<f32>,
    /// [n_embd] -> [n_vocab]; `token_embd` when the file ties the embeddings.
    pub output: QTensor<'a>,
}

impl<'a> Weights<'a> {
    pub fn from_gguf(g: &Gguf<'a>, c: &Config) -> Result<Weights<'a>> {
        let get = |name: &str, shape: &[usize]| -> Result<QTensor<'a>> {
            let info = g.tensor(name)?;
            let t = QTensor::new(g, info);
            let want: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
            if info.dims() != want.as_slice() {
                return Err(Error::TensorShape {
                    name: name.into(),
                    expected: want,
                    found: info.dims().to_vec(),
                });
            }
            Ok(t)
        };
        let vector = |name: &str, n: usize| -> Result<Vec<f32>> { get(name, &[n])?.to_f32() };
        let (d, q, kv, ff) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff);
        let token_embd = get("token_embd.weight", &[d, c.n_vocab])?;
        let layers = (0..c.n_layer)
            .map(|i| {
                let n = |s: &str| format!("blk.{i}.{s}.weight");
                Ok(LayerWeights {
                    attn_norm: vector(&n("attn_norm"), d)?,
                    attn_q: get(&n("attn_q"), &[d, q])?,
                    attn_k: get(&n("attn_k"), &[d, kv])?,
                    attn_v: get(&n("attn_v"), &[d, kv])?,
                    attn_output: get(&n("attn_output"), &[q, d])?,
                    ffn_norm: vector(&n("ffn_norm"), d)?,
                    ffn_gate: get(&n("ffn_gate"), &[d, ff])?,
                    ffn_up: get(&n("ffn_up"), &[d, ff])?,
                    ffn_down: get(&n("ffn_down"), &[ff, d])?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let output = match g.header.tensor("output.weight") {
            Some(_) => get("output.weight", &[d, c.n_vocab])?,
            None => token_embd,
        };
        Ok(Weights { token_embd, layers, output_norm: vector("output_norm.weight", d)?, output })
    }
}
