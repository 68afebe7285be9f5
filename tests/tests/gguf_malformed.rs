//! Malformed GGUF files, built byte by byte, each breaking exactly one rule of the reader.
//!
//! Every case is checked three ways: `Gguf::parse` over the whole file, `parse_header` with the
//! total length known (must give the same error), and `parse_header` streaming with the length
//! unknown (the same error, or `NeedBytes(n)` past the prefix where the rule needs the total
//! length to decide). Truncations start from a valid file and cut it inside one field. A set of
//! valid edge files must parse, and the streaming parser must make progress at every prefix.
//!
//! The files are built with the small `B` builder below, not `gguf::Writer`, so a test can write
//! what no correct writer would. Layout reference: the GGUF spec in ggml's `docs/gguf.md`.

use aether_core::Error;
use aether_core::gguf::{self, Gguf, HeaderParse, MAX_DEPTH, MAX_LEN, Value};
use aether_core::quant::GgmlType;

// GGUF metadata value type ids.
const U8: u32 = 0;
const I8: u32 = 1;
const U16: u32 = 2;
const I16: u32 = 3;
const U32: u32 = 4;
const I32: u32 = 5;
const F32: u32 = 6;
const BOOL: u32 = 7;
const STR: u32 = 8;
const ARR: u32 = 9;
const U64: u32 = 10;
const I64: u32 = 11;
const F64: u32 = 12;

// ggml tensor type ids.
const T_F32: u32 = 0;
const T_Q4_0: u32 = 2;

/// Byte offset of the first metadata key: magic, version, two u64 counts.
const KV0: u64 = 24;

/// A little-endian byte builder: each method appends one encoded field.
#[derive(Clone, Default)]
struct B(Vec<u8>);

impl B {
    /// Magic, version and the two counts.
    fn gguf(version: u32, n_tensors: u64, n_kv: u64) -> B {
        B::default().raw(b"GGUF").u32(version).u64(n_tensors).u64(n_kv)
    }
    fn v3(n_tensors: u64, n_kv: u64) -> B {
        B::gguf(3, n_tensors, n_kv)
    }
    fn raw(mut self, b: &[u8]) -> B {
        self.0.extend_from_slice(b);
        self
    }
    fn u8(self, v: u8) -> B {
        self.raw(&[v])
    }
    fn u32(self, v: u32) -> B {
        self.raw(&v.to_le_bytes())
    }
    fn u64(self, v: u64) -> B {
        self.raw(&v.to_le_bytes())
    }
    /// A GGUF string: u64 length, then the bytes (not necessarily UTF-8).
    fn str(self, s: impl AsRef<[u8]>) -> B {
        let s = s.as_ref();
        self.u64(s.len() as u64).raw(s)
    }
    /// A metadata key and value type; the value follows.
    fn kv(self, key: impl AsRef<[u8]>, ty: u32) -> B {
        self.str(key).u32(ty)
    }
    fn kv_u32(self, key: &str, v: u32) -> B {
        self.kv(key, U32).u32(v)
    }
    fn kv_str(self, key: &str, v: &str) -> B {
        self.kv(key, STR).str(v)
    }
    /// An array header: element type and length; the elements follow.
    fn arr(self, elem: u32, len: u64) -> B {
        self.u32(elem).u64(len)
    }
    /// A tensor info: name, rank, dims (`ne[0]` first), type, offset.
    fn tensor(self, name: impl AsRef<[u8]>, dims: &[u64], ty: u32, offset: u64) -> B {
        let mut b = self.str(name).u32(dims.len() as u32);
        for &d in dims {
            b = b.u64(d);
        }
        b.u32(ty).u64(offset)
    }
    /// Zero padding up to the next multiple of `align`.
    fn pad(self, align: usize) -> B {
        let n = self.0.len().next_multiple_of(align) - self.0.len();
        self.zeros(n)
    }
    fn zeros(self, n: usize) -> B {
        self.raw(&vec![0; n])
    }
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn done(self) -> Vec<u8> {
        self.0
    }
}

/// What the streaming parser (total length unknown) must answer for a file the whole-file parser
/// rejects.
#[derive(Clone, Copy, Debug)]
enum Stream {
    /// The same error: the rule does not depend on the file's length.
    Same,
    /// `NeedBytes(n)` with `n` past the end: the header may go on in bytes not yet seen.
    Need,
    /// A complete header: only the data section is short.
    Complete,
}

