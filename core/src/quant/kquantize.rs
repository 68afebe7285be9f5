//! Quantizers for the K-quants Q4_K, Q5_K (asymmetric: scale and min per 32-element sub-block) and
//! Q6_K (symmetric: signed scale per 16-element sub-block).
//!
//! The method follows ggml's reference quantizers (`quantize_row_q{4,5,6}_K_ref`) in outline, not
//! bit for bit:
//! 1. per sub-block, search for the scale (and min) that minimise a weighted squared error — try a
//!    fan of candidate scales around "range / levels", round to levels for each, solve the weighted
//!    least-squares fit of scale (and offset) to those levels in closed form, keep the best, then
//!    re-round against the winner and refit while that helps;
//! 2. quantize the sub-block scales (and mins) against the block maximum: 6-bit unsigned for
//!    Q4_K/Q5_K with f16 `d`/`dmin`, 8-bit signed for Q6_K with f16 `d`;
//! 3. re-round every element against the scales as stored, so the levels fit what decodes, trying
//!    the codes next to each rounded sub-block scale (and min) and keeping the pair that
//!    reconstructs the sub-block best. This last step is ours; on N(0,1) data it brings the error
//!    a little below ggml's reference quantizers (see the NMSE test).
//!
//! The weights are ggml's: `rms(sub-block) + |x|` for Q4_K/Q5_K and `x²` for Q6_K, which favour the
//! large-magnitude weights that matter most to a model's output. Rounding is to nearest, ties to
//! even, like ggml's `nearest_int`.

use half::f16;

use super::kquants::{BlockQ4K, BlockQ5K, BlockQ6K};

/// Sub-blocks whose largest magnitude is below this are all zero (ggml's `GROUP_MAX_EPS`).
const GROUP_EPS: f32 = 1e-15;

fn nearest(x: f32) -> i32 {
    x.round_ties_even() as i32
}

/// Levels of `x` under `x ≈ scale*l + offset`, clamped to `0..=nmax`.
fn round_levels(x: &[f32], inv_scale: f32, offset: f32, nmax: i32, l: &mut [u8]) {
    for (l, &x) in l.iter_mut().zip(x) {
        *l = nearest(inv_scale * (x - offset)).clamp(0, nmax) as u8;
    }
}

/// Weighted least-squares `(scale, offset)` for fixed levels, with `offset ≤ 0` (the formats store
/// a non-negative min that is subtracted), and its weighted squared error.
fn fit_affine(x: &[f32], w: &[f32], l: &[u8]) -> Option<(f32, f32, f32)> {
    let (mut sw, mut sl, mut sll, mut sx, mut sxl) = (0f32, 0f32, 0f32, 0f32, 0f32);
    for ((&x, &w), &l) in x.iter().zip(w).zip(l) {
        let l = l as f32;
        sw += w;
        sl += w * l;
        sll += w * l * l;
        sx += w * x;
        sxl += w * x * l;
    }
    let det = sw * sll - sl * sl;
    if det <= 0.0 {
        return None;
    }
    let (mut scale, mut offset) = ((sw * sxl - sx * sl) / det, (sll * sx - sl * sxl) / det);
    if offset > 0.0 {
        (scale, offset) = (sxl / sll, 0.0);
    }
    let err = x.iter().zip(w).zip(l).map(|((&x, &w), &l)| w * (scale * l as f32 + offset - x).powi(2)).sum();
    Some((scale, offset, err))
}

