//! The GGUF header parser: magic, version, metadata, tensor table, data-section layout.
//!
//! Hostile-input rules, each its own [`Error`] variant: every length and count is checked against
//! the bytes that remain before anything is read or allocated for it; all arithmetic on sizes and
//! offsets is checked; nothing the file says sizes an allocation: the metadata and tensor tables
//! reserve at most [`MAX_RESERVE`] entries and grow only as entries actually parse, and errors
//! quote at most [`MAX_NAME_IN_ERROR`] bytes of a key or tensor name.
//!
//! The parser works on a prefix of the file. When the file's total length is known (a whole file,
//! or a download with a Content-Length) a read past it is an error naming what was cut; when it is
//! not, the parser answers "need at least N bytes" and the caller comes back with more.

use std::collections::HashMap;

use super::value::{Array, Value, ValueType};
use super::{Header, Metadata, TensorInfo};
use crate::error::Error;
use crate::quant::GgmlType;

/// Strings and arrays longer than this are refused outright, whatever the file size.
pub const MAX_LEN: u64 = 1 << 30;
/// Deepest allowed nesting of arrays inside arrays.
pub const MAX_DEPTH: usize = 8;
pub const DEFAULT_ALIGNMENT: u64 = 32;
const MAX_DIMS: u32 = 4;
/// Smallest encodings: a KV pair is a key length (8), a type (4) and a 1-byte value; a tensor
/// info is a name length (8), n_dims (4), one dim (8), a type (4) and an offset (8).
const MIN_KV_BYTES: u64 = 13;
const MIN_TENSOR_BYTES: u64 = 32;
/// Most table entries reserved up front; past this the tables grow as entries actually parse.
/// A count that passes the byte check can still claim millions of entries of a multi-gigabyte
/// file (every byte of tensor data "could" be metadata), and each entry costs several times its
/// minimum encoding in memory, so the count alone must not size an allocation.
const MAX_RESERVE: u64 = 1024;
/// Longest key or tensor name (in bytes) copied into an error. Both may legally be up to
/// [`MAX_LEN`]; an error naming a 1 GiB key would cost a 1 GiB copy and help nobody.
pub(super) const MAX_NAME_IN_ERROR: usize = 256;

/// Why parsing stopped: a real error, or the prefix ends before the header does.
pub(super) enum Stop {
    Need(u64),
    Err(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Err(e)
    }
}

type R<T> = Result<T, Stop>;

struct Cursor<'a> {
    buf: &'a [u8],
    pos: u64,
    /// Length of the whole file, when known.
    total: Option<u64>,
}

impl<'a> Cursor<'a> {
    /// Bytes known to remain in the file after the cursor (`None` while streaming).
    fn remaining(&self) -> Option<u64> {
        self.total.map(|t| t.saturating_sub(self.pos))
    }