/// Parses `bytes` the three ways and checks the error; returns it for field checks.
#[track_caller]
fn reject(bytes: &[u8], stream: Stream) -> Error {
    let len = bytes.len() as u64;
    let err = match Gguf::parse(bytes) {
        Ok(g) => panic!("Gguf::parse accepted a malformed {len}-byte file: {:?}", g.header),
        Err(e) => e,
    };
    match gguf::parse_header(bytes, Some(len)) {
        Err(e) => assert_eq!(e, err, "parse_header(total known) differs from Gguf::parse"),
        Ok(p) => panic!("parse_header(total known) gave {p:?}, Gguf::parse gave {err:?}"),
    }
    match (stream, gguf::parse_header(bytes, None)) {
        (Stream::Same, Err(e)) => assert_eq!(e, err, "streaming error differs from Gguf::parse"),
        (Stream::Need, Ok(HeaderParse::NeedBytes(n))) => {
            assert!(n > len, "streaming asked for {n} bytes with {len} in hand (error was {err:?})")
        }
        (Stream::Complete, Ok(HeaderParse::Complete(_))) => {}
        (_, got) => panic!("streaming: expected {stream:?}, got {got:?} (whole-file error {err:?})"),
    }
    err
}

/// Asserts `err` matches a pattern, printing it when not.
macro_rules! assert_err {
    ($err:expr, $pat:pat $(if $guard:expr)?) => {{
        let e: Error = $err;
        assert!(matches!(e.clone(), $pat $(if $guard)?), "unexpected error: {e:?}\n  ({e})");
    }};
}

/// A valid file with one F32 tensor of `n` elements at offset 0, padded to 32.
fn one_tensor_file(name: &str, n: u64) -> B {
    B::v3(1, 0).tensor(name, &[n], T_F32, 0).pad(32).zeros(4 * n as usize).pad(32)
}

// ------------------------------------------------------------------------ magic and version

#[test]
fn bad_magic() {
    let f = B::default().raw(b"GGUG").u32(3).u64(0).u64(0).done();
    assert_err!(reject(&f, Stream::Same), Error::BadMagic { found } if &found == b"GGUG");
    let f = B::default().raw(b"gguf").u32(3).u64(0).u64(0).done();
    assert_err!(reject(&f, Stream::Same), Error::BadMagic { found } if &found == b"gguf");
    // A byte-swapped magic is still not GGUF, whatever the version says.
    let f = B::default().raw(b"FUGG").u32(3).u64(0).u64(0).done();
    assert_err!(reject(&f, Stream::Same), Error::BadMagic { .. });
}

#[test]
fn unsupported_version() {
    for v in [0, 1, 4, 0xffff_ffff] {
        let f = B::gguf(v, 0, 0).done();
        assert_err!(reject(&f, Stream::Same), Error::UnsupportedVersion { version } if version == v);
    }
}

#[test]
fn big_endian_version() {
    for v in [2u32, 3] {
        let f = B::default().raw(b"GGUF").raw(&v.to_be_bytes()).u64(0).u64(0).done();
        assert_err!(reject(&f, Stream::Same), Error::BigEndian { version } if version == v);
    }
}

// ------------------------------------------------------------------------ counts

#[test]
fn kv_count_past_end() {
    // One 14-byte entry present, two claimed.
    let f = B::v3(0, 2).kv("k", U8).u8(7).done();
    assert_err!(reject(&f, Stream::Need), Error::TooManyKv { count: 2, remaining: 14 });
    let f = B::v3(0, u64::MAX).done();
    assert_err!(reject(&f, Stream::Need), Error::TooManyKv { count: u64::MAX, remaining: 0 });
}

#[test]
fn tensor_count_past_end() {
    // Caught at the counts: 3 tensors cannot fit in one 33-byte tensor info.
    let f = B::v3(3, 0).tensor("t", &[8], T_F32, 0).done();
    assert_err!(reject(&f, Stream::Need), Error::TooManyTensors { count: 3, remaining: 33 });
    // Caught after the metadata: the bytes were there, but the metadata used them.
    let f = B::v3(2, 1).kv_str("k", &"x".repeat(50)).tensor("t", &[8], T_F32, 0).done();
    assert_err!(reject(&f, Stream::Need), Error::TooManyTensors { count: 2, remaining: 33 });
}

// ------------------------------------------------------------------------ strings and arrays

#[test]
fn key_longer_than_file() {
    let f = B::v3(0, 1).u64(100).raw(b"0123456789").done();
    assert_err!(reject(&f, Stream::Need), Error::StringPastEnd { offset: KV0, len: 100, remaining: 10 });
}

#[test]
fn string_value_longer_than_file() {
    let f = B::v3(0, 1).kv("k", STR).u64(1000).raw(b"abc").done();
    let at = KV0 + 9 + 4;
    assert_err!(
        reject(&f, Stream::Need),
        Error::StringPastEnd { offset, len: 1000, remaining: 3 } if offset == at
    );
}

#[test]
fn string_over_1_gib() {
    // Refused on the length alone, even when streaming.
    let f = B::v3(0, 1).u64(MAX_LEN + 1).zeros(64).done();
    assert_err!(
        reject(&f, Stream::Same),
        Error::StringTooLarge { offset: KV0, len } if len == MAX_LEN + 1
    );
    let f = B::v3(0, 1).kv("k", STR).u64(u64::MAX).zeros(64).done();
    assert_err!(reject(&f, Stream::Same), Error::StringTooLarge { len: u64::MAX, .. });
}

