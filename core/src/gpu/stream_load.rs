//! Streaming weight load: a GGUF file's bytes go straight from the download into GPU buffers,
//! so the host never holds the whole file (the browser's wasm heap stays at a few MB whatever the
//! model's size).
//!
//! [`GpuModelBuilder::new`] takes the parsed header only. From [`Layout::from_header`] — the one
//! description of which tensors a model needs, shared with the CPU loader — it creates every
//! matrix's GPU buffers up front (split by rows under the binding limit, as
//! [`GpuTensor::upload`] does) and lists *destinations*: the file byte range of each buffer piece,
//! and of each small f32 vector (norms, biases, rope factors), which is kept on the host and
//! decoded at the end. Phi-3's fused `attn_qkv` / `ffn_up` need no special case: the layout gives
//! q, k, v (gate, up) as row ranges of the fused tensor, so each is a destination of its own.
//!
//! A layer's q, k and v matrices (or q and k alone), and its gate and up, go into one tensor of
//! their rows end to end where they share type and width and every part's rows start on a bindable offset
//! ([`fusable`]); each is then a view of it (`weights.rs`), and the forward pass runs the decode
//! mat-vec of the whole once (see `forward.rs`).
//!
//! [`GpuModelBuilder::push`] takes the file's bytes in order, in chunks of any size, and writes the
//! part of each chunk that overlaps a destination to its buffer. `write_buffer` takes offsets and
//! sizes that are multiples of 4, and chunks split tensors anywhere, so each destination carries
//! its last 1–3 bytes until the next chunk completes the word (the end of a tensor is zero-padded,
//! as the buffers are). Natively, staged bytes are submitted every [`UPLOAD_CHUNK`] and the
//! previous submission waited for, so staging memory stays bounded; the browser copies at once.
//! [`GpuModelBuilder::finish`] checks every destination is complete — a missing byte range is an
//! error naming its tensor — and assembles the [`GpuModel`].

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;

use super::weights::rows_per_piece;
use super::{Gpu, GpuModel, GpuTensor, UPLOAD_CHUNK};
use crate::error::{Error, Result};
use crate::gguf::Header;
use crate::model::{Config, Layout, MatrixPart, Model, VectorPart, WeightSet};
use crate::quant::GgmlType;

/// A GPU model being filled from a stream of file bytes.
pub struct GpuModelBuilder<'g> {
    gpu: &'g Gpu,
    config: Config,
    /// Each weight as an index into `mats` (whole, or some rows of a fused tensor) / `vecs` (a
    /// tied output shares the embedding's).
    layout: WeightSet<Mat, usize>,
    mats: Vec<GpuTensor>,
    vecs: Vec<HostVector>,
    /// Sorted by `start`.
    dests: Vec<Dest>,
    /// The first destination that may still take bytes.
    cursor: usize,
    /// File offset the next push must start at.
    next: u64,
    /// Bytes staged since the last submission, and that submission.
    staged: u64,
    previous: Option<wgpu::SubmissionIndex>,
    done: u64,
    total: u64,
}

/// A small vector's tensor bytes, collected on the host.
struct HostVector {
    part: VectorPart,
    bytes: Vec<u8>,
}

/// A file byte range and where it goes.
struct Dest {
    /// Absolute file offset.
    start: u64,
    len: u64,
    /// Bytes received so far; `got - n_carry` are written (a multiple of 4).
    got: u64,
    to: To,
    carry: [u8; 4],
    n_carry: usize,
}

enum To {
    /// `at`: the byte in the piece's buffer where the range's first byte goes.
    Piece {
        mat: usize,
        piece: usize,
        at: u64,
    },
    Host(usize),
}

/// A matrix of the model: a whole tensor of `mats`, or rows of one that holds several.
#[derive(Clone)]
enum Mat {
    Whole(usize),
    Rows { mat: usize, name: String, rows: Range<u64> },
}

