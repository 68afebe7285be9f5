//! Launcher for `shaders/matvec_*.wgsl`, the fused dequantize × vector product of decode
//! (`y = W·x` with W in its GGUF encoding), and its CPU twin [`matvec_cpu`].
//!
//! A [`MatVec`] is built once per (weight tensor, x, y) at load: it picks the kernel variant for
//! the device (`_sg` reduces with subgroups, `_wg` through workgroup memory: the kernel file
//! followed by `reduce_subgroup.wgsl` or `reduce_workgroup.wgsl`, see `shaders.rs`), writes the
//! parameters of every piece of a row-split tensor into one uniform buffer and makes the bind
//! groups, so encoding it into a decode step's compute pass only sets state and dispatches.
//! The kernel's rows per workgroup come from its own `const ROWS`. Its workgroup size is
//! `override WG` (the file's default); on a software adapter ([`Caps::software`]) the launcher
//! sets it to [`MATVEC_SOFTWARE_WG`] (key suffix `_sw`): fewer idle invocations per short row and
//! fewer coroutines per barrier for a CPU that emulates the workgroup.
//!
//! The Q4_1, Q4_K, Q6_K and Q8_0 kernels take x as packed 8-bit levels (the `xq` output of
//! `act_quant.wgsl`, see [`packed_input`]) and multiply integers with `dot4I8Packed`, as the CPU's
//! dot products do; the others take the f32 input rounded to their activation format. A mat-vec
//! may add its product to y instead of storing it ([`MatVec::new_add`]): a residual add with no
//! dispatch of its own.
//!
//! [`Caps::software`]: super::Caps::software

use super::pipelines::Family;
use super::shaders::{const_u32, matvec_stem, source, splice_reduce, swap_section, with_includes};
use super::{Gpu, GpuTensor};
use crate::quant::{self, GgmlType};
use crate::{Error, Result};

/// Mirrors `struct Params` of the mat-vec kernels.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n_rows: u32,
    cols: u32,
    row_bytes: u32,
    x_off: u32,
    y_off: u32,
    groups_x: u32,
    add: u32,
    split1: u32,
    gap1: u32,
    split2: u32,
    gap2: u32,
    _pad: u32,
}

const _: () = assert!(size_of::<Params>() == 48);

/// Invocations per mat-vec workgroup on a software adapter: the smallest every kernel takes (the
/// K-quant kernels share a block among 16 invocations; a workgroup holds at least `ROWS`).
pub const MATVEC_SOFTWARE_WG: u32 = 16;

/// `y[y_off + r] = Σ_c W[r, c] · x[x_off + c]` for every row of one weight tensor, ready to
/// encode.
pub struct MatVec {
    key: String,
    pipeline: wgpu::ComputePipeline,
    /// Per piece: its bind group and workgroup grid.
    pieces: Vec<(wgpu::BindGroup, [u32; 2])>,
    /// [pieces] Params, one per `min_uniform_offset_alignment` bytes; kept alive for the bind groups.
    _params: wgpu::Buffer,
}

/// What a benchmark replaces in a mat-vec kernel (only [`MatVec::with_shape`] and
/// [`MatVec::with_source`] replace anything).
#[derive(Clone, Copy)]
enum Tune<'a> {
    /// The kernel file as it is.
    Own,
    /// Workgroup size and `const ROWS`.
    Shape(u32, u32),
    /// Another kernel source, named `label` in the pipeline key, and its workgroup size.
    Source { label: &'a str, source: &'a str, wg: Option<u32> },
}

/// What the fused q|k|v mat-vec of a one-token step needs to do that step's rope and KV cache
/// store itself (`shaders/put_rope.wgsl`, [`MatVec::new_rope`]): made by
/// [`RopeKv::put`](super::RopeKv::put) from the same parameters as the kernel it stands for.
pub struct RopePut {
    /// `struct RopePut` of put_rope.wgsl.
    pub(super) params: wgpu::Buffer,
    pub(super) factors: wgpu::Buffer,
    pub(super) k_cache: wgpu::Buffer,
    pub(super) v_cache: wgpu::Buffer,
    /// The step table (token 0's sequence and position).
    pub(super) at: wgpu::Buffer,
    /// The rows of q, k and v and where in their buffer each goes (elements): the fused
    /// mat-vec's parts.
    pub(super) parts: [(u64, u64); 3],
}

