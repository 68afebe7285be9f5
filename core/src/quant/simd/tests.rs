//! Every kernel set against the scalar reference, bit for bit: activation bytes against
//! `quantize_activations`, `dot_rows` against `dot_quantized`. The sets tried are those this CPU
//! has (`Isa::available`), so the scalar path is always covered, the AVX2 one wherever the tests
//! run on an AVX2 machine, and the simd128 one in the wasm32-wasip1 build with simd128
//! (`scripts/test-wasm-simd.sh`; the note printed says which ran).

use super::super::tests::{Rng, gaussian, random_blocks};
use super::*;
use crate::quant::QK_K;

/// The weight types with an integer dot product.
const TYPES: [GgmlType; 13] = {
    use GgmlType::*;
    [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2K, Q3K, Q4K, Q5K, Q6K, F32, F16, Bf16]
};

fn sets() -> Vec<Isa> {
    let sets = Isa::available();
    eprintln!("kernel sets tested: {:?}", sets.iter().map(|i| i.name()).collect::<Vec<_>>());
    sets
}

/// Activations like a transformer's: most blocks near 1, some large, some tiny, a few outliers.
fn activations(n: usize, rng: &mut Rng) -> Vec<f32> {
    gaussian(n, rng)
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let scale = [1.0, 30.0, 0.01, 1e-3][i / 32 % 4];
            if rng.next_u64().is_multiple_of(97) { v * 1e3 } else { v * scale }
        })
        .collect()
}

/// The reference bytes with `isa`'s layout applied: Q8_K chunks reordered and, for Q8_0/Q8_1, the
/// table of (d, s) as f32 appended by every set but the reference.
fn expected_layout(isa: Isa, ty: GgmlType, reference: &[u8]) -> Vec<u8> {
    let mut want = reference.to_vec();
    #[cfg(target_arch = "x86_64")]
    if isa.0 == Level::Avx2 {
        let act = vec_dot_type(ty).unwrap();
        if act == GgmlType::Q8K {
            for (blk, src) in want.chunks_exact_mut(292).zip(reference.chunks_exact(292)) {
                for c in 0..8 {
                    for pos in 0..32 {
                        blk[4 + 32 * c + pos] = src[4 + 32 * c + super::x86::permute32_source(pos)];
                    }
                }
            }
        }
    }
    if isa != Isa::SCALAR {
        let act = vec_dot_type(ty).unwrap();
        if matches!(act, GgmlType::Q8_0 | GgmlType::Q8_1) {
            for blk in reference.chunks_exact(act.type_size()) {
                let f = |at: usize| half::f16::from_le_bytes([blk[at], blk[at + 1]]).to_f32();
                let s = if act == GgmlType::Q8_1 { f(2) } else { 0.0 };
                want.extend_from_slice(&f(0).to_le_bytes());
                want.extend_from_slice(&s.to_le_bytes());
            }
        }
    }
    want
}

fn check_activations(isa: Isa, ty: GgmlType, x: &[f32], what: &str) {
    let mut reference = Vec::new();
    quantize_activations(ty, x, &mut reference).unwrap();
    let mut got = Vec::with_capacity(x.len() * 4);
    prepare_activations(isa, ty, x, &mut got).unwrap();
    let want = expected_layout(isa, ty, &reference);
    if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
        let act = vec_dot_type(ty).unwrap();
        panic!(
            "{} {ty} ({act}) activations, {what}: byte {i} (block {}, offset {}) is {} , reference {}",
            isa.name(),
            i / act.type_size(),
            i % act.type_size(),
            got[i],
            want[i]
        );
    }
    assert_eq!(got.len(), want.len(), "{} {ty} {what}: length", isa.name());
}

#[test]
fn activations_match_the_reference_bytes() {
    let mut rng = Rng(31);
    for isa in sets() {
        for ty in TYPES {
            for n in [QK_K, 4 * QK_K] {
                let x = activations(n, &mut rng);
                check_activations(isa, ty, &x, "gaussian");
            }
        }
    }
}

