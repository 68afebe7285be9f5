//! Unit tests of the quant layer: dot against dequantize, quantize round trips (NMSE bounds),
//! block packing, and the error paths. Decoding itself is checked bit for bit against gguf-py in
//! `tests/tests/quant_goldens.rs`.

use half::f16;

use super::*;
use crate::Error;

/// The types this layer decodes.
const DECODABLE: [GgmlType; 15] = {
    use GgmlType::*;
    [F32, F16, Bf16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2K, Q3K, Q4K, Q5K, Q6K, Q8K]
};

/// splitmix64: small, seedable, good enough for test data.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(super) fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Standard normal (Box–Muller).
    pub(super) fn gauss(&mut self) -> f32 {
        let u1 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let u2 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }

    pub(super) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Byte offsets of the f16 scale fields in one block of `ty`.
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    use GgmlType::*;
    match ty {
        Q4_0 | Q5_0 | Q8_0 => &[0],
        Q4_1 | Q5_1 | Q8_1 | Q4K | Q5K => &[0, 2],
        Q2K => &[80, 82],
        Q3K => &[108],
        Q6K => &[208],
        _ => &[],
    }
}

/// `n_blocks` random blocks of `ty` whose scales (or float values) are finite and moderate.
pub(super) fn random_blocks(ty: GgmlType, n_blocks: usize, rng: &mut Rng) -> Vec<u8> {
    let mut b = rng.bytes(n_blocks * ty.type_size());
    let moderate = |rng: &mut Rng| (rng.uniform() * 2.0 - 1.0) * 0.1;
    match ty {
        GgmlType::F32 => {
            for c in b.chunks_exact_mut(4) {
                c.copy_from_slice(&(moderate(rng) * 10.0).to_le_bytes());
            }
        }
        GgmlType::F16 => {
            b.chunks_exact_mut(2).for_each(|c| c.copy_from_slice(&float::f32_to_f16(moderate(rng))))
        }
        GgmlType::Bf16 => {
            b.chunks_exact_mut(2).for_each(|c| c.copy_from_slice(&float::f32_to_bf16(moderate(rng))))
        }
        GgmlType::Q8K => {
            for blk in b.chunks_exact_mut(ty.type_size()) {
                blk[..4].copy_from_slice(&moderate(rng).to_le_bytes());
            }
        }
        _ => {
            for blk in b.chunks_exact_mut(ty.type_size()) {
                for &at in f16_fields(ty) {
                    blk[at..at + 2].copy_from_slice(&f16::from_f32(moderate(rng)).to_le_bytes());
                }
            }
        }
    }
    b
}

pub(super) fn gaussian(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| rng.gauss()).collect()
}

/// Σ(got - want)² / Σwant².
fn nmse(got: &[f32], want: &[f32]) -> f64 {
    let err: f64 = got.iter().zip(want).map(|(g, w)| (*g as f64 - *w as f64).powi(2)).sum();
    let norm: f64 = want.iter().map(|w| (*w as f64).powi(2)).sum();
    err / norm
}

#[test]
fn block_structs_have_ggml_sizes() {
    // The const asserts in legacy.rs/kquants.rs pin these at compile time; this repeats them
    // where a reader of the tests looks for them.
    use GgmlType::*;
    for (ty, size) in [
        (Q4_0, size_of::<BlockQ4_0>()),
        (Q4_1, size_of::<BlockQ4_1>()),
        (Q5_0, size_of::<BlockQ5_0>()),
        (Q5_1, size_of::<BlockQ5_1>()),
        (Q8_0, size_of::<BlockQ8_0>()),
        (Q2K, size_of::<BlockQ2K>()),
        (Q3K, size_of::<BlockQ3K>()),
        (Q4K, size_of::<BlockQ4K>()),
        (Q5K, size_of::<BlockQ5K>()),
        (Q6K, size_of::<BlockQ6K>()),
    ] {
        assert_eq!(size, ty.type_size(), "{ty}");
    }
}

#[test]
fn blocks_read_and_write_the_same_bytes() {
    let mut rng = Rng(1);
    for _ in 0..50 {
        macro_rules! check {
            ($T:ty, $n:literal) => {
                let b: [u8; $n] = rng.bytes($n).try_into().unwrap();
                assert_eq!(<$T>::read(&b).write(), b, stringify!($T));
            };
        }
        check!(BlockQ4_0, 18);
        check!(BlockQ4_1, 20);
        check!(BlockQ5_0, 22);
        check!(BlockQ5_1, 24);
        check!(BlockQ8_0, 34);
        check!(BlockQ2K, 84);
        check!(BlockQ3K, 110);
        check!(BlockQ4K, 144);
        check!(BlockQ5K, 176);
        check!(BlockQ6K, 210);
    }
}

#[test]
fn scale_min_k4_packing_round_trips() {
    let mut rng = Rng(2);
    for _ in 0..200 {
        let sc: [u8; 8] = std::array::from_fn(|_| (rng.next_u64() % 64) as u8);
        let m: [u8; 8] = std::array::from_fn(|_| (rng.next_u64() % 64) as u8);
        let packed = kquants::pack_scale_min_k4(&sc, &m);
        for j in 0..8 {
            assert_eq!(kquants::scale_min_k4(&packed, j), (sc[j], m[j]), "sub-block {j} of {sc:?} {m:?}");
        }
    }
}

