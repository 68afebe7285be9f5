//! Weights on the GPU: a tensor's GGUF bytes, uploaded unchanged and decoded by the kernels.
//!
//! A tensor is a run of rows (`ne[0]` elements each, a whole number of blocks). Its bytes go up
//! as they are in the file, padded with zeros to a multiple of 4 so they can be bound as
//! `array<u32>`. One storage binding may cover at most [`Caps::max_storage_binding`] bytes
//! (128 MiB on lavapipe, 1 GiB in Chromium, 2 GiB on an H100), less than a large output matrix;
//! such a tensor is split by whole rows into several buffers ([`Piece`]s), and a kernel runs once
//! per piece. Rows never straddle pieces, so a piece is a valid tensor of its own.
//!
//! A tensor may also be a *view*: some consecutive rows of another, its pieces binding byte
//! ranges of the other's buffers ([`GpuTensor::rows_view`]). The loader uploads a layer's q, k
//! and v (or gate and up) matrices, when they share type and width, as one tensor of their rows
//! end to end and gives each as a view of it; [`GpuTensor::join`] finds the whole again, so one
//! mat-vec dispatch computes all three products in decode while the multi-token kernels run on
//! each view.
//!
//! Uploads go in chunks of at most [`UPLOAD_CHUNK`] bytes, each submitted before the next is
//! written, so wgpu never stages more than one chunk at a time; a progress callback hears after
//! each one.
//!
//! [`Caps::max_storage_binding`]: super::Caps::max_storage_binding

use super::Gpu;
use crate::quant::GgmlType;
use crate::{Error, Result};

/// Most bytes staged by one `write_buffer` before it is submitted.
pub const UPLOAD_CHUNK: u64 = 32 << 20;

/// A run of whole rows of a tensor in one GPU buffer.
pub struct Piece {
    pub buffer: wgpu::Buffer,
    /// Where the piece's first row starts in `buffer`, in bytes (0 unless the tensor is a view;
    /// then a multiple of the storage offset alignment).
    pub offset: u64,
    /// Index of the piece's first row in the tensor.
    pub first_row: u64,
    pub rows: u64,
}

impl Piece {
    /// Bytes the piece binds: its rows, padded to 4.
    pub fn size(&self, row_bytes: u64) -> u64 {
        (self.rows * row_bytes).next_multiple_of(4)
    }

    /// The piece's rows as a storage binding.
    pub fn binding(&self, row_bytes: u64) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: wgpu::BufferSize::new(self.size(row_bytes)),
        })
    }
}

/// A 2-D tensor (`[rows, cols]`, `cols` = `ne[0]` innermost) in its GGUF encoding on the GPU.
pub struct GpuTensor {
    pub name: String,
    pub ty: GgmlType,
    pub cols: u64,
    pub rows: u64,
    pub row_bytes: u64,
    pub pieces: Vec<Piece>,
}

/// How many rows of `row_bytes` one piece holds under a binding limit of `max_binding` bytes
/// (padding included).
pub fn rows_per_piece(row_bytes: u64, max_binding: u64) -> u64 {
    if row_bytes == 0 {
        return 0;
    }
    let mut n = max_binding / row_bytes;
    while n > 0 && (n * row_bytes).next_multiple_of(4) > max_binding {
        n -= 1;
    }
    n
}

impl GpuTensor {
    /// Creates the buffers of a `[rows, cols]` tensor of type `ty`, split by rows under the
    /// binding limit, their contents not yet written (the streaming loader fills them as the
    /// file arrives; [`GpuTensor::upload`] at once).
    pub fn alloc(gpu: &Gpu, name: &str, ty: GgmlType, cols: u64, rows: u64) -> Result<GpuTensor> {
        let (block, block_bytes) = (ty.block_size() as u64, ty.type_size() as u64);
        if cols == 0 || !cols.is_multiple_of(block) {
            return Err(Error::RowNotBlockMultiple {
                name: name.into(),
                ne0: cols,
                ty,
                block: block as usize,
            });
        }
        let row_bytes = cols / block * block_bytes;
        let total = row_bytes.checked_mul(rows).ok_or(Error::ByteSizeOverflow { name: name.into() })?;
        let max_binding = gpu.caps().max_storage_binding;
        let per_piece = rows_per_piece(row_bytes, max_binding);
        if per_piece == 0 {
            return Err(Error::GpuRowTooLarge { name: name.into(), row_bytes, max_binding });
        }
        // The kernels address bytes with u32 and dispatch at most max_workgroups² workgroups.
        if per_piece.min(rows) * row_bytes > u32::MAX as u64 || row_bytes > u32::MAX as u64 {
            return Err(Error::GpuTensorTooLarge {
                name: name.into(),
                bytes: total,
                why: "a piece over 4 GiB cannot be addressed with u32".into(),
            });
        }
        let mut pieces = Vec::new();
        let mut first_row = 0;
        while first_row < rows {
            let n = per_piece.min(rows - first_row);
            let buffer = gpu.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some(name),
                size: (n * row_bytes).next_multiple_of(4),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            gpu.check(&format!("creating a {}-byte buffer for `{name}`", buffer.size()))?;
            pieces.push(Piece { buffer, offset: 0, first_row, rows: n });
            first_row += n;
        }
        Ok(GpuTensor { name: name.into(), ty, cols, rows, row_bytes, pieces })
    }