/// Inputs at the edges of the conversions: exact ties, zeros, signed extremes tied in magnitude,
/// NaN and infinities, blocks so small that the inverse scale overflows, huge values.
#[test]
fn activations_match_the_reference_on_edge_cases() {
    let mut rng = Rng(32);
    let mut cases: Vec<(&str, Vec<f32>)> =
        vec![
            ("zeros", vec![0.0; QK_K]),
            ("negative zeros", vec![-0.0; QK_K]),
            ("ties", (0..QK_K).map(|i| (i % 64) as f32 - 31.5).collect()),
            (
                "tied extremes",
                (0..QK_K)
                    .map(|i| {
                        if i % 7 == 3 { 127.0 * if i % 2 == 0 { 1.0 } else { -1.0 } } else { i as f32 * 0.37 }
                    })
                    .collect(),
            ),
            (
                "subnormal",
                (0..QK_K)
                    .map(|i| f32::from_bits(1 + (i as u32 % 5)) * if i % 3 == 0 { -1.0 } else { 1.0 })
                    .collect(),
            ),
            ("huge", (0..QK_K).map(|i| (i as f32 - 100.0) * 1e36).collect()),
        ];
    let mut special = activations(QK_K, &mut rng);
    special[5] = f32::NAN;
    special[40] = f32::INFINITY;
    special[77] = f32::NEG_INFINITY;
    special[130] = -f32::NAN;
    cases.push(("nan and inf", special));
    let mut nan_block = activations(QK_K, &mut rng);
    nan_block[..32].fill(f32::NAN);
    cases.push(("a NaN block", nan_block));
    for isa in sets() {
        for ty in TYPES {
            for (what, x) in &cases {
                check_activations(isa, ty, x, what);
            }
        }
    }
}

