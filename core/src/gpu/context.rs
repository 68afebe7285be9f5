//! GPU set-up: one adapter, one device, one queue, and the error plumbing around them.
//!
//! [`Gpu::new`] is the crate's one async constructor (the browser can only request an adapter and
//! a device asynchronously); everything after it records work synchronously, and only read-back
//! (`readback.rs`) awaits again. The device is created with the adapter's *real* limits — wgpu's
//! defaults would cap a storage binding at 128 MiB and a buffer at 256 MiB on every GPU — and with
//! the optional features the kernels can use ([`Caps`]); a test can switch features off or shrink
//! the binding limit through [`GpuOptions`] to exercise the portable paths.
//!
//! wgpu reports validation errors, out-of-memory and device loss through callbacks, and its default
//! uncaptured-error handler panics. So the first thing done with a new device is to install our own
//! handlers, which record the error; [`Gpu::check`] (called by every fallible GPU function in this
//! module) hands it back as an [`Error`]. Natively wgpu-core reports errors at the offending call,
//! so the error surfaces at the right place; on the web it arrives a little later, at the next
//! check. Where that is too late — a browser's model load must fail at load when its buffers do
//! not fit, not at the first request — an [`ErrorScope`] catches the errors of a span of work and
//! awaits them.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::pipelines::Pipelines;
use crate::{Error, Result};

