//! The K-quant super-block formats Q2_K … Q6_K (`ggml-common.h`): 256 elements per block, split
//! into sub-blocks that each carry a small integer scale (and for Q2/Q4/Q5 a min) which is itself
//! scaled by the block's f16 `d` (and `dmin`).
//!
//! Bit layouts, with `e` the element index in the block:
//! - Q2_K: 16 sub-blocks of 16. `h = e/128`, `j = e%128/32`, `l = e%32`: the 2-bit quant is
//!   bits `2j..2j+2` of `qs[32h + l]`; sub-block `e/16` has scale nibble `scales[e/16] & 15` and
//!   min nibble `scales[e/16] >> 4`. `y = (d*sc)*q - (dmin*m)`.
//! - Q3_K: as Q2_K for the low two bits; bit 2 is bit `4h + j` of `hmask[l]`, *set* meaning no
//!   offset and clear meaning `-4`. The 16 6-bit scales (biased by 32) pack low nibbles in
//!   `scales[0..8]` (sub-block `k` in byte `k%8`, nibble `k/8`) and high 2-bit pairs in
//!   `scales[8..12]` (byte `8 + k%4`, bits `2(k/4)..`). `y = (d*(sc - 32))*q`.
//! - Q4_K / Q5_K: 8 sub-blocks of 32. `p = e/64`, `l = e%32`: the low nibble of `qs[32p + l]` for
//!   sub-block `2p`, the high nibble for `2p + 1`; Q5_K adds bit `e/32` of `qh[l]` as bit 4. Eight
//!   6-bit scales and mins pack into 12 bytes (see [`scale_min_k4`]). `y = (d*sc)*q - (dmin*m)`.
//! - Q6_K: 16 sub-blocks of 16. `h = e/128`, `k = e%128/32`, `l = e%32`: the low nibble comes from
//!   `ql[64h + 32(k%2) + l]` (low nibble for `k < 2`, high for `k ≥ 2`), the top two bits from bits
//!   `2k..2k+2` of `qh[32h + l]`; `q - 32` is scaled by the signed 8-bit `scales[e/16]`.
//!   `y = (d*sc)*q`.
//!
//! Arithmetic follows ggml's `dequantize_row_q*_K` exactly (scale products first, no fusing).

use half::f16;

use super::{GgmlType, QK_K, field, put};

/// 2-bit quants, 16 sub-blocks of 16 with 4-bit scales and mins.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ2K {
    /// Sub-block `k`: scale in the low nibble, min in the high nibble.
    pub scales: [u8; 16],
    pub qs: [u8; 64],
    pub d: f16,
    pub dmin: f16,
}

/// 3-bit quants, 16 sub-blocks of 16 with 6-bit signed scales.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ3K {
    pub hmask: [u8; 32],
    pub qs: [u8; 64],
    pub scales: [u8; 12],
    pub d: f16,
}

/// 4-bit quants, 8 sub-blocks of 32 with 6-bit scales and mins.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ4K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; 12],
    pub qs: [u8; 128],
}

/// 5-bit quants, 8 sub-blocks of 32 with 6-bit scales and mins.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ5K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; 12],
    pub qh: [u8; 32],
    pub qs: [u8; 128],
}

/// 6-bit quants, 16 sub-blocks of 16 with 8-bit signed scales.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ6K {
    pub ql: [u8; 128],
    pub qh: [u8; 64],
    pub scales: [i8; 16],
    pub d: f16,
}

const _: () = assert!(size_of::<BlockQ2K>() == 84 && GgmlType::Q2K.type_size() == 84);
const _: () = assert!(size_of::<BlockQ3K>() == 110 && GgmlType::Q3K.type_size() == 110);
const _: () = assert!(size_of::<BlockQ4K>() == 144 && GgmlType::Q4K.type_size() == 144);
const _: () = assert!(size_of::<BlockQ5K>() == 176 && GgmlType::Q5K.type_size() == 176);
const _: () = assert!(size_of::<BlockQ6K>() == 210 && GgmlType::Q6K.type_size() == 210);
const _: () = assert!(QK_K == 256);

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K/Q5_K block. Sub-blocks 0–3 keep
/// theirs in the low 6 bits of bytes `j` and `j + 4`; sub-blocks 4–7 keep their low nibbles in
/// byte `j + 4` (scale low, min high) and their top two bits in the spare top bits of bytes
/// `j - 4` (scale) and `j` (min).
#[inline(always)]
pub(super) fn scale_min_k4(s: &[u8; 12], j: usize) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// Inverse of [`scale_min_k4`]: packs eight 6-bit scales and mins (each ≤ 63).
pub(super) fn pack_scale_min_k4(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..8 {
        let (sc, m) = (sc[j] & 63, m[j] & 63);
        if j < 4 {
            s[j] |= sc;
            s[j + 4] |= m;
        } else {
            s[j + 4] = (sc & 0xf) | ((m & 0xf) << 4);
            s[j - 4] |= (sc >> 4) << 6;
            s[j] |= (m >> 4) << 6;
        }
    }
    s
}