    fn take(&mut self, n: u64, what: &'static str) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Stop::Need(u64::MAX))?;
        if let Some(total) = self.total
            && end > total
        {
            return Err(Stop::Err(Error::Truncated {
                what,
                offset: self.pos,
                need: n,
                have: total.saturating_sub(self.pos),
            }));
        }
        if end > self.buf.len() as u64 {
            return Err(Stop::Need(end));
        }
        let s = &self.buf[self.pos as usize..end as usize];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> R<[u8; N]> {
        let b = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    fn u32(&mut self, what: &'static str) -> R<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> R<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A length-prefixed string's raw bytes, with the length checked before the read.
    fn string_bytes(&mut self, what: &'static str) -> R<&'a [u8]> {
        let offset = self.pos;
        let len = self.u64(what)?;
        if len > MAX_LEN {
            return Err(Error::StringTooLarge { offset, len }.into());
        }
        if let Some(remaining) = self.remaining()
            && len > remaining
        {
            return Err(Error::StringPastEnd { offset, len, remaining }.into());
        }
        self.take(len, what)
    }

    /// Reads one value of type `ty` for metadata key `key`. Arrays are walked (validating every
    /// element) and kept as their encoded bytes.
    fn value(&mut self, ty: ValueType, key: &str, depth: usize) -> R<Value<'a>> {
        use ValueType as T;
        const W: &str = "metadata value";
        Ok(match ty {
            T::U8 => Value::U8(self.array::<1>(W)?[0]),
            T::I8 => Value::I8(self.array::<1>(W)?[0] as i8),
            T::Bool => match self.array::<1>(W)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                value => {
                    return Err(Error::InvalidBool { key: shown(key), value }.into());
                }
            },
            T::U16 => Value::U16(u16::from_le_bytes(self.array(W)?)),
            T::I16 => Value::I16(i16::from_le_bytes(self.array(W)?)),
            T::U32 => Value::U32(u32::from_le_bytes(self.array(W)?)),
            T::I32 => Value::I32(i32::from_le_bytes(self.array(W)?)),
            T::F32 => Value::F32(f32::from_le_bytes(self.array(W)?)),
            T::U64 => Value::U64(u64::from_le_bytes(self.array(W)?)),
            T::I64 => Value::I64(i64::from_le_bytes(self.array(W)?)),
            T::F64 => Value::F64(f64::from_le_bytes(self.array(W)?)),
            T::String => {
                let b = self.string_bytes("metadata string")?;
                let s = std::str::from_utf8(b).map_err(|_| Error::ValueNotUtf8 { key: shown(key) })?;
                Value::String(s)
            }
            T::Array => Value::Array(self.array_value(key, depth + 1)?),
        })
    }

    fn array_value(&mut self, key: &str, depth: usize) -> R<Array<'a>> {
        if depth > MAX_DEPTH {
            return Err(Error::NestingTooDeep { key: shown(key), max: MAX_DEPTH }.into());
        }
        let type_id = self.u32("array type")?;
        let elem = ValueType::from_id(type_id)
            .ok_or_else(|| Error::UnknownValueType { key: shown(key), type_id })?;
        let len = self.u64("array length")?;
        if len > MAX_LEN {
            return Err(Error::ArrayTooLarge { key: shown(key), len }.into());
        }
        if let Some(remaining) = self.remaining()
            && len.saturating_mul(elem.min_size()) > remaining
        {
            return Err(Error::ArrayPastEnd { key: shown(key), len, remaining }.into());
        }
        let start = self.pos;
        match elem.fixed_size() {
            Some(size) if elem != ValueType::Bool => {
                self.take(len * size, "array elements")?;
            }
            _ => {
                for _ in 0..len {
                    self.value(elem, key, depth)?;
                }
            }
        }
        let bytes = &self.buf[start as usize..self.pos as usize];
        Ok(Array { elem, len, bytes })
    }
}

/// Parses the header from `prefix`, the first bytes of a GGUF file whose full length is
/// `total_len` when known.
pub(super) fn parse(prefix: &[u8], total_len: Option<u64>) -> Result<Header<'_>, Stop> {
    let mut c = Cursor { buf: prefix, pos: 0, total: total_len };

    let magic: [u8; 4] = c.array("magic")?;
    if &magic != b"GGUF" {
        return Err(Error::BadMagic { found: magic }.into());
    }
    let version = c.u32("version")?;
    if version != 2 && version != 3 {
        return Err(if matches!(version.swap_bytes(), 2 | 3) {
            Error::BigEndian { version: version.swap_bytes() }
        } else {
            Error::UnsupportedVersion { version }
        }
        .into());
    }
    let n_tensors = c.u64("tensor count")?;
    let n_kv = c.u64("metadata count")?;
    if let Some(remaining) = c.remaining() {
        if n_kv.saturating_mul(MIN_KV_BYTES) > remaining {
            return Err(Error::TooManyKv { count: n_kv, remaining }.into());
        }
        if n_tensors.saturating_mul(MIN_TENSOR_BYTES) > remaining {
            return Err(Error::TooManyTensors { count: n_tensors, remaining }.into());
        }
    }