/// What [`Gpu::new`] may be asked for. The defaults take the best adapter with everything it has.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Prefer a low-power (integrated) adapter over a high-performance one.
    pub low_power: bool,
    /// Ask for the system's CPU fallback adapter (lavapipe, SwiftShader, WARP) only.
    pub force_fallback: bool,
    /// Leave subgroup operations off even if the adapter has them (tests the portable kernels).
    pub no_subgroups: bool,
    /// Leave `shader-f16` off even if the adapter has it.
    pub no_f16: bool,
    /// Leave cooperative matrices off even if the adapter has them ([`Caps::coop_matrix`]):
    /// the prefill product then runs the portable f32 kernel (tests it, measures against it).
    pub no_coop_matrix: bool,
    /// Leave the staged product off ([`Caps::gemm`]): long steps then run the tensor-core
    /// matmul that decodes its tiles in the loop, as short ones do. For measuring.
    pub no_gemm: bool,
    /// Leave the rope and KV cache store of a one-token step to its own kernel rather than the
    /// fused q|k|v mat-vec's store ([`Caps::rope_store`]). For measuring and tests.
    pub no_rope_store: bool,
    /// Exact numerics: compute what the CPU reference computes, bit for bit ([`Caps::exact`]):
    /// the same logits, so the same greedy text, on any adapter, at a fraction of the speed.
    pub exact: bool,
    /// Exact numerics where the adapter is a software one ([`Caps::software`]: the browser's
    /// fallback, SwiftShader): there the exact kernels, with no barriers in their mat-vecs, run
    /// as fast as the default ones, so nothing is lost by giving the CPU's results.
    pub exact_if_software: bool,
    /// Treat the adapter as a software implementation or not ([`Caps::software`]), whatever type
    /// it reports (`None`: as reported). Tests run both kernel geometries on one adapter.
    pub software: Option<bool>,
    /// Cap the bytes one storage binding may cover below the adapter's limit (tests tensors split
    /// by rows). Rounded down to a multiple of 4.
    pub max_storage_binding: Option<u64>,
    /// Natively, how long a read-back or upload waits for the GPU before giving up with
    /// [`Error::GpuTimeout`] (`None`: for ever). A hung kernel then fails a test instead of
    /// hanging it. The browser never blocks, so there it does nothing.
    pub poll_timeout: Option<Duration>,
    /// The most tokens a step's projections run as the mat-vec over a few tokens rather than the
    /// tiled matmul ([`Caps::multi_max`]; `None`: [`MULTI_MAX`](super::MULTI_MAX); 1 turns it
    /// off). For measuring where one overtakes the other.
    pub multi_max: Option<u32>,
    /// The most tokens a step's projections of a type with an integer mat-vec over a few tokens
    /// of its own (Q6_K, Q8_0) run on it rather than the matmul ([`Caps::int_multi_max`];
    /// `None`: [`INT_MULTI_MAX`](super::INT_MULTI_MAX); 1 turns it off). For measuring.
    pub int_multi_max: Option<u32>,
    /// The most tokens a step's projections of a type with a tiled integer kernel run on it
    /// rather than the matmul ([`Caps::tile_max`]; `None`: [`TILE_MAX`](super::TILE_MAX), or
    /// [`TILE_MAX_COOP`](super::TILE_MAX_COOP) where the typed tensor-core matmul runs; 1 turns
    /// it off). For measuring.
    pub tile_max: Option<u32>,
    /// The fewest tokens of a step that a type's tiled integer kernel takes, fewer running its
    /// mat-vec over a few tokens ([`Caps::tile_min`]; `None`: [`TILE_MIN`](super::TILE_MIN)). For
    /// measuring.
    pub tile_min: Option<u32>,
    /// The tensor-core matmul's split-K target: how many workgroups a step of few tokens should
    /// fill ([`Caps::split_target`]; `None`: [`SPLIT_TARGET`](super::SPLIT_TARGET); 0 or 1 turns
    /// split-K off). For measuring.
    pub split_target: Option<u32>,
    /// The fewest tokens a step needs for the staged product ([`Caps::gemm_min_tokens`]; `None`:
    /// [`GEMM_MIN_TOKENS`](super::GEMM_MIN_TOKENS)). For measuring.
    pub gemm_min_tokens: Option<u32>,
    /// The decode workgroups (one q head each) from which a step's attention takes a kv head's
    /// q heads together ([`Caps::attn_grouped_min`]; `None`:
    /// [`ATTN_GROUPED_MIN`](super::ATTN_GROUPED_MIN); 0: always). For measuring.
    pub attn_grouped_min: Option<u32>,
    /// The most cells a decode token takes in one attention chunk ([`Caps::attn_one_chunk`];
    /// `None`: [`ATTN_ONE_CHUNK`](super::ATTN_ONE_CHUNK)). For measuring.
    pub attn_one_chunk: Option<u32>,
    /// Kernel sources by pipeline key (`matmul_coop_typed_q4_k`, `attn_decode_gqa_hd128`, …):
    /// where a launcher builds a pipeline of that key, it compiles this WGSL instead of its own
    /// (includes already put in; the bindings and constants must be the kernel's). For trying a
    /// kernel's variants in the whole model without a rebuild; `aether --kernel KEY=FILE`.
    pub kernel_sources: Vec<(String, String)>,
}

