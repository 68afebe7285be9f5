//! Fuzz target: the GGUF reader on arbitrary bytes, whole-file and streaming, then every accessor
//! a caller would use on what it accepted.
//!
//! Beyond "no panic, no hang, no OOM", it checks the reader's promises: the three entry points
//! agree (`Gguf::parse`, `parse_header` with the length known, streaming); a streaming parse asks
//! for bytes past what it has and within the stated total; an accepted file's arrays decode to
//! exactly their declared length; its tensors are aligned, disjoint and inside the file.

#![no_main]

use aether_core::gguf::{self, Gguf, HeaderParse, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let whole = Gguf::parse(data);
    let known = gguf::parse_header(data, Some(len));
    match (&whole, &known) {
        (Ok(g), Ok(HeaderParse::Complete(h))) => assert_eq!(g.header.tensors, h.tensors),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("Gguf::parse {a:?} vs parse_header(total known) {b:?}"),
    }

    match gguf::parse_header(data, None) {
        Ok(HeaderParse::NeedBytes(n)) => {
            assert!(n > len, "streaming asked for {n} bytes with {len} in hand");
            assert!(whole.is_err(), "whole-file parse accepted what streaming calls incomplete");
        }
        Ok(HeaderParse::Complete(h)) => {
            if let Ok(g) = &whole {
                assert_eq!(g.header.tensors, h.tensors);
            }
        }
        // Streaming checks a subset of the rules (none that need the length), so an error there
        // is an error for the whole file too, though the whole file may have failed earlier.
        Err(e) => assert!(whole.is_err(), "streaming error {e:?} for a file that parses"),
    }

    // The same bytes as the prefix of a longer file (a download in progress).
    let total = len + 1 + u64::from(data.last().copied().unwrap_or(0)) * 97;
    if let Ok(HeaderParse::NeedBytes(n)) = gguf::parse_header(data, Some(total)) {
        assert!(n > len && n <= total, "asked for {n} with {len} in hand of {total}");
    }

    if let Ok(g) = whole {
        touch(&g, len);
    }
});

/// Every accessor over every entry and tensor, checking what the reader promised.
fn touch(g: &Gguf<'_>, file_len: u64) {
    let m = g.metadata();
    for (key, v) in m.iter() {
        assert!(!key.is_empty());
        assert!(m.get(key).is_some());
        walk(v, 1);
        let _ = (m.get_u32(key), m.get_u64(key), m.get_i64(key), m.get_f32(key), m.get_bool(key));
        let _ = (m.get_str(key), m.get_f32_array(key), m.get_i32_array(key));
        if let Ok(strs) = m.get_str_array(key) {
            assert_eq!(strs.len(), m.get_array(key).unwrap().len(), "`{key}`");
        }
    }
    let _ = g.architecture();
    let h = &g.header;
    assert!(h.alignment.is_power_of_two());
    assert_eq!(h.data_offset % h.alignment, 0);
    let mut spans = Vec::new();
    for t in g.tensors() {
        assert_eq!(g.tensor(t.name).unwrap(), t);
        assert_eq!(t.offset % h.alignment, 0, "`{}` misaligned", t.name);
        assert_eq!(g.tensor_data(t).len() as u64, t.size, "`{}` data cut", t.name);
        let range = h.tensor_range(t);
        assert!(range.end <= h.file_len() && range.end <= file_len, "`{}` past the end", t.name);
        assert_eq!(t.dims().len(), t.n_dims as usize);
        let _ = (t.n_elements(), t.n_rows(), t.ty.row_bytes(t.ne[0]));
        spans.push((t.offset, t.offset + t.size));
    }
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "tensors overlap: {w:?}");
    }
}

/// Decodes a value fully; arrays must yield exactly their declared length.
fn walk(v: &Value<'_>, depth: usize) {
    assert!(depth <= gguf::MAX_DEPTH + 1);
    let _ = (v.as_integer(), v.as_f64(), v.as_str(), v.value_type().name());
    if let Value::Array(a) = v {
        let mut n = 0;
        for x in a.iter() {
            assert_eq!(x.value_type(), a.elem_type());
            walk(&x, depth + 1);
            n += 1;
        }
        assert_eq!(n, a.len(), "array decodes to {n} of {} elements", a.len());
    }
}