#[test]
fn array_longer_than_file() {
    let f = B::v3(0, 1).kv("arr", ARR).arr(U32, 10).u32(1).u32(2).u32(3).done();
    assert_err!(
        reject(&f, Stream::Need),
        Error::ArrayPastEnd { key, len: 10, remaining: 12 } if key == "arr"
    );
    // Strings take at least their 8-byte length each.
    let f = B::v3(0, 1).kv("s", ARR).arr(STR, 3).str("a").str("b").done();
    assert_err!(reject(&f, Stream::Need), Error::ArrayPastEnd { key, len: 3, .. } if key == "s");
}

#[test]
fn array_over_1_gi_elements() {
    let f = B::v3(0, 1).kv("arr", ARR).arr(U8, MAX_LEN + 1).zeros(64).done();
    assert_err!(
        reject(&f, Stream::Same),
        Error::ArrayTooLarge { key, len } if key == "arr" && len == MAX_LEN + 1
    );
    let f = B::v3(0, 1).kv("arr", ARR).arr(ARR, u64::MAX).zeros(64).done();
    assert_err!(reject(&f, Stream::Same), Error::ArrayTooLarge { len: u64::MAX, .. });
}

/// A metadata array nested `depth` levels deep (1 = a flat array), innermost an empty u8 array.
fn nested(b: B, depth: usize) -> B {
    let mut b = b;
    for _ in 1..depth {
        b = b.arr(ARR, 1);
    }
    b.arr(U8, 0)
}

#[test]
fn arrays_nested_too_deep() {
    let f = nested(B::v3(0, 1).kv("deep", ARR), MAX_DEPTH + 1).done();
    assert_err!(
        reject(&f, Stream::Same),
        Error::NestingTooDeep { key, max } if key == "deep" && max == MAX_DEPTH
    );
}

// ------------------------------------------------------------------------ UTF-8 and keys

#[test]
fn key_not_utf8() {
    let f = B::v3(0, 1).kv([b'k', 0xff, 0xfe], U8).u8(0).done();
    assert_err!(reject(&f, Stream::Same), Error::KeyNotUtf8 { offset: KV0 });
}

#[test]
fn string_value_not_utf8() {
    let f = B::v3(0, 1).kv("name", STR).str([0xc3, 0x28]).done();
    assert_err!(reject(&f, Stream::Same), Error::ValueNotUtf8 { key } if key == "name");
}

#[test]
fn string_array_element_not_utf8() {
    let f = B::v3(0, 1).kv("tok", ARR).arr(STR, 3).str("a").str([b'b', 0x80]).str("c").done();
    assert_err!(reject(&f, Stream::Same), Error::ValueNotUtf8 { key } if key == "tok");
}

#[test]
fn tensor_name_not_utf8() {
    let f = B::v3(2, 0)
        .tensor("ok", &[8], T_F32, 0)
        .tensor([0xed, 0xa0, 0x80], &[8], T_F32, 32) // an encoded surrogate
        .pad(32)
        .zeros(64)
        .done();
    let at = KV0 + 8 + 2 + 4 + 8 + 4 + 8;
    assert_err!(reject(&f, Stream::Same), Error::TensorNameNotUtf8 { offset } if offset == at);
}

#[test]
fn empty_key() {
    let f = B::v3(0, 2).kv_u32("a", 1).kv("", U32).u32(2).done();
    let at = KV0 + 9 + 4 + 4;
    assert_err!(reject(&f, Stream::Same), Error::EmptyKey { offset } if offset == at);
}

#[test]
fn duplicate_key() {
    let f = B::v3(0, 3).kv_u32("a", 1).kv_str("b", "x").kv_u32("a", 2).done();
    assert_err!(reject(&f, Stream::Same), Error::DuplicateKey { key } if key == "a");
    // A duplicate with another type is still a duplicate.
    let f = B::v3(0, 2).kv_u32("a", 1).kv_str("a", "x").done();
    assert_err!(reject(&f, Stream::Same), Error::DuplicateKey { key } if key == "a");
}

#[test]
fn duplicate_tensor_name() {
    let f = B::v3(2, 0).tensor("t", &[8], T_F32, 0).tensor("t", &[8], T_F32, 32).pad(32).zeros(64).done();
    assert_err!(reject(&f, Stream::Same), Error::DuplicateTensor { name } if name == "t");
}

// ------------------------------------------------------------------------ alignment

#[test]
fn alignment_not_u32() {
    let f = B::v3(0, 1).kv("general.alignment", U64).u64(32).done();
    assert_err!(reject(&f, Stream::Same), Error::AlignmentType { found: "u64" });
    let f = B::v3(0, 1).kv("general.alignment", I32).u32(32).done();
    assert_err!(reject(&f, Stream::Same), Error::AlignmentType { found: "i32" });
    let f = B::v3(0, 1).kv_str("general.alignment", "32").done();
    assert_err!(reject(&f, Stream::Same), Error::AlignmentType { found: "string" });
}