/// Whether the mat-vec of weights of type `ty` takes x as packed 8-bit levels (`act_quant`'s
/// `xq`, offsets in words) rather than f32 (offsets in elements).
pub fn packed_input(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_1 | GgmlType::Q4K | GgmlType::Q6K | GgmlType::Q8_0)
}

/// The exact mat-vec's `TYPE` for `ty` (`shaders/exact_matvec.wgsl`), if it has one.
fn exact_type(ty: GgmlType) -> Option<u32> {
    match ty {
        GgmlType::Q4_1 => Some(0),
        GgmlType::Q8_0 => Some(1),
        GgmlType::Q4_0 => Some(2),
        _ => None,
    }
}

/// Whether the mat-vec of `ty` on this device takes packed levels: [`packed_input`], and under
/// exact numerics every type the exact mat-vec takes.
pub fn takes_packed(gpu: &Gpu, ty: GgmlType) -> bool {
    packed_input(ty) || (gpu.caps().exact && exact_type(ty).is_some())
}

impl MatVec {
    /// `y = W·x`. `x` is f32 or packed levels as [`packed_input`] says, `y` f32 (distinct
    /// buffers: one is read, the other written); the offsets are in elements (words for packed
    /// x).
    pub fn new(
        gpu: &Gpu,
        w: &GpuTensor,
        x: &wgpu::Buffer,
        x_off: u64,
        y: &wgpu::Buffer,
        y_off: u64,
    ) -> Result<MatVec> {
        MatVec::build(gpu, w, (x, x_off), (y, &[(w.rows, y_off)]), false, Tune::Own, None)
    }

    /// `y = W·x` where W's rows are parts end to end, `parts` giving each part's rows and
    /// where in y its first row goes (in order, each region after the one before; at most
    /// three parts).
    pub fn new_parts(
        gpu: &Gpu,
        w: &GpuTensor,
        x: &wgpu::Buffer,
        x_off: u64,
        y: &wgpu::Buffer,
        parts: &[(u64, u64)],
    ) -> Result<MatVec> {
        MatVec::build(gpu, w, (x, x_off), (y, parts), false, Tune::Own, None)
    }

    /// [`MatVec::new_parts`] of a fused q|k|v tensor (parts q, k, v) whose store also does what
    /// [`RopeKv`](super::RopeKv) does for a step of one token: q rotated and scaled into y, k
    /// rotated and v into the KV cache at token 0's seat. `None` where the kernel can't: its type
    /// has no swappable store, it takes other than two rows a workgroup, or the tensor is split
    /// into pieces.
    pub fn new_rope(
        gpu: &Gpu,
        w: &GpuTensor,
        x: &wgpu::Buffer,
        x_off: u64,
        y: &wgpu::Buffer,
        parts: &[(u64, u64)],
        put: &RopePut,
    ) -> Result<Option<MatVec>> {
        let file = matvec_stem(w.ty).and_then(|stem| source(&format!("{stem}.wgsl")));
        let takes = file.is_some_and(|f| const_u32(f, "ROWS") == Some(2) && f.contains("\n// ---- put"));
        if !takes || w.pieces.len() != 1 || parts != put.parts {
            return Ok(None);
        }
        MatVec::build(gpu, w, (x, x_off), (y, parts), false, Tune::Own, Some(put)).map(Some)
    }

    /// `y += W·x`, otherwise as [`MatVec::new`].
    pub fn new_add(
        gpu: &Gpu,
        w: &GpuTensor,
        x: &wgpu::Buffer,
        x_off: u64,
        y: &wgpu::Buffer,
        y_off: u64,
    ) -> Result<MatVec> {
        MatVec::build(gpu, w, (x, x_off), (y, &[(w.rows, y_off)]), true, Tune::Own, None)
    }

    /// [`MatVec::new`] with the kernel's workgroup size and rows per workgroup replaced (`override
    /// WG`, `const ROWS`): for tuning benchmarks only.
    #[doc(hidden)]
    pub fn with_shape(
        gpu: &Gpu,
        w: &GpuTensor,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        wg: u32,
        rows: u32,
    ) -> Result<MatVec> {
        MatVec::build(gpu, w, (x, 0), (y, &[(w.rows, 0)]), false, Tune::Shape(wg, rows), None)
    }