    let mut entries = Vec::with_capacity(reserve(n_kv, &c, MIN_KV_BYTES));
    let mut index = HashMap::with_capacity(entries.capacity());
    for _ in 0..n_kv {
        let key_offset = c.pos;
        let key = c.string_bytes("metadata key")?;
        let key = std::str::from_utf8(key).map_err(|_| Error::KeyNotUtf8 { offset: key_offset })?;
        if key.is_empty() {
            return Err(Error::EmptyKey { offset: key_offset }.into());
        }
        let type_id = c.u32("metadata type")?;
        let ty = ValueType::from_id(type_id)
            .ok_or_else(|| Error::UnknownValueType { key: shown(key), type_id })?;
        let value = c.value(ty, key, 0)?;
        if index.insert(key, entries.len()).is_some() {
            return Err(Error::DuplicateKey { key: shown(key) }.into());
        }
        entries.push((key, value));
    }
    let metadata = Metadata { entries, index };

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(Value::U32(a)) if a.is_power_of_two() => u64::from(*a),
        Some(Value::U32(a)) => {
            return Err(Error::BadAlignment { value: u64::from(*a) }.into());
        }
        Some(v) => {
            return Err(Error::AlignmentType { found: v.value_type().name() }.into());
        }
    };

    if let Some(remaining) = c.remaining()
        && n_tensors.saturating_mul(MIN_TENSOR_BYTES) > remaining
    {
        return Err(Error::TooManyTensors { count: n_tensors, remaining }.into());
    }
    let mut tensors = Vec::with_capacity(reserve(n_tensors, &c, MIN_TENSOR_BYTES));
    let mut names = HashMap::with_capacity(tensors.capacity());
    for _ in 0..n_tensors {
        let t = tensor_info(&mut c, alignment)?;
        if names.insert(t.name, tensors.len()).is_some() {
            return Err(Error::DuplicateTensor { name: shown(t.name) }.into());
        }
        tensors.push(t);
    }

    let header_len = c.pos;
    let overflow = || Error::ByteSizeOverflow { name: "<data section>".into() };
    let data_offset = align_up(header_len, alignment).ok_or_else(overflow)?;
    // The data section a well-formed writer produces: every tensor, each padded to the alignment.
    let mut data_len = 0u64;
    for t in &tensors {
        let padded = align_up(t.size, alignment).ok_or_else(overflow)?;
        data_len = data_len.checked_add(padded).ok_or_else(overflow)?;
    }
    let mut by_offset: Vec<&TensorInfo> = tensors.iter().collect();
    by_offset.sort_by_key(|t| t.offset);
    for t in &by_offset {
        let end = t.offset.checked_add(t.size);
        if end.is_none_or(|end| end > data_len) {
            return Err(Error::TensorOutOfBounds { name: shown(t.name), offset: t.offset, data_len }.into());
        }
    }
    for pair in by_offset.windows(2) {
        if pair[0].offset + pair[0].size > pair[1].offset {
            return Err(
                Error::TensorsOverlap { first: shown(pair[0].name), second: shown(pair[1].name) }.into()
            );
        }
    }
    if let Some(total) = total_len {
        for t in &by_offset {
            let need = data_offset.checked_add(t.offset + t.size).ok_or_else(overflow)?;
            if need > total {
                return Err(Error::DataTruncated { name: shown(t.name), need, have: total }.into());
            }
        }
    }

    Ok(Header { version, metadata, tensors, tensor_index: names, alignment, data_offset, data_len })
}

fn tensor_info<'a>(c: &mut Cursor<'a>, alignment: u64) -> R<TensorInfo<'a>> {
    let name_offset = c.pos;
    let name = c.string_bytes("tensor name")?;
    let name = std::str::from_utf8(name).map_err(|_| Error::TensorNameNotUtf8 { offset: name_offset })?;
    let n_dims = c.u32("tensor rank")?;
    if n_dims == 0 || n_dims > MAX_DIMS {
        return Err(Error::BadRank { name: shown(name), n_dims }.into());
    }
    let mut ne = [1u64; 4];
    for d in ne.iter_mut().take(n_dims as usize) {
        *d = c.u64("tensor dimension")?;
    }
    let dims = || ne[..n_dims as usize].to_vec();
    if ne.contains(&0) {
        return Err(Error::ZeroDim { name: shown(name), dims: dims() }.into());
    }
    // ggml counts elements in i64.
    let n_elements = ne
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(|| Error::ElementCountOverflow { name: shown(name), dims: dims() })?;
    let type_id = c.u32("tensor type")?;
    let ty =
        GgmlType::from_id(type_id).ok_or_else(|| Error::UnknownTensorType { name: shown(name), type_id })?;
    let block = ty.block_size();
    if ne[0] % block as u64 != 0 {
        return Err(Error::RowNotBlockMultiple { name: shown(name), ne0: ne[0], ty, block }.into());
    }
    let size = (n_elements / block as u64)
        .checked_mul(ty.type_size() as u64)
        .filter(|&s| s <= i64::MAX as u64)
        .ok_or_else(|| Error::ByteSizeOverflow { name: shown(name) })?;
    let offset = c.u64("tensor offset")?;
    if offset % alignment != 0 {
        return Err(Error::MisalignedTensor { name: shown(name), offset, alignment }.into());
    }
    Ok(TensorInfo { name, ty, ne, n_dims, offset, size })
}

/// A key or tensor name for an error message: whole when short, else its first
/// [`MAX_NAME_IN_ERROR`] bytes (cut at a character boundary) and an ellipsis.
fn shown(name: &str) -> String {
    if name.len() <= MAX_NAME_IN_ERROR {
        return name.into();
    }
    let cut = (0..=MAX_NAME_IN_ERROR).rev().find(|&i| name.is_char_boundary(i)).unwrap_or(0);
    format!("{}…", &name[..cut])
}

/// Table entries to reserve for `count` claimed entries of at least `min_bytes` each: no more than
/// the bytes in hand could hold, and no more than [`MAX_RESERVE`].
fn reserve(count: u64, c: &Cursor<'_>, min_bytes: u64) -> usize {
    let room = (c.buf.len() as u64).saturating_sub(c.pos) / min_bytes;
    count.min(room).min(MAX_RESERVE) as usize
}

/// `x` rounded up to a multiple of the power of two `align`, or `None` on overflow.
pub(super) fn align_up(x: u64, align: u64) -> Option<u64> {
    Some(x.checked_add(align - 1)? & !(align - 1))
}