/// Whether `parts` can be uploaded as one tensor of their rows end to end, each part a view of
/// it: the same type and width, rows a whole number of words, and every part's first row on a
/// multiple of `align` bytes within the piece of the whole (under `max_binding`) it falls in.
fn fusable(parts: &[&MatrixPart], max_binding: u64, align: u64) -> bool {
    let first = parts[0];
    let Some(row_bytes) = first.ty.row_bytes(first.cols) else { return false };
    let same = parts.iter().all(|p| p.ty == first.ty && p.cols == first.cols && p.len == p.rows * row_bytes);
    let distinct = parts.iter().enumerate().all(|(i, p)| parts[..i].iter().all(|q| q.offset != p.offset));
    let per_piece = rows_per_piece(row_bytes, max_binding);
    if !same || !distinct || !row_bytes.is_multiple_of(4) || per_piece == 0 {
        return false;
    }
    let mut row = 0;
    parts.iter().all(|p| {
        let ok = ((row % per_piece) * row_bytes).is_multiple_of(align.max(16));
        row += p.rows;
        ok
    })
}

impl Dest {
    fn end(&self) -> u64 {
        self.start + self.len
    }
}

impl<'g> GpuModelBuilder<'g> {
    /// Plans the load from the header (`config` from its metadata) and creates the weights' GPU
    /// buffers. Pushed offsets are file offsets.
    pub fn new(gpu: &'g Gpu, header: &Header<'_>, config: Config) -> Result<GpuModelBuilder<'g>> {
        let layout = Layout::from_header(header, &config)?;
        GpuModelBuilder::from_layout(gpu, config, layout, header.data_offset)
    }

    /// As [`GpuModelBuilder::new`], from a layout whose offsets count from `data_offset`.
    pub fn from_layout(
        gpu: &'g Gpu,
        config: Config,
        layout: Layout,
        data_offset: u64,
    ) -> Result<GpuModelBuilder<'g>> {
        let mut mats = Vec::new();
        let mut mat_at: HashMap<(u64, u64), usize> = HashMap::new();
        let mut vecs = Vec::new();
        let mut dests = Vec::new();
        let mut vec_dests = Vec::new();
        // Parts of fused matrices: (offset, len) → (group, first row in it); per group, its
        // parts and, once allocated, its index in `mats`.
        let (max_binding, align) =
            (gpu.caps().max_storage_binding, gpu.caps().min_storage_offset_alignment as u64);
        let mut member: HashMap<(u64, u64), (usize, u64)> = HashMap::new();
        let mut groups: Vec<(Vec<MatrixPart>, Option<usize>)> = Vec::new();
        for l in &layout.layers {
            // q|k alone where v differs (Q4_K_M files often have a Q6_K attn_v).
            let qkv = [&l.attn_q, &l.attn_k, &l.attn_v];
            let attn = if fusable(&qkv, max_binding, align) { &qkv[..] } else { &qkv[..2] };
            for parts in [attn.to_vec(), vec![&l.ffn_gate, &l.ffn_up]] {
                if !fusable(&parts, max_binding, align) {
                    continue;
                }
                let mut row = 0;
                for p in &parts {
                    member.insert((p.offset, p.len), (groups.len(), row));
                    row += p.rows;
                }
                groups.push((parts.into_iter().cloned().collect(), None));
            }
        }
        let layout = layout.try_map(
            |m: MatrixPart| {
                let start = data_offset.saturating_add(m.offset);
                if let Some(&(g, row0)) = member.get(&(m.offset, m.len)) {
                    let (parts, at) = &mut groups[g];
                    let mat = match *at {
                        Some(i) => i,
                        None => {
                            let name = parts.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join("+");
                            let rows = parts.iter().map(|p| p.rows).sum();
                            mats.push(GpuTensor::alloc(gpu, &name, m.ty, m.cols, rows)?);
                            *at = Some(mats.len() - 1);
                            mats.len() - 1
                        }
                    };
                    let t = &mats[mat];
                    let rows = row0..row0 + m.rows;
                    for (piece, p) in t.pieces.iter().enumerate() {
                        let (lo, hi) = (rows.start.max(p.first_row), rows.end.min(p.first_row + p.rows));
                        if lo < hi {
                            let at = p.offset + (lo - p.first_row) * t.row_bytes;
                            dests.push(Dest::new(
                                start + (lo - row0) * t.row_bytes,
                                (hi - lo) * t.row_bytes,
                                To::Piece { mat, piece, at },
                            ));
                        }
                    }
                    return Ok(Mat::Rows { mat, name: m.name, rows });
                }
                if let Some(&i) = mat_at.get(&(m.offset, m.len)) {
                    return Ok(Mat::Whole(i));
                }
                let t = GpuTensor::alloc(gpu, &m.name, m.ty, m.cols, m.rows)?;
                if t.row_bytes * t.rows != m.len {
                    return Err(Error::LengthMismatch {
                        what: "tensor bytes for its shape",
                        expected: (t.row_bytes * t.rows) as usize,
                        got: m.len as usize,
                    });
                }
                for (piece, p) in t.pieces.iter().enumerate() {
                    dests.push(Dest::new(
                        start + p.first_row * t.row_bytes,
                        p.rows * t.row_bytes,
                        To::Piece { mat: mats.len(), piece, at: 0 },
                    ));
                }
                mat_at.insert((m.offset, m.len), mats.len());
                mats.push(t);
                Ok(Mat::Whole(mats.len() - 1))
            },
            |v: VectorPart| {
                vec_dests.push(Dest::new(
                    data_offset.saturating_add(v.offset),
                    v.bytes,
                    To::Host(vecs.len()),
                ));
                vecs.push(HostVector { bytes: Vec::with_capacity(v.bytes as usize), part: v });
                Ok(vecs.len() - 1)
            },
        )?;
        dests.append(&mut vec_dests);
        dests.sort_by_key(|d| d.start);
        let total = dests.iter().map(|d| d.len).sum();
        Ok(GpuModelBuilder {
            gpu,
            config,
            layout,
            mats,
            vecs,
            dests,
            cursor: 0,
            next: 0,
            staged: 0,
            previous: None,
            done: 0,
            total,
        })
    }

    /// Weight bytes received so far and in all.
    pub fn progress(&self) -> (u64, u64) {
        (self.done, self.total)
    }

    /// The file's bytes from `offset` (where the previous push ended; the first starts at 0).
    pub fn push(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        if offset != self.next {
            return Err(Error::StreamOrder { expected: self.next, got: offset });
        }
        let end = offset + bytes.len() as u64;
        self.next = end;
        while self.cursor < self.dests.len() && self.dests[self.cursor].end() <= offset {
            self.cursor += 1;
        }
        let mut i = self.cursor;
        while i < self.dests.len() && self.dests[i].start < end {
            let d = &mut self.dests[i];
            let (lo, hi) = (d.start.max(offset), d.end().min(end));
            if lo < hi {
                let src = &bytes[(lo - offset) as usize..(hi - offset) as usize];
                match d.to {
                    To::Host(v) => {
                        self.vecs[v].bytes.extend_from_slice(src);
                        d.got += src.len() as u64;
                    }
                    To::Piece { mat, piece, at } => {
                        d.write(self.gpu, &self.mats[mat].pieces[piece].buffer, at, src);
                        self.staged += src.len() as u64;
                    }
                }
                self.done += src.len() as u64;
            }
            i += 1;
        }
        if self.staged >= UPLOAD_CHUNK {
            self.submit()?;
        }
        Ok(())
    }

    /// Submits what is staged and waits for the previous submission (natively), so at most two
    /// chunks of staging memory are alive.
    fn submit(&mut self) -> Result<()> {
        self.staged = 0;
        let index = self.gpu.queue().submit([]);
        if let Some(prev) = self.previous.replace(index) {
            self.gpu.wait(Some(prev), "uploading weights")?;
        }
        self.gpu.check("uploading weights")
    }

    /// The stream has ended: checks every weight byte arrived and assembles the model.
    pub fn finish(mut self) -> Result<GpuModel> {
        if let Some(d) = self.dests.iter().find(|d| d.got < d.len) {
            let name = match d.to {
                To::Piece { mat, .. } => self.mats[mat].name.clone(),
                To::Host(v) => self.vecs[v].part.name.clone(),
            };
            return Err(Error::TensorIncomplete {
                name,
                start: d.start,
                end: d.end(),
                len: d.len,
                got: d.got,
            });
        }
        self.submit()?;
        self.gpu.wait(self.previous.take(), "uploading weights")?;
        let mut mats: Vec<Option<GpuTensor>> = self.mats.into_iter().map(Some).collect();
        let vecs = self.vecs;
        let align = self.gpu.caps().min_storage_offset_alignment as u64;
        let view = |mat: &Option<GpuTensor>, name: &str, rows: Range<u64>| {
            let t =
                mat.as_ref().ok_or_else(|| Error::GpuAttention { why: format!("`{name}`'s rows taken") })?;
            let why = format!("rows {rows:?} of `{}` cannot be bound", t.name);
            t.rows_view(name, rows, align).map(Some).ok_or(Error::GpuAttention { why })
        };
        let w = self.layout.try_map(
            |m| match m {
                Mat::Whole(i) => Ok(mats[i].take()),
                Mat::Rows { mat, name, rows } => view(&mats[mat], &name, rows),
            },
            |j| vecs[j].part.decode(&vecs[j].bytes),
        )?;
        GpuModel::from_weights(self.gpu, self.config, w)
    }
}