    /// [`MatVec::new`] with `source` (a whole kernel for `w`'s type, ending at its reduce line as
    /// `shaders/matvec_*.wgsl` do) in place of the built-in one, keyed `{stem}_{sg|wg}_{label}`,
    /// and optionally its workgroup size: for trying kernel variants in benchmarks only.
    #[doc(hidden)]
    pub fn with_source(
        gpu: &Gpu,
        w: &GpuTensor,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        label: &str,
        source: &str,
        wg: Option<u32>,
    ) -> Result<MatVec> {
        MatVec::build(gpu, w, (x, 0), (y, &[(w.rows, 0)]), false, Tune::Source { label, source, wg }, None)
    }

    fn build(
        gpu: &Gpu,
        w: &GpuTensor,
        (x, x_off): (&wgpu::Buffer, u64),
        (y, parts): (&wgpu::Buffer, &[(u64, u64)]),
        add: bool,
        tune: Tune<'_>,
        put: Option<&RopePut>,
    ) -> Result<MatVec> {
        if gpu.caps().exact {
            return MatVec::build_exact(gpu, w, (x, x_off), (y, parts), add);
        }
        let unsupported = Error::UnsupportedType { ty: w.ty, op: "GPU mat-vec" };
        let stem = matvec_stem(w.ty).ok_or(unsupported.clone())?;
        let file = source(&format!("{stem}.wgsl")).ok_or(unsupported)?;
        let subgroups = gpu.caps().subgroups;
        // The workgroup size: a benchmark's, the software one, or the kernel's own.
        let software = gpu.caps().software;
        let wg = match tune {
            Tune::Shape(wg, _) | Tune::Source { wg: Some(wg), .. } => Some(wg),
            _ => software.then_some(MATVEC_SOFTWARE_WG),
        };
        let mut key = format!("{stem}_{}", if subgroups { "sg" } else { "wg" });
        let reshaped;
        let file = match tune {
            Tune::Own => {
                if software {
                    key += "_sw";
                }
                file
            }
            Tune::Shape(wg, rows) => {
                key += &format!("_{wg}x{rows}");
                let old = format!("const ROWS: u32 = {}u;", const_u32(file, "ROWS").unwrap_or(0));
                reshaped = file.replace(&old, &format!("const ROWS: u32 = {rows}u;"));
                &reshaped
            }
            Tune::Source { label, source, wg } => {
                key += &format!("_{label}");
                match wg {
                    Some(wg) => key += &format!("_wg{wg}"),
                    None if software => key += "_sw",
                    None => {}
                }
                reshaped = with_includes(source);
                &reshaped
            }
        };
        if put.is_some() {
            key += "_rope";
        }
        let bad_kernel = |message: &str| Error::GpuValidation {
            context: format!("preparing `{key}`"),
            message: message.into(),
        };
        let rows_per_wg =
            const_u32(file, "ROWS").filter(|&r| r > 0).ok_or_else(|| bad_kernel("no `const ROWS`"))?;
        let browser = gpu.info().backend == wgpu::Backend::BrowserWebGpu;
        let overrides: Vec<(&str, f64)> = wg.map(|wg| ("WG", wg as f64)).into_iter().collect();
        // The rope store has bindings of its own: its layout is the shader's.
        let family = if put.is_some() { Family::Auto } else { Family::MatVec };
        let pipeline = gpu.pipeline_with(&key, family, &overrides, || {
            let file = match put {
                Some(_) => {
                    let rope = source("put_rope.wgsl").ok_or_else(|| bad_kernel("no put_rope.wgsl"))?;
                    &swap_section(file, rope, "put").ok_or_else(|| bad_kernel("no `// ---- put` section"))?
                }
                None => file,
            };
            splice_reduce(file, subgroups, browser).ok_or_else(|| bad_kernel("no `// ---- reduce` line"))
        })?;
        let layout = match put {
            Some(_) => pipeline.get_bind_group_layout(0),
            None => gpu.pipelines.matvec_layout.clone(),
        };

        MatVec::bind(gpu, key, pipeline, layout, w, (x, x_off), (y, parts), add, rows_per_wg, put)
    }

