//! Reader/writer round trips over byte-built files. The malformed-file suite lives in `tests/`.

use super::*;

fn sample() -> Writer {
    let mut w = Writer::new();
    w.set("general.architecture", "llama")
        .set("general.alignment", 64u32)
        .set("a.f", 1.5f32)
        .set("a.b", true)
        .set("a.u64", MetaValue::U64(1 << 40))
        .set("a.strs", MetaValue::strings(["x", "", "héllo"]))
        .set(
            "a.nested",
            MetaValue::Array(ValueType::Array, vec![MetaValue::i32s([1, -2]), MetaValue::i32s([])]),
        );
    w.add_tensor("t.q", GgmlType::Q8_0, &[64, 3]).unwrap();
    w.add_tensor("t.f", GgmlType::F32, &[5]).unwrap();
    w
}

#[test]
fn round_trip_keeps_order_values_and_tensors() {
    let q: Vec<u8> = (0..6 * 34).map(|i| i as u8).collect();
    let f: Vec<u8> = (0..20).map(|i| 100 + i as u8).collect();
    let bytes = sample().to_bytes(&[&q, &f]).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let keys: Vec<_> = g.metadata().iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        ["general.architecture", "general.alignment", "a.f", "a.b", "a.u64", "a.strs", "a.nested"]
    );
    assert_eq!(g.architecture().unwrap(), "llama");
    assert_eq!(g.header.alignment, 64);
    assert_eq!(g.header.data_offset % 64, 0);
    assert_eq!(g.metadata().get_f32("a.f").unwrap(), 1.5);
    assert!(g.metadata().get_bool("a.b").unwrap());
    assert_eq!(g.metadata().get_u64("a.u64").unwrap(), 1 << 40);
    assert!(matches!(g.metadata().get_u32("a.u64"), Err(Error::WrongType { .. })));
    assert_eq!(g.metadata().get_str_array("a.strs").unwrap(), ["x", "", "héllo"]);
    let nested: Vec<Vec<i32>> = g
        .metadata()
        .get_array("a.nested")
        .unwrap()
        .iter()
        .map(|v| v.as_array().unwrap().iter().map(|x| x.as_integer().unwrap() as i32).collect())
        .collect();
    assert_eq!(nested, [vec![1, -2], vec![]]);
    assert!(matches!(g.metadata().get_str("nope"), Err(Error::MissingKey { key }) if key == "nope"));
    let t = g.tensor("t.q").unwrap();
    assert_eq!((t.dims(), t.ty, t.size, t.offset), (&[64u64, 3][..], GgmlType::Q8_0, 204, 0));
    assert_eq!(g.tensor_data(t), &q[..]);
    let t = g.tensor("t.f").unwrap();
    assert_eq!((t.offset, g.tensor_data(t)), (256, &f[..]));
}

#[test]
fn incremental_parse_asks_for_more_until_complete() {
    let bytes = sample().to_bytes(&[&[0; 204], &[0; 20]]).unwrap();
    let mut have = 0usize;
    let mut asks = 0;
    let header = loop {
        match parse_header(&bytes[..have], None).unwrap() {
            HeaderParse::Complete(h) => break h,
            HeaderParse::NeedBytes(n) => {
                assert!(n as usize > have && n as usize <= bytes.len(), "asked for {n} with {have}");
                have = n as usize;
                asks += 1;
            }
        }
    };
    assert!(asks > 5);
    assert_eq!(header.tensors.len(), 2);
    assert!(have <= header.data_offset as usize);
    // With the length known, a short file is an error naming the cut tensor.
    let cut = header.data_offset + 256 + 10; // inside t.f
    let err = parse_header(&bytes[..have], Some(cut)).unwrap_err();
    assert!(matches!(err, Error::DataTruncated { ref name, .. } if name == "t.f"), "{err}");
}

#[test]
fn errors_quote_at_most_a_prefix_of_a_huge_key() {
    // A 100 kB key of two-byte characters with an unknown value type: the error names the key,
    // cut at a character boundary, instead of copying all of it.
    let key = "é".repeat(50_000);
    let mut f = Vec::new();
    f.extend(b"GGUF");
    f.extend(3u32.to_le_bytes());
    f.extend(0u64.to_le_bytes());
    f.extend(1u64.to_le_bytes());
    f.extend((key.len() as u64).to_le_bytes());
    f.extend(key.as_bytes());
    f.extend(99u32.to_le_bytes());
    match Gguf::parse(&f) {
        Err(Error::UnknownValueType { key: shown, type_id: 99 }) => {
            assert!(shown.len() <= reader::MAX_NAME_IN_ERROR + '…'.len_utf8(), "{} bytes", shown.len());
            assert!(shown.ends_with('…') && key.starts_with(shown.trim_end_matches('…')));
        }
        other => panic!("expected UnknownValueType, got {other:?}"),
    }
}

#[test]
fn tensor_data_of_a_foreign_tensor_info_is_empty_not_a_panic() {
    let bytes = sample().to_bytes(&[&[0; 204], &[0; 20]]).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let mut t = *g.tensor("t.f").unwrap();
    for (offset, size) in [(u64::MAX, 1), (u64::MAX - 3, 8), (1 << 40, 4), (256, 1 << 40)] {
        (t.offset, t.size) = (offset, size);
        assert!(g.tensor_data(&t).is_empty(), "offset {offset} size {size}");
        let r = g.header.tensor_range(&t);
        assert!(r.start <= r.end);
    }
}
