//! GGUF: the container llama.cpp's models ship in. Versions 2 and 3, little-endian.
//!
//! Layout: `"GGUF"`, version u32, tensor count u64, metadata count u64, the metadata entries
//! (key string, type u32, value), the tensor infos (name, n_dims u32, `ne[0..n_dims]` u64 with
//! `ne[0]` innermost, type u32, offset u64 relative to the data section), padding to
//! `general.alignment` (default 32), then the data section. Everything here borrows from the
//! file's bytes; file order is kept for metadata and tensors.
//!
//! Two entry points: [`Gguf::parse`] over a whole file (memory-mapped natively) and
//! [`parse_header`] over the first bytes of a stream (the browser's download), which answers
//! [`HeaderParse::NeedBytes`] until the header is complete.

mod reader;
mod value;
mod writer;

use std::collections::HashMap;

pub use reader::{DEFAULT_ALIGNMENT, MAX_DEPTH, MAX_LEN};
pub use value::{Array, ArrayIter, Value, ValueType};
pub use writer::{MetaValue, Writer};

use crate::error::{Error, Result};
use crate::quant::GgmlType;

/// Metadata entries in file order, with lookup by key.
#[derive(Clone, Debug, Default)]
pub struct Metadata<'a> {
    entries: Vec<(&'a str, Value<'a>)>,
    index: HashMap<&'a str, usize>,
}

impl<'a> Metadata<'a> {
    /// Entries in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &Value<'a>)> + '_ {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    fn require(&self, key: &str) -> Result<&Value<'a>> {
        self.get(key).ok_or_else(|| Error::MissingKey { key: key.into() })
    }

    fn wrong(key: &str, expected: &'static str, v: &Value<'_>) -> Error {
        Error::WrongType { key: key.into(), expected, found: v.value_type().name() }
    }

    /// Any integer type whose value fits in a u32 (writers disagree on u32 vs u64 for counts).
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        let v = self.require(key)?;
        v.as_integer().and_then(|i| u32::try_from(i).ok()).ok_or_else(|| Self::wrong(key, "u32", v))
    }

    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        v.as_integer().and_then(|i| u64::try_from(i).ok()).ok_or_else(|| Self::wrong(key, "u64", v))
    }

    pub fn get_i64(&self, key: &str) -> Result<i64> {
        let v = self.require(key)?;
        v.as_integer().and_then(|i| i64::try_from(i).ok()).ok_or_else(|| Self::wrong(key, "i64", v))
    }

    /// f32 or f64 (narrowed).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        let v = self.require(key)?;
        match *v {
            Value::F32(x) => Ok(x),
            Value::F64(x) => Ok(x as f32),
            _ => Err(Self::wrong(key, "f32", v)),
        }
    }

    pub fn get_bool(&self, key: &str) -> Result<bool> {
        let v = self.require(key)?;
        match *v {
            Value::Bool(b) => Ok(b),
            _ => Err(Self::wrong(key, "bool", v)),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<&'a str> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| Self::wrong(key, "string", v))
    }

    pub fn get_array(&self, key: &str) -> Result<Array<'a>> {
        let v = self.require(key)?;
        v.as_array().ok_or_else(|| Self::wrong(key, "array", v))
    }

    /// An array of strings, collected.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&'a str>> {
        let a = self.typed_array(key, ValueType::String, "array of string")?;
        Ok(a.iter().filter_map(|v| v.as_str()).collect())
    }

    /// An array of f32 (or f64, narrowed), collected.
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        let a = self.get_array(key)?;
        if !matches!(a.elem_type(), ValueType::F32 | ValueType::F64) {
            return Err(Error::WrongType { key: key.into(), expected: "array of f32", found: "array" });
        }
        Ok(a.iter().filter_map(|v| v.as_f64()).map(|x| x as f32).collect())
    }

    /// An array of any integer type whose every element fits in an i32, collected.
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        let a = self.get_array(key)?;
        let wrong = || Error::WrongType { key: key.into(), expected: "array of i32", found: "array" };
        a.iter().map(|v| v.as_integer().and_then(|i| i32::try_from(i).ok()).ok_or_else(wrong)).collect()
    }

    fn typed_array(&self, key: &str, elem: ValueType, expected: &'static str) -> Result<Array<'a>> {
        let a = self.get_array(key)?;
        if a.elem_type() != elem {
            return Err(Error::WrongType { key: key.into(), expected, found: "array" });
        }
        Ok(a)
    }
}

/// One entry of the tensor table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo<'a> {
    pub name: &'a str,
    pub ty: GgmlType,
    /// `ne[0]` is the innermost (row) dimension; unused trailing dims are 1.
    pub ne: [u64; 4],
    pub n_dims: u32,
    /// Byte offset from the start of the data section.
    pub offset: u64,
    /// Byte size of the tensor's data.
    pub size: u64,
}