/// Best `(scale, min)` with `x ≈ scale*l - min`, `l` in `0..=nmax` written to `levels`.
/// `rmin + rdelta*k` for `k` in `0..=nstep` spreads the candidate level counts around `nmax`.
fn fit_scale_min(
    x: &[f32],
    w: &[f32],
    nmax: i32,
    search: (f32, f32, usize),
    levels: &mut [u8],
) -> (f32, f32) {
    let lo = x.iter().copied().fold(0f32, f32::min);
    let hi = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // Flat (or NaN) sub-block: every level 0, the min carries the value.
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        levels.fill(0);
        return (0.0, -lo);
    }
    let mut cand = [0u8; 32];
    let cand = &mut cand[..x.len()];

    // The plain min/max grid is the baseline every candidate must beat.
    let (mut scale, mut offset) = ((hi - lo) / nmax as f32, lo);
    round_levels(x, 1.0 / scale, offset, nmax, levels);
    let mut best = x
        .iter()
        .zip(w)
        .zip(levels.iter())
        .map(|((&x, &w), &l)| w * (scale * l as f32 + offset - x).powi(2))
        .sum::<f32>();

    let (rmin, rdelta, nstep) = search;
    for k in 0..=nstep {
        let inv = (nmax as f32 + rmin + rdelta * k as f32) / (hi - lo);
        round_levels(x, inv, lo, nmax, cand);
        if let Some((s, o, err)) = fit_affine(x, w, cand)
            && err < best
        {
            (scale, offset, best) = (s, o, err);
            levels.copy_from_slice(cand);
        }
    }
    // Re-round against the winning fit and refit, while that keeps lowering the error.
    for _ in 0..4 {
        if scale <= 0.0 {
            break;
        }
        round_levels(x, 1.0 / scale, offset, nmax, cand);
        match fit_affine(x, w, cand) {
            Some((s, o, err)) if err < best => {
                (scale, offset, best) = (s, o, err);
                levels.copy_from_slice(cand);
            }
            _ => break,
        }
    }
    (scale.max(0.0), -offset)
}

/// A Q4_K/Q5_K block before bit packing: f16 super-scales, 6-bit sub-block codes, levels.
struct ScaleMinBlock {
    d: f16,
    dmin: f16,
    sc: [u8; 8],
    m: [u8; 8],
    levels: [u8; 256],
}

/// Levels of one sub-block for the stored scale `dl` and min `ml` (as decoded), written to `l`,
/// and their squared error.
fn round_to_stored(x: &[f32; 32], dl: f32, ml: f32, nmax: i32, l: &mut [u8; 32]) -> f32 {
    let mut err = 0f32;
    for (l, &x) in l.iter_mut().zip(x) {
        *l = if dl > 0.0 { nearest((x + ml) / dl).clamp(0, nmax) as u8 } else { 0 };
        err += (dl * *l as f32 - ml - x).powi(2);
    }
    err
}

/// Shared core of Q4_K and Q5_K: levels in `0..=nmax`, 6-bit scales and mins.
fn quantize_scale_min_block(x: &[f32; 256], nmax: i32, search: (f32, f32, usize)) -> ScaleMinBlock {
    let xs = x.as_chunks::<32>().0;
    let mut levels = [0u8; 256];
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    for (j, x) in xs.iter().enumerate() {
        let rms = (x.iter().map(|v| v * v).sum::<f32>() / 32.0).sqrt();
        let w = x.map(|v| rms + v.abs());
        let l = &mut levels[32 * j..][..32];
        (scales[j], mins[j]) = fit_scale_min(x, &w, nmax, search, l);
    }

    let max_scale = scales.iter().copied().fold(0f32, f32::max);
    let max_min = mins.iter().copied().fold(0f32, f32::max);
    let d = f16::from_f32(max_scale / 63.0);
    let dmin = f16::from_f32(max_min / 63.0);
    let (df, dminf) = (d.to_f32(), dmin.to_f32());
    // Quantize against the f16 values the decoder will see, not the f32 ones they came from.
    let q6 = |v: f32, step: f32| if step > 0.0 { nearest(v / step).clamp(0, 63) } else { 0 };
    let mut sc = [0u8; 8];
    let mut m = [0u8; 8];
    let mut cand_l = [0u8; 32];
    for (j, x) in xs.iter().enumerate() {
        let mut best_l = [0u8; 32];
        // Rounding scale and min to 6 bits independently can leave the pair a step off the best
        // one for the stored grid: try the neighbouring codes and keep the one whose re-rounded
        // levels reconstruct the sub-block best (plain squared error: this judges the decoded
        // result, where the weights above steered the search).
        let (s0, m0) = (q6(scales[j], df), q6(mins[j], dminf));
        let mut best = f32::INFINITY;
        for s in (s0 - 1).max(0)..=(s0 + 1).min(63) {
            for mm in (m0 - 1).max(0)..=(m0 + 1).min(63) {
                let err = round_to_stored(x, df * s as f32, dminf * mm as f32, nmax, &mut cand_l);
                if err < best {
                    (best, sc[j], m[j], best_l) = (err, s as u8, mm as u8, cand_l);
                }
            }
        }
        levels[32 * j..][..32].copy_from_slice(&best_l);
    }
    ScaleMinBlock { d, dmin, sc, m, levels }
}