    /// Uploads `data`, the GGUF bytes of a `[rows, cols]` tensor of type `ty`, calling
    /// `progress(bytes_done, bytes_total)` after each chunk.
    pub fn upload(
        gpu: &Gpu,
        name: &str,
        ty: GgmlType,
        cols: u64,
        rows: u64,
        data: &[u8],
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<GpuTensor> {
        let t = GpuTensor::alloc(gpu, name, ty, cols, rows)?;
        let total = t.row_bytes * rows;
        if data.len() as u64 != total {
            return Err(Error::LengthMismatch {
                what: "GPU tensor bytes",
                expected: total as usize,
                got: data.len(),
            });
        }
        let mut done = 0;
        for p in &t.pieces {
            let (a, b) = (p.first_row * t.row_bytes, (p.first_row + p.rows) * t.row_bytes);
            write_chunked(gpu, &p.buffer, &data[a as usize..b as usize], &mut |n| {
                done += n;
                progress(done, total);
            })?;
        }
        Ok(t)
    }

    /// Bytes on the GPU, padding included (a view's rows only).
    pub fn gpu_bytes(&self) -> u64 {
        self.pieces.iter().map(|p| p.size(self.row_bytes)).sum()
    }

    /// Rows `rows` of the tensor as a tensor of its own sharing the buffers, or `None` where a
    /// piece of it would not start on a multiple of `align` bytes (bindings' offsets must) or
    /// its rows would not end on a word.
    pub fn rows_view(&self, name: &str, rows: std::ops::Range<u64>, align: u64) -> Option<GpuTensor> {
        if rows.start >= rows.end || rows.end > self.rows || !self.row_bytes.is_multiple_of(4) {
            return None;
        }
        let mut pieces = Vec::new();
        for p in &self.pieces {
            let (lo, hi) = (rows.start.max(p.first_row), rows.end.min(p.first_row + p.rows));
            if lo >= hi {
                continue;
            }
            let offset = p.offset + (lo - p.first_row) * self.row_bytes;
            if !offset.is_multiple_of(align.max(4)) {
                return None;
            }
            let buffer = p.buffer.clone();
            pieces.push(Piece { buffer, offset, first_row: lo - rows.start, rows: hi - lo });
        }
        let rows = rows.end - rows.start;
        Some(GpuTensor {
            name: name.into(),
            ty: self.ty,
            cols: self.cols,
            rows,
            row_bytes: self.row_bytes,
            pieces,
        })
    }

    /// The tensor of `parts`' rows end to end, where they are consecutive views of one tensor
    /// (same type and width, each starting in the buffer where the one before ends); `None`
    /// otherwise. Its pieces are whole buffers' row runs again, one dispatch each.
    pub fn join(name: &str, parts: &[&GpuTensor]) -> Option<GpuTensor> {
        let first = parts.first()?;
        let mut pieces: Vec<Piece> = Vec::new();
        let mut rows = 0;
        for t in parts {
            if (t.ty, t.cols, t.row_bytes) != (first.ty, first.cols, first.row_bytes) {
                return None;
            }
            for p in &t.pieces {
                match pieces.last_mut() {
                    Some(last) if last.buffer == p.buffer => {
                        if last.offset + last.rows * t.row_bytes != p.offset {
                            return None;
                        }
                        last.rows += p.rows;
                    }
                    _ => pieces.push(Piece {
                        buffer: p.buffer.clone(),
                        offset: p.offset,
                        first_row: rows + p.first_row,
                        rows: p.rows,
                    }),
                }
            }
            rows += t.rows;
        }
        (parts.len() > 1 && pieces.len() < parts.iter().map(|t| t.pieces.len()).sum::<usize>()).then(|| {
            GpuTensor {
                name: name.into(),
                ty: first.ty,
                cols: first.cols,
                rows,
                row_bytes: first.row_bytes,
                pieces,
            }
        })
    }
}

/// Writes `bytes` to the start of `buffer` (at least `bytes.len()` rounded up to 4) in chunks,
/// the tail zero-padded to a multiple of 4. Each chunk is submitted once staged, and natively the
/// previous one is waited for, so at most two chunks of staging memory are alive (the browser
/// copies `writeBuffer` data at once and needs no wait; there the poll does nothing).
fn write_chunked(
    gpu: &Gpu,
    buffer: &wgpu::Buffer,
    bytes: &[u8],
    on_chunk: &mut dyn FnMut(u64),
) -> Result<()> {
    let mut previous: Option<wgpu::SubmissionIndex> = None;
    for (i, chunk) in bytes.chunks(UPLOAD_CHUNK as usize).enumerate() {
        let at = i as u64 * UPLOAD_CHUNK;
        let whole = chunk.len() / 4 * 4;
        if whole > 0 {
            gpu.queue().write_buffer(buffer, at, &chunk[..whole]);
        }
        if whole < chunk.len() {
            let mut tail = [0u8; 4];
            tail[..chunk.len() - whole].copy_from_slice(&chunk[whole..]);
            gpu.queue().write_buffer(buffer, at + whole as u64, &tail);
        }
        let index = gpu.queue().submit([]);
        if let Some(prev) = previous.replace(index) {
            gpu.wait(Some(prev), "uploading weights")?;
        }
        gpu.check("uploading weights")?;
        on_chunk(chunk.len() as u64);
    }
    Ok(())
}