    /// [`MatVec::build`] under exact numerics: `shaders/exact_matvec.wgsl`, one row an
    /// invocation in the CPU reference's order.
    fn build_exact(
        gpu: &Gpu,
        w: &GpuTensor,
        x: (&wgpu::Buffer, u64),
        y: (&wgpu::Buffer, &[(u64, u64)]),
        add: bool,
    ) -> Result<MatVec> {
        let ty =
            exact_type(w.ty).ok_or_else(|| Error::ExactUnsupported { what: format!("{} weights", w.ty) })?;
        let key = format!("exact_matvec_{}", w.ty.name().to_ascii_lowercase());
        let file =
            source("exact_matvec.wgsl").ok_or(Error::UnsupportedType { ty: w.ty, op: "GPU mat-vec" })?;
        let rows = const_u32(file, "ROWS").unwrap_or(1);
        let pipeline =
            gpu.pipeline_with(&key, Family::MatVec, &[("TYPE", ty as f64)], || Ok(file.to_string()))?;
        let layout = gpu.pipelines.matvec_layout.clone();
        MatVec::bind(gpu, key, pipeline, layout, w, x, y, add, rows, None)
    }

    /// The parameters and bind groups of every piece of `w` for `pipeline`.
    #[allow(clippy::too_many_arguments)]
    fn bind(
        gpu: &Gpu,
        key: String,
        pipeline: wgpu::ComputePipeline,
        layout: wgpu::BindGroupLayout,
        w: &GpuTensor,
        (x, x_off): (&wgpu::Buffer, u64),
        (y, parts): (&wgpu::Buffer, &[(u64, u64)]),
        add: bool,
        rows_per_wg: u32,
        put: Option<&RopePut>,
    ) -> Result<MatVec> {
        let bad_kernel = |message: &str| Error::GpuValidation {
            context: format!("preparing `{key}`"),
            message: message.into(),
        };
        let fits = |what: &'static str, buf: &wgpu::Buffer, off: u64, n: u64| {
            let need = (off + n) * 4;
            if need > buf.size() || off + n > u32::MAX as u64 {
                return Err(Error::LengthMismatch {
                    what,
                    expected: need as usize,
                    got: buf.size() as usize,
                });
            }
            Ok(())
        };
        let x_words = if takes_packed(gpu, w.ty) {
            if !x_off.is_multiple_of(4) {
                return Err(bad_kernel("packed x offset not a multiple of 4 words"));
            }
            super::packed_stride(w.cols as u32) as u64
        } else {
            w.cols
        };
        fits("mat-vec x buffer bytes", x, x_off, x_words)?;
        // Each part's first row, and where it goes in y.
        let mut starts: Vec<(u64, u64)> = Vec::with_capacity(parts.len());
        let mut row = 0;
        for (i, &(rows, y_off)) in parts.iter().enumerate() {
            let after_previous = i == 0 || y_off >= starts[i - 1].1 + parts[i - 1].0;
            if parts.len() > 3 || !after_previous {
                return Err(bad_kernel("a fused mat-vec's parts overlap in y or are more than three"));
            }
            fits("mat-vec y buffer bytes", y, y_off, rows)?;
            starts.push((row, y_off));
            row += rows;
        }
        if row != w.rows {
            return Err(bad_kernel("a fused mat-vec's parts do not add up to its rows"));
        }