pub(super) fn quantize_q4_k(x: &[f32; 256]) -> BlockQ4K {
    let b = quantize_scale_min_block(x, 15, (-1.0, 0.1, 20));
    BlockQ4K::from_levels(b.d, b.dmin, &b.sc, &b.m, &b.levels)
}

pub(super) fn quantize_q5_k(x: &[f32; 256]) -> BlockQ5K {
    let b = quantize_scale_min_block(x, 31, (-0.5, 0.1, 15));
    BlockQ5K::from_levels(b.d, b.dmin, &b.sc, &b.m, &b.levels)
}

/// Best signed scale for `x ≈ scale*l`, `l` in `-32..=31`, weighting by `x²`. The element of largest
/// magnitude anchors the search at level -32 (the longer side of the range); nearby level counts
/// `32 ± 0.9` are tried and the least-squares scale of the best rounding kept.
fn fit_scale_q6(x: &[f32; 16]) -> f32 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            (amax, max) = (v.abs(), v);
        }
    }
    if amax < GROUP_EPS {
        return 0.0;
    }
    let (mut best_scale, mut best) = (0f32, f32::NEG_INFINITY);
    for k in -9..=9 {
        let inv = -(32.0 + 0.1 * k as f32) / max;
        let (mut sxl, mut sll) = (0f32, 0f32);
        for &v in x {
            let l = nearest(inv * v).clamp(-32, 31) as f32;
            let w = v * v;
            sxl += w * v * l;
            sll += w * l * l;
        }
        // The error at the best scale for these levels is Σwx² - sxl²/sll: maximise sxl²/sll.
        if sll > 0.0 && sxl * sxl / sll > best {
            (best_scale, best) = (sxl / sll, sxl * sxl / sll);
        }
    }
    best_scale
}

pub(super) fn quantize_q6_k(x: &[f32; 256]) -> BlockQ6K {
    let mut scales = [0f32; 16];
    for (s, x) in scales.iter_mut().zip(x.as_chunks::<16>().0) {
        *s = fit_scale_q6(x);
    }
    let max_scale = scales.iter().copied().fold(0f32, |m, s| if s.abs() > m.abs() { s } else { m });
    if max_scale.abs() < GROUP_EPS {
        return BlockQ6K::from_levels(f16::ZERO, &[0; 16], &[32; 256]);
    }
    // The largest scale maps to -128, the end of the signed 8-bit range with the most room.
    let d = f16::from_f32(max_scale / -128.0);
    let df = d.to_f32();

    let mut sc = [0i8; 16];
    let mut levels = [32u8; 256];
    let mut cand = [0u8; 16];
    for (j, x) in x.as_chunks::<16>().0.iter().enumerate() {
        // As for Q4_K: the 8-bit code nearest the fitted scale is not always the best one for the
        // rounded levels, so its neighbours get a try too, judged on plain squared error.
        let s0 = if df != 0.0 { nearest(scales[j] / df).clamp(-128, 127) } else { 0 };
        let mut best = f32::INFINITY;
        for s in (s0 - 1).max(-128)..=(s0 + 1).min(127) {
            let dl = df * s as f32;
            let mut err = 0f32;
            for (l, &x) in cand.iter_mut().zip(x) {
                let q = if dl != 0.0 { nearest(x / dl).clamp(-32, 31) } else { 0 };
                *l = (q + 32) as u8;
                err += (dl * q as f32 - x).powi(2);
            }
            if err < best {
                (best, sc[j]) = (err, s as i8);
                levels[16 * j..][..16].copy_from_slice(&cand);
            }
        }
    }
    BlockQ6K::from_levels(d, &sc, &levels)
}
