//! GGUF metadata values, borrowed from the file's bytes.
//!
//! Scalars are decoded at parse time; strings are validated UTF-8 slices of the file; arrays keep
//! their encoded bytes (already walked and validated by the reader) and decode on iteration, so a
//! 150k-entry vocabulary costs no allocation until a caller asks for it.

/// The type tag of a metadata value, by its GGUF id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }

    /// Encoded size of a scalar of this type; `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<u64> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// The fewest bytes one value of this type can occupy (a string's length prefix, an array's
    /// type and length), used to reject counts that cannot fit before reading them.
    pub fn min_size(self) -> u64 {
        match self {
            ValueType::String => 8,
            ValueType::Array => 12,
            t => t.fixed_size().unwrap_or(1),
        }
    }
}

/// A metadata value borrowed from the file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(&'a str),
    Array(Array<'a>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl<'a> Value<'a> {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// The value as a signed 128-bit integer, for any integer type.
    pub fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The value as f64, for any numeric type.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self.as_integer().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<Array<'a>> {
        match *self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// An array value: its element type, its length and the encoded elements, validated by the reader.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Array<'a> {
    pub(crate) elem: ValueType,
    pub(crate) len: u64,
    pub(crate) bytes: &'a [u8],
}

impl<'a> Array<'a> {
    pub fn elem_type(&self) -> ValueType {
        self.elem
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter { elem: self.elem, left: self.len, bytes: self.bytes }
    }
}

/// Decodes the elements of an [`Array`]. The reader validated the bytes, so decoding cannot fail;
/// were it handed inconsistent bytes it would stop early rather than panic.
#[derive(Clone, Debug)]
pub struct ArrayIter<'a> {
    elem: ValueType,
    left: u64,
    bytes: &'a [u8],
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (value, used) = decode_validated(self.elem, self.bytes)?;
        self.bytes = self.bytes.get(used..)?;
        Some(value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left as usize))
    }
}

fn take<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
    b.get(..N)?.try_into().ok()
}

fn u64_at(b: &[u8]) -> Option<u64> {
    take::<8>(b).map(u64::from_le_bytes)
}

/// Decodes one already-validated value from the front of `b`, returning it and its encoded size.
fn decode_validated(ty: ValueType, b: &[u8]) -> Option<(Value<'_>, usize)> {
    use ValueType as T;
    Some(match ty {
        T::U8 => (Value::U8(*b.first()?), 1),
        T::I8 => (Value::I8(*b.first()? as i8), 1),
        T::Bool => (Value::Bool(*b.first()? != 0), 1),
        T::U16 => (Value::U16(u16::from_le_bytes(take(b)?)), 2),
        T::I16 => (Value::I16(i16::from_le_bytes(take(b)?)), 2),
        T::U32 => (Value::U32(u32::from_le_bytes(take(b)?)), 4),
        T::I32 => (Value::I32(i32::from_le_bytes(take(b)?)), 4),
        T::F32 => (Value::F32(f32::from_le_bytes(take(b)?)), 4),
        T::U64 => (Value::U64(u64::from_le_bytes(take(b)?)), 8),
        T::I64 => (Value::I64(i64::from_le_bytes(take(b)?)), 8),
        T::F64 => (Value::F64(f64::from_le_bytes(take(b)?)), 8),
        T::String => {
            let len = usize::try_from(u64_at(b)?).ok()?;
            let end = 8usize.checked_add(len)?;
            let s = std::str::from_utf8(b.get(8..end)?).ok()?;
            (Value::String(s), end)
        }
        T::Array => {
            let elem = ValueType::from_id(u32::from_le_bytes(take(b)?))?;
            let len = u64::from_le_bytes(take(b.get(4..)?)?);
            let body = b.get(12..)?;
            let mut used = 0usize;
            let mut it = ArrayIter { elem, left: len, bytes: body };
            // Walk the nested elements to find where this array ends.
            while it.left > 0 {
                let before = it.bytes.len();
                it.next()?;
                used += before - it.bytes.len();
            }
            let bytes = body.get(..used)?;
            (Value::Array(Array { elem, len, bytes }), 12 + used)
        }
    })
}