/// What the kernels may use on this device, decided once in [`Gpu::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caps {
    /// WGSL `enable subgroups;` (wgpu `SUBGROUP`): kernels reduce with `subgroupAdd`.
    pub subgroups: bool,
    /// WGSL `enable f16;` (wgpu `SHADER_F16`).
    pub shader_f16: bool,
    /// Timestamp queries at compute-pass boundaries (wgpu `TIMESTAMP_QUERY`).
    pub timestamps: bool,
    /// WGSL `enable wgpu_cooperative_matrix;` with the one configuration the kernels use:
    /// `coop_mat16x16`, f16 A and B, f32 accumulator, subgroups of exactly 32 (the tile
    /// `shaders/matmul_coop.wgsl` hands each subgroup). Native only (wgpu's experimental
    /// `EXPERIMENTAL_COOPERATIVE_MATRIX`, Vulkan's `VK_KHR_cooperative_matrix`); never on the web
    /// or on CPU adapters.
    pub coop_matrix: bool,
    /// The typed tensor-core matmuls (`shaders/matmul_coop_<type>.wgsl`, taken by
    /// [`MatMul`](super::MatMul)) fit: [`coop_matrix`](Caps::coop_matrix) and their 35 KiB of
    /// workgroup memory. Where they do, [`tile_max`](Caps::tile_max) defaults lower.
    pub coop_typed: bool,
    /// Long steps' products stage their operands as f16 and multiply them with the 128 × 128-tile
    /// tensor-core kernel (`shaders/gemm_stage.wgsl`, `shaders/gemm_coop.wgsl`; see
    /// [`MatMul`](super::MatMul)): [`coop_matrix`](Caps::coop_matrix) and 48 KiB of workgroup
    /// memory, unless [`GpuOptions::no_gemm`].
    pub gemm: bool,
    /// A one-token step's fused q|k|v mat-vec rotates q and k and stores k and v in the KV cache
    /// itself (`shaders/put_rope.wgsl`), where the model's rope pairs adjacent dims: one
    /// `rope_kv` dispatch a layer fewer. Unless [`GpuOptions::no_rope_store`].
    pub rope_store: bool,
    /// Exact numerics ([`GpuOptions::exact`]): the forward pass runs the kernels that do the CPU
    /// reference's arithmetic in its order (`shaders/exact_*.wgsl`; a fused multiply-add rounded
    /// once, sums as its SIMD lanes and f64 accumulators make them), one token a step, so its
    /// logits are the CPU's bit for bit. Weights of the types with an exact mat-vec (Q4_0, Q4_1,
    /// Q8_0) of llama, Qwen 2 and Phi-3 models only; the rest is refused with
    /// [`Error::ExactUnsupported`](crate::Error::ExactUnsupported).
    pub exact: bool,
    /// The adapter runs on the CPU (SwiftShader, lavapipe, WARP; in a browser, the fallback
    /// adapter). There a workgroup costs far more than on a GPU — SwiftShader runs each SIMD
    /// group of a workgroup with a barrier as a coroutine — so the mat-vec kernels take a
    /// workgroup of [`MATVEC_SOFTWARE_WG`](super::MATVEC_SOFTWARE_WG) instead of 256 (52 s → 4 s of a SmolLM2-135M decode
    /// step on SwiftShader).
    pub software: bool,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    /// Bytes one storage binding may cover: the smaller of the adapter's binding and buffer limits
    /// (and [`GpuOptions::max_storage_binding`]), a multiple of 4. Tensors above it are split.
    pub max_storage_binding: u64,
    pub max_buffer_size: u64,
    pub max_storage_buffers_per_stage: u32,
    pub max_workgroups_per_dim: u32,
    pub max_invocations_per_workgroup: u32,
    pub max_workgroup_storage: u32,
    pub min_uniform_offset_alignment: u32,
    /// Storage bindings start on a multiple of this many bytes (views of a fused tensor, see
    /// `weights.rs`).
    pub min_storage_offset_alignment: u32,
    /// A step of 2..=multi_max tokens runs its projections with the mat-vec over a few tokens
    /// ([`MatVecMulti`](super::MatVecMulti)), a longer one with the tiled matmul
    /// ([`GpuOptions::multi_max`], else [`MULTI_MAX`](super::MULTI_MAX)).
    pub multi_max: u32,
    /// A step of up to `int_multi_max` tokens (or `multi_max`, the larger) runs the projections
    /// of a type with an integer mat-vec over a few tokens of its own on it
    /// ([`GpuOptions::int_multi_max`], else [`INT_MULTI_MAX`](super::INT_MULTI_MAX)).
    pub int_multi_max: u32,
    /// A step of `tile_min..=tile_max` tokens (and more than `multi_max`) runs the projections
    /// of a type with a tiled integer kernel (`matmul_int_<type>.wgsl`, in
    /// [`MatVecMulti`](super::MatVecMulti)) on it, a shorter one on that type's mat-vec over a
    /// few tokens ([`GpuOptions::tile_max`], else [`TILE_MAX`](super::TILE_MAX), or
    /// [`TILE_MAX_COOP`](super::TILE_MAX_COOP) where the typed tensor-core matmul runs).
    pub tile_max: u32,
    /// Below this many tokens, a type with a tiled integer kernel runs its mat-vec over a few
    /// tokens instead ([`GpuOptions::tile_min`], else [`TILE_MIN`](super::TILE_MIN)).
    pub tile_min: u32,
    /// Where the tensor-core matmul's grid of a step would have fewer workgroups than this, it
    /// splits the columns among more ([`MatMul`](super::MatMul)'s split-K; [`GpuOptions::split_target`],
    /// else [`SPLIT_TARGET`](super::SPLIT_TARGET)).
    pub split_target: u32,
    /// Steps of at least this many tokens take the staged product where [`Caps::gemm`]
    /// ([`GpuOptions::gemm_min_tokens`], else [`GEMM_MIN_TOKENS`](super::GEMM_MIN_TOKENS)).
    pub gemm_min_tokens: u32,
    /// A step whose decode attention would have at least this many workgroups of one q head
    /// (tokens × heads × chunks) runs a workgroup per kv head's q heads instead, each K and V row
    /// read once for them ([`Attention`](super::Attention); [`GpuOptions::attn_grouped_min`], else
    /// [`ATTN_GROUPED_MIN`](super::ATTN_GROUPED_MIN)).
    pub attn_grouped_min: u32,
    /// A decode token attending to at most this many cells (rounded up to whole tiles) takes
    /// them in one chunk, one dispatch with no merge; more are split into chunks of
    /// `ceil(n_kv / n_split)` cells ([`GpuOptions::attn_one_chunk`], else
    /// [`ATTN_ONE_CHUNK`](super::ATTN_ONE_CHUNK)).
    pub attn_one_chunk: u32,
}

