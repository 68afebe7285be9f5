//! aether-core's quant formats against gguf-py (goldens from `tests/scripts/make_quant_goldens.py`,
//! under `tests/goldens/quant/`):
//! - dequantization of random blocks of every decodable type, to within 1 ulp of f32 (in practice
//!   the arithmetic order matches and the distance is 0);
//! - rows of the default model's real tensors (f32, q4_1, q8_0), read from the model file itself;
//! - quantization, byte for byte, for every type gguf-py can quantize (q4_0, q4_1, q5_0, q5_1,
//!   q8_0, f16, bf16).
//!
//! `dot` is checked against the golden values too, with a relative tolerance (its sum order
//! differs from a plain loop).

use aether_core::gguf::Gguf;
use aether_core::quant::{GgmlType, dequantize, dot, quantize};
use aether_tests::{default_model_bytes, goldens_dir};

const DECODABLE: [&str; 13] =
    ["f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K"];
const QUANTIZABLE: [&str; 7] = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "f16", "bf16"];

fn golden(rel: &str) -> Vec<u8> {
    let p = goldens_dir().join("quant").join(rel);
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!("{}: {e} (make it with `python3 tests/scripts/make_quant_goldens.py`)", p.display())
    })
}

fn golden_f32(rel: &str) -> Vec<f32> {
    let b = golden(rel);
    assert_eq!(b.len() % 4, 0, "{rel}: {} bytes is not a whole number of f32", b.len());
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn ty_named(name: &str) -> GgmlType {
    GgmlType::ALL.into_iter().find(|t| t.name() == name).unwrap_or_else(|| panic!("unknown type {name}"))
}

/// Distance between two finite f32 in units in the last place (+0 and -0 are 0 apart).
fn ulps(a: f32, b: f32) -> u64 {
    fn ordered(x: f32) -> i64 {
        let bits = x.to_bits() as i32 as i64;
        if bits < 0 { i32::MIN as i64 - bits } else { bits }
    }
    ordered(a).abs_diff(ordered(b))
}

/// Asserts every `got[i]` is within `max` ulps of `want[i]`; on failure names the worst element
/// and how many differ.
fn assert_ulps(what: &str, got: &[f32], want: &[f32], max: u64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let bad: Vec<usize> = (0..got.len()).filter(|&i| ulps(got[i], want[i]) > max).collect();
    if let Some(&worst) = bad.iter().max_by_key(|&&i| ulps(got[i], want[i])) {
        panic!(
            "{what}: {} of {} elements differ by more than {max} ulp; worst at index {worst}: got {:e}, \
             want {:e} ({} ulp); first at {}: got {:e}, want {:e}",
            bad.len(),
            got.len(),
            got[worst],
            want[worst],
            ulps(got[worst], want[worst]),
            bad[0],
            got[bad[0]],
            want[bad[0]],
        );
    }
}

/// A fixed, sign-alternating test vector.
fn test_x(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * if i % 3 == 0 { -1.0 } else { 1.0 }).collect()
}

/// `dot(ty, row, x)` agrees with `Σ want·x` (in f64) to a relative 1e-5 of `Σ|want·x|`.
fn assert_dot(what: &str, ty: GgmlType, row: &[u8], want: &[f32]) {
    let x = test_x(want.len());
    let got = dot(ty, row, &x).unwrap_or_else(|e| panic!("{what}: dot failed: {e}"));
    let exact: f64 = want.iter().zip(&x).map(|(w, x)| *w as f64 * *x as f64).sum();
    let scale: f64 = want.iter().zip(&x).map(|(w, x)| (*w as f64 * *x as f64).abs()).sum();
    let diff = (got as f64 - exact).abs();
    assert!(diff <= 1e-5 * scale, "{what}: dot {got:e}, want {exact:e} (|diff| {diff:e}, scale {scale:e})");
}

#[test]
fn dequantize_matches_gguf_py_for_every_type() {
    for name in DECODABLE {
        let ty = ty_named(name);
        let blocks = golden(&format!("dequant/{name}.blocks"));
        let want = golden_f32(&format!("dequant/{name}.f32"));
        let mut got = vec![0f32; want.len()];
        dequantize(ty, &blocks, &mut got).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_ulps(&format!("{name} dequantize"), &got, &want, 1);

        // Block by block, so a dot error points at the block.
        let (bs, ts) = (ty.block_size(), ty.type_size());
        let per_row = if bs == 1 { 32 } else { 1 }; // float types: rows of 32 elements
        for (r, (row, want)) in blocks.chunks(per_row * ts).zip(want.chunks(per_row * bs)).enumerate() {
            assert_dot(&format!("{name} row {r}"), ty, row, want);
        }
    }
}

#[test]
fn real_model_rows_match_gguf_py() {
    let bytes = default_model_bytes();
    let gguf = Gguf::parse(&bytes).expect("parse the default model");
    let manifest = String::from_utf8(golden("model_rows.tsv")).expect("model_rows.tsv is UTF-8");
    let values = golden_f32("model_rows.f32");
    let mut types_seen = Vec::new();
    for line in manifest.lines().filter(|l| !l.is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [name, ty_name, row, n, offset] = cols[..] else { panic!("model_rows.tsv: bad line {line:?}") };
        let (row, n, offset): (u64, usize, usize) =
            (row.parse().unwrap(), n.parse().unwrap(), offset.parse().unwrap());
        let info = gguf.tensor(name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(info.ty.name(), ty_name, "{name}: tensor type");
        assert_eq!(info.ne[0], n as u64, "{name}: row length");
        let row_bytes = info.ty.row_bytes(info.ne[0]).unwrap() as usize;
        let data = gguf.tensor_data(info);
        let bytes = &data[row as usize * row_bytes..][..row_bytes];
        let want = &values[offset..offset + n];

        let mut got = vec![0f32; n];
        dequantize(info.ty, bytes, &mut got).unwrap_or_else(|e| panic!("{name} row {row}: {e}"));
        assert_ulps(&format!("{name} ({ty_name}) row {row}"), &got, want, 1);
        assert_dot(&format!("{name} ({ty_name}) row {row}"), info.ty, bytes, want);
        types_seen.push(info.ty);
    }
    types_seen.dedup();
    for ty in [GgmlType::F32, GgmlType::Q4_1, GgmlType::Q8_0] {
        assert!(types_seen.contains(&ty), "model_rows.tsv has no {ty} tensor");
    }
}

#[test]
fn quantize_matches_gguf_py_bit_for_bit() {
    for name in QUANTIZABLE {
        let ty = ty_named(name);
        let x = golden_f32(&format!("quantize/{name}.in.f32"));
        let want = golden(&format!("quantize/{name}.bytes"));
        let got = quantize(ty, &x).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.len(), want.len(), "{name}: quantized byte count");
        let ts = ty.type_size();
        let bad: Vec<usize> =
            (0..got.len() / ts).filter(|&b| got[b * ts..][..ts] != want[b * ts..][..ts]).collect();
        if let Some(&b) = bad.first() {
            let bs = ty.block_size();
            panic!(
                "{name}: {} of {} blocks differ from gguf-py; first is block {b}\n  got  {:02x?}\n  want {:02x?}\n  \
                 input {:?}",
                bad.len(),
                got.len() / ts,
                &got[b * ts..][..ts],
                &want[b * ts..][..ts],
                &x[b * bs..][..bs],
            );
        }
    }
}
