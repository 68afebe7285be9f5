//! Fast kernels for the CPU matmul, giving bit-identical results to the scalar reference
//! (`act.rs`'s quantizers, `vecdot.rs`'s `dot_quantized`).
//!
//! Why identical is possible: every integer dot product is exact whatever the order of its
//! additions, so SIMD may regroup the integer parts freely; the f32 parts are computed with the
//! same operations in the same order as the reference (products associated the same way, fused
//! multiply-adds exactly where the reference fuses, the per-block terms added one after another).
//! Where the reference keeps lanes (eight K-quant lanes, element `e` in lane `e % 8`; the eight
//! lanes of four consecutive elements of Q4_1 and Q8_0), the kernels keep exactly those lanes.
//!
//! An [`Isa`] names a kernel set: `Scalar` (the reference itself, on any target), `Avx2`
//! (x86_64 with AVX2, F16C and FMA, found by runtime detection; values of `Isa` can only be made for
//! sets the CPU has, which is what makes the kernels' `unsafe` sound) or `Simd128` (wasm32 built
//! with `+simd128`, fixed at compile time: wasm has no runtime detection, and such a module does
//! not load without simd128). The process-wide choice ([`selected`]) is the best the CPU offers
//! unless [`select`] overrides it (tests compare the sets; `aether bench --isa` times them).
//!
//! A matmul calls [`prepare_activations`] once per input, then [`dot_rows`] per piece of weight
//! rows. The prepared bytes are the reference activation blocks (`quantize_activations`), except
//! that for `Avx2` the quants of each 32-element chunk of a Q8_K block are reordered (see
//! `x86.rs`, `permute32`) so that the K-quant kernels can keep the reference's lanes apart, and
//! for `Avx2` and `Simd128` Q8_0/Q8_1 blocks are followed by a table of their scales as f32.
//!
//! `Simd128` has no fused multiply-add; where the reference fuses (Q4_1, Q8_0), its kernels add
//! in f64 and settle the rare double-rounding cases exactly (`wasm.rs`). Not here yet: AVX-512/VNNI
//! sets (no such CPU to test them on); under simd128, the activation quantizers (the reference's
//! run, once per matmul input) and Q4_0/Q5_0/Q5_1 (the reference's kernels run). Each would be a
//! further `Level` or kernel file with the same tests.
//!
//! Attention's f16 products ([`dot_f16_rows`]) live here too, with their reference ([`F16Lanes`]):
//! ggml's AVX2 lane order, which the SIMD twin keeps lane for lane.
//!
//! Layout: `x86.rs` (shared AVX2 helpers), `x86_act.rs` (activation quantizers), `x86_lanes.rs`
//! (Q4_1, Q8_0), `x86_legacy.rs` (Q4_0, Q5_0, Q5_1), `x86_kquants.rs` (Q2_K … Q6_K), `x86_f16.rs`
//! (f16 rows); `wasm.rs` (shared simd128 helpers, the f64 fused add), `wasm_lanes.rs` (Q4_1, Q8_0),
//! `wasm_kquants.rs` (Q2_K … Q6_K), `wasm_f16.rs` (f16 rows); `tests.rs` (every kernel against
//! the reference).

#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_act;
#[cfg(target_arch = "x86_64")]
mod x86_f16;
#[cfg(target_arch = "x86_64")]
mod x86_kquants;
#[cfg(target_arch = "x86_64")]
mod x86_lanes;
#[cfg(target_arch = "x86_64")]
mod x86_legacy;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm_f16;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm_kquants;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm_lanes;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU8, Ordering};

use half::f16;
use half::slice::HalfFloatSliceExt;

use super::{GgmlType, dot_quantized, f16_bits_to_f32, quantize_activations, vec_dot_type};
use crate::{Error, Result};

/// A kernel set the running CPU supports. Only [`Isa::SCALAR`] and the sets [`Isa::available`]
/// lists can be made, so holding an `Isa` proves its instructions exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Isa(Level);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    Scalar = 1,
    #[cfg(target_arch = "x86_64")]
    Avx2 = 2,
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    Simd128 = 3,
}

impl Isa {
    /// The reference kernels (`vecdot.rs`), on any target.
    pub const SCALAR: Isa = Isa(Level::Scalar);

