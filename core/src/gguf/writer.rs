//! A GGUF writer (version 3), for tests and the synthetic-model tool.
//!
//! The header is built in memory; tensor data is streamed to any `io::Write` one tensor at a time,
//! so multi-gigabyte synthetic models never sit in memory whole.

use std::io::{self, Write};

use super::reader::{DEFAULT_ALIGNMENT, align_up};
use super::value::ValueType;
use crate::error::{Error, Result};
use crate::quant::GgmlType;

/// An owned metadata value to write.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    /// Element type and elements; every element must be of that type.
    Array(ValueType, Vec<MetaValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl MetaValue {
    pub fn value_type(&self) -> ValueType {
        match self {
            MetaValue::U8(_) => ValueType::U8,
            MetaValue::I8(_) => ValueType::I8,
            MetaValue::U16(_) => ValueType::U16,
            MetaValue::I16(_) => ValueType::I16,
            MetaValue::U32(_) => ValueType::U32,
            MetaValue::I32(_) => ValueType::I32,
            MetaValue::F32(_) => ValueType::F32,
            MetaValue::Bool(_) => ValueType::Bool,
            MetaValue::String(_) => ValueType::String,
            MetaValue::Array(..) => ValueType::Array,
            MetaValue::U64(_) => ValueType::U64,
            MetaValue::I64(_) => ValueType::I64,
            MetaValue::F64(_) => ValueType::F64,
        }
    }

    pub fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> MetaValue {
        MetaValue::Array(ValueType::String, items.into_iter().map(|s| MetaValue::String(s.into())).collect())
    }

    pub fn f32s(items: impl IntoIterator<Item = f32>) -> MetaValue {
        MetaValue::Array(ValueType::F32, items.into_iter().map(MetaValue::F32).collect())
    }

    pub fn i32s(items: impl IntoIterator<Item = i32>) -> MetaValue {
        MetaValue::Array(ValueType::I32, items.into_iter().map(MetaValue::I32).collect())
    }

    fn encode(&self, key: &str, out: &mut Vec<u8>) -> Result<()> {
        match self {
            MetaValue::U8(v) => out.push(*v),
            MetaValue::I8(v) => out.push(*v as u8),
            MetaValue::U16(v) => out.extend(v.to_le_bytes()),
            MetaValue::I16(v) => out.extend(v.to_le_bytes()),
            MetaValue::U32(v) => out.extend(v.to_le_bytes()),
            MetaValue::I32(v) => out.extend(v.to_le_bytes()),
            MetaValue::F32(v) => out.extend(v.to_le_bytes()),
            MetaValue::Bool(v) => out.push(*v as u8),
            MetaValue::String(s) => put_str(out, s),
            MetaValue::Array(elem, items) => {
                out.extend((*elem as u32).to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                for item in items {
                    if item.value_type() != *elem {
                        return Err(Error::WrongType {
                            key: key.into(),
                            expected: elem.name(),
                            found: item.value_type().name(),
                        });
                    }
                    item.encode(key, out)?;
                }
            }
            MetaValue::U64(v) => out.extend(v.to_le_bytes()),
            MetaValue::I64(v) => out.extend(v.to_le_bytes()),
            MetaValue::F64(v) => out.extend(v.to_le_bytes()),
        }
        Ok(())
    }
}

impl From<&str> for MetaValue {
    fn from(s: &str) -> Self {
        MetaValue::String(s.into())
    }
}

impl From<String> for MetaValue {
    fn from(s: String) -> Self {
        MetaValue::String(s)
    }
}

impl From<u32> for MetaValue {
    fn from(v: u32) -> Self {
        MetaValue::U32(v)
    }
}

impl From<f32> for MetaValue {
    fn from(v: f32) -> Self {
        MetaValue::F32(v)
    }
}

impl From<bool> for MetaValue {
    fn from(v: bool) -> Self {
        MetaValue::Bool(v)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

struct TensorSpec {
    name: String,
    ty: GgmlType,
    ne: Vec<u64>,
    size: u64,
}

/// Builds a GGUF file: metadata and tensor table first, then the data streamed in table order.
#[derive(Default)]
pub struct Writer {
    kv: Vec<(String, MetaValue)>,
    tensors: Vec<TensorSpec>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// Adds (or replaces) a metadata entry; file order is insertion order.
    pub fn set(&mut self, key: &str, value: impl Into<MetaValue>) -> &mut Self {
        let value = value.into();
        match self.kv.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.kv.push((key.into(), value)),
        }
        self
    }

    fn alignment(&self) -> u64 {
        match self.kv.iter().find(|(k, _)| k == "general.alignment") {
            Some((_, MetaValue::U32(a))) if a.is_power_of_two() => u64::from(*a),
            _ => DEFAULT_ALIGNMENT,
        }
    }

    /// Declares a tensor of type `ty` and dims `ne` (`ne[0]` innermost).
    pub fn add_tensor(&mut self, name: &str, ty: GgmlType, ne: &[u64]) -> Result<&mut Self> {
        let bad = || Error::ByteSizeOverflow { name: name.into() };
        if ne.is_empty() || ne.len() > 4 {
            return Err(Error::BadRank { name: name.into(), n_dims: ne.len() as u32 });
        }
        let row = ty.row_bytes(ne[0]).ok_or_else(|| Error::RowNotBlockMultiple {
            name: name.into(),
            ne0: ne[0],
            ty,
            block: ty.block_size(),
        })?;
        let size = ne[1..].iter().try_fold(row, |acc, &d| acc.checked_mul(d)).ok_or_else(bad)?;
        self.tensors.push(TensorSpec { name: name.into(), ty, ne: ne.to_vec(), size });
        Ok(self)
    }

    /// The header bytes, padded to where the data section starts.
    pub fn header(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        out.extend(b"GGUF");
        out.extend(3u32.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.kv.len() as u64).to_le_bytes());
        for (key, value) in &self.kv {
            put_str(&mut out, key);
            out.extend((value.value_type() as u32).to_le_bytes());
            value.encode(key, &mut out)?;
        }
        let align = self.alignment();
        let mut offset = 0u64;
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend((t.ne.len() as u32).to_le_bytes());
            for d in &t.ne {
                out.extend(d.to_le_bytes());
            }
            out.extend(t.ty.id().to_le_bytes());
            out.extend(offset.to_le_bytes());
            offset =
                align_up(offset + t.size, align).ok_or(Error::ByteSizeOverflow { name: t.name.clone() })?;
        }
        let padded = align_up(out.len() as u64, align).unwrap_or(out.len() as u64) as usize;
        out.resize(padded, 0);
        Ok(out)
    }

    /// Writes the whole file: the header, then each tensor's bytes from `data(index)` in table
    /// order, each padded to the alignment. `data` must return exactly the declared size.
    pub fn write<W: Write>(&self, w: &mut W, mut data: impl FnMut(usize) -> Result<Vec<u8>>) -> Result<()> {
        let io_err = |e: io::Error| Error::Io(e.to_string());
        w.write_all(&self.header()?).map_err(io_err)?;
        let align = self.alignment();
        for (i, t) in self.tensors.iter().enumerate() {
            let bytes = data(i)?;
            if bytes.len() as u64 != t.size {
                return Err(Error::LengthMismatch {
                    what: "tensor bytes",
                    expected: t.size as usize,
                    got: bytes.len(),
                });
            }
            w.write_all(&bytes).map_err(io_err)?;
            let pad = align_up(t.size, align).unwrap_or(t.size) - t.size;
            w.write_all(&vec![0u8; pad as usize]).map_err(io_err)?;
        }
        Ok(())
    }

    /// The whole file in memory, with `data[i]` the bytes of the i-th declared tensor.
    pub fn to_bytes(&self, data: &[&[u8]]) -> Result<Vec<u8>> {
        if data.len() != self.tensors.len() {
            return Err(Error::LengthMismatch {
                what: "tensor data",
                expected: self.tensors.len(),
                got: data.len(),
            });
        }
        let mut out = Vec::new();
        self.write(&mut out, |i| Ok(data[i].to_vec()))?;
        Ok(out)
    }
}