/// The optional features the kernels can use; requested when the adapter has them.
const WANTED: wgpu::Features = wgpu::Features::SHADER_F16
    .union(wgpu::Features::SUBGROUP)
    .union(wgpu::Features::TIMESTAMP_QUERY)
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES);

/// An adapter, its device and queue, and the pipelines built on them.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    caps: Caps,
    errors: Arc<ErrorSink>,
    poll_timeout: Option<Duration>,
    pub(super) pipelines: Pipelines,
}

impl Gpu {
    /// Finds an adapter and opens a device on it with the adapter's real limits and the optional
    /// features of [`Caps`]. Fails with [`Error::NoAdapter`] when the system has none.
    pub async fn new(opts: GpuOptions) -> Result<Gpu> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::PRIMARY;
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: if opts.low_power {
                    wgpu::PowerPreference::LowPower
                } else {
                    wgpu::PowerPreference::HighPerformance
                },
                force_fallback_adapter: opts.force_fallback,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .map_err(|e| Error::NoAdapter { reason: e.to_string() })?;
        let info = adapter.get_info();

        let mut features = adapter.features() & WANTED;
        if opts.no_subgroups {
            features.remove(wgpu::Features::SUBGROUP);
        }
        if opts.no_f16 {
            features.remove(wgpu::Features::SHADER_F16);
        }
        let coop = !opts.no_coop_matrix && coop_usable(&adapter, features, &info);
        if coop {
            features |= wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
        }
        // The adapter's own limits: request_device accepts exactly these, and only these lift
        // wgpu's conservative defaults (128 MiB bindings) to what the hardware allows.
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("aether"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: if coop {
                    // SAFETY: wgpu asks callers of experimental features to accept that its
                    // implementation may still have bugs. We request only cooperative matrices,
                    // only where the adapter lists the configuration our one kernel uses, and
                    // those kernels keep within what the feature documents (subgroup-uniform
                    // loads, stores and multiply-adds on in-bounds workgroup and storage memory;
                    // see shaders/matmul_coop.wgsl and shaders/gemm_coop.wgsl). Every device stays usable without it
                    // (`GpuOptions::no_coop_matrix`).
                    unsafe { wgpu::ExperimentalFeatures::enabled() }
                } else {
                    wgpu::ExperimentalFeatures::disabled()
                },
                ..Default::default()
            })
            .await
            .map_err(|e| Error::DeviceRequest { adapter: info.name.clone(), reason: e.to_string() })?;

        // Before anything else is done with the device: wgpu's default handler panics.
        let errors = Arc::new(ErrorSink::default());
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e| sink.record(e)));
        let sink = errors.clone();
        device.set_device_lost_callback(move |reason, message| sink.lost(reason, message));

        let caps = caps(&device.features(), &device.limits(), &info, &opts);
        let pipelines = Pipelines::new(&device);
        let pipelines = pipelines.with_sources(opts.kernel_sources);
        let gpu = Gpu { device, queue, info, caps, errors, poll_timeout: opts.poll_timeout, pipelines };
        gpu.check("opening the device")?;
        Ok(gpu)
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// Name, backend, driver and subgroup sizes of the adapter.
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    pub fn caps(&self) -> &Caps {
        &self.caps
    }

    /// One line for logs: adapter, backend, driver and what the kernels will use.
    pub fn describe(&self) -> String {
        let c = &self.caps;
        format!(
            "{} ({:?}, {:?}, {} {}) subgroups={} [{}..{}] f16={} coop_matrix={} gemm={} timestamps={} software={} max_binding={} MiB max_buffer={} MiB",
            self.info.name,
            self.info.backend,
            self.info.device_type,
            self.info.driver,
            self.info.driver_info,
            c.subgroups,
            c.subgroup_min_size,
            c.subgroup_max_size,
            c.shader_f16,
            c.coop_matrix,
            c.gemm,
            c.timestamps,
            c.software,
            c.max_storage_binding >> 20,
            c.max_buffer_size >> 20,
        )
    }

    /// The first GPU error recorded since the last check (or the device's loss, which persists),
    /// with `context` saying what we were doing. Every fallible function of this module calls it.
    pub fn check(&self, context: &str) -> Result<()> {
        self.errors.take(context)
    }

    /// The device's loss, once wgpu has reported it (it stays lost). Unlike [`Gpu::check`] this
    /// takes no other error.
    pub fn lost(&self) -> Option<Error> {
        lock(&self.errors.lost).clone()
    }

    /// Starts catching the validation, out-of-memory and internal errors of the work recorded
    /// from now until [`ErrorScope::finish`], which awaits them: in a browser, where errors
    /// arrive asynchronously, the only way to know a span of work (creating a model's buffers)
    /// succeeded before going on. Scopes nest like a stack: finish them in reverse order.
    pub fn error_scope(&self) -> ErrorScope {
        let d = &self.device;
        ErrorScope {
            // Popped in reverse: internal, out-of-memory, validation.
            guards: [
                d.push_error_scope(wgpu::ErrorFilter::Validation),
                d.push_error_scope(wgpu::ErrorFilter::OutOfMemory),
                d.push_error_scope(wgpu::ErrorFilter::Internal),
            ],
        }
    }

    /// Natively, blocks until `submission` (or everything submitted so far) has finished and its
    /// callbacks have run; on the web does nothing (the browser runs callbacks itself).
    pub fn wait(&self, submission: Option<wgpu::SubmissionIndex>, context: &str) -> Result<()> {
        let poll = wgpu::PollType::Wait { submission_index: submission, timeout: self.poll_timeout };
        match self.device.poll(poll) {
            Ok(_) => self.check(context),
            Err(wgpu::PollError::Timeout) => Err(Error::GpuTimeout {
                context: context.into(),
                seconds: self.poll_timeout.map_or(0.0, |t| t.as_secs_f64()),
            }),
            Err(e) => {
                self.check(context)?;
                Err(Error::GpuInternal { context: context.into(), message: e.to_string() })
            }
        }
    }

    /// Submits `encoder`'s commands and reports any error recorded while they were encoded.
    pub fn submit(&self, encoder: wgpu::CommandEncoder, context: &str) -> Result<wgpu::SubmissionIndex> {
        let index = self.queue.submit([encoder.finish()]);
        self.check(context)?;
        Ok(index)
    }
}

