//! aether's dot products against llama.cpp's own x86 AVX2 kernels, for the weight types of the
//! default model (Q4_1 with Q8_1 activations, Q8_0 with Q8_0), from
//! `tests/goldens/llama/vecdot_avx2.tsv` (`tests/scripts/make_vecdot_goldens.py` calls
//! `quantize_row_q8_*` and `ggml_vec_dot_*` of llama-cpp-python 0.3.36's CPU library directly):
//! the activation blocks must be ggml's byte for byte, and every result, from the reference and
//! from every kernel set this CPU has, ggml's f32 bit for bit. These kernels are where the
//! forward pass spends its time, and their summation order is what makes its logits llama.cpp's.

use aether_core::quant::simd::{self, Isa};
use aether_core::quant::{GgmlType, dot_quantized, quantize_activations};
use aether_tests::goldens_dir;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex")).collect()
}

struct Case {
    ty: GgmlType,
    cols: usize,
    x: Vec<f32>,
    acts: Vec<u8>,
    /// (weight row bytes, ggml's result)
    rows: Vec<(Vec<u8>, f32)>,
}

fn cases() -> Vec<Case> {
    let p = goldens_dir().join("llama").join("vecdot_avx2.tsv");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut cases: Vec<Case> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        match f[0] {
            "case" => {
                let ty = match f[1] {
                    "Q4_1" => GgmlType::Q4_1,
                    "Q8_0" => GgmlType::Q8_0,
                    other => panic!("unknown type {other}"),
                };
                let x = unhex(f[3])
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                cases.push(Case {
                    ty,
                    cols: f[2].parse().expect("cols"),
                    x,
                    acts: unhex(f[4]),
                    rows: Vec::new(),
                });
            }
            "row" => {
                let bits = u32::from_str_radix(f[2], 16).expect("result bits");
                cases.last_mut().expect("a case first").rows.push((unhex(f[1]), f32::from_bits(bits)));
            }
            other => panic!("unknown line kind {other}"),
        }
    }
    assert!(!cases.is_empty(), "{}: no cases", p.display());
    cases
}

#[test]
fn activations_and_dots_are_ggmls_bit_for_bit() {
    let mut failures = String::new();
    for c in cases() {
        let mut acts = Vec::new();
        quantize_activations(c.ty, &c.x, &mut acts).expect("quantize");
        if acts != c.acts {
            let at = acts.iter().zip(&c.acts).position(|(a, b)| a != b).unwrap_or(0);
            failures +=
                &format!("  {} × {}: activation bytes differ from ggml's at byte {at}\n", c.ty, c.cols);
            continue;
        }
        for (i, (row, want)) in c.rows.iter().enumerate() {
            let got = dot_quantized(c.ty, row, &acts).expect("dot");
            if got.to_bits() != want.to_bits() {
                failures += &format!(
                    "  {} × {} row {i}: reference {got:e} vs ggml {want:e} ({} ulp)\n",
                    c.ty,
                    c.cols,
                    (got.to_bits() as i64 - want.to_bits() as i64).abs()
                );
            }
        }
        let rows: Vec<u8> = c.rows.iter().flat_map(|(r, _)| r.iter().copied()).collect();
        for isa in Isa::available() {
            let mut prepared = Vec::new();
            simd::prepare_activations(isa, c.ty, &c.x, &mut prepared).expect("prepare");
            let mut got = vec![f32::NAN; c.rows.len()];
            simd::dot_rows(isa, c.ty, &rows, c.cols, &prepared, 1, &mut got).expect("dot_rows");
            for (i, (g, (_, want))) in got.iter().zip(&c.rows).enumerate() {
                if g.to_bits() != want.to_bits() {
                    failures += &format!(
                        "  {} × {} row {i}, {} kernels: {g:e} vs ggml {want:e}\n",
                        c.ty,
                        c.cols,
                        isa.name()
                    );
                }
            }
        }
    }
    assert!(failures.is_empty(), "dot products differ from llama.cpp's AVX2 kernels:\n{failures}");
}