#[test]
fn alignment_zero() {
    let f = B::v3(0, 1).kv_u32("general.alignment", 0).done();
    assert_err!(reject(&f, Stream::Same), Error::BadAlignment { value: 0 });
}

#[test]
fn alignment_not_power_of_two() {
    for a in [3, 48, 0xffff_ffff] {
        let f = B::v3(0, 1).kv_u32("general.alignment", a).done();
        assert_err!(reject(&f, Stream::Same), Error::BadAlignment { value } if value == u64::from(a));
    }
}

// ------------------------------------------------------------------------ tensor shapes and types

#[test]
fn rank_zero() {
    let f = B::v3(1, 0).tensor("scalar", &[], T_F32, 0).pad(32).zeros(32).done();
    assert_err!(reject(&f, Stream::Same), Error::BadRank { name, n_dims: 0 } if name == "scalar");
}

#[test]
fn rank_five() {
    let f = B::v3(1, 0).tensor("t5", &[1, 1, 1, 1, 1], T_F32, 0).pad(32).zeros(32).done();
    assert_err!(reject(&f, Stream::Same), Error::BadRank { name, n_dims: 5 } if name == "t5");
    let f = B::v3(1, 0).str("tbig").u32(u32::MAX).zeros(64).done();
    assert_err!(reject(&f, Stream::Same), Error::BadRank { n_dims: u32::MAX, .. });
}

#[test]
fn zero_dimension() {
    let f = B::v3(1, 0).tensor("z", &[4, 0, 2], T_F32, 0).pad(32).zeros(32).done();
    assert_err!(reject(&f, Stream::Same), Error::ZeroDim { name, dims } if name == "z" && dims == [4, 0, 2]);
}

#[test]
fn element_count_overflow() {
    let f = B::v3(1, 0).tensor("big", &[1 << 32, 1 << 32], T_F32, 0).pad(32).zeros(32).done();
    assert_err!(
        reject(&f, Stream::Same),
        Error::ElementCountOverflow { name, dims } if name == "big" && dims == [1 << 32, 1 << 32]
    );
    // Fits a u64 but not ggml's i64 element count.
    let f = B::v3(1, 0).tensor("big", &[1 << 63], T_F32, 0).pad(32).zeros(32).done();
    assert_err!(reject(&f, Stream::Same), Error::ElementCountOverflow { .. });
}

#[test]
fn byte_size_overflow() {
    // 2^62 f32 elements: the count fits an i64, the 2^64 bytes do not fit a u64.
    let f = B::v3(1, 0).tensor("wide", &[1 << 62], T_F32, 0).pad(32).zeros(32).done();
    assert_err!(reject(&f, Stream::Same), Error::ByteSizeOverflow { name } if name == "wide");
    // 2^61 f32 elements: 2^63 bytes fit a u64 but not an i64.
    let f = B::v3(1, 0).tensor("wide", &[1 << 61], T_F32, 0).pad(32).zeros(32).done();
    assert_err!(reject(&f, Stream::Same), Error::ByteSizeOverflow { name } if name == "wide");
}

#[test]
fn unknown_tensor_type() {
    // 4 and 5 were Q4_2/Q4_3, retired upstream.
    for id in [4, 5, 31, 36, 1000, u32::MAX] {
        let f = B::v3(1, 0).tensor("t", &[32], id, 0).pad(32).zeros(128).done();
        assert_err!(
            reject(&f, Stream::Same),
            Error::UnknownTensorType { name, type_id } if name == "t" && type_id == id
        );
    }
}

#[test]
fn unknown_value_type() {
    let f = B::v3(0, 1).kv("k", 13).u32(0).done();
    assert_err!(reject(&f, Stream::Same), Error::UnknownValueType { key, type_id: 13 } if key == "k");
    let f = B::v3(0, 1).kv("k", u32::MAX).u32(0).done();
    assert_err!(reject(&f, Stream::Same), Error::UnknownValueType { type_id: u32::MAX, .. });
}

#[test]
fn unknown_array_element_type() {
    let f = B::v3(0, 1).kv("arr", ARR).arr(99, 1).u32(0).done();
    assert_err!(reject(&f, Stream::Same), Error::UnknownValueType { key, type_id: 99 } if key == "arr");
}

#[test]
fn invalid_bool() {
    let f = B::v3(0, 1).kv("flag", BOOL).u8(2).done();
    assert_err!(reject(&f, Stream::Same), Error::InvalidBool { key, value: 2 } if key == "flag");
    let f = B::v3(0, 1).kv("flags", ARR).arr(BOOL, 3).u8(0).u8(1).u8(0xff).done();
    assert_err!(reject(&f, Stream::Same), Error::InvalidBool { key, value: 0xff } if key == "flags");
}

#[test]
fn row_not_block_multiple() {
    let f = B::v3(1, 0).tensor("q", &[48, 2], T_Q4_0, 0).pad(32).zeros(64).done();
    assert_err!(
        reject(&f, Stream::Same),
        Error::RowNotBlockMultiple { name, ne0: 48, ty: GgmlType::Q4_0, block: 32 } if name == "q"
    );
}