/// Errors caught since [`Gpu::error_scope`] (wgpu error scopes, one per error filter).
#[must_use = "finish the scope to learn whether its work failed"]
pub struct ErrorScope {
    guards: [wgpu::ErrorScopeGuard; 3],
}

impl ErrorScope {
    /// Ends the scope and awaits its errors: the device's loss first, else the first error caught
    /// (out-of-memory before validation before internal: an allocation that failed makes the
    /// work that uses it invalid too), with `context` saying what the work was.
    pub async fn finish(self, gpu: &Gpu, context: &str) -> Result<()> {
        let [validation, oom, internal] = self.guards;
        let internal = internal.pop().await;
        let oom = oom.pop().await;
        let validation = validation.pop().await;
        if let Some(e) = gpu.lost() {
            return Err(e);
        }
        match oom.or(validation).or(internal) {
            Some(e) => Err(from_wgpu(e, context)),
            // Errors from before the scope began (reported late, on the web) are not lost either.
            None => gpu.check(context),
        }
    }
}

/// Our error for a wgpu error, with `context` saying what we were doing.
fn from_wgpu(e: wgpu::Error, context: &str) -> Error {
    let context = context.to_string();
    match e {
        wgpu::Error::OutOfMemory { .. } => Error::GpuOutOfMemory { context },
        wgpu::Error::Validation { description, .. } => Error::GpuValidation { context, message: description },
        wgpu::Error::Internal { description, .. } => Error::GpuInternal { context, message: description },
    }
}