/// Packing levels with `from_levels` and decoding gives `d*sc*q - dmin*m` element by element.
#[test]
fn kquant_levels_pack_where_the_decoder_reads_them() {
    let mut rng = Rng(3);
    for _ in 0..20 {
        let d = f16::from_f32(rng.uniform() + 0.01);
        let dmin = f16::from_f32(rng.uniform());
        let sc: [u8; 8] = std::array::from_fn(|_| (rng.next_u64() % 64) as u8);
        let m: [u8; 8] = std::array::from_fn(|_| (rng.next_u64() % 64) as u8);
        let q: [u8; 256] = std::array::from_fn(|_| (rng.next_u64() % 32) as u8);
        let want =
            |e: usize, q: u8| (d.to_f32() * sc[e / 32] as f32) * q as f32 - dmin.to_f32() * m[e / 32] as f32;

        let mut y = [0f32; 256];
        BlockQ5K::from_levels(d, dmin, &sc, &m, &q).dequantize(&mut y);
        for e in 0..256 {
            assert_eq!(y[e], want(e, q[e]), "q5_K element {e}");
        }
        let q4 = q.map(|q| q & 15);
        BlockQ4K::from_levels(d, dmin, &sc, &m, &q4).dequantize(&mut y);
        for e in 0..256 {
            assert_eq!(y[e], want(e, q4[e]), "q4_K element {e}");
        }

        let sc6: [i8; 16] = std::array::from_fn(|_| rng.next_u64() as i8);
        let q6: [u8; 256] = std::array::from_fn(|_| (rng.next_u64() % 64) as u8);
        BlockQ6K::from_levels(d, &sc6, &q6).dequantize(&mut y);
        for e in 0..256 {
            let want = (d.to_f32() * sc6[e / 16] as f32) * (q6[e] as i32 - 32) as f32;
            assert_eq!(y[e], want, "q6_K element {e}");
        }
    }
}

#[test]
fn dot_matches_dequantize_then_multiply() {
    let mut rng = Rng(4);
    for ty in DECODABLE {
        // Odd block counts; for the float types (block of 1) also lengths that leave a tail.
        let counts: &[usize] = if ty.block_size() == 1 { &[1, 7, 31, 33, 100, 257] } else { &[1, 3, 7, 13] };
        for &n_blocks in counts {
            let n = n_blocks * ty.block_size();
            let rows = 5; // an odd number of rows of one matrix, dotted one by one
            let bytes = random_blocks(ty, rows * n_blocks, &mut rng);
            let x = gaussian(n, &mut rng);
            let mut w = vec![0f32; rows * n];
            dequantize(ty, &bytes, &mut w).unwrap();
            let row_bytes = n_blocks * ty.type_size();
            for r in 0..rows {
                let got = dot(ty, &bytes[r * row_bytes..][..row_bytes], &x).unwrap();
                let w = &w[r * n..][..n];
                let want: f64 = w.iter().zip(&x).map(|(a, b)| *a as f64 * *b as f64).sum();
                let scale: f64 = w.iter().zip(&x).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
                let tol = 1e-5 * scale + 1e-30;
                assert!(
                    (got as f64 - want).abs() <= tol,
                    "{ty} n={n} row {r}: dot {got} vs dequantize·x {want} (|diff| {:e} > {tol:e})",
                    (got as f64 - want).abs()
                );
            }
        }
    }
}

/// Round trip quantize → dequantize on N(0, 1) data. The data is seeded, so the bounds sit ~20%
/// above the measured NMSE (noted beside each) and a regression in a quantizer shows up. For
/// scale: ggml's reference K-quant quantizers measure 5.07e-3 (Q4_K), 1.30e-3 (Q5_K) and
/// 3.17e-4 (Q6_K) on the same distribution.
#[test]
fn quantize_round_trip_nmse() {
    use GgmlType::*;
    let mut rng = Rng(5);
    let x = gaussian(64 * QK_K, &mut rng);
    for (ty, bound) in [
        (F32, 0.0),
        (F16, 5e-8),     // 4.25e-8
        (Bf16, 3.3e-6),  // 2.76e-6
        (Q8_0, 3.5e-5),  // 2.90e-5
        (Q5_1, 1.75e-3), // 1.45e-3
        (Q5_0, 2.2e-3),  // 1.85e-3
        (Q4_1, 7.4e-3),  // 6.17e-3
        (Q4_0, 9e-3),    // 7.45e-3
        (Q6K, 3.8e-4),   // 3.13e-4
        (Q5K, 1.5e-3),   // 1.23e-3
        (Q4K, 6e-3),     // 4.98e-3
    ] {
        let q = quantize(ty, &x).unwrap();
        assert_eq!(q.len(), x.len() / ty.block_size() * ty.type_size(), "{ty} byte count");
        let mut y = vec![0f32; x.len()];
        dequantize(ty, &q, &mut y).unwrap();
        let e = nmse(&y, &x);
        eprintln!("{ty}: round-trip NMSE {e:.3e}");
        assert!(e <= bound, "{ty}: round-trip NMSE {e:.3e} exceeds {bound:e}");
    }
}