// ------------------------------------------------------------------------ data section layout

#[test]
fn misaligned_tensor_offset() {
    let f = B::v3(1, 0).tensor("t", &[4], T_F32, 16).pad(32).zeros(64).done();
    assert_err!(
        reject(&f, Stream::Same),
        Error::MisalignedTensor { name, offset: 16, alignment: 32 } if name == "t"
    );
    // Aligned to the default 32, not to the file's 64.
    let f = B::v3(2, 1)
        .kv_u32("general.alignment", 64)
        .tensor("a", &[4], T_F32, 0)
        .tensor("b", &[4], T_F32, 32)
        .pad(64)
        .zeros(128)
        .done();
    assert_err!(
        reject(&f, Stream::Same),
        Error::MisalignedTensor { name, offset: 32, alignment: 64 } if name == "b"
    );
}

#[test]
fn tensor_outside_data_section() {
    // One 32-byte tensor: the data section is 32 bytes, offset 32 starts past it.
    let f = B::v3(1, 0).tensor("t", &[8], T_F32, 32).pad(32).zeros(64).done();
    assert_err!(
        reject(&f, Stream::Same),
        Error::TensorOutOfBounds { name, offset: 32, data_len: 32 } if name == "t"
    );
    // An aligned offset whose end overflows.
    let off = !31u64; // the largest 32-aligned u64
    let f = B::v3(1, 0).tensor("t", &[8], T_F32, off).pad(32).zeros(64).done();
    assert_err!(reject(&f, Stream::Same), Error::TensorOutOfBounds { offset, .. } if offset == off);
}

#[test]
fn tensors_overlap() {
    // a: 64 bytes at 0; b: 32 bytes at 32, inside a. Both lie inside the 96-byte data section.
    let f = B::v3(2, 0).tensor("b", &[8], T_F32, 32).tensor("a", &[16], T_F32, 0).pad(32).zeros(96).done();
    assert_err!(
        reject(&f, Stream::Same),
        Error::TensorsOverlap { first, second } if first == "a" && second == "b"
    );
}

#[test]
fn data_section_truncated() {
    let full = one_tensor_file("w", 16).done(); // 64 bytes of data at 64
    assert!(Gguf::parse(&full).is_ok());
    for cut in [57, 60, 64, 65, 127] {
        let err = reject(&full[..cut], Stream::Complete);
        assert_err!(err, Error::DataTruncated { name, need: 128, have } if name == "w" && have == cut as u64);
    }
}

// ------------------------------------------------------------------------ truncated headers

/// Cuts the valid file `full` to `cut` bytes: the whole-file parser must answer with `want`'s
/// error, the streaming parser with `NeedBytes(n)`, `cut < n <= full.len()`.
#[track_caller]
fn truncated(full: &[u8], cut: usize) -> Error {
    if let Err(e) = Gguf::parse(full) {
        panic!("the uncut file must parse: {e}");
    }
    let err = reject(&full[..cut], Stream::Need);
    if let Ok(HeaderParse::NeedBytes(n)) = gguf::parse_header(&full[..cut], None) {
        assert!(n <= full.len() as u64, "asked for {n} bytes of a {}-byte file", full.len());
    }
    err
}

/// A valid file whose header has one of everything, and where each part starts.
struct Sample {
    file: Vec<u8>,
    /// The second entry (`llama.context_length`, a u64; the first leaves room for two tensors).
    key_b: usize,
    /// The third entry's array header (after its key and type).
    arr: usize,
    /// First and second tensor infos; the end of the header; the data section.
    t1: usize,
    t2: usize,
    header_end: usize,
    data: usize,
}

const T1: &str = "blk.0.attn_output.weight";
const T2: &str = "output_norm.weight";

fn sample() -> Sample {
    let b = B::v3(2, 3).kv_str("general.name", "a sample model for truncation tests");
    let key_b = b.0.len();
    let b = b.kv("llama.context_length", U64).u64(7);
    let arr = b.0.len() + 8 + 21 + 4;
    let b = b.kv("tokenizer.ggml.tokens", ARR).arr(STR, 2).str("hello world").str("x");
    let t1 = b.0.len();
    let b = b.tensor(T1, &[32, 2], T_F32, 0);
    let t2 = b.0.len();
    let b = b.tensor(T2, &[32], T_F32, 256);
    let header_end = b.0.len();
    let b = b.pad(32);
    let data = b.0.len();
    let file = b.zeros(256 + 128).done();
    Sample { file, key_b, arr, t1, t2, header_end, data }
}

#[test]
fn truncated_in_magic_version_counts() {
    let f = one_tensor_file("t", 8).done();
    let cases = [(2, "magic", 0), (6, "version", 4), (12, "tensor count", 8), (20, "metadata count", 16)];
    for (cut, what, at) in cases {
        let left = (cut - at) as u64;
        assert_err!(
            truncated(&f, cut),
            Error::Truncated { what: w, offset, have, .. } if w == what && offset == at as u64 && have == left
        );
    }
    assert_err!(truncated(&f, 0), Error::Truncated { what: "magic", need: 4, have: 0, .. });
}

