//! Where the model runs: the GPU when the system has an adapter, the CPU when it has none or
//! `--cpu` says so. The choice is made once per process ([`Device::open`]) and announced in one
//! line ([`Device::describe`]); [`Device::load`] then puts the weights where they are needed (on
//! the GPU: uploaded once, with a progress bar for large models) and the resulting [`Backends`]
//! hands out [`AnyBackend`]s: one sequence's KV cache for a CLI, a pool of sequences evaluated
//! together for the server. GPU backends all share the one uploaded `GpuModel`.

use std::cell::Cell;
use std::time::Duration;

use aether_core::Error;
use aether_core::gpu::{Gpu, GpuBackend, GpuModel, GpuOptions};
use aether_core::model::Model;
use aether_core::quant::simd;
use aether_core::session::{AnyBackend, CPU_BATCH, CpuBackend};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::exec::Pool;
use crate::model_file::PROGRESS_FROM;

/// The flags every model-running subcommand shares.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct DeviceArgs {
    /// Run on the CPU even when a GPU adapter exists.
    #[arg(long)]
    pub cpu: bool,
    /// GPU: exact numerics — the CPU's arithmetic in its order, so the GPU's logits and greedy
    /// text are the CPU's (`--cpu`) bit for bit; one token a step, Q4_0/Q4_1/Q8_0 llama, qwen2 and phi3
    /// models only, much slower than the default kernels.
    #[arg(long, conflicts_with = "cpu")]
    pub exact: bool,
    /// CPU threads (default: one per core).
    #[arg(short, long, default_value_t = 0)]
    pub threads: usize,
    /// GPU: the most tokens of a step whose projections run as the mat-vec over a few tokens
    /// rather than the tiled matmul (default: aether_core::gpu::MULTI_MAX; 1 turns it off). For
    /// measuring the crossing on a device.
    #[arg(long, value_name = "TOKENS")]
    pub multi_max: Option<u32>,
    /// GPU: the most tokens of a step whose projections run as a type's tiled integer kernel
    /// (Q4_K's) rather than the matmul (default: aether_core::gpu::TILE_MAX, or TILE_MAX_COOP where
    /// the typed tensor-core matmul runs; 1 turns it off). For measuring.
    #[arg(long, value_name = "TOKENS")]
    pub tile_max: Option<u32>,
    /// GPU: the most tokens of a step whose projections run as a type's integer mat-vec over a
    /// few tokens (Q6_K's, Q8_0's) rather than the matmul (default:
    /// aether_core::gpu::INT_MULTI_MAX; 1 turns it off). For measuring.
    #[arg(long, value_name = "TOKENS")]
    pub int_multi_max: Option<u32>,
    /// GPU: the fewest tokens of a step that a type's tiled integer kernel takes, fewer running
    /// its mat-vec over a few tokens (default: aether_core::gpu::TILE_MIN). For measuring.
    #[arg(long, value_name = "TOKENS")]
    pub tile_min: Option<u32>,
    /// GPU: the workgroups the tensor-core matmul splits its columns to fill on a step of few
    /// tokens (default: aether_core::gpu::SPLIT_TARGET; 0 turns split-K off). For measuring.
    #[arg(long, value_name = "WORKGROUPS")]
    pub split_target: Option<u32>,
    /// GPU: the fewest tokens a step needs for the staged tensor-core product (default:
    /// aether_core::gpu::GEMM_MIN_TOKENS). For measuring.
    #[arg(long, value_name = "TOKENS")]
    pub gemm_min_tokens: Option<u32>,
    /// GPU: the decode attention workgroups of one q head each (tokens × heads × chunks) from
    /// which a step takes each kv head's q heads in one workgroup (default:
    /// aether_core::gpu::ATTN_GROUPED_MIN; 0: always). For measuring.
    #[arg(long, value_name = "WORKGROUPS")]
    pub attn_grouped_min: Option<u32>,
    /// GPU: the most cells a decode token takes in one attention chunk (default:
    /// aether_core::gpu::ATTN_ONE_CHUNK). For measuring.
    #[arg(long, value_name = "CELLS")]
    pub attn_one_chunk: Option<u32>,
    /// GPU: build pipeline KEY from this WGSL file instead of the built-in kernel (its
    /// `// include:` lines put in; bindings and constants must be the kernel's); repeatable. For
    /// trying kernel variants in the whole model without a rebuild.
    #[arg(long, value_name = "KEY=FILE")]
    pub kernel: Vec<String>,
}

/// How long a GPU read-back may wait before the step fails (instead of hanging on a stuck GPU).
const POLL_TIMEOUT: Duration = Duration::from_secs(60);

/// The processor chosen for this process.
// One per process: the size difference of the variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Device {
    Cpu {
        pool: Pool,
        threads: usize,
        /// Why not the GPU.
        reason: String,
    },
    Gpu(Gpu),
}