    /// Every kernel set this CPU can run, the reference first and the fastest last.
    pub fn available() -> Vec<Isa> {
        #[allow(unused_mut)] // targets without SIMD sets add nothing
        let mut v = vec![Isa::SCALAR];
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("f16c")
            && std::is_x86_feature_detected!("fma")
        {
            v.push(Isa(Level::Avx2));
        }
        // wasm has no runtime detection: a module built with simd128 only loads where it exists.
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        v.push(Isa(Level::Simd128));
        v
    }

    /// The fastest set this CPU can run.
    pub fn best() -> Isa {
        Isa::available().pop().unwrap_or(Isa::SCALAR)
    }

    /// A set by name (`scalar`, `avx2`), if this CPU can run it.
    pub fn by_name(name: &str) -> Option<Isa> {
        Isa::available().into_iter().find(|i| i.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            Level::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => "avx2",
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Level::Simd128 => "simd128",
        }
    }
}

/// The process-wide kernel set: 0 until the first [`selected`], then a `Level` discriminant.
static SELECTED: AtomicU8 = AtomicU8::new(0);

/// The kernel set matmuls use: the best available unless [`select`] chose another.
pub fn selected() -> Isa {
    match SELECTED.load(Ordering::Relaxed) {
        1 => Isa::SCALAR,
        #[cfg(target_arch = "x86_64")]
        2 => Isa(Level::Avx2),
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        3 => Isa(Level::Simd128),
        _ => {
            let best = Isa::best();
            SELECTED.store(best.0 as u8, Ordering::Relaxed);
            best
        }
    }
}

/// Makes every later matmul use `isa` (for comparing kernel sets; results do not change).
pub fn select(isa: Isa) {
    SELECTED.store(isa.0 as u8, Ordering::Relaxed);
}

/// Converts `x` ([n_tok, cols] f32) to the activations `isa`'s kernels read for weights of type
/// `ty_weight`, replacing `out`'s contents without growing a buffer reserved for
/// `n_tok · cols · 4` bytes. The bytes are `quantize_activations`'s, except under `Avx2`: the
/// chunk order inside Q8_K blocks (see the module doc), and under `Avx2` and `Simd128`, after
/// Q8_0/Q8_1 blocks, a table of each block's `d` and `s` as f32 ([n_blocks, 2], `s` = 0 for
/// Q8_0), read by the kernels instead of converting the f16 fields once per weight row group.
pub fn prepare_activations(isa: Isa, ty_weight: GgmlType, x: &[f32], out: &mut Vec<u8>) -> Result<()> {
    match isa.0 {
        Level::Scalar => quantize_activations(ty_weight, x, out),
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => {
            let act = vec_dot_type(ty_weight)?;
            if !matches!(act, GgmlType::Q8_0 | GgmlType::Q8_1 | GgmlType::Q8K) {
                return quantize_activations(ty_weight, x, out);
            }
            let bs = act.block_size();
            if !x.len().is_multiple_of(bs) {
                return Err(Error::PartialBlockElements { ty: act, len: x.len(), block_elems: bs });
            }
            let (n_blocks, table) = (x.len() / bs, scale_table_len(isa, act, x.len()));
            out.clear();
            out.resize(n_blocks * act.type_size() + table, 0);
            let (blocks, table) = out.split_at_mut(n_blocks * act.type_size());
            // SAFETY: an `Avx2` value exists only where AVX2, F16C and FMA were detected; `blocks`
            // holds exactly one `act` block per `bs` elements of `x`, `table` two f32 per block
            // for Q8_0/Q8_1 and nothing for Q8_K.
            unsafe { x86_act::quantize(act, x, blocks, table) };
            Ok(())
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Level::Simd128 => {
            quantize_activations(ty_weight, x, out)?;
            let act = vec_dot_type(ty_weight)?;
            if matches!(act, GgmlType::Q8_0 | GgmlType::Q8_1) {
                append_scale_table(act, out);
            }
            Ok(())
        }
    }
}

/// Appends to `out` (whole Q8_0 or Q8_1 blocks) each block's `d` and `s` (0 for Q8_0) as f32.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn append_scale_table(act: GgmlType, out: &mut Vec<u8>) {
    let (ts, n_blocks) = (act.type_size(), out.len() / act.type_size());
    for b in 0..n_blocks {
        let f = |at: usize| f16_bits_to_f32(u16::from_le_bytes([out[b * ts + at], out[b * ts + at + 1]]));
        let (d, s) = (f(0), if act == GgmlType::Q8_1 { f(2) } else { 0.0 });
        out.extend_from_slice(&d.to_le_bytes());
        out.extend_from_slice(&s.to_le_bytes());
    }
}

