//! What the element-wise launchers (`rmsnorm.rs`, `rope.rs`, `glu.rs`, `add.rs`, `softcap.rs`,
//! `kv_store.rs`, `argmax.rs`) share: which token rows a kernel covers ([`Rows`]), the workgroup
//! grid of a 1-D problem, the variant sources and the size checks made at load.
//!
//! Their kernels index work as `(wg.y · num_workgroups.x + wg.x) · WG + lid`, so a grid is laid
//! over x first and spills into y only past the device's per-dimension limit (65535 on most).

use super::Gpu;
use super::shaders::{for_backend, source, swap_section};
use crate::{Error, Result};

/// The token rows a row-wise kernel processes in a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    /// Every token of the step (`Step::n_tokens`).
    Step,
    /// Only the step's last token: input row `n_tokens - 1`, written as output row 0 (the final
    /// norm and the logits of a prefill chunk).
    Last,
    /// A fixed number of rows, whatever the step.
    Fixed(u32),
}

impl Rows {
    /// `(rows_mode, rows_fixed)` of the kernels' params.
    pub(super) fn params(self) -> (u32, u32) {
        match self {
            Rows::Step => (0, 0),
            Rows::Last => (1, 0),
            Rows::Fixed(n) => (2, n),
        }
    }

    /// Rows to dispatch for a step of `n_tokens`.
    pub(super) fn count(self, n_tokens: u32) -> u32 {
        match self {
            Rows::Step => n_tokens,
            Rows::Last => n_tokens.min(1),
            Rows::Fixed(n) => n,
        }
    }
}

/// Workgroups of `per_group` items for `n` items, as `[x, y]` with x at most `max_dim`.
pub(super) fn grid(n: u64, per_group: u64, max_dim: u32) -> [u32; 2] {
    let groups = n.div_ceil(per_group.max(1));
    let max_dim = max_dim.max(1) as u64;
    let gx = groups.min(max_dim);
    let gy = if gx == 0 { 0 } else { groups.div_ceil(gx) };
    [gx as u32, gy.min(max_dim) as u32]
}

/// Fails unless `buf` holds `n` elements of 4 bytes from element `off`, all addressable by a u32.
pub(super) fn fits(what: &'static str, buf: &wgpu::Buffer, off: u64, n: u64) -> Result<()> {
    let need = (off + n) * 4;
    if need > buf.size() || off + n > u32::MAX as u64 {
        return Err(Error::LengthMismatch { what, expected: need as usize, got: buf.size() as usize });
    }
    Ok(())
}

/// Converts a size or offset for a kernel's params, naming it if it does not fit a u32.
pub(super) fn u32_of(what: &'static str, v: u64) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::LengthMismatch { what, expected: u32::MAX as usize, got: v as usize })
}

/// The source of `stem.wgsl` with the given sections swapped in (`(file, section)`), prepared for
/// the device's backend; `subgroups` says whether one of them uses subgroups.
pub(super) fn variant_source(
    gpu: &Gpu,
    key: &str,
    stem: &str,
    swaps: &[(&str, &str)],
    subgroups: bool,
) -> Result<String> {
    let missing =
        |what: String| Error::GpuValidation { context: format!("preparing `{key}`"), message: what };
    let mut src =
        source(&format!("{stem}.wgsl")).ok_or_else(|| missing(format!("no {stem}.wgsl")))?.to_string();
    for &(file, section) in swaps {
        let from = source(file).ok_or_else(|| missing(format!("no {file}")))?;
        src = swap_section(&src, from, section)
            .ok_or_else(|| missing(format!("no `{section}` section in {stem}.wgsl or {file}")))?;
    }
    let browser = gpu.info().backend == wgpu::Backend::BrowserWebGpu;
    Ok(for_backend(src, subgroups, browser))
}