impl Dest {
    fn new(start: u64, len: u64, to: To) -> Dest {
        Dest { start, len, got: 0, to, carry: [0; 4], n_carry: 0 }
    }

    /// Writes the next `src` bytes of this range to `buffer`, whole words only; 1–3 trailing
    /// bytes wait in `carry` for the next call, or are zero-padded at the range's end.
    /// `base`: where the range starts in `buffer`, a multiple of 4.
    fn write(&mut self, gpu: &Gpu, buffer: &wgpu::Buffer, base: u64, mut src: &[u8]) {
        let mut at = base + self.got - self.n_carry as u64;
        self.got += src.len() as u64;
        if self.n_carry > 0 {
            let take = (4 - self.n_carry).min(src.len());
            self.carry[self.n_carry..self.n_carry + take].copy_from_slice(&src[..take]);
            self.n_carry += take;
            src = &src[take..];
            if self.n_carry == 4 {
                gpu.queue().write_buffer(buffer, at, &self.carry);
                at += 4;
                self.n_carry = 0;
            }
        }
        let whole = src.len() / 4 * 4;
        if whole > 0 {
            gpu.queue().write_buffer(buffer, at, &src[..whole]);
            at += whole as u64;
        }
        if whole < src.len() {
            // Only reached with an empty carry: a partial carry took all of `src` above.
            self.n_carry = src.len() - whole;
            self.carry[..self.n_carry].copy_from_slice(&src[whole..]);
        }
        if self.got == self.len && self.n_carry > 0 {
            self.carry[self.n_carry..].fill(0);
            gpu.queue().write_buffer(buffer, at, &self.carry);
            self.n_carry = 0;
        }
    }
}