        let max_dim = gpu.caps().max_workgroups_per_dim.max(1) as u64;
        let stride = (size_of::<Params>() as u64)
            .next_multiple_of(gpu.caps().min_uniform_offset_alignment.max(1) as u64);
        let mut params = vec![0u8; (stride * w.pieces.len() as u64) as usize];
        let mut grids = Vec::new();
        for (i, piece) in w.pieces.iter().enumerate() {
            let groups = piece.rows.div_ceil(rows_per_wg as u64);
            let gx = groups.min(max_dim);
            let gy = groups.div_ceil(gx);
            if gy > max_dim {
                return Err(Error::GpuTensorTooLarge {
                    name: w.name.clone(),
                    bytes: w.gpu_bytes(),
                    why: format!("{groups} workgroups exceed a {max_dim}² grid"),
                });
            }
            // The part the piece starts in places its first row; later parts' starts inside the
            // piece become splits, each moving the rows after it by the gap between regions.
            let (f, end) = (piece.first_row, piece.first_row + piece.rows);
            let k = starts.iter().rposition(|&(s, _)| s <= f).unwrap_or(0);
            let mut splits = [(u32::MAX, 0u32); 2];
            for (s, j) in splits.iter_mut().zip(k + 1..starts.len()) {
                let (start, y_at) = starts[j];
                if start < end {
                    let gap = y_at - (starts[j - 1].1 + parts[j - 1].0);
                    *s = ((start - f) as u32, gap as u32);
                }
            }
            let p = Params {
                n_rows: piece.rows as u32,
                cols: w.cols as u32,
                row_bytes: w.row_bytes as u32,
                x_off: x_off as u32,
                y_off: (starts[k].1 + f - starts[k].0) as u32,
                groups_x: gx as u32,
                add: add as u32,
                split1: splits[0].0,
                gap1: splits[0].1,
                split2: splits[1].0,
                gap2: splits[1].1,
                _pad: 0,
            };
            let at = i * stride as usize;
            params[at..at + size_of::<Params>()].copy_from_slice(bytemuck::bytes_of(&p));
            grids.push([gx as u32, gy as u32]);
        }
        let params_buf = gpu.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some(&key),
            size: params.len().max(4) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        gpu.queue().write_buffer(&params_buf, 0, &params);

        let pieces = w
            .pieces
            .iter()
            .zip(grids)
            .enumerate()
            .map(|(i, (piece, grid))| {
                let mut entries = vec![
                    wgpu::BindGroupEntry { binding: 0, resource: piece.binding(w.row_bytes) },
                    wgpu::BindGroupEntry { binding: 1, resource: x.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 2, resource: y.as_entire_binding() },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &params_buf,
                            offset: i as u64 * stride,
                            size: wgpu::BufferSize::new(size_of::<Params>() as u64),
                        }),
                    },
                ];
                if let Some(r) = put {
                    let rest = [&r.factors, &r.k_cache, &r.v_cache, &r.params, &r.at];
                    entries.extend(rest.into_iter().zip(4..).map(|(b, binding)| wgpu::BindGroupEntry {
                        binding,
                        resource: b.as_entire_binding(),
                    }));
                }
                let bind = gpu.device().create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(&key),
                    layout: &layout,
                    entries: &entries,
                });
                (bind, grid)
            })
            .collect();
        gpu.check(&format!("preparing `{key}` for `{}`", w.name))?;
        Ok(MatVec { key, pipeline, pieces, _params: params_buf })
    }

    /// The pipeline key (`matvec_q4_k_sg`, `matvec_q4_k_sg_sw`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Dispatches [`MatVec::encode`] records: one per piece of the weight tensor.
    pub fn dispatches(&self) -> usize {
        self.pieces.len()
    }

    /// Records the product: one dispatch per piece of the weight tensor.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        for (bind, [gx, gy]) in &self.pieces {
            pass.set_bind_group(0, bind, &[]);
            pass.dispatch_workgroups(*gx, *gy, 1);
        }
    }
}

/// CPU twin of [`MatVec`]: `y[r] = Σ_c W[r, c] · x[c]` for the `y.len()` rows of `w` (GGUF bytes
/// of type `ty`, rows of `x.len()` elements), one [`quant::dot`] per row.
pub fn matvec_cpu(ty: GgmlType, w: &[u8], x: &[f32], y: &mut [f32]) -> Result<()> {
    let block = ty.block_size();
    let row_bytes = ty.row_bytes(x.len() as u64).ok_or(Error::PartialBlockElements {
        ty,
        len: x.len(),
        block_elems: block,
    })? as usize;
    let rows = y.len();
    if w.len() != rows * row_bytes {
        return Err(Error::LengthMismatch {
            what: "mat-vec weight bytes",
            expected: rows * row_bytes,
            got: w.len(),
        });
    }
    for (r, out) in y.iter_mut().enumerate() {
        *out = quant::dot(ty, &w[r * row_bytes..(r + 1) * row_bytes], x)?;
    }
    Ok(())
}
