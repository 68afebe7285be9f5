//! Launcher for `shaders/stream_read.wgsl`, the read-bandwidth probe (`aether bench` divides the
//! bytes a decode step must read by the bandwidth it measures with this), and its CPU twin
//! [`stream_read_cpu`]. Key: `stream_read`.
//!
//! The core keeps no time: the host times repeated [`StreamRead::encode`]s itself.

use super::Gpu;
use super::launch::{grid, u32_of, variant_source};
use super::pipelines::Family;
use crate::Result;

/// Mirrors `struct Params` of stream_read.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n_vec4: u32,
    stride: u32,
    groups_x: u32,
    _pad: u32,
}

const WG: u64 = 256;

/// Reads a buffer of its own end to end, ready to encode.
pub struct StreamRead {
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    grid: [u32; 2],
    src: wgpu::Buffer,
    out: wgpu::Buffer,
    _params: wgpu::Buffer,
}

impl StreamRead {
    /// A probe over a buffer of `bytes` (rounded down to 16, capped by the binding limit), read
    /// by `groups` workgroups; the buffer is filled with `fill(i)` for its i-th u32.
    pub fn new(gpu: &Gpu, bytes: u64, groups: u32, fill: impl Fn(usize) -> u32) -> Result<StreamRead> {
        let key = "stream_read";
        let pipeline = gpu.pipeline(key, Family::Auto, || variant_source(gpu, key, key, &[], false))?;
        let bytes = bytes.min(gpu.caps().max_storage_binding) / 16 * 16;
        let src = gpu.storage("stream_read src", bytes)?;
        // Filled in pieces, so the host never holds the whole buffer.
        let piece = 16usize << 20;
        let mut words = Vec::with_capacity(piece / 4);
        for at in (0..bytes as usize).step_by(piece) {
            let n = piece.min(bytes as usize - at);
            words.clear();
            words.extend((at / 4..(at + n) / 4).map(&fill));
            gpu.queue().write_buffer(&src, at as u64, bytemuck::cast_slice(&words));
            gpu.queue().submit([]);
        }
        let grid = grid(groups as u64 * WG, WG, gpu.caps().max_workgroups_per_dim);
        let out = gpu.storage("stream_read out", groups as u64 * 4)?;
        let params = Params {
            n_vec4: u32_of("stream_read vec4s", bytes / 16)?,
            stride: u32_of("stream_read invocations", groups as u64 * WG)?,
            groups_x: grid[0],
            _pad: 0,
        };
        let params_buf = gpu.uniform(key, &params)?;
        let bind = gpu.bind(
            key,
            &pipeline,
            &[src.as_entire_binding(), out.as_entire_binding(), params_buf.as_entire_binding()],
        )?;
        Ok(StreamRead { pipeline, bind, grid, src, out, _params: params_buf })
    }

    /// Bytes one [`StreamRead::encode`] reads.
    pub fn bytes(&self) -> u64 {
        self.src.size()
    }

    /// The per-workgroup XORs the last run wrote (for [`stream_read_cpu`]).
    pub fn out(&self) -> &wgpu::Buffer {
        &self.out
    }

    /// Workgroups in the grid (entries of [`StreamRead::out`]).
    pub fn groups(&self) -> u32 {
        (self.out.size() / 4) as u32
    }

    /// Records one read of the whole buffer.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.dispatch_workgroups(self.grid[0], self.grid[1], 1);
    }
}

/// CPU twin of [`StreamRead`]: the XOR of the u32s each of `groups` workgroups reads from `src`.
pub fn stream_read_cpu(src: &[u32], groups: u32) -> Vec<u32> {
    let lanes = groups as usize * WG as usize;
    let mut out = vec![0u32; groups as usize];
    for (v, chunk) in src.chunks(4).enumerate() {
        let group = (v % lanes) / WG as usize;
        out[group] ^= chunk.iter().fold(0, |a, b| a ^ b);
    }
    out
}