/// The 16 Q3_K scales, unbiased to -32..=31.
pub(super) fn q3k_scales(s: &[u8; 12]) -> [i32; 16] {
    let mut out = [0i32; 16];
    for (k, o) in out.iter_mut().enumerate() {
        let lo = (s[k % 8] >> (4 * (k / 8))) & 0xf;
        let hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
        *o = (lo | (hi << 4)) as i32 - 32;
    }
    out
}

impl BlockQ2K {
    pub fn read(b: &[u8; 84]) -> Self {
        Self {
            scales: field(b, 0),
            qs: field(b, 16),
            d: f16::from_le_bytes(field(b, 80)),
            dmin: f16::from_le_bytes(field(b, 82)),
        }
    }

    pub fn write(&self) -> [u8; 84] {
        let mut b = [0; 84];
        put(&mut b, 0, &self.scales);
        put(&mut b, 16, &self.qs);
        put(&mut b, 80, &self.d.to_le_bytes());
        put(&mut b, 82, &self.dmin.to_le_bytes());
        b
    }

    pub fn dequantize(&self, y: &mut [f32; 256]) {
        let (d, dmin) = (self.d.to_f32(), self.dmin.to_f32());
        for (k, y) in y.as_chunks_mut::<16>().0.iter_mut().enumerate() {
            let (h, j, half) = (k / 8, k % 8 / 2, k % 2);
            let sc = self.scales[k];
            let dl = d * (sc & 0xf) as f32;
            let ml = dmin * (sc >> 4) as f32;
            let qs = &self.qs[32 * h + 16 * half..][..16];
            for (y, &q) in y.iter_mut().zip(qs) {
                *y = dl * ((q >> (2 * j)) & 3) as f32 - ml;
            }
        }
    }
}

impl BlockQ3K {
    pub fn read(b: &[u8; 110]) -> Self {
        Self {
            hmask: field(b, 0),
            qs: field(b, 32),
            scales: field(b, 96),
            d: f16::from_le_bytes(field(b, 108)),
        }
    }

    pub fn write(&self) -> [u8; 110] {
        let mut b = [0; 110];
        put(&mut b, 0, &self.hmask);
        put(&mut b, 32, &self.qs);
        put(&mut b, 96, &self.scales);
        put(&mut b, 108, &self.d.to_le_bytes());
        b
    }

    pub fn dequantize(&self, y: &mut [f32; 256]) {
        let d = self.d.to_f32();
        let scales = q3k_scales(&self.scales);
        for (k, y) in y.as_chunks_mut::<16>().0.iter_mut().enumerate() {
            let (h, j, half) = (k / 8, k % 8 / 2, k % 2);
            let dl = d * scales[k] as f32;
            let qs = &self.qs[32 * h + 16 * half..][..16];
            let hm = &self.hmask[16 * half..][..16];
            for ((y, &q), &hm) in y.iter_mut().zip(qs).zip(hm) {
                let low = ((q >> (2 * j)) & 3) as i32;
                let high_clear = (hm >> (4 * h + j)) & 1 == 0;
                *y = dl * (low - if high_clear { 4 } else { 0 }) as f32;
            }
        }
    }
}

impl BlockQ4K {
    pub fn read(b: &[u8; 144]) -> Self {
        Self {
            d: f16::from_le_bytes(field(b, 0)),
            dmin: f16::from_le_bytes(field(b, 2)),
            scales: field(b, 4),
            qs: field(b, 16),
        }
    }

    pub fn write(&self) -> [u8; 144] {
        let mut b = [0; 144];
        put(&mut b, 0, &self.d.to_le_bytes());
        put(&mut b, 2, &self.dmin.to_le_bytes());
        put(&mut b, 4, &self.scales);
        put(&mut b, 16, &self.qs);
        b
    }

    /// Packs levels `q[e]` (0..=15) and per-sub-block 6-bit scales and mins.
    pub(super) fn from_levels(d: f16, dmin: f16, sc: &[u8; 8], m: &[u8; 8], q: &[u8; 256]) -> Self {
        let mut qs = [0u8; 128];
        for (p, qs) in qs.as_chunks_mut::<32>().0.iter_mut().enumerate() {
            for (l, b) in qs.iter_mut().enumerate() {
                *b = (q[64 * p + l] & 0xf) | ((q[64 * p + 32 + l] & 0xf) << 4);
            }
        }
        Self { d, dmin, scales: pack_scale_min_k4(sc, m), qs }
    }

    pub fn dequantize(&self, y: &mut [f32; 256]) {
        let (d, dmin) = (self.d.to_f32(), self.dmin.to_f32());
        for (j, y) in y.as_chunks_mut::<32>().0.iter_mut().enumerate() {
            let (sc, m) = scale_min_k4(&self.scales, j);
            let d1 = d * sc as f32;
            let m1 = dmin * m as f32;
            let shift = 4 * (j % 2);
            for (y, &q) in y.iter_mut().zip(&self.qs[32 * (j / 2)..][..32]) {
                *y = d1 * ((q >> shift) & 0xf) as f32 - m1;
            }
        }
    }
}