/// A loaded model's weights laid end to end as a stream (a tied output once), with the bytes
/// to push: how [`GpuModel::upload`] feeds the builder.
pub(super) fn model_stream<'a>(model: &Model<'a>) -> Result<(Layout, Vec<Cow<'a, [u8]>>)> {
    // Both closures append to the one stream.
    let stream: RefCell<(u64, Vec<Cow<'a, [u8]>>)> = RefCell::new((0, Vec::new()));
    let mut seen: HashMap<(*const u8, usize), MatrixPart> = HashMap::new();
    let layout = model.weights.clone().try_map(
        |t| {
            if let Some(m) = seen.get(&(t.data.as_ptr(), t.data.len())) {
                return Ok(m.clone());
            }
            let (offset, feed) = &mut *stream.borrow_mut();
            let m = MatrixPart {
                name: t.name.into(),
                ty: t.ty,
                cols: t.cols() as u64,
                rows: t.rows() as u64,
                offset: *offset,
                len: t.data.len() as u64,
            };
            *offset += m.len;
            feed.push(Cow::Borrowed(t.data));
            seen.insert((t.data.as_ptr(), t.data.len()), m.clone());
            Ok(m)
        },
        |v: Vec<f32>| {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            let (offset, feed) = &mut *stream.borrow_mut();
            let part = VectorPart {
                name: "f32 vector".into(),
                ty: GgmlType::F32,
                n: v.len(),
                offset: *offset,
                bytes: bytes.len() as u64,
                start: 0,
                len: v.len(),
            };
            *offset += part.bytes;
            feed.push(Cow::Owned(bytes));
            Ok(part)
        },
    )?;
    Ok((layout, stream.into_inner().1))
}