// The native host runs the engine on a thread of its own and shares it with the server's tasks.
#[cfg(not(target_arch = "wasm32"))]
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Gpu>();
    send_sync::<super::MatVec>();
    send_sync::<super::GpuTensor>();
    send_sync::<super::Readback>();
};

/// The adapter facts the kernels look at, from the device actually opened.
fn caps(f: &wgpu::Features, l: &wgpu::Limits, info: &wgpu::AdapterInfo, opts: &GpuOptions) -> Caps {
    let binding = l.max_storage_buffer_binding_size.min(l.max_buffer_size);
    let binding = opts.max_storage_binding.map_or(binding, |cap| cap.min(binding)) & !3;
    let coop_matrix = f.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
    let coop_typed = coop_matrix && l.max_compute_workgroup_storage_size >= COOP_TYPED_WORKGROUP_BYTES;
    let software = opts.software.unwrap_or(info.device_type == wgpu::DeviceType::Cpu);
    let exact = opts.exact || (opts.exact_if_software && software);
    Caps {
        subgroups: f.contains(wgpu::Features::SUBGROUP),
        shader_f16: f.contains(wgpu::Features::SHADER_F16),
        timestamps: f.contains(wgpu::Features::TIMESTAMP_QUERY),
        coop_matrix,
        coop_typed,
        gemm: f.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
            && l.max_compute_workgroup_storage_size >= GEMM_WORKGROUP_BYTES
            && !opts.no_gemm,
        rope_store: !opts.no_rope_store && !exact,
        exact,
        software,
        subgroup_min_size: info.subgroup_min_size,
        subgroup_max_size: info.subgroup_max_size,
        max_storage_binding: binding,
        max_buffer_size: l.max_buffer_size,
        max_storage_buffers_per_stage: l.max_storage_buffers_per_shader_stage,
        max_workgroups_per_dim: l.max_compute_workgroups_per_dimension,
        max_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
        max_workgroup_storage: l.max_compute_workgroup_storage_size,
        min_uniform_offset_alignment: l.min_uniform_buffer_offset_alignment,
        min_storage_offset_alignment: l.min_storage_buffer_offset_alignment,
        multi_max: opts.multi_max.unwrap_or(super::MULTI_MAX),
        int_multi_max: opts.int_multi_max.unwrap_or(super::INT_MULTI_MAX),
        tile_max: opts.tile_max.unwrap_or(if coop_typed { super::TILE_MAX_COOP } else { super::TILE_MAX }),
        tile_min: opts.tile_min.unwrap_or(super::TILE_MIN),
        split_target: opts.split_target.unwrap_or(super::SPLIT_TARGET),
        gemm_min_tokens: opts.gemm_min_tokens.unwrap_or(super::GEMM_MIN_TOKENS).max(1),
        attn_grouped_min: opts.attn_grouped_min.unwrap_or(super::ATTN_GROUPED_MIN),
        attn_one_chunk: opts.attn_one_chunk.unwrap_or(super::ATTN_ONE_CHUNK),
    }
}

