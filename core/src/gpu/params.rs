//! What the tiled launchers share: one uniform buffer holding a launcher's parameters for every
//! piece of a row-split tensor (each at a multiple of `min_uniform_offset_alignment`, so piece
//! `i`'s bind group binds slot `i`), and the size checks on the buffers they are given.

use super::Gpu;
use crate::{Error, Result};

/// `[pieces]` parameter structs in one uniform buffer, written once at load.
pub(crate) struct PieceParams {
    buffer: wgpu::Buffer,
    stride: u64,
    size: u64,
}

impl PieceParams {
    pub(crate) fn new<T: bytemuck::Pod>(gpu: &Gpu, label: &str, items: &[T]) -> Result<PieceParams> {
        let size = size_of::<T>() as u64;
        let stride = size.next_multiple_of(gpu.caps().min_uniform_offset_alignment.max(1) as u64);
        let mut bytes = vec![0u8; (stride * items.len() as u64).max(size) as usize];
        for (i, item) in items.iter().enumerate() {
            let at = i * stride as usize;
            bytes[at..at + size as usize].copy_from_slice(bytemuck::bytes_of(item));
        }
        let buffer = gpu.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (bytes.len() as u64).next_multiple_of(16),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        gpu.queue().write_buffer(&buffer, 0, &bytes);
        gpu.check(&format!("creating uniform `{label}`"))?;
        Ok(PieceParams { buffer, stride, size })
    }

    /// The binding of piece `i`'s parameters.
    pub(crate) fn binding(&self, i: usize) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: i as u64 * self.stride,
            size: wgpu::BufferSize::new(self.size),
        })
    }
}

/// Fails unless `buf` holds `n` elements of 4 bytes from element `off`, addressable with u32.
pub(crate) fn check_fits(what: &'static str, buf: &wgpu::Buffer, off: u64, n: u64) -> Result<()> {
    let end = off.saturating_add(n);
    if end.saturating_mul(4) > buf.size() || end > u32::MAX as u64 {
        return Err(Error::LengthMismatch {
            what,
            expected: end.saturating_mul(4) as usize,
            got: buf.size() as usize,
        });
    }
    Ok(())
}
