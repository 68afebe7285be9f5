//! Unit tests of the integer matmul path: activation quantizers (`act.rs`) and `dot_quantized`
//! (`vecdot.rs`), against the f32 `dot` and against exact arithmetic where the data makes every
//! intermediate representable.

use half::f16;

use super::tests::{Rng, gaussian, random_blocks};
use super::*;
use crate::Error;

/// The weight types with an integer dot product.
const DOTTABLE: [GgmlType; 13] = {
    use GgmlType::*;
    [F32, F16, Bf16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2K, Q3K, Q4K, Q5K, Q6K]
};

fn acts_of(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    quantize_activations(ty, x, &mut out).unwrap();
    out
}

/// The activations `acts` encode, as f32.
fn dequantized_acts(ty: GgmlType, acts: &[u8]) -> Vec<f32> {
    let act = vec_dot_type(ty).unwrap();
    let mut x = vec![0f32; acts.len() / act.type_size() * act.block_size()];
    dequantize(act, acts, &mut x).unwrap();
    x
}

#[test]
fn vec_dot_types_are_ggmls() {
    use GgmlType::*;
    for (w, a) in [
        (F32, F32),
        (F16, F16),
        (Bf16, Bf16),
        (Q4_0, Q8_0),
        (Q5_0, Q8_0),
        (Q8_0, Q8_0),
        (Q4_1, Q8_1),
        (Q5_1, Q8_1),
        (Q2K, Q8K),
        (Q3K, Q8K),
        (Q4K, Q8K),
        (Q5K, Q8K),
        (Q6K, Q8K),
    ] {
        assert_eq!(vec_dot_type(w), Ok(a), "{w}");
    }
    for ty in [Iq4Nl, Q8_1, Q8K, Tq1_0, I8] {
        assert_eq!(vec_dot_type(ty), Err(Error::UnsupportedType { ty, op: "integer dot product" }));
    }
}

#[test]
fn activation_blocks_read_and_write_the_same_bytes() {
    let mut rng = Rng(11);
    for _ in 0..50 {
        let b: [u8; 36] = rng.bytes(36).try_into().unwrap();
        assert_eq!(BlockQ8_1::read(&b).write(), b);
        let b: [u8; 292] = rng.bytes(292).try_into().unwrap();
        assert_eq!(BlockQ8K::read(&b).write(), b);
    }
}

/// ggml's x86 Q8_0/Q8_1: `d = amax/127` as f16, levels `round_ties_even(x·127/amax)`, `s = d·Σq`.
#[test]
fn q8_activations_follow_ggml_x86() {
    let mut x = [0f32; 32];
    x[..6].copy_from_slice(&[127.0, 2.5, -2.5, 3.5, -0.5, 1.49]);
    x[31] = -126.6;
    let b = act::quantize_q8_0_act(&x);
    assert_eq!(b.d.to_f32(), 1.0);
    assert_eq!(&b.qs[..6], &[127, 2, -2, 4, 0, 1], "ties go to even");
    assert_eq!(b.qs[31], -127);
    let b1 = act::quantize_q8_1_act(&x);
    assert_eq!(b1.qs, b.qs);
    let sum: i32 = b.qs.iter().map(|&q| q as i32).sum();
    assert_eq!(b1.s, f16::from_f32(sum as f32), "s = d·Σq with d = 1");

    // A scale that f16 rounds: the levels use the exact 127/amax, `d` is stored rounded.
    let x: [f32; 32] = std::array::from_fn(|i| (i as f32 - 15.5) * 0.0123);
    let b = act::quantize_q8_0_act(&x);
    let amax = 15.5 * 0.0123f32;
    assert_eq!(b.d, f16::from_f32(amax / 127.0));
    for (i, &q) in b.qs.iter().enumerate() {
        assert_eq!(q as f32, (x[i] * (127.0 / amax)).round_ties_even(), "element {i}");
    }

    let zero = act::quantize_q8_1_act(&[0.0; 32]);
    assert_eq!((zero.d.to_f32(), zero.s.to_f32(), zero.qs), (0.0, 0.0, [0; 32]));
}