/// `dot_rows` must equal `dot_quantized` bit for bit for every row and token, across row counts
/// that leave partial groups of eight and token counts that leave partial groups of four.
#[test]
fn dot_rows_matches_dot_quantized_bit_for_bit() {
    let mut rng = Rng(33);
    for isa in sets() {
        for ty in TYPES {
            let bs = ty.block_size().max(32);
            let col_counts: &[usize] =
                if bs == QK_K { &[QK_K, 3 * QK_K, 9 * QK_K] } else { &[32, 96, 576, 1536] };
            for &cols in col_counts {
                for (n_rows, n_tok) in [(1, 1), (8, 1), (13, 2), (17, 5), (24, 4), (3, 9), (9, 19)] {
                    let row_bytes = cols / ty.block_size() * ty.type_size();
                    let rows = random_blocks(ty, n_rows * row_bytes / ty.type_size(), &mut rng);
                    let x = activations(n_tok * cols, &mut rng);
                    let mut reference = Vec::new();
                    quantize_activations(ty, &x, &mut reference).unwrap();
                    let mut acts = Vec::new();
                    prepare_activations(isa, ty, &x, &mut acts).unwrap();
                    let mut got = vec![f32::NAN; n_rows * n_tok];
                    dot_rows(isa, ty, &rows, cols, &acts, n_tok, &mut got).unwrap();
                    let act_row = reference.len() / n_tok;
                    for r in 0..n_rows {
                        for t in 0..n_tok {
                            let want = dot_quantized(
                                ty,
                                &rows[r * row_bytes..][..row_bytes],
                                &reference[t * act_row..][..act_row],
                            )
                            .unwrap();
                            let g = got[r * n_tok + t];
                            assert!(
                                g.to_bits() == want.to_bits(),
                                "{} {ty} cols {cols}, {n_rows} rows × {n_tok} tokens: row {r} token {t}: {g:e} vs \
                                 reference {want:e} ({:e} apart)",
                                isa.name(),
                                g - want
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Random bytes everywhere in the weights — NaN and infinite scales, Q8_0 levels of -128 — still
/// give the reference's result (NaN where it has NaN).
#[test]
fn dot_rows_matches_on_arbitrary_weight_bytes() {
    let mut rng = Rng(34);
    for isa in sets() {
        for ty in TYPES {
            let cols = ty.block_size().max(32) * 4;
            let (n_rows, n_tok) = (11, 3);
            let row_bytes = cols / ty.block_size() * ty.type_size();
            let rows = rng.bytes(n_rows * row_bytes);
            let x = activations(n_tok * cols, &mut rng);
            let mut reference = Vec::new();
            quantize_activations(ty, &x, &mut reference).unwrap();
            let mut acts = Vec::new();
            prepare_activations(isa, ty, &x, &mut acts).unwrap();
            let mut got = vec![0f32; n_rows * n_tok];
            dot_rows(isa, ty, &rows, cols, &acts, n_tok, &mut got).unwrap();
            let act_row = reference.len() / n_tok;
            for r in 0..n_rows {
                for t in 0..n_tok {
                    let want = dot_quantized(
                        ty,
                        &rows[r * row_bytes..][..row_bytes],
                        &reference[t * act_row..][..act_row],
                    )
                    .unwrap();
                    let g = got[r * n_tok + t];
                    assert!(
                        g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                        "{} {ty}: row {r} token {t}: {g:e} vs reference {want:e}",
                        isa.name()
                    );
                }
            }
        }
    }
}

#[test]
fn dot_rows_checks_lengths() {
    use GgmlType::*;
    let isa = Isa::SCALAR;
    let mut acts = Vec::new();
    prepare_activations(isa, Q4_1, &[0.5; 64], &mut acts).unwrap();
    let mut out = [0f32; 2];
    assert_eq!(
        dot_rows(isa, Q4_1, &[0; 40], 64, &acts, 1, &mut out),
        Err(Error::LengthMismatch { what: "dot_rows weight bytes", expected: 80, got: 40 })
    );
    assert_eq!(
        dot_rows(isa, Q4_1, &[0; 80], 64, &acts[..36], 1, &mut out),
        Err(Error::LengthMismatch { what: "dot_rows activation bytes", expected: 72, got: 36 })
    );
    assert_eq!(
        dot_rows(isa, Q4_1, &[0; 80], 48, &acts, 1, &mut out),
        Err(Error::PartialBlockElements { ty: Q4_1, len: 48, block_elems: 32 })
    );
    assert_eq!(
        dot_rows(isa, Iq4Nl, &[0; 36], 64, &acts, 1, &mut out),
        Err(Error::UnsupportedType { ty: Iq4Nl, op: "integer dot product" })
    );
    // Every set rejects activations cut short, whatever it appends.
    for isa in Isa::available() {
        let mut acts = Vec::new();
        prepare_activations(isa, Q4_1, &[0.5; 64], &mut acts).unwrap();
        let cut = &acts[..acts.len() - 1];
        assert!(
            matches!(dot_rows(isa, Q4_1, &[0; 80], 64, cut, 1, &mut out), Err(Error::LengthMismatch { .. })),
            "{}",
            isa.name()
        );
    }
}

#[test]
fn selection_defaults_to_the_best_and_can_be_named() {
    assert_eq!(Isa::by_name("scalar"), Some(Isa::SCALAR));
    assert_eq!(Isa::by_name("no-such-set"), None);
    assert_eq!(Isa::available().first(), Some(&Isa::SCALAR));
    assert!(Isa::available().contains(&Isa::best()));
}

#[cfg(target_arch = "x86_64")]
#[test]
fn permute32_puts_each_element_where_its_twin_says() {
    if !Isa::available().iter().any(|i| i.0 == Level::Avx2) {
        eprintln!("no AVX2: skipped");
        return;
    }
    let src: [u8; 32] = std::array::from_fn(|i| i as u8);
    let mut got = [0u8; 32];
    // SAFETY: AVX2 detected above; both buffers are 32 bytes.
    unsafe {
        use std::arch::x86_64::*;
        let v = super::x86::load256(src.as_ptr());
        let p = avx2_permute(v);
        _mm256_storeu_si256(got.as_mut_ptr() as *mut __m256i, p);
    }
    for (pos, &e) in got.iter().enumerate() {
        assert_eq!(e as usize, super::x86::permute32_source(pos), "position {pos}");
    }
    // Each adjacent pair is (e, e + 8) of one 16-element group, lanes 0..8 in pair order per half.
    for k in 0..16 {
        let (a, b) = (got[2 * k] as usize, got[2 * k + 1] as usize);
        assert_eq!((b - a, a / 16, a % 8), (8, k % 2, k / 2 % 4 + 4 * (k / 8)), "pair {k}");
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn avx2_permute(v: std::arch::x86_64::__m256i) -> std::arch::x86_64::__m256i {
    super::x86::permute32(v)
}

/// Attention's f16 products: every set equals the reference's lanes (`F16Lanes`), on data whose
/// f32 lane sums depend on the order — products of ±2^15 that cancel among products of 2^-20 that
/// survive only when added to a small partial sum — with lengths, row counts and first cells that
/// leave partial steps at both ends.
#[test]
fn dot_f16_rows_matches_the_reference_lanes() {
    use half::f16;
    let mut rng = Rng(35);
    let (big, tiny) = (2f32.powi(15), 2f32.powi(-20));
    for isa in sets() {
        for (n, n_rows, stride, first) in [
            (64, 9, 192, 0),
            (6, 3, 6, 0),
            (8, 8, 8, 5),
            (38, 17, 40, 0),
            (38, 17, 40, 31),
            (128, 24, 130, 7),
            (100, 5, 100, 32),
            (2, 1, 2, 30),
            (0, 2, 4, 3),
        ] {
            let pick = |r: u64, b: f32| if r.is_multiple_of(2) { b } else { tiny };
            let x: Vec<f32> = (0..n).map(|_| pick(rng.next_u64(), big)).collect();
            let m: Vec<f16> = (0..(n_rows - 1) * stride + n)
                .map(|_| {
                    let sign = if rng.next_u64().is_multiple_of(2) { 1.0 } else { -1.0 };
                    f16::from_f32(sign * pick(rng.next_u64(), 1.0))
                })
                .collect();
            let mut got = vec![f32::NAN; n_rows];
            dot_f16_rows(isa, &x, &m, stride, first, &mut got).unwrap();
            for (j, &g) in got.iter().enumerate() {
                let mut lanes = F16Lanes::default();
                for (i, &xi) in x.iter().enumerate() {
                    lanes.add(first + i, xi * m[j * stride + i].to_f32());
                }
                let want = lanes.reduce();
                assert!(
                    g.to_bits() == want.to_bits(),
                    "{} n {n} rows {n_rows} first {first}: row {j}: {g:e} vs reference {want:e}",
                    isa.name()
                );
            }
        }
        let mut out = [0f32; 2];
        assert_eq!(
            dot_f16_rows(isa, &[1.0; 4], &[f16::ONE; 7], 4, 0, &mut out),
            Err(Error::LengthMismatch { what: "dot_f16_rows matrix", expected: 8, got: 7 })
        );
    }
}

/// The reference lanes are ggml's AVX2 order: lane i % 32, registers paired (0+2)+(1+3), the
/// halves added, then two horizontal adds.
#[test]
fn f16_lanes_reduce_in_ggml_order() {
    let mut lanes = F16Lanes::default();
    let v: Vec<f32> = (0..32).map(|i| if i % 5 == 0 { 1e8 } else { 1.0 + i as f32 }).collect();
    for (i, &x) in v.iter().enumerate() {
        lanes.add(i + 64, x);
    }
    let x: Vec<f32> = (0..8).map(|l| (v[l] + v[16 + l]) + (v[8 + l] + v[24 + l])).collect();
    let want = ((x[0] + x[4]) + (x[1] + x[5])) + ((x[2] + x[6]) + (x[3] + x[7]));
    assert_eq!(lanes.reduce(), want);
}

/// simd128's fused multiply-add through f64 (`wasm::fma_lanes`, `wasm::fma_f32`) against
/// `mul_add`: an exact tie (1 + 2^-23)·3 that must round to even; a sum 1 + 2^-24 + 2^-60 that f64
/// rounds to the f32 halfway point 1 + 2^-24, where rounding again to f32 would give 1 but the
/// fused result is 1 + 2^-23 (d·s = (2^36 + 1)·2^-60 with d = 241·38737·2^-60, s = 17·433); and
/// 1 + 2^-23 + 2^-24 − 2^-60, which must round down to 1 + 2^-23, not to the even 1 + 2^-22
/// (d·s = (2^36 − 1)·2^-60, s = 4161).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[test]
fn wasm_fma_rounds_once_at_halfway_sums() {
    use super::wasm::{ZERO_LANES, fma_f32, fma_lanes, lanes_f32};
    use core::arch::wasm32::*;
    let d_tie = 1.0 + f32::EPSILON;
    let d_far = 9_335_617.0 * 2f32.powi(-60);
    let d_below = 16_515_135.0 * 2f32.powi(-60);
    let cases: [(f32, f32, i32); 6] = [
        (0.0, d_tie, 3),
        (1.0, d_far, 7361),
        (-1.0, -d_far, 7361),
        (1.0 + f32::EPSILON, d_below, 4161),
        (-1.0 - f32::EPSILON, d_below, -4161),
        (0.5, 0.75, -3),
    ];
    for (c, d, s) in cases {
        let want = d.mul_add(s as f32, c);
        assert_eq!(fma_f32(d, s as f32, c).to_bits(), want.to_bits(), "fma_f32({d:e}, {s}, {c:e})");
        let mut acc = ZERO_LANES;
        acc[1] = f64x2(c as f64, 0.0);
        fma_lanes(&mut acc, d, [i32x4_splat(s), i32x4_splat(s)]);
        let got = lanes_f32(&acc);
        assert_eq!(
            got[2].to_bits(),
            want.to_bits(),
            "fma_lanes lane 2: {:e} vs {want:e} (c {c:e}, d {d:e}, s {s})",
            got[2]
        );
        assert_eq!(got[0].to_bits(), (d * s as f32).to_bits(), "fma_lanes lane 0 (from 0)");
    }
    // Without the halfway check, the second case goes wrong: the f64 sum rounded to f32 is 1.
    assert_eq!((1.0f64 + d_far as f64 * 7361.0) as f32, 1.0);
    assert_eq!(d_far.mul_add(7361.0, 1.0), 1.0 + f32::EPSILON);
    let odd = 1.0 + f32::EPSILON;
    assert_eq!((odd as f64 + d_below as f64 * 4161.0) as f32, odd + f32::EPSILON);
    assert_eq!(d_below.mul_add(4161.0, odd), odd);
}

/// Every f16 bit pattern (subnormals, infinities, NaNs included) through `dot_f16_rows`: rows of
/// 40 copies of one value times ones, from cell 3 (a head, one whole step, a tail), against the
/// reference lanes.
#[test]
fn dot_f16_rows_converts_every_f16() {
    use half::f16;
    let (n, first) = (40, 3);
    let m: Vec<f16> = (0..=u16::MAX).flat_map(|h| std::iter::repeat_n(f16::from_bits(h), n)).collect();
    let x = vec![1f32; n];
    for isa in sets() {
        let mut got = vec![0f32; 1 << 16];
        dot_f16_rows(isa, &x, &m, n, first, &mut got).unwrap();
        for (h, &g) in got.iter().enumerate() {
            let mut lanes = F16Lanes::default();
            for i in 0..n {
                lanes.add(first + i, f16_bits_to_f32(h as u16));
            }
            let want = lanes.reduce();
            assert!(
                g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                "{} f16 bits {h:#06x}: {g:e} vs reference {want:e}",
                isa.name()
            );
        }
    }
}