#[test]
fn truncated_in_key() {
    let Sample { file: f, key_b: k, .. } = sample();
    // In the key's length field.
    assert_err!(truncated(&f, k + 4), Error::Truncated { what: "metadata key", need: 8, have: 4, .. });
    // In the key's bytes: the length is known, so it is a string past the end.
    assert_err!(
        truncated(&f, k + 8 + 7),
        Error::StringPastEnd { offset, len: 20, remaining: 7 } if offset == k as u64
    );
    // In the value type.
    assert_err!(truncated(&f, k + 8 + 20 + 2), Error::Truncated { what: "metadata type", have: 2, .. });
}

#[test]
fn truncated_in_value() {
    let Sample { file: f, key_b: k, .. } = sample();
    // In the u64 value.
    assert_err!(
        truncated(&f, k + 8 + 20 + 4 + 5),
        Error::Truncated { what: "metadata value", need: 8, have: 5, .. }
    );
    // In a string value's length, then in its bytes.
    let b = B::v3(0, 1).kv("k", STR);
    let at = b.0.len();
    let f = b.str("a value long enough").done();
    assert_err!(truncated(&f, at + 3), Error::Truncated { what: "metadata string", have: 3, .. });
    assert_err!(truncated(&f, at + 8 + 4), Error::StringPastEnd { len: 19, remaining: 4, .. });
}

#[test]
fn truncated_in_array() {
    let Sample { file: f, arr, .. } = sample();
    assert_err!(truncated(&f, arr + 2), Error::Truncated { what: "array type", have: 2, .. });
    assert_err!(truncated(&f, arr + 4 + 6), Error::Truncated { what: "array length", have: 6, .. });
    // In the first string's bytes; in the second string's length.
    assert_err!(truncated(&f, arr + 12 + 8 + 9), Error::StringPastEnd { len: 11, remaining: 9, .. });
    assert_err!(
        truncated(&f, arr + 12 + 19 + 4),
        Error::Truncated { what: "metadata string", need: 8, have: 4, .. }
    );
    // Too few bytes left for the strings' lengths alone.
    assert_err!(truncated(&f, arr + 12 + 8 + 5), Error::ArrayPastEnd { len: 2, remaining: 13, .. });
    // Fixed-size elements: the element count alone proves the cut.
    let f = B::v3(0, 1).kv("v", ARR).arr(F32, 4).u32(0).u32(0).u32(0).u32(0).done();
    assert_err!(truncated(&f, f.len() - 1), Error::ArrayPastEnd { len: 4, remaining: 15, .. });
}

#[test]
fn truncated_in_tensor_info() {
    let Sample { file: f, t1, t2, .. } = sample();
    // Inside the second tensor info (the first leaves room for the two claimed).
    let name = 8 + T2.len();
    let cases = [
        (5, "tensor name"),
        (name + 2, "tensor rank"),
        (name + 4 + 3, "tensor dimension"),
        (name + 4 + 8 + 1, "tensor type"),
        (name + 4 + 8 + 4 + 7, "tensor offset"),
    ];
    for (cut, what) in cases {
        assert_err!(truncated(&f, t2 + cut), Error::Truncated { what: w, .. } if w == what);
    }
    assert_err!(
        truncated(&f, t2 + 8 + 10),
        Error::StringPastEnd { offset, len: 18, remaining: 10 } if offset == t2 as u64
    );
    // Inside the first: two tensor infos can no longer fit.
    assert_err!(truncated(&f, t1 + 40), Error::TooManyTensors { count: 2, remaining: 40 });
}

#[test]
fn truncated_in_padding_or_data() {
    let Sample { file: f, header_end, data, .. } = sample();
    assert!(data > header_end, "the sample must have padding");
    let cases = [(header_end, T1), (data - 1, T1), (data + 255, T1), (data + 256 + 127, T2)];
    for (cut, tensor) in cases {
        let end = if tensor == T1 { data + 256 } else { data + 384 } as u64;
        assert_err!(
            reject(&f[..cut], Stream::Complete),
            Error::DataTruncated { name, need, have } if name == tensor && need == end && have == cut as u64
        );
    }
}

// ------------------------------------------------------------------------ valid edge files

#[track_caller]
fn accept(bytes: &[u8]) -> Gguf<'_> {
    let g = Gguf::parse(bytes).unwrap_or_else(|e| panic!("valid file rejected: {e}"));
    match gguf::parse_header(bytes, None) {
        Ok(HeaderParse::Complete(h)) => assert_eq!(h.tensors, g.header.tensors),
        other => panic!("streaming parse of the whole valid file gave {other:?}"),
    }
    g
}

#[test]
fn minimal_file() {
    let f = B::v3(0, 0).done();
    let g = accept(&f);
    assert_eq!((g.header.version, g.metadata().len(), g.tensors().len()), (3, 0, 0));
    assert_eq!(g.header.data_offset, 32);
}

