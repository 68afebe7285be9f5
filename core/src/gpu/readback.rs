//! Reading GPU buffers back to the CPU, the one other place the engine awaits.
//!
//! A [`Readback`] owns a `MAP_READ` staging buffer, made once and reused (the logits of every
//! decode step come back through the same one). A read copies the range into it, submits, asks
//! for a map and awaits the map callback through a small future of our own: the core has no async
//! runtime, and the browser delivers the callback from its event loop. Natively wgpu only runs
//! callbacks when the device is polled, so the read polls with `Wait` first ([`Gpu::wait`], with
//! the optional time-out of `GpuOptions`), which makes the future ready by the time it is awaited
//! (on WebGPU the poll does nothing).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::Gpu;
use crate::{Error, Result};

/// A reusable staging buffer for reading results back.
pub struct Readback {
    staging: wgpu::Buffer,
}

impl Readback {
    /// Room for reads of up to `capacity` bytes (rounded up to 4).
    pub fn new(gpu: &Gpu, capacity: u64) -> Result<Readback> {
        let staging = gpu.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: capacity.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        gpu.check("creating a read-back buffer")?;
        Ok(Readback { staging })
    }

    pub fn capacity(&self) -> u64 {
        self.staging.size()
    }

    /// Copies `out.len()` bytes of `src` from byte `offset` (both multiples of 4) into `out`,
    /// after all work submitted so far. `&mut`: one read at a time owns the staging buffer.
    pub async fn read(&mut self, gpu: &Gpu, src: &wgpu::Buffer, offset: u64, out: &mut [u8]) -> Result<()> {
        let len = out.len() as u64;
        let context = "reading a buffer back";
        if !offset.is_multiple_of(4) || !len.is_multiple_of(4) || len > self.capacity() {
            return Err(Error::GpuReadback {
                context: context.into(),
                message: format!(
                    "{len} bytes from offset {offset}: both must be multiples of 4, and the length at most {}",
                    self.capacity()
                ),
            });
        }
        if offset.checked_add(len).is_none_or(|end| end > src.size()) {
            return Err(Error::GpuReadback {
                context: context.into(),
                message: format!("{len} bytes from offset {offset} overrun the {}-byte buffer", src.size()),
            });
        }
        if len == 0 {
            return Ok(());
        }
        let mut encoder = gpu.device().create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(src, offset, &self.staging, 0, len);
        gpu.submit(encoder, context)?;

        let slice = self.staging.slice(..len);
        let done = MapDone::default();
        let signal = done.clone();
        slice.map_async(wgpu::MapMode::Read, move |result| signal.set(result));
        // Natively this runs the callback; on the web it does nothing and the browser calls back.
        gpu.wait(None, context)?;
        let mapped = done.await;
        gpu.check(context)?;
        mapped.map_err(|e| Error::GpuReadback { context: context.into(), message: e.to_string() })?;
        let copied = match slice.get_mapped_range() {
            Ok(view) => {
                out.copy_from_slice(&view);
                Ok(())
            }
            Err(e) => Err(Error::GpuReadback { context: context.into(), message: e.to_string() }),
        };
        self.staging.unmap();
        copied
    }

    /// `n` f32 of `src` from element `offset`.
    pub async fn read_f32(
        &mut self,
        gpu: &Gpu,
        src: &wgpu::Buffer,
        offset: u64,
        n: usize,
    ) -> Result<Vec<f32>> {
        let mut bytes = vec![0u8; n * 4];
        self.read(gpu, src, offset * 4, &mut bytes).await?;
        Ok(bytes.as_chunks::<4>().0.iter().map(|b| f32::from_le_bytes(*b)).collect())
    }
}

impl Gpu {
    /// `n` f32 of `src` from element `offset`, through a staging buffer made for this read
    /// (use a [`Readback`] to read repeatedly without allocating).
    pub async fn read_f32(&self, src: &wgpu::Buffer, offset: u64, n: usize) -> Result<Vec<f32>> {
        Readback::new(self, n as u64 * 4)?.read_f32(self, src, offset, n).await
    }
}

/// A one-shot future completed by the map callback.
#[derive(Clone, Default)]
pub(super) struct MapDone(Arc<Mutex<MapState>>);

#[derive(Default)]
struct MapState {
    result: Option<Result<(), wgpu::BufferAsyncError>>,
    waker: Option<Waker>,
}

impl MapDone {
    pub(super) fn set(&self, result: Result<(), wgpu::BufferAsyncError>) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.result = Some(result);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }
}

impl Future for MapDone {
    type Output = Result<(), wgpu::BufferAsyncError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match s.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