/// ggml's Q8_K: `iscale = -127/max` from the signed extreme, `d = 1/iscale`, 16-element sums.
#[test]
fn q8_k_activations_follow_ggml() {
    let mut rng = Rng(12);
    for sign in [1.0f32, -1.0] {
        let mut x: [f32; QK_K] = std::array::from_fn(|_| rng.gauss());
        x[77] = sign * 10.0; // the extreme
        let b = act::quantize_q8_k(&x);
        assert_eq!(b.d, 1.0 / (-127.0 / x[77]), "sign {sign}");
        assert_eq!(b.qs[77] as f32 * b.d, x[77]);
        for j in 0..16 {
            let want: i32 = b.qs[16 * j..16 * j + 16].iter().map(|&q| q as i32).sum();
            assert_eq!(b.bsums[j] as i32, want, "bsums[{j}]");
        }
        let mut y = [0f32; QK_K];
        b.dequantize(&mut y);
        let worst = y.iter().zip(&x).map(|(y, x)| (y - x).abs()).fold(0f32, f32::max);
        assert!(worst <= 0.5001 * 10.0 / 127.0, "sign {sign}: worst error {worst}");
    }
    let zero = act::quantize_q8_k(&[0.0; QK_K]);
    assert_eq!((zero.d, zero.qs, zero.bsums), (0.0, [0; QK_K], [0; 16]));
}

/// The output buffer is reused: a second call of the same size keeps its allocation.
#[test]
fn quantize_activations_reuses_the_buffer() {
    let x = gaussian(4 * QK_K, &mut Rng(13));
    for ty in DOTTABLE {
        let mut out = Vec::with_capacity(x.len() * 4);
        let ptr = out.as_ptr();
        quantize_activations(ty, &x, &mut out).unwrap();
        quantize_activations(ty, &x[..QK_K], &mut out).unwrap();
        let act = vec_dot_type(ty).unwrap();
        assert_eq!(out.len(), QK_K / act.block_size() * act.type_size(), "{ty}");
        assert_eq!(out.as_ptr(), ptr, "{ty}: reallocated");
    }
}

/// `dot_quantized` against the f32 `dot`: they differ by the activation rounding only. The bound
/// is rigorous: each activation moves by at most `0.6·amax/127` of its block for the Q8 formats
/// (half a level plus the f16 rounding of `d`), by a relative 2^-11 (f16) or 2^-8 (bf16) for the
/// float ones, plus f32 rounding of the sums.
#[test]
fn dot_quantized_matches_dot_within_activation_rounding() {
    let mut rng = Rng(14);
    for ty in DOTTABLE {
        let act = vec_dot_type(ty).unwrap();
        let counts: &[usize] = if ty.block_size() == 1 { &[32, 96, 288] } else { &[1, 3, 7] };
        for &n_blocks in counts {
            let n = n_blocks * ty.block_size();
            let rows = 5;
            let bytes = random_blocks(ty, rows * n_blocks, &mut rng);
            // Blocks of very different magnitudes, as real activations have.
            let x: Vec<f32> = gaussian(n, &mut rng)
                .iter()
                .enumerate()
                .map(|(i, v)| v * [1.0, 30.0, 0.01][i / 32 % 3])
                .collect();
            let acts = acts_of(ty, &x);
            let mut w = vec![0f32; rows * n];
            dequantize(ty, &bytes, &mut w).unwrap();
            let row_bytes = n_blocks * ty.type_size();
            for r in 0..rows {
                let row = &bytes[r * row_bytes..][..row_bytes];
                let got = dot_quantized(ty, row, &acts).unwrap() as f64;
                let want = dot(ty, row, &x).unwrap() as f64;
                let w = &w[r * n..][..n];
                let mut tol = 0f64;
                for (blk_w, blk_x) in w.chunks(act.block_size()).zip(x.chunks(act.block_size())) {
                    let amax = blk_x.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
                    for (&wi, &xi) in blk_w.iter().zip(blk_x) {
                        let dx = match act {
                            GgmlType::F32 => 0.0,
                            GgmlType::F16 => (xi as f64).abs() * 2f64.powi(-11) + 2f64.powi(-25),
                            GgmlType::Bf16 => (xi as f64).abs() * 2f64.powi(-8),
                            _ => 0.6 * amax / 127.0,
                        };
                        tol += (wi as f64).abs() * dx + 2e-5 * (wi as f64 * xi as f64).abs();
                    }
                }
                assert!(
                    (got - want).abs() <= tol + 1e-30,
                    "{ty} n={n} row {r}: dot_quantized {got} vs dot {want}: |diff| {:e} > bound {tol:e}",
                    (got - want).abs()
                );
            }
        }
    }
}