#[test]
fn version_2_file() {
    let f = B::gguf(2, 1, 1).kv_str("general.architecture", "llama").tensor("t", &[8], T_F32, 0).pad(32);
    let f = f.zeros(32).done();
    let g = accept(&f);
    assert_eq!(g.header.version, 2);
    assert_eq!(g.architecture().unwrap(), "llama");
    assert_eq!(g.tensor_data(g.tensor("t").unwrap()).len(), 32);
}

#[test]
fn alignment_1_packs_tensors() {
    let b =
        B::v3(2, 1).kv_u32("general.alignment", 1).tensor("a", &[3], T_F32, 0).tensor("b", &[5], T_F32, 12);
    let data_at = b.len();
    let f = b.raw(&[1; 12]).raw(&[2; 20]).done();
    let g = accept(&f);
    assert_eq!((g.header.alignment, g.header.data_offset, g.header.data_len), (1, data_at, 32));
    assert_eq!(g.tensor_data(g.tensor("a").unwrap()), [1; 12]);
    assert_eq!(g.tensor_data(g.tensor("b").unwrap()), [2; 20]);
}

#[test]
fn alignment_64() {
    let f = B::v3(2, 1)
        .kv_u32("general.alignment", 64)
        .tensor("a", &[3], T_F32, 0)
        .tensor("b", &[32], T_Q4_0, 64)
        .pad(64)
        .zeros(64 + 18)
        .done();
    let g = accept(&f);
    assert_eq!(g.header.alignment, 64);
    assert_eq!(g.header.data_offset % 64, 0);
    // The file stops right after the last tensor, without its padding.
    assert_eq!(g.header.file_len(), f.len() as u64 + 46);
    assert_eq!(g.tensor_data(g.tensor("b").unwrap()).len(), 18);
}

#[test]
fn nesting_at_the_cap() {
    let f = nested(B::v3(0, 1).kv("deep", ARR), MAX_DEPTH).done();
    let g = accept(&f);
    let mut v = *g.metadata().get("deep").unwrap();
    let mut depth = 0;
    while let Value::Array(a) = v {
        depth += 1;
        match a.iter().next() {
            Some(inner) => v = inner,
            None => break,
        }
    }
    assert_eq!(depth, MAX_DEPTH);
}

#[test]
fn empty_strings_and_arrays() {
    let f = B::v3(0, 5)
        .kv_str("s", "")
        .kv("u8s", ARR)
        .arr(U8, 0)
        .kv("strs", ARR)
        .arr(STR, 3)
        .str("")
        .str("")
        .str("")
        .kv("arrs", ARR)
        .arr(ARR, 2)
        .arr(STR, 0)
        .arr(BOOL, 0)
        .kv("none", ARR)
        .arr(STR, 0)
        .done();
    let g = accept(&f);
    let m = g.metadata();
    assert_eq!(m.get_str("s").unwrap(), "");
    assert!(m.get_array("u8s").unwrap().is_empty());
    assert_eq!(m.get_str_array("strs").unwrap(), ["", "", ""]);
    let arrs: Vec<usize> = m.get_array("arrs").unwrap().iter().map(|v| v.as_array().unwrap().len()).collect();
    assert_eq!(arrs, [0, 0]);
    assert!(m.get_str_array("none").unwrap().is_empty());
}

#[test]
fn every_value_type() {
    let f = B::v3(0, 13)
        .kv("u8", U8)
        .u8(200)
        .kv("i8", I8)
        .u8(0x80)
        .kv("u16", U16)
        .raw(&60000u16.to_le_bytes())
        .kv("i16", I16)
        .raw(&(-2i16).to_le_bytes())
        .kv_u32("u32", 4_000_000_000)
        .kv("i32", I32)
        .raw(&(-5i32).to_le_bytes())
        .kv("f32", F32)
        .raw(&1.25f32.to_le_bytes())
        .kv("t", BOOL)
        .u8(1)
        .kv("f", BOOL)
        .u8(0)
        .kv_str("str", "héllo")
        .kv("u64", U64)
        .u64(u64::MAX)
        .kv("i64", I64)
        .raw(&i64::MIN.to_le_bytes())
        .kv("f64", F64)
        .raw(&(-0.5f64).to_le_bytes())
        .done();
    let g = accept(&f);
    let m = g.metadata();
    assert_eq!(m.get_u32("u8").unwrap(), 200);
    assert_eq!(m.get_i64("i8").unwrap(), -128);
    assert_eq!(m.get_u32("u16").unwrap(), 60000);
    assert_eq!(m.get_i64("i16").unwrap(), -2);
    assert_eq!(m.get_u32("u32").unwrap(), 4_000_000_000);
    assert_eq!(m.get_i64("i32").unwrap(), -5);
    assert_eq!(m.get_f32("f32").unwrap(), 1.25);
    assert!(m.get_bool("t").unwrap() && !m.get_bool("f").unwrap());
    assert_eq!(m.get_str("str").unwrap(), "héllo");
    assert_eq!(m.get_u64("u64").unwrap(), u64::MAX);
    assert_eq!(m.get_i64("i64").unwrap(), i64::MIN);
    assert_eq!(m.get_f32("f64").unwrap(), -0.5);
    let keys: Vec<_> = m.iter().map(|(k, _)| k).collect();
    assert_eq!(keys[..3], ["u8", "i8", "u16"]);
}