#[test]
fn quantize_handles_flat_and_zero_blocks() {
    use GgmlType::*;
    for ty in [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4K, Q5K, Q6K] {
        let n = ty.block_size() * 2;
        for (what, x) in [
            ("zeros", vec![0f32; n]),
            ("constant", vec![0.75f32; n]),
            ("negative constant", vec![-0.75f32; n]),
            ("one spike", (0..n).map(|i| if i == 5 { 3.0 } else { 0.0 }).collect()),
        ] {
            let q = quantize(ty, &x).unwrap();
            let mut y = vec![0f32; n];
            dequantize(ty, &q, &mut y).unwrap();
            let worst = y.iter().zip(&x).map(|(y, x)| (y - x).abs()).fold(0f32, f32::max);
            // A lone value or a constant is representable to within one f16 rounding of the scale.
            assert!(worst <= 0.01, "{ty} {what}: worst abs error {worst}, got {:?}", &y[..8]);
        }
    }
}

#[test]
fn length_errors_name_the_problem() {
    use GgmlType::*;
    let mut out = [0f32; 64];
    assert_eq!(
        dequantize(Q4_0, &[0; 19], &mut out[..32]),
        Err(Error::PartialBlock { ty: Q4_0, len: 19, block_bytes: 18 })
    );
    assert_eq!(
        dequantize(F32, &[0; 6], &mut out[..1]),
        Err(Error::PartialBlock { ty: F32, len: 6, block_bytes: 4 })
    );
    assert_eq!(
        dequantize(Q4_0, &[0; 18], &mut out[..33]),
        Err(Error::LengthMismatch { what: "dequantize output", expected: 32, got: 33 })
    );
    assert_eq!(dot(Q6K, &[0; 209], &out), Err(Error::PartialBlock { ty: Q6K, len: 209, block_bytes: 210 }));
    assert_eq!(
        dot(Q8_0, &[0; 34], &out),
        Err(Error::LengthMismatch { what: "dot input x", expected: 32, got: 64 })
    );
    assert_eq!(
        dot(F16, &[0; 6], &out[..2]),
        Err(Error::LengthMismatch { what: "dot input x", expected: 3, got: 2 })
    );
    assert_eq!(quantize(Q4K, &out), Err(Error::PartialBlockElements { ty: Q4K, len: 64, block_elems: 256 }));
    // Empty input is zero whole blocks.
    assert_eq!(dequantize(Q4K, &[], &mut []), Ok(()));
    assert_eq!(dot(Q4K, &[], &[]), Ok(0.0));
    assert_eq!(quantize(Q8_0, &[]), Ok(vec![]));
}

#[test]
fn unsupported_types_are_errors() {
    for ty in GgmlType::ALL {
        let decodable = DECODABLE.contains(&ty);
        let bytes = vec![0u8; ty.type_size()];
        let mut out = vec![0f32; ty.block_size()];
        let r = dequantize(ty, &bytes, &mut out);
        assert_eq!(r.is_ok(), decodable, "{ty} dequantize: {r:?}");
        if !decodable {
            assert_eq!(r, Err(Error::UnsupportedType { ty, op: "dequantize" }));
            assert_eq!(dot(ty, &bytes, &out), Err(Error::UnsupportedType { ty, op: "dot" }));
        }
    }
    for ty in [GgmlType::Q2K, GgmlType::Q3K, GgmlType::Iq4Xs, GgmlType::Q8K, GgmlType::I8] {
        let x = vec![0f32; ty.block_size()];
        assert_eq!(quantize(ty, &x), Err(Error::UnsupportedType { ty, op: "quantize" }));
    }
}

/// Any byte length and output length, for every type, returns a result instead of panicking.
#[test]
fn arbitrary_lengths_never_panic() {
    let mut rng = Rng(6);
    for ty in GgmlType::ALL {
        for _ in 0..40 {
            let len = (rng.next_u64() % 700) as usize;
            let bytes = rng.bytes(len);
            let n_out = match rng.next_u64() % 3 {
                0 => len / ty.type_size().max(1) * ty.block_size(),
                _ => (rng.next_u64() % 800) as usize,
            };
            let mut out = vec![0f32; n_out];
            let _ = dequantize(ty, &bytes, &mut out);
            let _ = dot(ty, &bytes, &out);
            let _ = quantize(ty, &out);
        }
    }
}

#[test]
fn fast_f16_conversion_matches_half_for_every_value() {
    for h in 0..=u16::MAX {
        let want = f16::from_bits(h).to_f32();
        let got = float::f16_bits_to_f32(h);
        assert_eq!(got.to_bits(), want.to_bits(), "f16 bits {h:#06x}: {got:e} vs {want:e}");
    }
}