/// On data where every intermediate is representable — power-of-two weight scales, activation
/// blocks whose extreme is 127·2^-6 (so `d = 2^-6` and the levels are exact) and small levels — the
/// integer dot product must equal the exact dot product of the decoded weights and activations.
/// Any misplaced element, scale or min shows up as an inequality.
#[test]
fn dot_quantized_is_exact_on_representable_data() {
    let mut rng = Rng(15);
    for ty in DOTTABLE {
        let act = vec_dot_type(ty).unwrap();
        for n_blocks in [1, 2] {
            let n = n_blocks * ty.block_size().max(32);
            let mut row = representable_weights(ty, n / ty.block_size(), &mut rng);
            if ty == GgmlType::Q8_0 {
                // Keep the weight levels small too, so the block sums stay far below 2^24 units.
                for b in row.chunks_exact_mut(34) {
                    b[2..].iter_mut().for_each(|q| *q = (*q as i8 / 16) as u8);
                }
            }
            let mut x: Vec<f32> = (0..n).map(|_| ((rng.next_u64() % 17) as f32 - 8.0) / 64.0).collect();
            for (i, blk) in x.chunks_mut(act.block_size().max(32)).enumerate() {
                blk[i % blk.len()] = if i % 2 == 0 { 127.0 / 64.0 } else { -127.0 / 64.0 };
            }
            let acts = acts_of(ty, &x);
            assert_eq!(dequantized_acts(ty, &acts), x, "{ty}: activations are exact by construction");
            let mut w = vec![0f32; n];
            dequantize(ty, &row, &mut w).unwrap();
            let exact: f64 = w.iter().zip(&x).map(|(&a, &b)| a as f64 * b as f64).sum();
            let got = dot_quantized(ty, &row, &acts).unwrap();
            assert_eq!(got as f64, exact, "{ty} n={n}: dot_quantized {got} vs exact {exact}");
        }
    }
}

/// Random blocks of `ty` with every f16 scale (and min) a power of two, so the decoded weights are
/// small integers times a power of two.
fn representable_weights(ty: GgmlType, n_blocks: usize, rng: &mut Rng) -> Vec<u8> {
    use GgmlType::*;
    let mut b = random_blocks(ty, n_blocks, rng);
    let pow2 = |rng: &mut Rng| f16::from_f32(2f32.powi(-((rng.next_u64() % 4) as i32) - 2)).to_le_bytes();
    let fields: &[usize] = match ty {
        Q4_0 | Q5_0 | Q8_0 => &[0],
        Q4_1 | Q5_1 | Q4K | Q5K => &[0, 2],
        Q2K => &[80, 82],
        Q3K => &[108],
        Q6K => &[208],
        _ => &[],
    };
    for blk in b.chunks_exact_mut(ty.type_size()) {
        for &at in fields {
            let v = pow2(rng);
            blk[at..at + 2].copy_from_slice(&v);
        }
    }
    // Float weights: small multiples of 2^-6 (exact in f16 and bf16).
    let small = |rng: &mut Rng| ((rng.next_u64() % 33) as f32 - 16.0) / 64.0;
    match ty {
        F32 => b.chunks_exact_mut(4).for_each(|c| c.copy_from_slice(&small(rng).to_le_bytes())),
        F16 => {
            b.chunks_exact_mut(2).for_each(|c| c.copy_from_slice(&f16::from_f32(small(rng)).to_le_bytes()))
        }
        Bf16 => b.chunks_exact_mut(2).for_each(|c| c.copy_from_slice(&float::f32_to_bf16(small(rng)))),
        _ => {}
    }
    b
}

#[test]
fn dot_quantized_errors_name_the_problem() {
    use GgmlType::*;
    let x = vec![0.5f32; 64];
    let acts = acts_of(Q4_1, &x); // two Q8_1 blocks
    assert_eq!(
        dot_quantized(Q4_1, &[0; 20], &acts),
        Err(Error::LengthMismatch { what: "dot_quantized activations", expected: 32, got: 64 })
    );
    assert_eq!(
        dot_quantized(Q4_1, &[0; 21], &acts),
        Err(Error::PartialBlock { ty: Q4_1, len: 21, block_bytes: 20 })
    );
    assert_eq!(
        dot_quantized(Q4_1, &[0; 40], &acts[..35]),
        Err(Error::PartialBlock { ty: Q8_1, len: 35, block_bytes: 36 })
    );
    assert_eq!(
        dot_quantized(Iq4Nl, &[0; 18], &acts),
        Err(Error::UnsupportedType { ty: Iq4Nl, op: "integer dot product" })
    );
    let mut out = Vec::new();
    assert_eq!(
        quantize_activations(Q4K, &x, &mut out),
        Err(Error::PartialBlockElements { ty: Q8K, len: 64, block_elems: 256 })
    );
    assert_eq!(dot_quantized(Q4K, &[], &[]), Ok(0.0));
}

/// Any byte lengths, for every type, return a result instead of panicking.
#[test]
fn dot_quantized_never_panics() {
    let mut rng = Rng(16);
    for ty in GgmlType::ALL {
        for _ in 0..40 {
            let (n_row, n_acts) = ((rng.next_u64() % 700) as usize, (rng.next_u64() % 700) as usize);
            let (row, acts) = (rng.bytes(n_row), rng.bytes(n_acts));
            let _ = dot_quantized(ty, &row, &acts);
        }
    }
}