/// Workgroup memory `shaders/matmul_coop.wgsl` declares (its three tiles), bytes.
pub(crate) const COOP_WORKGROUP_BYTES: u32 = 23 * 1024;

/// Workgroup memory the typed tensor-core matmuls (`shaders/matmul_coop_<type>.wgsl`) declare,
/// bytes: `MatMul` takes one only where the adapter has this much.
pub(crate) const COOP_TYPED_WORKGROUP_BYTES: u32 = 35 * 1024;

/// Workgroup memory `shaders/gemm_coop.wgsl` declares (two double-buffered tiles and the edge
/// staging), bytes.
pub(crate) const GEMM_WORKGROUP_BYTES: u32 = 48 * 1024;

/// Whether cooperative matrices are worth requesting here: the adapter offers the feature, lists
/// the configuration the coop kernel is written for (16×16×16, f16 A/B, f32 C), is a GPU with
/// subgroups of exactly 32 (the kernel gives each of its 8 subgroups a fixed quarter-column of
/// the tile), and `features` (what will be requested otherwise) has f16 and subgroups.
fn coop_usable(adapter: &wgpu::Adapter, features: wgpu::Features, info: &wgpu::AdapterInfo) -> bool {
    use wgpu::CooperativeScalarType as S;
    let needed = wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP;
    if !adapter.features().contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
        || !features.contains(needed)
        || info.device_type == wgpu::DeviceType::Cpu
        || (info.subgroup_min_size, info.subgroup_max_size) != (32, 32)
        || adapter.limits().max_compute_workgroup_storage_size < COOP_WORKGROUP_BYTES
    {
        return false;
    }
    adapter
        .cooperative_matrix_properties()
        .iter()
        .any(|c| (c.m_size, c.n_size, c.k_size) == (16, 16, 16) && c.ab_type == S::F16 && c.cr_type == S::F32)
}

/// Where wgpu's callbacks leave their errors until [`Gpu::check`] collects them.
#[derive(Default)]
struct ErrorSink {
    /// The first error since the last check; later ones are usually its consequences.
    first: Mutex<Option<Error>>,
    /// Set once, never cleared: a lost device stays lost.
    lost: Mutex<Option<Error>>,
}

/// Locks `m` even if a panic elsewhere poisoned it: the guarded value is a plain `Option`.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ErrorSink {
    fn record(&self, e: wgpu::Error) {
        // The context is filled in by `take`, which knows what the caller was doing.
        lock(&self.first).get_or_insert(from_wgpu(e, ""));
    }

    fn lost(&self, reason: wgpu::DeviceLostReason, message: String) {
        lock(&self.lost).get_or_insert(Error::DeviceLost { reason: format!("{reason:?}"), message });
    }

    fn take(&self, context: &str) -> Result<()> {
        if let Some(e) = lock(&self.lost).clone() {
            return Err(e);
        }
        match lock(&self.first).take() {
            None => Ok(()),
            Some(mut e) => {
                if let Error::GpuOutOfMemory { context: c }
                | Error::GpuValidation { context: c, .. }
                | Error::GpuInternal { context: c, .. } = &mut e
                {
                    *c = context.to_string();
                }
                Err(e)
            }
        }
    }
}