impl Device {
    /// Opens the GPU unless `args.cpu`; falls back to the CPU when the system has no adapter. Any
    /// other GPU failure is an error, since a quiet fallback would hide a broken driver.
    pub fn open(args: &DeviceArgs) -> Result<Device> {
        let cpu = |reason: String| -> Result<Device> {
            let threads = if args.threads == 0 {
                std::thread::available_parallelism().map_or(1, |n| n.get())
            } else {
                args.threads
            };
            Ok(Device::Cpu { pool: Pool::new(args.threads)?, threads, reason })
        };
        if args.cpu {
            return cpu("--cpu".into());
        }
        // AETHER_NO_COOP_MATRIX=1 keeps prefill on the portable f32 matmul (to measure the
        // tensor-core one against it); AETHER_NO_GEMM=1 keeps long steps on the tensor-core
        // matmul that decodes in its loop (to measure the staged product against it);
        // AETHER_NO_ROPE_STORE=1 keeps a one-token step's rope and KV store in their own kernel.
        let set = |var| std::env::var_os(var).is_some_and(|v| v == "1");
        let kernel_sources = args
            .kernel
            .iter()
            .map(|k| {
                let (key, file) = k.split_once('=').with_context(|| format!("--kernel {k}: not KEY=FILE"))?;
                let text =
                    std::fs::read_to_string(file).with_context(|| format!("--kernel {k}: reading {file}"))?;
                Ok((key.to_string(), aether_core::gpu::shaders::with_includes(&text)))
            })
            .collect::<Result<Vec<_>>>()?;
        let opts = GpuOptions {
            kernel_sources,
            poll_timeout: Some(POLL_TIMEOUT),
            no_coop_matrix: set("AETHER_NO_COOP_MATRIX"),
            no_gemm: set("AETHER_NO_GEMM"),
            no_rope_store: set("AETHER_NO_ROPE_STORE"),
            exact: args.exact,
            multi_max: args.multi_max,
            tile_max: args.tile_max,
            int_multi_max: args.int_multi_max,
            tile_min: args.tile_min,
            split_target: args.split_target,
            gemm_min_tokens: args.gemm_min_tokens,
            attn_grouped_min: args.attn_grouped_min,
            attn_one_chunk: args.attn_one_chunk,
            ..Default::default()
        };
        match pollster::block_on(Gpu::new(opts)) {
            Ok(gpu) => Ok(Device::Gpu(gpu)),
            Err(Error::NoAdapter { reason }) => cpu(format!("no GPU adapter: {reason}")),
            Err(e) => Err(e).context("opening the GPU (--cpu runs on the CPU instead)"),
        }
    }

    /// One line: `GPU — <adapter and features>` or `CPU (<why>), N threads, <isa> kernels`.
    pub fn describe(&self) -> String {
        match self {
            Device::Gpu(gpu) => format!("GPU — {}", gpu.describe()),
            Device::Cpu { threads, reason, .. } => {
                format!("CPU ({reason}), {threads} threads, {} kernels", simd::selected().name())
            }
        }
    }

    /// Readies `model` for this device: on the GPU, uploads its weights.
    pub fn load(self, model: &Model<'_>) -> Result<Backends> {
        let description = self.describe();
        let on = match self {
            Device::Cpu { pool, .. } => On::Cpu(pool),
            Device::Gpu(gpu) => {
                let weights = upload(&gpu, model)?;
                On::Gpu(gpu, weights)
            }
        };
        Ok(Backends { description, on, warned: Cell::new(false) })
    }
}

/// Uploads the weights, with a progress bar on stderr when that takes a noticeable time.
fn upload(gpu: &Gpu, model: &Model<'_>) -> Result<GpuModel> {
    let mut bar: Option<ProgressBar> = None;
    let mut progress = |done: u64, total: u64| {
        if total < PROGRESS_FROM as u64 {
            return;
        }
        let bar = bar.get_or_insert_with(|| {
            let style =
                ProgressStyle::with_template("uploading [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            ProgressBar::new(total).with_style(style)
        });
        bar.set_position(done);
    };
    let gpu_model = GpuModel::upload(gpu, model, &mut progress).context("uploading the weights to the GPU");
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    gpu_model
}

/// A device with the model readied on it; makes backends (one sequence, or a pool).
pub struct Backends {
    description: String,
    on: On,
    /// `--kernel` keys no pipeline took have been reported.
    warned: Cell<bool>,
}

#[allow(clippy::large_enum_variant)] // one per process
enum On {
    Cpu(Pool),
    /// The weights, shared by every sequence's backend.
    Gpu(Gpu, GpuModel),
}

impl Backends {
    /// A backend over `model` (the one given to [`Device::load`]) with a KV cache of `n_ctx`
    /// positions; on the GPU, prompts are evaluated in chunks of up to `max_batch` tokens.
    pub fn backend<'m>(
        &'m self,
        model: &'m Model<'m>,
        n_ctx: usize,
        max_batch: usize,
    ) -> Result<AnyBackend<'m>> {
        match &self.on {
            On::Cpu(_) => self.pool(model, n_ctx, 1, CPU_BATCH),
            On::Gpu(..) => self.pool(model, n_ctx, 1, max_batch),
        }
    }

    /// A pool of `n_seq` sequences over `model`, each with a KV cache of `n_ctx` positions,
    /// evaluated together in forward passes of up to `max_batch` tokens (`BatchBackend`).
    pub fn pool<'m>(
        &'m self,
        model: &'m Model<'m>,
        n_ctx: usize,
        n_seq: usize,
        max_batch: usize,
    ) -> Result<AnyBackend<'m>> {
        Ok(match &self.on {
            On::Cpu(pool) => AnyBackend::Cpu(CpuBackend::with_seqs(model, n_ctx, n_seq, max_batch, pool)),
            On::Gpu(gpu, weights) => {
                let backend = GpuBackend::with_seqs(gpu, weights, n_ctx, n_seq, max_batch)
                    .context("preparing the sequences on the GPU")?;
                let unused = gpu.unused_kernel_sources();
                if !unused.is_empty() && !self.warned.replace(true) {
                    eprintln!(
                        "warning: --kernel {}: no pipeline of this model has that key (built: {})",
                        unused.join(", "),
                        gpu.pipeline_keys().join(", ")
                    );
                }
                AnyBackend::Gpu(backend)
            }
        })
    }

    /// [`Device::describe`] of the device.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// The GPU and the weights on it, when the model runs there.
    pub fn gpu(&self) -> Option<(&Gpu, &GpuModel)> {
        match &self.on {
            On::Gpu(gpu, weights) => Some((gpu, weights)),
            On::Cpu(_) => None,
        }
    }
}