impl TensorInfo<'_> {
    /// The dims as the file gives them (`ne[0]` first).
    pub fn dims(&self) -> &[u64] {
        &self.ne[..self.n_dims as usize]
    }

    pub fn n_elements(&self) -> u64 {
        self.ne.iter().product()
    }

    /// Rows of `ne[0]` elements.
    pub fn n_rows(&self) -> u64 {
        self.ne[1] * self.ne[2] * self.ne[3]
    }
}

/// A parsed header: metadata, tensor table, and where the data section lies.
#[derive(Clone, Debug)]
pub struct Header<'a> {
    pub version: u32,
    pub metadata: Metadata<'a>,
    /// In file order.
    pub tensors: Vec<TensorInfo<'a>>,
    tensor_index: HashMap<&'a str, usize>,
    pub alignment: u64,
    /// Absolute file offset of the data section.
    pub data_offset: u64,
    /// Bytes the data section spans (every tensor, padded to the alignment).
    pub data_len: u64,
}

impl<'a> Header<'a> {
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo<'a>> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    pub fn require_tensor(&self, name: &str) -> Result<&TensorInfo<'a>> {
        self.tensor(name).ok_or_else(|| Error::MissingTensor { name: name.into() })
    }

    /// Absolute file byte range of a tensor's data.
    pub fn tensor_range(&self, t: &TensorInfo<'_>) -> std::ops::Range<u64> {
        // Cannot overflow for this header's tensors (parse checked); saturate for any other.
        let start = self.data_offset.saturating_add(t.offset);
        start..start.saturating_add(t.size)
    }

    /// Total file size this header implies.
    pub fn file_len(&self) -> u64 {
        self.data_offset + self.data_len
    }
}

/// What [`parse_header`] made of a prefix.
#[derive(Debug)]
pub enum HeaderParse<'a> {
    Complete(Header<'a>),
    /// The header continues past the prefix: come back with at least this many bytes.
    NeedBytes(u64),
}

/// Parses the header from the first bytes of a GGUF stream. `total_len` is the file's length when
/// known; with it, counts and lengths that cannot fit are errors at once and a file too short for
/// its tensors is [`Error::DataTruncated`].
pub fn parse_header(prefix: &[u8], total_len: Option<u64>) -> Result<HeaderParse<'_>> {
    match reader::parse(prefix, total_len) {
        Ok(h) => Ok(HeaderParse::Complete(h)),
        Err(reader::Stop::Need(n)) => Ok(HeaderParse::NeedBytes(n)),
        Err(reader::Stop::Err(e)) => Err(e),
    }
}

/// A whole GGUF file: header plus data section.
#[derive(Clone, Debug)]
pub struct Gguf<'a> {
    pub header: Header<'a>,
    /// The data section, `data_len` bytes from `data_offset`.
    data: &'a [u8],
}

impl<'a> Gguf<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Gguf<'a>> {
        let header = match reader::parse(bytes, Some(bytes.len() as u64)) {
            Ok(h) => h,
            Err(reader::Stop::Err(e)) => return Err(e),
            // Unreachable with the total known, but answer with an error, not a panic.
            Err(reader::Stop::Need(n)) => {
                return Err(Error::Truncated {
                    what: "header",
                    offset: 0,
                    need: n,
                    have: bytes.len() as u64,
                });
            }
        };
        // A file may stop right after its last tensor, without the final padding; a vocab-only
        // file may stop before the data section starts. Clamp in u64, then narrow: on a 32-bit
        // target a u64 offset must not wrap before the clamp.
        let len = bytes.len() as u64;
        let end = header.file_len().min(len);
        let start = header.data_offset.min(end);
        let data = &bytes[start as usize..end as usize];
        Ok(Gguf { header, data })
    }

    pub fn metadata(&self) -> &Metadata<'a> {
        &self.header.metadata
    }

    pub fn tensors(&self) -> &[TensorInfo<'a>] {
        &self.header.tensors
    }

    pub fn tensor(&self, name: &str) -> Result<&TensorInfo<'a>> {
        self.header.require_tensor(name)
    }

    /// The tensor's bytes, exactly as in the file.
    pub fn tensor_data(&self, t: &TensorInfo<'_>) -> &'a [u8] {
        // parse() proved every tensor of this file lies inside `data`; a `TensorInfo` from
        // elsewhere gets an empty slice, not a panic.
        let range = t
            .offset
            .checked_add(t.size)
            .and_then(|end| Some(usize::try_from(t.offset).ok()?..usize::try_from(end).ok()?));
        range.and_then(|r| self.data.get(r)).unwrap_or_default()
    }

    pub fn architecture(&self) -> Result<&'a str> {
        self.metadata().get_str("general.architecture")
    }
}

#[cfg(test)]
mod tests;
