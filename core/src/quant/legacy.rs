//! The original 32-element block formats: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 (`ggml-common.h`).
//!
//! Every block holds an f16 scale `d` (and for the `_1` kinds an f16 offset `m`), then the quants.
//! The 4-bit kinds pack element `j` in the low nibble of `qs[j]` and element `j + 16` in the high
//! nibble; the 5-bit kinds add bit `j` of the little-endian u32 `qh` as bit 4 of element `j`.
//! Values are `(q - 8)*d` / `q*d + m` / `(q - 16)*d` / `q*d + m` / `q*d`, computed in exactly that
//! order as in ggml's `dequantize_row_*`.

use half::f16;

use super::{GgmlType, field, put};

/// 4-bit quants with a scale: `y = (q - 8)*d`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ4_0 {
    pub d: f16,
    /// Element `j` in the low nibble of `qs[j]`, element `j + 16` in the high nibble.
    pub qs: [u8; 16],
}

/// 4-bit quants with a scale and an offset: `y = q*d + m`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ4_1 {
    pub d: f16,
    pub m: f16,
    pub qs: [u8; 16],
}

/// 5-bit quants with a scale: `y = (q - 16)*d`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ5_0 {
    pub d: f16,
    /// Bit `j` of this little-endian u32 is bit 4 of element `j`.
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

/// 5-bit quants with a scale and an offset: `y = q*d + m`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ5_1 {
    pub d: f16,
    pub m: f16,
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

/// 8-bit signed quants with a scale: `y = q*d`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; 32],
}

const _: () = assert!(size_of::<BlockQ4_0>() == 18 && GgmlType::Q4_0.type_size() == 18);
const _: () = assert!(size_of::<BlockQ4_1>() == 20 && GgmlType::Q4_1.type_size() == 20);
const _: () = assert!(size_of::<BlockQ5_0>() == 22 && GgmlType::Q5_0.type_size() == 22);
const _: () = assert!(size_of::<BlockQ5_1>() == 24 && GgmlType::Q5_1.type_size() == 24);
const _: () = assert!(size_of::<BlockQ8_0>() == 34 && GgmlType::Q8_0.type_size() == 34);

/// The 5-bit quant `j` of a Q5 block: low nibble from `qs`, bit 4 from `qh`.
#[inline(always)]
pub(super) fn q5(qs: &[u8; 16], qh: u32, j: usize) -> i32 {
    let lo = if j < 16 { qs[j] & 0xf } else { qs[j - 16] >> 4 };
    (lo as i32) | (((qh >> j) & 1) << 4) as i32
}

impl BlockQ4_0 {
    pub fn read(b: &[u8; 18]) -> Self {
        Self { d: f16::from_le_bytes(field(b, 0)), qs: field(b, 2) }
    }

    pub fn write(&self) -> [u8; 18] {
        let mut b = [0; 18];
        put(&mut b, 0, &self.d.to_le_bytes());
        put(&mut b, 2, &self.qs);
        b
    }

    pub fn dequantize(&self, y: &mut [f32; 32]) {
        let d = self.d.to_f32();
        for (j, &q) in self.qs.iter().enumerate() {
            y[j] = ((q & 0xf) as i32 - 8) as f32 * d;
            y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

impl BlockQ4_1 {
    pub fn read(b: &[u8; 20]) -> Self {
        Self { d: f16::from_le_bytes(field(b, 0)), m: f16::from_le_bytes(field(b, 2)), qs: field(b, 4) }
    }

    pub fn write(&self) -> [u8; 20] {
        let mut b = [0; 20];
        put(&mut b, 0, &self.d.to_le_bytes());
        put(&mut b, 2, &self.m.to_le_bytes());
        put(&mut b, 4, &self.qs);
        b
    }

    pub fn dequantize(&self, y: &mut [f32; 32]) {
        let (d, m) = (self.d.to_f32(), self.m.to_f32());
        for (j, &q) in self.qs.iter().enumerate() {
            y[j] = (q & 0xf) as f32 * d + m;
            y[j + 16] = (q >> 4) as f32 * d + m;
        }
    }
}

impl BlockQ5_0 {
    pub fn read(b: &[u8; 22]) -> Self {
        Self { d: f16::from_le_bytes(field(b, 0)), qh: field(b, 2), qs: field(b, 6) }
    }

    pub fn write(&self) -> [u8; 22] {
        let mut b = [0; 22];
        put(&mut b, 0, &self.d.to_le_bytes());
        put(&mut b, 2, &self.qh);
        put(&mut b, 6, &self.qs);
        b
    }

    pub fn dequantize(&self, y: &mut [f32; 32]) {
        let d = self.d.to_f32();
        let qh = u32::from_le_bytes(self.qh);
        for (j, y) in y.iter_mut().enumerate() {
            *y = (q5(&self.qs, qh, j) - 16) as f32 * d;
        }
    }
}

impl BlockQ5_1 {
    pub fn read(b: &[u8; 24]) -> Self {
        Self {
            d: f16::from_le_bytes(field(b, 0)),
            m: f16::from_le_bytes(field(b, 2)),
            qh: field(b, 4),
            qs: field(b, 8),
        }
    }

    pub fn write(&self) -> [u8; 24] {
        let mut b = [0; 24];
        put(&mut b, 0, &self.d.to_le_bytes());
        put(&mut b, 2, &self.m.to_le_bytes());
        put(&mut b, 4, &self.qh);
        put(&mut b, 8, &self.qs);
        b
    }

    pub fn dequantize(&self, y: &mut [f32; 32]) {
        let (d, m) = (self.d.to_f32(), self.m.to_f32());
        let qh = u32::from_le_bytes(self.qh);
        for (j, y) in y.iter_mut().enumerate() {
            *y = q5(&self.qs, qh, j) as f32 * d + m;
        }
    }
}

impl BlockQ8_0 {
    pub fn read(b: &[u8; 34]) -> Self {
        let qs: [u8; 32] = field(b, 2);
        Self { d: f16::from_le_bytes(field(b, 0)), qs: qs.map(|q| q as i8) }
    }

    pub fn write(&self) -> [u8; 34] {
        let mut b = [0; 34];
        put(&mut b, 0, &self.d.to_le_bytes());
        put(&mut b, 2, &self.qs.map(|q| q as u8));
        b
    }

    pub fn dequantize(&self, y: &mut [f32; 32]) {
        let d = self.d.to_f32();
        for (y, &q) in y.iter_mut().zip(&self.qs) {
            *y = q as f32 * d;
        }
    }
}