impl BlockQ5K {
    pub fn read(b: &[u8; 176]) -> Self {
        Self {
            d: f16::from_le_bytes(field(b, 0)),
            dmin: f16::from_le_bytes(field(b, 2)),
            scales: field(b, 4),
            qh: field(b, 16),
            qs: field(b, 48),
        }
    }

    pub fn write(&self) -> [u8; 176] {
        let mut b = [0; 176];
        put(&mut b, 0, &self.d.to_le_bytes());
        put(&mut b, 2, &self.dmin.to_le_bytes());
        put(&mut b, 4, &self.scales);
        put(&mut b, 16, &self.qh);
        put(&mut b, 48, &self.qs);
        b
    }

    /// Packs levels `q[e]` (0..=31) and per-sub-block 6-bit scales and mins.
    pub(super) fn from_levels(d: f16, dmin: f16, sc: &[u8; 8], m: &[u8; 8], q: &[u8; 256]) -> Self {
        let mut qs = [0u8; 128];
        let mut qh = [0u8; 32];
        for (p, qs) in qs.as_chunks_mut::<32>().0.iter_mut().enumerate() {
            for (l, b) in qs.iter_mut().enumerate() {
                let (lo, hi) = (q[64 * p + l], q[64 * p + 32 + l]);
                *b = (lo & 0xf) | ((hi & 0xf) << 4);
                qh[l] |= ((lo >> 4) & 1) << (2 * p) | ((hi >> 4) & 1) << (2 * p + 1);
            }
        }
        Self { d, dmin, scales: pack_scale_min_k4(sc, m), qh, qs }
    }

    pub fn dequantize(&self, y: &mut [f32; 256]) {
        let (d, dmin) = (self.d.to_f32(), self.dmin.to_f32());
        for (j, y) in y.as_chunks_mut::<32>().0.iter_mut().enumerate() {
            let (sc, m) = scale_min_k4(&self.scales, j);
            let d1 = d * sc as f32;
            let m1 = dmin * m as f32;
            let shift = 4 * (j % 2);
            let qs = &self.qs[32 * (j / 2)..][..32];
            for ((y, &q), &h) in y.iter_mut().zip(qs).zip(&self.qh) {
                let q = ((q >> shift) & 0xf) | (((h >> j) & 1) << 4);
                *y = d1 * q as f32 - m1;
            }
        }
    }
}

impl BlockQ6K {
    pub fn read(b: &[u8; 210]) -> Self {
        let scales: [u8; 16] = field(b, 192);
        Self {
            ql: field(b, 0),
            qh: field(b, 128),
            scales: scales.map(|s| s as i8),
            d: f16::from_le_bytes(field(b, 208)),
        }
    }

    pub fn write(&self) -> [u8; 210] {
        let mut b = [0; 210];
        put(&mut b, 0, &self.ql);
        put(&mut b, 128, &self.qh);
        put(&mut b, 192, &self.scales.map(|s| s as u8));
        put(&mut b, 208, &self.d.to_le_bytes());
        b
    }

    /// Packs levels `q[e]` (0..=63, i.e. the signed quant + 32) and the 8-bit sub-block scales.
    pub(super) fn from_levels(d: f16, scales: &[i8; 16], q: &[u8; 256]) -> Self {
        let mut ql = [0u8; 128];
        let mut qh = [0u8; 64];
        for h in 0..2 {
            for l in 0..32 {
                let q = |k: usize| q[128 * h + 32 * k + l] & 63;
                ql[64 * h + l] = (q(0) & 0xf) | ((q(2) & 0xf) << 4);
                ql[64 * h + 32 + l] = (q(1) & 0xf) | ((q(3) & 0xf) << 4);
                qh[32 * h + l] = (q(0) >> 4) | ((q(1) >> 4) << 2) | ((q(2) >> 4) << 4) | ((q(3) >> 4) << 6);
            }
        }
        Self { ql, qh, scales: *scales, d }
    }

    pub fn dequantize(&self, y: &mut [f32; 256]) {
        let d = self.d.to_f32();
        for (s, y) in y.as_chunks_mut::<16>().0.iter_mut().enumerate() {
            let (h, k, half) = (s / 8, s % 8 / 2, s % 2);
            let dl = d * self.scales[s] as f32;
            let ql = &self.ql[64 * h + 32 * (k % 2) + 16 * half..][..16];
            let qh = &self.qh[32 * h + 16 * half..][..16];
            let shift = 4 * (k / 2);
            for ((y, &lo), &hi) in y.iter_mut().zip(ql).zip(qh) {
                let q = ((lo >> shift) & 0xf) | (((hi >> (2 * k)) & 3) << 4);
                *y = dl * (q as i32 - 32) as f32;
            }
        }
    }
}