/// One tensor of every known type, two blocks per row and three rows, laid out by the builder.
fn every_tensor_type() -> Vec<u8> {
    let mut b = B::v3(GgmlType::ALL.len() as u64, 0);
    let mut offset = 0u64;
    let mut sizes = Vec::new();
    for ty in GgmlType::ALL {
        let ne0 = 2 * ty.block_size() as u64;
        b = b.tensor(ty.name(), &[ne0, 3], ty.id(), offset);
        let size = 3 * ty.row_bytes(ne0).unwrap();
        sizes.push(size);
        offset = (offset + size).next_multiple_of(32);
    }
    let mut b = b.pad(32);
    for (i, size) in sizes.into_iter().enumerate() {
        b = b.raw(&vec![i as u8; size as usize]).pad(32);
    }
    b.done()
}

#[test]
fn every_tensor_type_parses_with_its_size() {
    let f = every_tensor_type();
    let g = accept(&f);
    assert_eq!(g.tensors().len(), GgmlType::ALL.len());
    for (i, (t, ty)) in g.tensors().iter().zip(GgmlType::ALL).enumerate() {
        assert_eq!((t.name, t.ty), (ty.name(), ty));
        assert_eq!(t.size, 3 * ty.row_bytes(t.ne[0]).unwrap(), "{}", t.name);
        let data = g.tensor_data(t);
        assert!(data.len() as u64 == t.size && data.iter().all(|&x| x == i as u8), "{} data", t.name);
    }
}

#[test]
fn vocab_only_file_without_data_section() {
    // No tensors; the file stops at the end of its header, before the padding.
    let f = B::v3(0, 2).kv_str("tokenizer.ggml.model", "gpt2").kv("tokenizer.ggml.tokens", ARR);
    let f = f.arr(STR, 2).str("a").str("b").done();
    let g = accept(&f);
    assert_eq!(g.metadata().get_str_array("tokenizer.ggml.tokens").unwrap(), ["a", "b"]);
    assert!(g.header.data_offset > f.len() as u64);
}

// ------------------------------------------------------------------------ incremental parsing

/// Streaming parse of `file[..len]`: `NeedBytes(n)` with `len < n <= file.len()`, or complete; and
/// with exactly `n` bytes the parser gets further (completes, or asks for more than `n`).
#[track_caller]
fn check_prefix(file: &[u8], len: usize) {
    match gguf::parse_header(&file[..len], None) {
        Ok(HeaderParse::Complete(_)) => {}
        Ok(HeaderParse::NeedBytes(n)) => {
            assert!(n as usize > len && n as usize <= file.len(), "prefix {len}: asked for {n}");
            match gguf::parse_header(&file[..n as usize], None) {
                Ok(HeaderParse::Complete(_)) => {}
                Ok(HeaderParse::NeedBytes(m)) => assert!(m > n, "prefix {n}: asked for {m}, no progress"),
                Err(e) => panic!("prefix {n} of a valid file: {e}"),
            }
        }
        Err(e) => panic!("prefix {len} of a valid file: {e}"),
    }
}

#[test]
fn every_prefix_of_small_files_streams() {
    let files = [sample().file, every_tensor_type(), nested(B::v3(0, 1).kv("d", ARR), MAX_DEPTH).done()];
    for f in &files {
        let g = Gguf::parse(f).unwrap();
        for len in 0..=f.len() {
            check_prefix(f, len);
        }
        // Once the header is complete, every longer prefix is complete too.
        let complete_at = (0..=f.len())
            .find(|&n| matches!(gguf::parse_header(&f[..n], None), Ok(HeaderParse::Complete(_))))
            .unwrap();
        assert!(complete_at as u64 <= g.header.data_offset);
    }
}

#[test]
fn prefixes_of_smollm2_header_stream() {
    let model = aether_tests::default_model_bytes();
    let g = Gguf::parse(&model).unwrap();
    let end = g.header.data_offset as usize;
    // Every prefix near the fixed fields and the first keys, then a sample across the header.
    let mut lens: Vec<usize> = (0..512).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        lens.push((x % end as u64) as usize);
    }
    lens.extend(end - 64..=end);
    for len in lens {
        check_prefix(&model, len);
    }
    match gguf::parse_header(&model[..end], None).unwrap() {
        HeaderParse::Complete(h) => assert_eq!(h.tensors.len(), g.tensors().len()),
        HeaderParse::NeedBytes(n) => panic!("the whole header asked for {n} bytes"),
    }
}
