//! Helpers for the GPU kernel tests: the adapter policy, deterministic test data and the NMSE
//! check.
//!
//! Adapter policy. A test that needs an adapter and finds none FAILS: CI installs Mesa's lavapipe
//! (`scripts/test.sh`), so a missing adapter means a broken set-up, and a test that quietly
//! skipped would prove nothing. A machine that truly has no Vulkan (or Metal/DX12) says so
//! explicitly with `AETHER_NO_GPU=1`; then the tests print a loud note and pass without running.
//! Set `AETHER_GPU_FALLBACK=1` to take the CPU fallback adapter (lavapipe) even beside a real GPU.

use aether_core::Error;
use aether_core::gpu::{Gpu, GpuOptions};
use aether_core::quant::{self, GgmlType};

/// The env var that declares "no GPU expected here".
pub const NO_GPU_VAR: &str = "AETHER_NO_GPU";

/// A device with `opts`, or `None` when `AETHER_NO_GPU=1` says none is expected. Panics with
/// what to install when there is no adapter otherwise.
pub fn test_gpu(mut opts: GpuOptions) -> Option<Gpu> {
    if std::env::var(NO_GPU_VAR).is_ok_and(|v| v == "1") {
        eprintln!("NOTE: {NO_GPU_VAR}=1 — GPU test NOT run");
        return None;
    }
    opts.force_fallback |= std::env::var("AETHER_GPU_FALLBACK").is_ok_and(|v| v == "1");
    // A hung kernel fails the test (Error::GpuTimeout) instead of hanging the run.
    opts.poll_timeout.get_or_insert(std::time::Duration::from_secs(120));
    match pollster::block_on(Gpu::new(opts)) {
        Ok(gpu) => Some(gpu),
        Err(e) => panic!(
            "{e}\nThe GPU tests need an adapter: install Mesa's lavapipe (apt-get install -y \
             mesa-vulkan-drivers libvulkan1; scripts/test.sh does) or set {NO_GPU_VAR}=1 to declare \
             that this machine has none."
        ),
    }
}

/// SplitMix64: small, seedable, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
}

/// Byte offsets of the f16 scale fields (d, dmin, m) inside one block of `ty`.
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    use GgmlType::*;
    match ty {
        Q4_0 | Q5_0 | Q8_0 => &[0],
        Q4_1 | Q5_1 | Q4K | Q5K => &[0, 2],
        Q2K => &[80, 82],
        Q3K => &[108],
        Q6K => &[208],
        _ => &[],
    }
}

/// `rows` rows of `cols` elements of `ty`. Float types and types with a quantizer get quantized
/// random values; every block type can instead get random bytes (`raw`; always for Q2_K and Q3_K,
/// which have no quantizer), which reach bit
/// patterns a quantizer never writes (all scale bits set, mins above scales), with the f16
/// scales replaced by finite values in [2^-8, 2^-4] so sums stay well-conditioned.
pub fn weights(ty: GgmlType, rows: usize, cols: usize, raw: bool, rng: &mut Rng) -> Vec<u8> {
    let row_bytes = ty.row_bytes(cols as u64).expect("whole blocks") as usize;
    if !raw || f16_fields(ty).is_empty() {
        let values = rng.vec(rows * cols);
        match quant::quantize(ty, &values) {
            Ok(bytes) => return bytes,
            // Q2_K and Q3_K have no quantizer here: random bytes it is.
            Err(Error::UnsupportedType { .. }) if !f16_fields(ty).is_empty() => {}
            Err(e) => panic!("quantize {ty}: {e}"),
        }
    }
    let mut bytes: Vec<u8> = (0..rows * row_bytes).map(|_| rng.next_u64() as u8).collect();
    for block in bytes.chunks_mut(ty.type_size()) {
        for &at in f16_fields(ty) {
            // f16 with exponent 2^-8 … 2^-4 and a random mantissa.
            let exp = 7 + (rng.next_u64() % 5) as u16;
            let bits = (exp << 10) | (rng.next_u64() as u16 & 0x3ff);
            block[at..at + 2].copy_from_slice(&bits.to_le_bytes());
        }
    }
    bytes
}

/// Panics unless `Σ(got - want)² / Σ want² ≤ max_nmse`, naming the worst element and the first
/// few pairs. Returns the NMSE.
pub fn assert_nmse(got: &[f32], want: &[f32], max_nmse: f64, what: &str) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let (mut err, mut norm, mut worst) = (0f64, 0f64, (0usize, 0f64));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = (g as f64 - w as f64).abs();
        if !d.is_finite() || d > worst.1 {
            worst = (i, if d.is_finite() { d } else { f64::INFINITY });
        }
        err += d * d;
        norm += (w as f64) * (w as f64);
    }
    let nmse = if norm > 0.0 { err / norm } else { err };
    // NaN fails too.
    if nmse.is_nan() || nmse > max_nmse {
        let firsts: Vec<String> = got.iter().zip(want).take(4).map(|(g, w)| format!("{g} vs {w}")).collect();
        panic!(
            "{what}: NMSE {nmse:.3e} > {max_nmse:.0e}; worst at [{}]: got {} want {} (|diff| {:.3e}); first: {}",
            worst.0,
            got[worst.0],
            want[worst.0],
            worst.1,
            firsts.join(", ")
        );
    }
    nmse
}