/// out[r · n_tok + t] = row r · token t, for the `out.len() / n_tok` rows in `rows` (whole rows
/// of `ty`, each `cols` elements) and the `n_tok` activation rows in `acts` (from
/// [`prepare_activations`] with the same `isa` and `ty`).
///
/// Every result equals `dot_quantized(ty, row, act_row)` bit for bit, for activations that
/// `prepare_activations` made (their levels lie in -127..=127, which the `Avx2` kernels rely on).
pub fn dot_rows(
    isa: Isa,
    ty: GgmlType,
    rows: &[u8],
    cols: usize,
    acts: &[u8],
    n_tok: usize,
    out: &mut [f32],
) -> Result<()> {
    let act = vec_dot_type(ty)?;
    let (row_bytes, act_row) = (row_len(ty, cols)?, row_len(act, cols)?);
    let n_rows = out.len().checked_div(n_tok).unwrap_or(0);
    if rows.len() != n_rows * row_bytes {
        return Err(Error::LengthMismatch {
            what: "dot_rows weight bytes",
            expected: n_rows * row_bytes,
            got: rows.len(),
        });
    }
    let table = scale_table_len(isa, act, n_tok * cols);
    if acts.len() != n_tok * act_row + table {
        return Err(Error::LengthMismatch {
            what: "dot_rows activation bytes",
            expected: n_tok * act_row + table,
            got: acts.len(),
        });
    }
    if n_rows == 0 || cols == 0 {
        out.fill(0.0);
        return Ok(());
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if isa.0 == Level::Simd128 {
        use GgmlType::*;
        let (a, table) = acts.split_at(n_tok * act_row);
        let done = match ty {
            Q4_1 => {
                wasm_lanes::dot_rows::<{ wasm_lanes::Q4_1 }>(rows, row_bytes, a, act_row, table, n_tok, out);
                true
            }
            Q8_0 => {
                wasm_lanes::dot_rows::<{ wasm_lanes::Q8_0 }>(rows, row_bytes, a, act_row, table, n_tok, out);
                true
            }
            _ => wasm_kquants::dot_rows(ty, rows, row_bytes, a, act_row, n_tok, out),
        };
        if done {
            return Ok(());
        }
    }
    #[cfg(not(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "simd128"))))]
    let _ = isa;
    #[cfg(target_arch = "x86_64")]
    if isa.0 == Level::Avx2 {
        use GgmlType::*;
        use x86_legacy::dot_rows as legacy;
        let (r, a) = (rows, acts);
        // SAFETY (every call): AVX2, F16C and FMA were detected (an `Avx2` value exists); `rows` holds
        // `n_rows` rows of `row_bytes` and `acts` `n_tok` rows of `act_row` bytes then the scale
        // table (two f32 per block for the legacy kinds), checked above, and `out` has
        // `n_rows · n_tok` elements.
        let done = unsafe {
            match ty {
                Q4_0 => legacy::<{ x86_legacy::Q4_0 }>(r, row_bytes, a, act_row, n_tok, out),
                Q4_1 => x86_lanes::dot_rows::<{ x86_lanes::Q4_1 }>(r, row_bytes, a, act_row, n_tok, out),
                Q5_0 => legacy::<{ x86_legacy::Q5_0 }>(r, row_bytes, a, act_row, n_tok, out),
                Q5_1 => legacy::<{ x86_legacy::Q5_1 }>(r, row_bytes, a, act_row, n_tok, out),
                Q8_0 => x86_lanes::dot_rows::<{ x86_lanes::Q8_0 }>(r, row_bytes, a, act_row, n_tok, out),
                Q2K | Q3K | Q4K | Q5K | Q6K => {
                    x86_kquants::dot_rows(ty, r, row_bytes, a, act_row, n_tok, out)
                }
                _ => false,
            }
        };
        if done {
            return Ok(());
        }
    }
    for (r, dst) in out.chunks_mut(n_tok).enumerate() {
        let row = &rows[r * row_bytes..][..row_bytes];
        for (t, d) in dst.iter_mut().enumerate() {
            *d = dot_quantized(ty, row, &acts[t * act_row..][..act_row])?;
        }
    }
    Ok(())
}

/// out[j] = Σ_i x[i] · m[j·stride + i] for each `j < out.len()`, summed as ggml's AVX2
/// `ggml_vec_dot_f16` sums (see [`F16Lanes`]): element i goes to lane `(first + i) % 32`, the lanes
/// are reduced at the end. x must hold f16 values, so each product is exact in f32 and only the
/// lane sums round. Attention's K·q (rows = cached keys, `first` = 0; the `len % 32` tail that
/// ggml adds in f64 is the caller's) and p·V (rows = a head dimension's cached values, `first` =
/// the cell of p[0], since ggml's lanes are aligned to cell 0).
pub fn dot_f16_rows(
    isa: Isa,
    x: &[f32],
    m: &[f16],
    stride: usize,
    first: usize,
    out: &mut [f32],
) -> Result<()> {
    let need = if out.is_empty() { 0 } else { (out.len() - 1) * stride + x.len() };
    if m.len() < need {
        return Err(Error::LengthMismatch { what: "dot_f16_rows matrix", expected: need, got: m.len() });
    }
    let bits: &[u16] = m.reinterpret_cast();
    match isa.0 {
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => {
            for (j, o) in out.iter_mut().enumerate() {
                // SAFETY: AVX2, F16C and FMA were detected; row j lies in `m` (checked above).
                *o = unsafe { x86_f16::dot_lanes(x, &bits[j * stride..][..x.len()], first) };
            }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Level::Simd128 => {
            for (j, o) in out.iter_mut().enumerate() {
                *o = wasm_f16::dot_lanes(x, &bits[j * stride..][..x.len()], first);
            }
        }
        _ => {
            for (j, o) in out.iter_mut().enumerate() {
                let mut lanes = F16Lanes::default();
                for (i, (&xi, &h)) in x.iter().zip(&bits[j * stride..][..x.len()]).enumerate() {
                    lanes.add(first + i, xi * f16_bits_to_f32(h));
                }
                *o = lanes.reduce();
            }
        }
    }
    Ok(())
}

/// ggml's AVX2 f16 dot-product accumulators (`ggml_vec_dot_f16`, `GGML_F16_STEP` = 32): 4
/// registers of 8 f32 lanes; element i of a 32-element step goes to lane i (register i / 8). A
/// product of two f16 values is exact in f32, so the FMA into its lane rounds once, as an f32 add
/// does.
#[derive(Default)]
pub struct F16Lanes([f32; 32]);

impl F16Lanes {
    /// Adds `product` (exact) into lane `i % 32`.
    #[inline(always)]
    pub fn add(&mut self, i: usize, product: f32) {
        self.0[i % 32] += product;
    }

    /// The registers summed pairwise (0+2, 1+3, then those two), then the 8 lanes: the two
    /// halves added, then two horizontal adds (`GGML_F32x8_REDUCE`).
    pub fn reduce(&self) -> f32 {
        let a = &self.0;
        let x: [f32; 8] = std::array::from_fn(|l| (a[l] + a[16 + l]) + (a[8 + l] + a[24 + l]));
        let t: [f32; 4] = std::array::from_fn(|l| x[l] + x[l + 4]);
        (t[0] + t[1]) + (t[2] + t[3])
    }
}

/// Bytes of the f32 scale table `prepare_activations` appends for `n` elements in `act`.
fn scale_table_len(isa: Isa, act: GgmlType, n: usize) -> usize {
    // Every set but the reference appends it (today: AVX2, simd128).
    let table = matches!(act, GgmlType::Q8_0 | GgmlType::Q8_1) && isa != Isa::SCALAR;
    if table { n / 32 * 8 } else { 0 }
}

/// Bytes of one `cols`-element row of `ty`.
fn row_len(ty: GgmlType, cols: usize) -> Result<usize> {
    let bs = ty.block_size();
    if !cols.is_multiple_of(bs) {
        return Err(Error::PartialBlockElements { ty, len: cols, block_elems: bs });
    }
    Ok(cols / bs * ty.type_size())
}
