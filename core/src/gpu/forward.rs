//! The forward pass on the GPU: the model's weights in GPU buffers ([`GpuModel`]) and a pool of
//! sequences' KV caches and the activations of a batch, with every kernel launcher prepared
//! ([`GpuBackend`]).
//!
//! It computes what the CPU reference (`cpu/forward.rs`) computes, with the same per-architecture
//! switches, kernel by kernel; each kernel is tested against its CPU twin and the whole pass
//! against the CPU path (`tests/tests/gpu_forward.rs`).
//!
//! Everything is built at load: buffers for a step of up to `max_batch` tokens, the KV cache of
//! `n_seq` sequences of `n_ctx` positions (f16, one buffer per layer for K and one for V, a region
//! per sequence), and one launcher per kernel invocation of a step, each with its bind groups. A
//! step is a batch of runs — a prompt chunk of one sequence, one decode token of each of many, or
//! both — whose tokens each carry their (sequence, position) in the step table (`step.rs`). It
//! writes the token ids, the table and the [`Step`] uniforms, records every launcher into ONE
//! compute pass and submits: no GPU object is created per token, and the pass count does not grow
//! with the layers. A projection is a mat-vec when the step has one token, the mat-vec over a few
//! tokens up to `Caps::multi_max` (for a type with a tiled integer kernel: that mat-vec below
//! `Caps::tile_min` tokens, its tiles up to `Caps::tile_max`) and a tiled matmul beyond
//! ([`Proj`]), so a batch of decode tokens reads each weight once. The head gathers the last
//! token of each run that wants an output, and its logits come back only when a sampler needs
//! them; greedy runs take the argmax on the GPU and read back one `u32` each, and a step of
//! greedy decode tokens is followed at once by the next, fed on the GPU ([`Ahead`]).

use std::cell::RefCell;
use std::collections::BTreeMap;

use super::stream_load::{GpuModelBuilder, model_stream};
use super::{
    ActQuant, Add, Argmax, Attention, AttnDims, BlockSums, Gather, GetRows, Glu, Gpu, GpuTensor, KvStore,
    MatMul, MatVec, MatVecMulti, Readback, RmsNorm, Rope, RopeKv, RopeKvDims, RopePut, Rows, SPLIT_TOKENS,
    Sample, Softcap, Step, StepBuffer, StepPlan, StepTable, needs_block_sums,
};
use crate::cpu::ops::RopeFreqs;
use crate::error::{Error, Result};
use crate::model::{Config, FfnAct, Model, WeightSet};
use crate::quant::{self, GgmlType};
use crate::sample::Draw;
use crate::session::{Backend, BatchBackend, BatchPlan, Output, Outputs, Pool, Run, Want};

/// A layer's weights on the GPU.
struct Layer {
    attn_norm: wgpu::Buffer,
    attn_q: GpuTensor,
    attn_k: GpuTensor,
    attn_v: GpuTensor,
    attn_q_b: Option<wgpu::Buffer>,
    attn_k_b: Option<wgpu::Buffer>,
    attn_v_b: Option<wgpu::Buffer>,
    attn_q_norm: Option<wgpu::Buffer>,
    attn_k_norm: Option<wgpu::Buffer>,
    attn_output: GpuTensor,
    attn_output_b: Option<wgpu::Buffer>,
    attn_post_norm: Option<wgpu::Buffer>,
    ffn_norm: wgpu::Buffer,
    ffn_gate: GpuTensor,
    ffn_up: GpuTensor,
    ffn_down: GpuTensor,
    ffn_post_norm: Option<wgpu::Buffer>,
    /// q, k and v's rows end to end where the loader uploaded them as one tensor (the three are
    /// then views of it), or q and k's alone: decode computes them with one mat-vec. With the
    /// number of parts it holds.
    attn_fused: Option<(GpuTensor, usize)>,
    /// The same of gate and up.
    ffn_fused: Option<(GpuTensor, usize)>,
}

impl Layer {
    /// Bytes of the layer's matrices.
    fn gpu_bytes(&self) -> u64 {
        [
            &self.attn_q,
            &self.attn_k,
            &self.attn_v,
            &self.attn_output,
            &self.ffn_gate,
            &self.ffn_up,
            &self.ffn_down,
        ]
        .iter()
        .map(|t| t.gpu_bytes())
        .sum()
    }
}

/// A model's weights on the GPU, in their GGUF encodings.
pub struct GpuModel {
    pub config: Config,
    token_embd: GpuTensor,
    /// `None` when the output matrix is the token embedding (tied).
    output: Option<GpuTensor>,
    output_norm: wgpu::Buffer,
    output_b: Option<wgpu::Buffer>,
    layers: Vec<Layer>,
    /// Rope frequency divisors, kept on the CPU: which set applies depends on the context size
    /// of each backend (`Weights::rope_factors`).
    rope_freqs: Option<Vec<f32>>,
    rope_factors_short: Option<Vec<f32>>,
    rope_factors_long: Option<Vec<f32>>,
}

impl GpuModel {
    /// Uploads `model`'s weights, calling `progress(bytes_done, bytes_total)` as they go: the
    /// weights laid end to end and fed to a [`GpuModelBuilder`], as a download would be.
    pub fn upload(gpu: &Gpu, model: &Model<'_>, progress: &mut dyn FnMut(u64, u64)) -> Result<GpuModel> {
        let (layout, feed) = model_stream(model)?;
        let mut b = GpuModelBuilder::from_layout(gpu, model.config.clone(), layout, 0)?;
        let mut offset = 0;
        for bytes in &feed {
            b.push(offset, bytes)?;
            offset += bytes.len() as u64;
            let (done, total) = b.progress();
            progress(done, total);
        }
        b.finish()
    }

    /// Assembles a model from its matrices (`None` for a tied output) and f32 vectors, uploading
    /// the vectors the kernels read (the rope factors stay on the host).
    pub(super) fn from_weights(
        gpu: &Gpu,
        config: Config,
        w: WeightSet<Option<GpuTensor>, Vec<f32>>,
    ) -> Result<GpuModel> {
        let vector = |name: &str, v: &[f32]| -> Result<wgpu::Buffer> {
            let buf = gpu.storage(name, v.len() as u64 * 4)?;
            gpu.queue().write_buffer(&buf, 0, bytemuck::cast_slice(v));
            Ok(buf)
        };
        let optional = |name: &str, v: &Option<Vec<f32>>| v.as_deref().map(|v| vector(name, v)).transpose();
        let need = |t: Option<GpuTensor>| {
            t.ok_or_else(|| Error::GpuAttention { why: "a weight matrix was assembled twice".into() })
        };
        let layers = w
            .layers
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let name = |what: &str| format!("blk.{i}.{what}");
                let (attn_q, attn_k, attn_v) = (need(l.attn_q)?, need(l.attn_k)?, need(l.attn_v)?);
                let (ffn_gate, ffn_up) = (need(l.ffn_gate)?, need(l.ffn_up)?);
                Ok(Layer {
                    attn_fused: GpuTensor::join(&name("attn_qkv"), &[&attn_q, &attn_k, &attn_v])
                        .map(|t| (t, 3))
                        .or_else(|| GpuTensor::join(&name("attn_qk"), &[&attn_q, &attn_k]).map(|t| (t, 2))),
                    ffn_fused: GpuTensor::join(&name("ffn_gate_up"), &[&ffn_gate, &ffn_up]).map(|t| (t, 2)),
                    attn_norm: vector(&name("attn_norm"), &l.attn_norm)?,
                    attn_q,
                    attn_k,
                    attn_v,
                    attn_q_b: optional(&name("attn_q.bias"), &l.attn_q_b)?,
                    attn_k_b: optional(&name("attn_k.bias"), &l.attn_k_b)?,
                    attn_v_b: optional(&name("attn_v.bias"), &l.attn_v_b)?,
                    attn_q_norm: optional(&name("attn_q_norm"), &l.attn_q_norm)?,
                    attn_k_norm: optional(&name("attn_k_norm"), &l.attn_k_norm)?,
                    attn_output: need(l.attn_output)?,
                    attn_output_b: optional(&name("attn_output.bias"), &l.attn_output_b)?,
                    attn_post_norm: optional(&name("post_attention_norm"), &l.attn_post_norm)?,
                    ffn_norm: vector(&name("ffn_norm"), &l.ffn_norm)?,
                    ffn_gate,
                    ffn_up,
                    ffn_down: need(l.ffn_down)?,
                    ffn_post_norm: optional(&name("post_ffw_norm"), &l.ffn_post_norm)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        gpu.check("uploading the weight vectors")?;
        Ok(GpuModel {
            config,
            token_embd: need(w.token_embd)?,
            output: w.output,
            output_norm: vector("output_norm", &w.output_norm)?,
            output_b: optional("output.bias", &w.output_b)?,
            layers,
            rope_freqs: w.rope_freqs,
            rope_factors_short: w.rope_factors_short,
            rope_factors_long: w.rope_factors_long,
        })
    }

    /// Bytes of weights on the GPU.
    pub fn gpu_bytes(&self) -> u64 {
        let layers: u64 = self.layers.iter().map(Layer::gpu_bytes).sum();
        layers + self.token_embd.gpu_bytes() + self.output.as_ref().map_or(0, |t| t.gpu_bytes())
    }

    /// Weight bytes one decode step reads: every layer's matrices and the output matrix (the
    /// embedding lookup reads one row of its own).
    pub fn bytes_per_token(&self) -> u64 {
        let layers: u64 = self.layers.iter().map(Layer::gpu_bytes).sum();
        layers + self.output().gpu_bytes()
    }

    fn output(&self) -> &GpuTensor {
        self.output.as_ref().unwrap_or(&self.token_embd)
    }

    /// Same selection as `Weights::rope_factors`.
    fn rope_factors(&self, n_ctx: usize) -> Option<&[f32]> {
        if let Some(f) = &self.rope_freqs {
            return Some(f);
        }
        if n_ctx > self.config.n_ctx_orig {
            self.rope_factors_long.as_deref()
        } else {
            self.rope_factors_short.as_deref()
        }
    }
}

/// Whether a layer's RMSNorm that feeds only rounded projection inputs is fused into their
/// conversion (`ActQuant::new_normed`) rather than run as its own kernel.
const FUSE_NORMS: bool = true;

/// Whether a layer's rope of q and k and its KV cache store run as one kernel (`RopeKv`) rather
/// than three (two `Rope`, one `KvStore`); nothing sits between them in any architecture.
const FUSE_ROPE_KV: bool = true;

/// A projection `y = W·x` of a step: a mat-vec for one token, the mat-vec over a few tokens or
/// its tiled integer kernel for up to `multi_max` (batched decode; only types with such a
/// kernel), a tiled matmul for more (each absent where a step never has that many rows). With
/// `add`, the product goes into a residual stream: the mat-vecs add it themselves, the matmul
/// writes it to y and `add` adds y to the stream.
struct Proj {
    /// `None` for a part of a fused tensor other than the first, whose mat-vec (over the whole)
    /// computes this part too.
    vec: Option<MatVec>,
    multi: Option<MatVecMulti>,
    mat: Option<MatMul>,
    /// After a Q4_1/Q5_1 matmul: its block sums as the CPU's dot products take them.
    fix: Option<BlockSums>,
    add: Option<Add>,
    /// The most tokens `multi` takes: `Caps::multi_max`, or `Caps::tile_max` where the type has
    /// a tiled integer kernel, `Caps::int_multi_max` where its few-token kernel is an integer one.
    multi_max: u32,
    /// The tensor's role (its name without the layer and `.weight`), for profiles.
    role: String,
    /// A part of a fused tensor (q|k|v, gate|up) on the tensor cores: steps of up to this many
    /// tokens that `mat` would run unstaged run the whole tensor's product `fused_mat` instead,
    /// which the first part holds and records (each part's rows to its own output). 0: none.
    fused_max: u32,
    fused_mat: Option<MatMul>,
}

impl Proj {
    fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n: u32) {
        match (&self.multi, &self.mat) {
            (Some(multi), _) if n > 1 && n <= self.multi_max => multi.encode(pass, n),
            (_, Some(mat)) if n > 1 && n <= self.fused_max && mat.staged_chunks(n) == 0 => {
                if let Some(fused) = &self.fused_mat {
                    fused.encode(pass, n);
                }
            }
            (_, Some(mat)) if n > 1 => {
                mat.encode(pass, n);
                if let Some(fix) = &self.fix {
                    fix.encode(pass, n);
                }
                // A split step's reduce added the product to the residual stream itself.
                if let Some(add) = self.add.as_ref().filter(|_| !mat.adds_to_residual(n)) {
                    add.encode(pass, n);
                }
            }
            _ => {
                if let Some(vec) = &self.vec {
                    vec.encode(pass)
                }
            }
        }
    }

    /// The kernel a step of `n` tokens runs (as [`Proj::encode`] picks it), for profiles.
    fn key(&self, n: u32) -> &str {
        match (&self.multi, &self.mat, &self.vec) {
            (Some(multi), _, _) if n > 1 && n <= self.multi_max => multi.key(n),
            (_, Some(mat), _) if n > 1 && n <= self.fused_max && mat.staged_chunks(n) == 0 => {
                self.fused_mat.as_ref().map_or("fused into the part before", MatMul::key)
            }
            (_, Some(mat), _) if n > 1 => mat.key(),
            (_, _, Some(vec)) => vec.key(),
            _ => "fused into the part before",
        }
    }
}

/// One kernel invocation of a step, prepared.
enum Op {
    Proj(Proj),
    ActQuant(ActQuant),
    GetRows(GetRows),
    RmsNorm(RmsNorm),
    Rope(Rope),
    RopeKv(RopeKv),
    Add(Add),
    Glu(Glu),
    KvStore(KvStore),
    Attention(Attention),
    Gather(Gather),
    Softcap(Softcap),
    /// The output projection (one row per output of the step).
    Output(Proj),
}

impl Op {
    /// The kernel family, for profiles.
    fn kind(&self) -> &'static str {
        match self {
            Op::Proj(_) => "projection",
            Op::ActQuant(..) => "act_quant",
            Op::GetRows(_) => "get_rows",
            Op::RmsNorm(_) => "rmsnorm",
            Op::Rope(_) => "rope",
            Op::RopeKv(_) => "rope_kv",
            Op::Add(_) => "add",
            Op::Glu(_) => "glu",
            Op::KvStore(_) => "kv_store",
            Op::Attention(_) => "attention",
            Op::Gather(_) => "gather",
            Op::Softcap(_) => "softcap",
            Op::Output(_) => "output projection",
        }
    }

    /// The profile's row of the op in a step of `n` rows: its kind, and for a projection its
    /// tensor's role and the kernel that runs (`projection attn_q: matmul_coop_typed_q4_k`).
    fn label(&self, n: u32) -> String {
        match self {
            Op::Proj(p) | Op::Output(p) => format!("{} {}: {}", self.kind(), p.role, p.key(n)),
            _ => self.kind().to_string(),
        }
    }

    /// Dispatches the op records in a step of one token: a projection's one per piece of its
    /// tensor (none for a fused part computed by the first), attention's two (the decode kernel
    /// and the merge of its chunks), every other op's one.
    fn decode_dispatches(&self) -> usize {
        match self {
            Op::Proj(p) | Op::Output(p) => p.vec.as_ref().map_or(0, MatVec::dispatches),
            Op::Attention(_) => 2,
            Op::RopeKv(k) => k.dispatches(1) as usize,
            _ => 1,
        }
    }

    /// Records the op over `n` rows (the step's tokens in the body, its outputs in the head); only
    /// attention reads the plan (and checks it against its cache).
    fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n: u32, plan: &StepPlan) -> Result<()> {
        match self {
            Op::Attention(k) => return k.encode(pass, plan),
            Op::Proj(p) | Op::Output(p) => p.encode(pass, n),
            Op::ActQuant(k) => k.encode(pass, n),
            Op::GetRows(k) => k.encode(pass, n),
            Op::RmsNorm(k) => k.encode(pass, n),
            Op::Rope(k) => k.encode(pass, n),
            Op::RopeKv(k) => k.encode(pass, n),
            Op::Add(k) => k.encode(pass, n),
            Op::Glu(k) => k.encode(pass, n),
            Op::KvStore(k) => k.encode(pass, n),
            Op::Gather(k) => k.encode(pass, n),
            Op::Softcap(k) => k.encode(pass, n),
        }
        Ok(())
    }
}

/// One row of a step's profile ([`GpuBackend::profile_runs`]): the GPU time of the ops of one
/// label, summed over the step (over the layers for a layer's op).
#[derive(Clone, Debug)]
pub struct ProfileRow {
    /// The kernel family (`projection`, `attention`, `act_quant`, …).
    pub kind: &'static str,
    /// The family, and for a projection its tensor's role and kernel
    /// (`projection ffn_down: matmul_coop_typed_q4_k`).
    pub label: String,
    pub ns: f64,
    /// Ops of this label in the step.
    pub count: usize,
}

/// The activation buffers of a step of up to `max_batch` tokens with up to `max_out` outputs.
struct Acts {
    /// [max_batch] u32 token ids of the step.
    ids: wgpu::Buffer,
    /// [max_batch, n_embd] residual stream.
    x: wgpu::Buffer,
    /// [max_batch, n_embd] normed input of a sub-layer.
    xn: wgpu::Buffer,
    /// q [max_batch, q_dim], k and v [max_batch, kv_dim], one after the other in one buffer (a
    /// fused mat-vec writes all three), each with its offset in elements.
    q: (wgpu::Buffer, u64),
    k: (wgpu::Buffer, u64),
    v: (wgpu::Buffer, u64),
    /// [max_batch, q_dim] attention output.
    att: wgpu::Buffer,
    /// [max_batch, n_embd] a sub-layer's output; in the head, the gathered output rows.
    proj: wgpu::Buffer,
    /// gate and up, [max_batch, n_ff] each: one after the other in one buffer, or in two where a
    /// GLU kernel (which writes gate and reads up) runs.
    gate: (wgpu::Buffer, u64),
    up: (wgpu::Buffer, u64),
    /// [max_out, n_vocab] the output rows' logits.
    logits: wgpu::Buffer,
    /// [max_out] u32 their argmax.
    token: wgpu::Buffer,
}

impl Acts {
    /// `glu_kernel`: some layer runs the GLU as its own kernel.
    fn new(gpu: &Gpu, c: &Config, b: u64, max_out: u64, glu_kernel: bool) -> Result<Acts> {
        let f32s = |label: &str, n: usize| gpu.storage(label, b * n as u64 * 4);
        let (qd, kvd, ff) = (c.q_dim() as u64, c.kv_dim() as u64, c.n_ff as u64);
        let qkv = f32s("qkv", c.q_dim() + 2 * c.kv_dim())?;
        let (gate, up) = match glu_kernel {
            true => ((f32s("gate", c.n_ff)?, 0), (f32s("up", c.n_ff)?, 0)),
            false => {
                let gate_up = f32s("gate_up", 2 * c.n_ff)?;
                ((gate_up.clone(), 0), (gate_up, b * ff))
            }
        };
        Ok(Acts {
            ids: gpu.storage("ids", b * 4)?,
            x: f32s("x", c.n_embd)?,
            xn: f32s("xn", c.n_embd)?,
            q: (qkv.clone(), 0),
            k: (qkv.clone(), b * qd),
            v: (qkv, b * (qd + kvd)),
            att: f32s("att", c.q_dim())?,
            proj: f32s("proj", c.n_embd)?,
            gate,
            up,
            logits: gpu.storage("logits", max_out * c.n_vocab as u64 * 4)?,
            token: gpu.storage("token", max_out * 4)?,
        })
    }
}

/// Decoding whose tokens the GPU picks runs one step ahead. After a step whose runs all want
/// their token picked on the GPU — the argmax, or a sample with the sampler's draw — the next
/// step of the same sequences (one token each) is submitted at once with those tokens as its
/// input, copied on the GPU from the token rows to the token ids, before the CPU has read them
/// (a sampled run's next step draws with its draw's `r_next`, the generator's next value):
/// while the CPU maps the results, returns them and feeds the same tokens back, the GPU is
/// already running that step — the CPU's recording and the read-back wait overlap the GPU's
/// work instead of idling it. When the next call asks for that very step (the same sequences at
/// the same positions, one token each, equal to those tokens, the same wants) it is already in
/// flight; any other call discards it: the sequences' lengths were never advanced for it, and
/// later steps overwrite the cells it wrote.
struct Ahead {
    /// (sequence, position) of each of its tokens, in order.
    at: Vec<(usize, usize)>,
    /// What each of its rows picks: the argmax, or a sample with the draw it was given.
    wants: Vec<Want>,
    /// Its tokens: those picked by the step before, once read back.
    inputs: Option<Vec<u32>>,
    /// Where its own tokens land, and its submission (to wait for that alone).
    slot: usize,
    submission: wgpu::SubmissionIndex,
}

/// A pool of sequences on the GPU: their KV caches, the activations of a step and its prepared
/// kernels. As a [`Backend`] it is sequence 0.
pub struct GpuBackend<'g> {
    gpu: &'g Gpu,
    model: &'g GpuModel,
    n_ctx: usize,
    n_seq: usize,
    max_batch: usize,
    /// [n_seq] tokens in each sequence's cache.
    seq_len: Vec<usize>,
    /// The body's step (its token count) and the head's (its output rows).
    step: StepBuffer,
    head_step: StepBuffer,
    table: StepTable,
    /// The step being recorded, on the host.
    plan: StepPlan,
    /// The evaluation's forward batches.
    batches: BatchPlan,
    acts: Acts,
    /// The layers, from the embedding lookup to the last residual add.
    body: Vec<Op>,
    /// The output rows' logits: gather, final norm, output projection, bias, soft-cap.
    head: Vec<Op>,
    /// Each output row's argmax into `acts.token`.
    argmax: Argmax,
    /// The sampled rows' tokens into `acts.token` (`Want::Sample`).
    sample: Sample,
    /// The draws of the step being recorded, by output row of its batch.
    draws: Vec<Option<Draw>>,
    readback: Readback,
    /// [n_seq, n_vocab] and [n_seq]: an evaluation's outputs read back, by output row (its forward
    /// batches' rows end to end).
    logits: Vec<f32>,
    tokens: Vec<u32>,
    /// Two [max_out] u32 staging buffers greedy steps' argmaxes come back through, alternately.
    token_staging: [wgpu::Buffer; 2],
    /// The step submitted ahead on the GPU's own argmaxes (see [`Ahead`]).
    ahead: Option<Ahead>,
    /// Compute passes recorded so far (one per submitted step).
    passes: u64,
    /// Under exact numerics, the rope angles of a step's tokens, written from the host before
    /// each step ([`RopeKv::new_exact`]).
    exact_angles: Option<wgpu::Buffer>,
    /// Per layer (K, V), f16 pairs in u32: [n_seq, n_ctx, kv_dim].
    _kv: Vec<(wgpu::Buffer, wgpu::Buffer)>,
    /// Projection inputs in their weights' activation formats, one per format; the attention's
    /// decode scratch.
    _scratch: Vec<wgpu::Buffer>,
}

impl<'g> GpuBackend<'g> {
    /// One sequence of `n_ctx` positions, evaluated in chunks of up to `max_batch` tokens.
    pub fn new(gpu: &'g Gpu, model: &'g GpuModel, n_ctx: usize, max_batch: usize) -> Result<GpuBackend<'g>> {
        GpuBackend::with_seqs(gpu, model, n_ctx, 1, max_batch)
    }

    /// `n_seq` sequences of `n_ctx` positions each, evaluated in steps of up to `max_batch`
    /// tokens (all sequences' runs together).
    pub fn with_seqs(
        gpu: &'g Gpu,
        model: &'g GpuModel,
        n_ctx: usize,
        n_seq: usize,
        max_batch: usize,
    ) -> Result<GpuBackend<'g>> {
        let c = &model.config;
        let (n_ctx, n_seq) = (n_ctx.max(1), n_seq.max(1));
        let exact = gpu.caps().exact;
        if exact {
            check_exact(model)?;
        }
        // Exact numerics take one token a step: the CPU's arithmetic is the mat-vec's.
        let max_batch = if exact { 1 } else { max_batch.clamp(1, n_ctx.saturating_mul(n_seq)) };
        let max_out = n_seq.min(max_batch);
        let kv_bytes = (n_seq * n_ctx * c.kv_dim() * 2) as u64;
        if kv_bytes > gpu.caps().max_storage_binding {
            return Err(Error::GpuKernelShape {
                kernel: "kv_store",
                why: format!(
                    "a layer's cache of {n_seq} sequences × {n_ctx} positions × {} values is {kv_bytes} bytes, over \
                     the GPU's {}-byte binding limit: use fewer sequences or a smaller context",
                    c.kv_dim(),
                    gpu.caps().max_storage_binding
                ),
            });
        }
        let tile_rows = Attention::tile_rows()?;
        let step = StepBuffer::new(gpu)?;
        let head_step = StepBuffer::new(gpu)?;
        let table = StepTable::new(gpu, max_batch as u32, n_seq as u32, tile_rows)?;
        let glu_kernel = model.layers.iter().any(|l| !Builder::fuses_glu(&l.ffn_down));
        let acts = Acts::new(gpu, c, max_batch as u64, max_out as u64, glu_kernel)?;
        let kv = (0..c.n_layer)
            .map(|l| {
                Ok((
                    gpu.storage(&format!("k_cache.{l}"), kv_bytes)?,
                    gpu.storage(&format!("v_cache.{l}"), kv_bytes)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let exact_angles = match exact {
            true => Some(gpu.storage("exact rope angles", (max_batch * c.n_rot).max(1) as u64 * 4)?),
            false => None,
        };
        let b = Builder {
            gpu,
            step: &step,
            head_step: &head_step,
            table: &table,
            c,
            max_batch: max_batch as u32,
            max_out: max_out as u32,
            scratch: RefCell::default(),
            exact_angles: exact_angles.as_ref(),
        };
        let (body, attn_scratch) = b.body(model, &acts, &kv, n_ctx, n_seq)?;
        let head = b.head(model, &acts)?;
        let mut scratch: Vec<wgpu::Buffer> =
            b.scratch.into_inner().into_values().flat_map(|(a, b)| [a, b]).collect();
        scratch.push(attn_scratch);
        let argmax = Argmax::new(gpu, (&acts.logits, 0), c.n_vocab as u32, (&acts.token, 0), max_out as u32)?;
        let sample = Sample::new(
            gpu,
            &head_step,
            (&acts.logits, 0),
            c.n_vocab as u32,
            (&acts.token, 0),
            &acts.ids,
            max_out as u32,
        )?;
        let readback = Readback::new(gpu, (max_out * c.n_vocab * 4) as u64)?;
        let staging = |i: usize| {
            gpu.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("token read-back {i}")),
                size: max_out as u64 * 4,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let token_staging = [staging(0), staging(1)];
        gpu.check("preparing the forward pass")?;
        Ok(GpuBackend {
            gpu,
            model,
            n_ctx,
            n_seq,
            max_batch,
            seq_len: vec![0; n_seq],
            step,
            head_step,
            table,
            plan: StepPlan::new(tile_rows),
            batches: BatchPlan::default(),
            acts,
            body,
            head,
            argmax,
            sample,
            draws: Vec::with_capacity(max_out),
            readback,
            // Every sequence's output of an evaluation, which may take several forward batches
            // (exact numerics' one token a step, or more runs than a step holds).
            logits: vec![0.0; n_seq * c.n_vocab],
            tokens: vec![0; n_seq],
            token_staging,
            ahead: None,
            passes: 0,
            exact_angles,
            _kv: kv,
            _scratch: scratch,
        })
    }

    /// GPU time of one step of `tokens` on sequence 0 (one token: a greedy decode step; more: a
    /// prompt chunk, whose kernels are those of a batch of that many tokens), per row of the
    /// profile; see [`GpuBackend::profile_runs`].
    pub async fn profile_step(&mut self, tokens: &[u32]) -> Result<Vec<ProfileRow>> {
        self.profile_runs(&[(0, tokens)]).await
    }

    /// GPU time of one step made of `runs` — (sequence, tokens), each wanting the argmax of its
    /// last token, as a batch of greedy decode tokens of many sequences is — per row of the
    /// profile ([`ProfileRow`]: a kernel family, a projection by its tensor's role and kernel;
    /// in order of first use), from timestamps written between every two ops. Needs the
    /// adapter's timestamp queries inside passes; the profile objects are made per call (this is
    /// a measuring tool, not the decode loop).
    pub async fn profile_runs(&mut self, runs: &[(usize, &[u32])]) -> Result<Vec<ProfileRow>> {
        let gpu = self.gpu;
        let inside = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
        if !gpu.device().features().contains(inside) {
            return Err(Error::GpuInternal {
                context: "profiling a step".into(),
                message: "the adapter has no timestamp queries inside compute passes".into(),
            });
        }
        self.ahead = None;
        let total: usize = runs.iter().map(|(_, t)| t.len()).sum();
        if runs.is_empty() || total > self.max_batch || runs.len() > self.tokens.len() {
            return Err(Error::GpuKernelShape {
                kernel: "profile",
                why: format!("a step of {} runs, {total} tokens (at most {})", runs.len(), self.max_batch),
            });
        }
        for &(seq, tokens) in runs {
            if tokens.is_empty() || seq >= self.seq_len.len() {
                return Err(Error::GpuKernelShape {
                    kernel: "profile",
                    why: format!("a run of {} tokens on sequence {seq}", tokens.len()),
                });
            }
            if self.seq_len[seq] + tokens.len() > self.n_ctx {
                return Err(Error::ContextFull { n_ctx: self.n_ctx });
            }
        }
        let ops: Vec<(&Op, bool)> =
            self.body.iter().map(|o| (o, false)).chain(self.head.iter().map(|o| (o, true))).collect();
        let n = (ops.len() + 2) as u32;
        let set = gpu.device().create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profile"),
            ty: wgpu::QueryType::Timestamp,
            count: n,
        });
        let resolved = gpu.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile"),
            size: n as u64 * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        self.plan.clear();
        for &(seq, tokens) in runs {
            self.plan.push(seq as u32, self.seq_len[seq] as u32, tokens, true);
        }
        self.write_step()?;
        let (n_tokens, n_out) = (self.plan.n_tokens(), self.plan.n_outputs());
        let mut encoder = gpu.device().create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.write_timestamp(&set, 0);
            for (i, (op, head)) in ops.iter().enumerate() {
                op.encode(&mut pass, if *head { n_out } else { n_tokens }, &self.plan)?;
                pass.write_timestamp(&set, i as u32 + 1);
            }
            self.argmax.encode(&mut pass, n_out);
            pass.write_timestamp(&set, n - 1);
        }
        encoder.resolve_query_set(&set, 0..n, &resolved, 0);
        gpu.submit(encoder, "a profiled step")?;
        for &(seq, tokens) in runs {
            self.seq_len[seq] += tokens.len();
        }
        let mut bytes = vec![0u8; n as usize * 8];
        Readback::new(gpu, n as u64 * 8)?.read(gpu, &resolved, 0, &mut bytes).await?;
        let ticks: Vec<u64> = bytes.as_chunks::<8>().0.iter().map(|b| u64::from_le_bytes(*b)).collect();
        let period = gpu.queue().get_timestamp_period() as f64;
        let mut rows: Vec<ProfileRow> = Vec::new();
        let names = ops
            .iter()
            .map(|(op, head)| (op.kind(), op.label(if *head { n_out } else { n_tokens })))
            .chain([("argmax", "argmax".to_string())]);
        for ((kind, label), t) in names.zip(ticks.windows(2)) {
            let ns = t[1].saturating_sub(t[0]) as f64 * period;
            match rows.iter_mut().find(|r| r.label == label) {
                Some(r) => {
                    r.ns += ns;
                    r.count += 1;
                }
                None => rows.push(ProfileRow { kind, label, ns, count: 1 }),
            }
        }
        Ok(rows)
    }

    /// Blocks until every step submitted so far has run (natively; on the web it returns at
    /// once): a benchmark's untimed setup ends with it, so the GPU work it queued is not timed.
    pub fn sync(&self) -> Result<()> {
        self.gpu.wait(None, "finishing the queued steps")
    }

    /// Compute passes recorded since the backend was made: one per step, whatever the model's
    /// depth or the number of sequences (a test holds it to that).
    pub fn passes(&self) -> u64 {
        self.passes
    }

    /// Probing (a measuring tool, as [`GpuBackend::profile_step`]): the body's ops, by kernel
    /// family, in the order a step records them — the embedding lookup, then each layer's.
    pub fn probe_ops(&self) -> Vec<&'static str> {
        self.body.iter().map(Op::kind).collect()
    }

    /// Probing: the dispatches of a decode step's body and head (one token; see
    /// `Op::decode_dispatches`), without the argmax.
    pub fn probe_decode_dispatches(&self) -> usize {
        self.body.iter().chain(&self.head).map(Op::decode_dispatches).sum()
    }

    /// Probing: makes `tokens` the step of sequence 0 at its end (written for the next
    /// submissions; the sequence's length is not advanced) and submits the body's ops `ops` of
    /// it in one pass. Called for consecutive ranges, it computes the step op by op, so that
    /// [`GpuBackend::probe_read`] can read every intermediate activation. Calling it again for
    /// the same tokens recomputes the same cells: the cache holds the step's keys and values at
    /// the same positions. [`Backend::eval`] afterwards evaluates normally.
    pub fn probe_run(&mut self, tokens: &[u32], ops: std::ops::Range<usize>) -> Result<()> {
        self.ahead = None;
        let pos = self.seq_len[0];
        if tokens.is_empty() || tokens.len() > self.max_batch || pos + tokens.len() > self.n_ctx {
            return Err(Error::GpuKernelShape {
                kernel: "probe",
                why: format!("{} tokens at position {pos} do not fit the step or the context", tokens.len()),
            });
        }
        let body = self.body.get(ops.clone()).ok_or_else(|| Error::GpuKernelShape {
            kernel: "probe",
            why: format!("ops {ops:?} of {}", self.body.len()),
        })?;
        self.plan.clear();
        self.plan.push(0, pos as u32, tokens, false);
        self.write_step()?;
        let mut encoder = self.gpu.device().create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for op in body {
                op.encode(&mut pass, tokens.len() as u32, &self.plan)?;
            }
        }
        self.gpu.submit(encoder, "a probed step")?;
        Ok(())
    }

    /// Probing: the first `n` f32 of an activation buffer after the work submitted so far —
    /// `x`, `xn`, `q`, `k`, `v`, `att`, `proj`, `gate`, `up` (rows `[n_tokens, width]` as
    /// [`Acts`] lays them out) — or the words of layer `l`'s cache, `k_cache.{l}` / `v_cache.{l}`
    /// (f16 pairs in u32, `[n_seq, n_ctx, kv_dim]`, returned as the words' bits).
    pub async fn probe_read(&mut self, name: &str, n: usize) -> Result<Vec<f32>> {
        let a = &self.acts;
        let cache = |prefix: &str| {
            let l: usize = name.strip_prefix(prefix)?.parse().ok()?;
            self._kv.get(l).map(|(k, v)| if prefix == "k_cache." { k } else { v })
        };
        let (buf, off) = match name {
            "x" => (&a.x, 0),
            "xn" => (&a.xn, 0),
            "q" => (&a.q.0, a.q.1),
            "k" => (&a.k.0, a.k.1),
            "v" => (&a.v.0, a.v.1),
            "att" => (&a.att, 0),
            "proj" => (&a.proj, 0),
            "gate" => (&a.gate.0, a.gate.1),
            "up" => (&a.up.0, a.up.1),
            _ => (
                cache("k_cache.").or_else(|| cache("v_cache.")).ok_or_else(|| Error::GpuKernelShape {
                    kernel: "probe",
                    why: format!("no buffer named {name}"),
                })?,
                0,
            ),
        };
        let buf = buf.clone();
        let mut out = Vec::with_capacity(n);
        let chunk = (self.readback.capacity() / 4) as usize;
        while out.len() < n {
            let m = chunk.min(n - out.len());
            out.extend(self.readback.read_f32(self.gpu, &buf, off + out.len() as u64, m).await?);
        }
        Ok(out)
    }

    /// Writes the plan's token ids, tables and step counts for the next submission.
    fn write_step(&self) -> Result<()> {
        let plan = &self.plan;
        self.table.write(self.gpu, plan)?;
        if let Some(angles) = &self.exact_angles {
            let c = &self.model.config;
            let freqs = RopeFreqs {
                theta_scale: c.rope_base.powf(-2.0 / c.n_rot as f32),
                freq_scale: c.rope_freq_scale,
                attn_factor: c.rope_attn_factor,
                factors: self.model.rope_factors(self.n_ctx),
            };
            let values = super::exact_angles(&freqs, c.n_rot, plan.at.iter().map(|a| a[1] as usize));
            self.gpu.queue().write_buffer(angles, 0, bytemuck::cast_slice(&values));
        }
        if !plan.ids.is_empty() {
            self.gpu.queue().write_buffer(&self.acts.ids, 0, bytemuck::cast_slice(&plan.ids));
        }
        self.step.write(self.gpu, Step::new(0, plan.n_tokens()));
        self.head_step.write(self.gpu, Step::new(0, plan.n_outputs()));
        Ok(())
    }

    /// Plans forward batch `i` of `self.batches` (pieces of `runs`) and submits it; returns the
    /// submission.
    fn submit(
        &mut self,
        runs: &[Run<'_>],
        i: usize,
        staging: Option<usize>,
    ) -> Result<wgpu::SubmissionIndex> {
        self.plan.clear();
        self.draws.clear();
        let mut argmax = false;
        for p in self.batches.batch(i) {
            let tokens = &runs[p.run].tokens[p.start..p.end];
            self.plan.push(p.seq as u32, p.pos0 as u32, tokens, p.output.is_some());
            if p.output.is_some() {
                let want = self.batches.rows[p.run].0;
                argmax |= want == Want::Argmax;
                self.draws.push(match want {
                    Want::Sample(d) => Some(d),
                    _ => None,
                });
            }
        }
        let sample = self.sample.write(self.gpu, self.draws.iter().map(Option::as_ref));
        self.record(argmax, sample, false, staging)
    }

    /// Records and submits the step of `self.plan`: the body over its tokens, the head over its
    /// outputs, and their argmaxes with `argmax`, then the tokens of the rows with a draw with
    /// `sample` (the draws written by [`Sample::write`]). `fed`: the token ids are the tokens the
    /// previous step picked, copied on the GPU (the plan's ids are not written). `staging`: copy
    /// the picked tokens to that read-back slot.
    fn record(
        &mut self,
        argmax: bool,
        sample: bool,
        fed: bool,
        staging: Option<usize>,
    ) -> Result<wgpu::SubmissionIndex> {
        self.write_step()?;
        let (n, n_out) = (self.plan.n_tokens(), self.plan.n_outputs());
        let mut encoder = self.gpu.device().create_command_encoder(&Default::default());
        if fed {
            encoder.copy_buffer_to_buffer(&self.acts.token, 0, &self.acts.ids, 0, n as u64 * 4);
        }
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("step"),
                timestamp_writes: None,
            });
            for op in &self.body {
                op.encode(&mut pass, n, &self.plan)?;
            }
            if n_out > 0 {
                for op in &self.head {
                    op.encode(&mut pass, n_out, &self.plan)?;
                }
            }
            if argmax {
                self.argmax.encode(&mut pass, n_out);
            }
            if sample {
                self.sample.encode(&mut pass, n_out);
            }
        }
        if let Some(slot) = staging {
            encoder.copy_buffer_to_buffer(
                &self.acts.token,
                0,
                &self.token_staging[slot],
                0,
                n_out as u64 * 4,
            );
        }
        self.passes += 1;
        self.gpu.submit(encoder, "a forward step")
    }

    /// Whether the GPU picks every run's next token (a prompt's last chunk, or a decode token):
    /// the argmax or a sample wanted of each, with room after them for the step [`Ahead`] (the
    /// caller checks that they make one forward batch).
    fn picks_all(&self, runs: &[Run<'_>]) -> bool {
        !runs.is_empty()
            && runs.iter().all(|r| {
                !r.tokens.is_empty()
                    && matches!(r.want, Want::Argmax | Want::Sample(_))
                    && self.seq_len(r.seq) + r.tokens.len() < self.n_ctx
            })
    }

    /// The step submitted ahead, if it is the step `runs` asks for.
    fn take_ahead(&mut self, runs: &[Run<'_>]) -> Option<Ahead> {
        let a = self.ahead.take()?;
        let inputs = a.inputs.as_ref()?;
        // The draw it was given, less the value after it (which the step ahead did not need), and
        // its adjustments as the step ahead made them: with the token it was fed counted in.
        let drawn = |w: Want, ahead: Want, fed: u32| match (w, ahead) {
            (Want::Sample(d), Want::Sample(e)) => {
                let plain = |d: Draw| Draw { r_next: 0.0, adjust: Default::default(), ..d };
                plain(d) == plain(e) && d.adjust.same_effect(&e.adjust, fed)
            }
            (w, ahead) => w == ahead,
        };
        let same = a.at.len() == runs.len()
            && runs.iter().zip(&a.at).zip(inputs).zip(&a.wants).all(|(((r, &(seq, pos)), &t), &w)| {
                r.seq == seq && self.seq_len(seq) == pos && r.tokens == [t] && drawn(r.want, w, t)
            });
        same.then_some(a)
    }

    /// Submits the step of the tokens the GPU picked in the last step (one token of each of the
    /// sequences `runs` named, at their next positions; a sampled run draws with its `r_next`),
    /// landing in read-back slot `slot`.
    fn submit_ahead(&mut self, runs: &[Run<'_>], slot: usize) -> Result<()> {
        self.plan.clear();
        self.draws.clear();
        let mut at = Vec::with_capacity(runs.len());
        let mut wants = Vec::with_capacity(runs.len());
        for r in runs {
            let pos = self.seq_len[r.seq];
            self.plan.push(r.seq as u32, pos as u32, &[0], true);
            at.push((r.seq, pos));
            let want = match r.want {
                Want::Sample(d) => {
                    Want::Sample(Draw { r: d.r_next, r_next: 0.0, adjust: d.adjust.ahead(), ..d })
                }
                w => w,
            };
            self.draws.push(match want {
                Want::Sample(d) => Some(d),
                _ => None,
            });
            wants.push(want);
        }
        self.plan.ids.clear();
        let argmax = wants.contains(&Want::Argmax);
        let sample = self.sample.write(self.gpu, self.draws.iter().map(Option::as_ref));
        let submission = self.record(argmax, sample, true, Some(slot))?;
        self.ahead = Some(Ahead { at, wants, inputs: None, slot, submission });
        Ok(())
    }

    /// The `n` argmaxes in read-back slot `slot` once `submission` has finished, into
    /// `self.tokens`.
    async fn read_tokens(&mut self, slot: usize, submission: wgpu::SubmissionIndex, n: usize) -> Result<()> {
        let context = "reading a step's argmaxes back";
        let staging = &self.token_staging[slot];
        let slice = staging.slice(..n as u64 * 4);
        let done = super::readback::MapDone::default();
        let signal = done.clone();
        slice.map_async(wgpu::MapMode::Read, move |result| signal.set(result));
        self.gpu.wait(Some(submission), context)?;
        let mapped = done.await;
        self.gpu.check(context)?;
        mapped.map_err(|e| Error::GpuReadback { context: context.into(), message: e.to_string() })?;
        let read = match slice.get_mapped_range() {
            Ok(view) => {
                for (t, b) in self.tokens.iter_mut().zip(view.as_chunks::<4>().0) {
                    *t = u32::from_le_bytes(*b);
                }
                Ok(())
            }
            Err(e) => Err(Error::GpuReadback { context: context.into(), message: e.to_string() }),
        };
        staging.unmap();
        read
    }

    /// A step of runs whose tokens the GPU picks ([`GpuBackend::picks_all`]), the next one (a
    /// token of each) submitted ahead on those tokens.
    async fn eval_ahead(&mut self, runs: &[Run<'_>]) -> Result<()> {
        let (slot, submission) = match self.take_ahead(runs) {
            Some(a) => (a.slot, a.submission),
            None => {
                self.ahead = None;
                (0, self.submit(runs, 0, Some(0))?)
            }
        };
        for r in runs {
            self.seq_len[r.seq] += r.tokens.len();
        }
        self.submit_ahead(runs, 1 - slot)?;
        self.read_tokens(slot, submission, runs.len()).await?;
        if let Some(a) = &mut self.ahead {
            a.inputs = Some(self.tokens[..runs.len()].to_vec());
        }
        Ok(())
    }

    /// Reads back the outputs of forward batch `i`: the token of its rows if one of them wants an
    /// argmax or a sample, their logits if one of them wants those.
    async fn read_outputs(&mut self, i: usize) -> Result<()> {
        let pieces = self.batches.batch(i);
        let outs = || pieces.iter().filter_map(|p| p.output.map(|row| (self.batches.rows[p.run].0, row)));
        let (Some((_, row0)), n_out) = (outs().next(), outs().count()) else { return Ok(()) };
        let v = self.model.config.n_vocab;
        if outs().any(|(w, _)| matches!(w, Want::Argmax | Want::Sample(_))) {
            let ids: &mut [u8] = bytemuck::cast_slice_mut(&mut self.tokens[row0..row0 + n_out]);
            self.readback.read(self.gpu, &self.acts.token, 0, ids).await?;
        }
        if outs().any(|(w, _)| w == Want::Logits) {
            let logits: &mut [u8] = bytemuck::cast_slice_mut(&mut self.logits[row0 * v..(row0 + n_out) * v]);
            self.readback.read(self.gpu, &self.acts.logits, 0, logits).await?;
        }
        Ok(())
    }
}

impl Backend for GpuBackend<'_> {
    fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    fn n_past(&self) -> usize {
        self.seq_len[0]
    }

    fn truncate(&mut self, n: usize) {
        self.seq_truncate(0, n);
    }

    async fn eval(&mut self, tokens: &[u32], want: Want) -> Result<Output<'_>> {
        Ok(self.eval_batch(&[Run { seq: 0, tokens, want }]).await?.get(0))
    }
}

impl BatchBackend for GpuBackend<'_> {
    fn n_seq(&self) -> usize {
        self.n_seq
    }

    fn seq_len(&self, seq: usize) -> usize {
        self.seq_len.get(seq).copied().unwrap_or(0)
    }

    fn seq_truncate(&mut self, seq: usize, n: usize) {
        if let Some(len) = self.seq_len.get_mut(seq) {
            *len = (*len).min(n);
        }
        // The step ahead may have been at a position now forgotten.
        self.ahead = None;
    }

    async fn eval_batch(&mut self, runs: &[Run<'_>]) -> Result<Outputs<'_>> {
        let n_vocab = self.model.config.n_vocab;
        let pool = Pool {
            n_seq: self.n_seq,
            n_ctx: self.n_ctx,
            n_vocab,
            seq_len: &self.seq_len,
            max_batch: self.max_batch,
        };
        self.batches.plan(runs, pool)?;
        if self.picks_all(runs) && self.batches.len() == 1 {
            self.eval_ahead(runs).await?;
        } else {
            self.ahead = None;
            for i in 0..self.batches.len() {
                self.submit(runs, i, None)?;
                self.read_outputs(i).await?;
            }
            for r in runs {
                self.seq_len[r.seq] += r.tokens.len();
            }
        }
        Ok(Outputs::new(&self.batches.rows, &self.logits, &self.tokens, n_vocab))
    }
}

/// An activation: a buffer and an offset in it, in elements.
type Act<'a> = (&'a wgpu::Buffer, u64);

/// Refuses a model exact numerics do not cover ([`Caps::exact`](super::Caps::exact)): their
/// kernels do the CPU reference's arithmetic for llama, Qwen 2 and Phi-3 (RMS norms, rope,
/// SwiGLU, biases, fused q|k|v and gate|up) over Q4_0, Q4_1 and Q8_0 weights; the per-head q/k
/// norms, post-norms, GELU, sliding windows and soft-capping run kernels of their own, which do
/// not.
fn check_exact(m: &GpuModel) -> Result<()> {
    let c = &m.config;
    let refuse = |what: &str| Err(Error::ExactUnsupported { what: what.into() });
    if c.ffn_act != FfnAct::Silu {
        return refuse("a GELU feed-forward");
    }
    if c.swa.is_some() {
        return refuse("sliding-window attention");
    }
    if c.final_logit_softcap.is_some() {
        return refuse("logit soft-capping");
    }
    for l in &m.layers {
        if l.attn_q_norm.is_some() || l.attn_k_norm.is_some() {
            return refuse("per-head q/k norms");
        }
        if l.attn_post_norm.is_some() || l.ffn_post_norm.is_some() {
            return refuse("post-norms");
        }
    }
    Ok(())
}

/// Makes the launchers of a backend.
struct Builder<'b> {
    gpu: &'b Gpu,
    /// The body's step and the head's.
    step: &'b StepBuffer,
    head_step: &'b StepBuffer,
    table: &'b StepTable,
    c: &'b Config,
    max_batch: u32,
    max_out: u32,
    /// Per activation format, the buffers projection inputs are converted into, f32 and packed
    /// levels (reused by every conversion of a step: each is read by its projections before the
    /// next one writes).
    scratch: RefCell<BTreeMap<GgmlType, (wgpu::Buffer, wgpu::Buffer)>>,
    /// Under exact numerics, the rope angles the host writes before each step.
    exact_angles: Option<&'b wgpu::Buffer>,
}

/// Where a group of projections runs: the body's step (the step's tokens) or the head's (its
/// output rows), at most `max_rows` rows.
#[derive(Clone, Copy)]
struct ProjRows<'s> {
    step: &'s StepBuffer,
    max_rows: u32,
    /// The head's output projection.
    output: bool,
}

impl Builder<'_> {
    /// The body's rows: the step's tokens.
    fn tokens(&self) -> ProjRows<'_> {
        ProjRows { step: self.step, max_rows: self.max_batch, output: false }
    }

    /// Projections `y_i = W_i·x` of one input, each reading x in its weight type's activation
    /// format (`act_quant.rs`): one conversion per distinct format, then the products.
    /// `residual`: add each product to this stream (the mat-vec does it; after a matmul, an add).
    fn projs(
        &self,
        ops: &mut Vec<Op>,
        rows: ProjRows<'_>,
        x: &wgpu::Buffer,
        cols: usize,
        outs: &[(&GpuTensor, Act<'_>)],
        residual: Option<&wgpu::Buffer>,
    ) -> Result<()> {
        self.projs_of(ops, rows, x, None, None, cols, outs, None, None, residual).map(drop)
    }

    /// Whether the down projection `w` reads an 8-bit activation format, into whose conversion
    /// the GLU before it is fused (otherwise the GLU is a kernel of its own).
    fn fuses_glu(w: &GpuTensor) -> bool {
        use GgmlType::*;
        matches!(quant::vec_dot_type(w.ty), Ok(Q8_0 | Q8_1 | Q8K))
    }

    /// Projections of `rmsnorm(x) · norm` where every weight reads a rounded activation format:
    /// the norm fused into the conversions (`ActQuant::new_normed`), which saves its dispatch and
    /// the normed buffer; otherwise the norm into `xn`, then [`Builder::projs`] of it.
    #[allow(clippy::too_many_arguments)]
    fn normed_projs(
        &self,
        ops: &mut Vec<Op>,
        rows: ProjRows<'_>,
        x: &wgpu::Buffer,
        norm: &wgpu::Buffer,
        xn: &wgpu::Buffer,
        cols: usize,
        outs: &[(&GpuTensor, Act<'_>)],
        fused: Option<(&GpuTensor, usize)>,
        rope: Option<&RopePut>,
    ) -> Result<bool> {
        let rounded = |w: &GpuTensor| quant::vec_dot_type(w.ty).is_ok_and(|t| t != GgmlType::F32);
        if FUSE_NORMS && outs.iter().all(|(w, _)| rounded(w)) {
            let norm = Some((norm, self.c.rms_eps));
            return self.projs_of(ops, rows, x, None, norm, cols, outs, fused, rope, None);
        }
        ops.push(Op::RmsNorm(RmsNorm::new(
            self.gpu,
            rows.step,
            (x, 0),
            norm,
            Some((xn, 0)),
            cols as u32,
            1,
            self.c.rms_eps,
            Rows::Step,
        )?));
        self.projs_of(ops, rows, xn, None, None, cols, outs, fused, rope, None)
    }

    /// The down projection of a gated feed-forward: `down · (act(gate) · up)`, added to the
    /// residual stream (or written to `y` before a post-norm). Where the weights read an 8-bit
    /// activation format the GLU is fused into that conversion; otherwise it is its own kernel.
    fn down(
        &self,
        ops: &mut Vec<Op>,
        a: &Acts,
        w: &GpuTensor,
        y: &wgpu::Buffer,
        residual: Option<&wgpu::Buffer>,
    ) -> Result<()> {
        let c = self.c;
        // The gate sits at the start of its buffer (`Acts::new`).
        let (gate, up) = (&a.gate.0, (&a.up.0, a.up.1));
        if Builder::fuses_glu(w) {
            let up = Some(up);
            let outs = &[(w, (y, 0))];
            return self
                .projs_of(ops, self.tokens(), gate, up, None, c.n_ff, outs, None, None, residual)
                .map(drop);
        }
        ops.push(Op::Glu(Glu::new(self.gpu, self.step, (gate, 0), up, c.n_ff as u32, c.ffn_act)?));
        self.projs(ops, self.tokens(), gate, c.n_ff, &[(w, (y, 0))], residual)
    }

    /// [`Builder::projs`]; with `glu_up`, x is a gate and the input `act(x) · glu_up`; with
    /// `norm` (weight, epsilon), the input is `rmsnorm(x) · weight` (every weight must read a
    /// rounded format: the conversion does the norm). `fused` (tensor, m): the first m outs'
    /// weights are views of this tensor, their rows end to end, and their outputs regions of one
    /// buffer; the step of one token runs one mat-vec of it writing each part to its region, a
    /// step the tensor-core matmul takes unstaged one product of it ([`MatMul::new_parts`]; the
    /// other multi-token kernels run per part). `rope`: the fused mat-vec of a q|k|v tensor may
    /// do a one-token step's rope and KV store in its store ([`MatVec::new_rope`]); true if it
    /// does.
    #[allow(clippy::too_many_arguments)]
    fn projs_of(
        &self,
        ops: &mut Vec<Op>,
        rows: ProjRows<'_>,
        x: &wgpu::Buffer,
        glu_up: Option<Act<'_>>,
        norm: Option<(&wgpu::Buffer, f32)>,
        cols: usize,
        outs: &[(&GpuTensor, Act<'_>)],
        fused: Option<(&GpuTensor, usize)>,
        rope: Option<&RopePut>,
        residual: Option<&wgpu::Buffer>,
    ) -> Result<bool> {
        let mut roped = false;
        let (gpu, step, n) = (self.gpu, rows.step, rows.max_rows);
        // The fused mat-vec needs one output buffer and no residual.
        let fused = fused.filter(|&(_, m)| {
            residual.is_none() && m <= outs.len() && outs[..m].iter().all(|(_, y)| y.0 == outs[0].1.0)
        });
        let mut converted: Vec<(GgmlType, (wgpu::Buffer, wgpu::Buffer))> = Vec::new();
        // The steps the first part's fused product takes, for the later parts.
        let mut fused_maxes = 0;
        for (i, &(w, (y, y_off))) in outs.iter().enumerate() {
            let act = quant::vec_dot_type(w.ty)?;
            let (input, packed) = match converted.iter().find(|(t, _)| *t == act) {
                Some((_, b)) => b.clone(),
                None => {
                    let (buf, packed) = self.scratch_for(act)?;
                    let (xq, cols) = ((&packed, 0), cols as u32);
                    let k = match (glu_up, norm) {
                        (Some(up), _) => {
                            let gelu = self.c.ffn_act == FfnAct::GeluTanh;
                            ActQuant::new_glu(gpu, step, w.ty, (x, 0), (&buf, 0), xq, up, gelu, cols, n)?
                        }
                        (None, Some(norm)) => {
                            ActQuant::new_normed(gpu, step, w.ty, (x, 0), (&buf, 0), xq, norm, cols, n)?
                        }
                        (None, None) => ActQuant::new(gpu, step, w.ty, (x, 0), (&buf, 0), xq, cols, n)?,
                    };
                    match k {
                        Some(k) => {
                            ops.push(Op::ActQuant(k));
                            converted.push((act, (buf.clone(), packed.clone())));
                            (buf, packed)
                        }
                        None => (x.clone(), x.clone()),
                    }
                }
            };
            let vec_in = if super::takes_packed(gpu, w.ty) { &packed } else { &input };
            let vec = match (residual, fused) {
                (_, Some((whole, m))) if i == 0 => {
                    let parts: Vec<(u64, u64)> = outs[..m].iter().map(|(w, y)| (w.rows, y.1)).collect();
                    let with_rope = match rope {
                        Some(r) => MatVec::new_rope(gpu, whole, vec_in, 0, y, &parts, r)?,
                        None => None,
                    };
                    roped = with_rope.is_some();
                    Some(match with_rope {
                        Some(v) => v,
                        None => MatVec::new_parts(gpu, whole, vec_in, 0, y, &parts)?,
                    })
                }
                (_, Some((_, m))) if i < m => None,
                (Some(r), _) => Some(MatVec::new_add(gpu, w, vec_in, 0, r, 0)?),
                (None, _) => Some(MatVec::new(gpu, w, vec_in, 0, y, y_off)?),
            };
            // The mat-vec over a few tokens, or its tiled integer kernel where the type has one.
            let caps = gpu.caps();
            let multi_max = match super::shaders::matmul_int_kernel(w.ty) {
                Some(_) => caps.multi_max.max(caps.tile_max),
                None if super::packed_input(w.ty) => caps.multi_max.max(caps.int_multi_max),
                None => caps.multi_max,
            };
            let few = n.min(multi_max);
            let multi = match residual {
                _ if few < 2 || super::shaders::matvec_multi_kernel(w.ty).is_none() => None,
                Some(r) => Some(MatVecMulti::new_add(gpu, w, vec_in, 0, r, 0, step, few)?),
                None => Some(MatVecMulti::new(gpu, w, vec_in, 0, y, y_off, step, few)?),
            };
            // The matmul takes the steps the mat-vecs do not.
            let many = n > 1 && (multi.is_none() || n > multi_max);
            // Into the residual stream, a split step's reduce adds the product itself, unless
            // block sums must correct Y first.
            let mat = match (many, residual) {
                (false, _) => None,
                (true, Some(r)) if !needs_block_sums(w.ty) => {
                    Some(MatMul::new_residual(gpu, w, (&input, 0), (y, y_off), r, step, n)?)
                }
                (true, _) => Some(MatMul::new(gpu, w, &input, 0, y, y_off, step, n)?),
            };
            let fix = match needs_block_sums(w.ty) && many {
                true => Some(BlockSums::new(gpu, w, (&packed, 0), (y, y_off), step, n)?),
                false => None,
            };
            let add = match residual {
                Some(r) if many => {
                    Some(Add::new(gpu, step, (r, 0), (y, 0), w.rows as u32, false, Rows::Step)?)
                }
                _ => None,
            };
            // The fused tensor's product, where the parts' products run on the tensor cores: the
            // first part holds it, every part knows the steps it takes.
            let fused_mat = match fused {
                Some((whole, m)) if i == 0 && many && !needs_block_sums(w.ty) => {
                    let parts: Vec<(u64, u64)> = outs[..m].iter().map(|(w, y)| (w.rows, y.1)).collect();
                    MatMul::new_parts(gpu, whole, (&input, 0), y, &parts, step, n.min(SPLIT_TOKENS))?
                }
                _ => None,
            };
            let fused_max = match (&fused_mat, fused) {
                (Some(f), _) => f.max_tokens(),
                (None, Some((_, m))) if i > 0 && i < m => fused_maxes,
                _ => 0,
            };
            if i == 0 {
                fused_maxes = fused_max;
            }
            let role =
                w.name.strip_prefix("blk.").map_or(&w.name[..], |r| r.split_once('.').map_or(r, |(_, r)| r));
            let role = role.strip_suffix(".weight").unwrap_or(role).to_string();
            let proj = Proj { vec, multi, mat, fix, add, multi_max, role, fused_max, fused_mat };
            ops.push(if rows.output { Op::Output(proj) } else { Op::Proj(proj) });
        }
        Ok(roped)
    }

    /// The conversion buffers of activation format `act` (f32, packed levels), big enough for
    /// any projection input.
    fn scratch_for(&self, act: GgmlType) -> Result<(wgpu::Buffer, wgpu::Buffer)> {
        let c = self.c;
        let widest = c.n_embd.max(c.q_dim()).max(c.n_ff) as u64;
        let mut scratch = self.scratch.borrow_mut();
        if let Some(b) = scratch.get(&act) {
            return Ok(b.clone());
        }
        let rows = self.max_batch as u64;
        let f32s = self.gpu.storage(&format!("x as {act}"), rows * widest * 4)?;
        let words = super::packed_stride(widest as u32) as u64;
        let packed = self.gpu.storage(&format!("x as packed {act}"), rows * words * 4)?;
        scratch.insert(act, (f32s.clone(), packed.clone()));
        Ok((f32s, packed))
    }

    fn norm(
        &self,
        (x, x_off): Act<'_>,
        w: &wgpu::Buffer,
        y: Option<&wgpu::Buffer>,
        width: usize,
        groups: usize,
    ) -> Result<Op> {
        let (gpu, c) = (self.gpu, self.c);
        let y = y.map(|y| (y, 0));
        Ok(Op::RmsNorm(RmsNorm::new(
            gpu,
            self.step,
            (x, x_off),
            w,
            y,
            width as u32,
            groups as u32,
            c.rms_eps,
            Rows::Step,
        )?))
    }

    fn add(&self, y: Act<'_>, x: &wgpu::Buffer, width: usize, broadcast: bool) -> Result<Op> {
        Ok(Op::Add(Add::new(self.gpu, self.step, y, (x, 0), width as u32, broadcast, Rows::Step)?))
    }

    fn bias(&self, ops: &mut Vec<Op>, y: Act<'_>, b: &Option<wgpu::Buffer>, width: usize) -> Result<()> {
        if let Some(b) = b {
            ops.push(self.add(y, b, width, true)?);
        }
        Ok(())
    }

    /// The layers' ops, and the attention's decode scratch they share.
    fn body(
        &self,
        m: &GpuModel,
        a: &Acts,
        kv: &[(wgpu::Buffer, wgpu::Buffer)],
        n_ctx: usize,
        n_seq: usize,
    ) -> Result<(Vec<Op>, wgpu::Buffer)> {
        let (gpu, c, step, table) = (self.gpu, self.c, self.step, self.table);
        let (d, qd, kvd, hd) = (c.n_embd, c.q_dim(), c.kv_dim(), c.head_dim);
        let rows = self.tokens();
        let mut ops = vec![Op::GetRows(GetRows::new(
            gpu,
            &m.token_embd,
            &a.ids,
            &a.x,
            0,
            c.embd_scale.unwrap_or(1.0),
            step,
            self.max_batch,
        )?)];
        let global = RopeFreqs {
            theta_scale: c.rope_base.powf(-2.0 / c.n_rot as f32),
            freq_scale: c.rope_freq_scale,
            attn_factor: c.rope_attn_factor,
            factors: m.rope_factors(n_ctx),
        };
        let local_base = c.swa.as_ref().map_or(c.rope_base, |w| w.rope_base);
        let local = RopeFreqs {
            theta_scale: local_base.powf(-2.0 / c.n_rot as f32),
            freq_scale: 1.0,
            factors: None,
            ..global
        };
        let dims = |l: usize| AttnDims {
            n_head: c.n_head as u32,
            n_head_kv: c.n_head_kv as u32,
            head_dim: hd as u32,
            n_ctx: n_ctx as u32,
            n_seq: n_seq as u32,
            max_tokens: self.max_batch,
            kq_scale: c.kq_scale,
            window: c.window(l).map(|w| w as u32),
        };
        let attn_scratch = gpu.storage("attn scratch", Attention::scratch_bytes(&dims(0))?)?;
        for (l, (lw, (k_cache, v_cache))) in m.layers.iter().zip(kv).enumerate() {
            let (q, k, v) = ((&a.q.0, a.q.1), (&a.k.0, a.k.1), (&a.v.0, a.v.1));
            let qkv = [(&lw.attn_q, q), (&lw.attn_k, k), (&lw.attn_v, v)];
            let freqs = if c.is_swa(l) { &local } else { &global };
            let (n_rot, kind) = (c.n_rot as u32, c.rope_kind);
            // Rope of q and k with the KV cache store: one kernel (made first: a one-token step's
            // fused q|k|v mat-vec may do its work), or the three kernels.
            let mut rope_kv = match FUSE_ROPE_KV {
                true => {
                    // q, k and v share one buffer (`Acts::new`), as the fused kernel needs.
                    let dims = RopeKvDims {
                        n_head: c.n_head as u32,
                        n_head_kv: c.n_head_kv as u32,
                        head_dim: hd as u32,
                        n_rot,
                        n_ctx: n_ctx as u32,
                        n_seq: n_seq as u32,
                    };
                    let offs = (q.1, k.1, v.1);
                    let cache = (k_cache, v_cache, 0);
                    Some(match self.exact_angles {
                        Some(angles) => RopeKv::new_exact(
                            gpu, step, table, q.0, offs, cache, dims, kind, angles, c.q_scale,
                        )?,
                        None => {
                            RopeKv::new(gpu, step, table, q.0, offs, cache, dims, kind, freqs, c.q_scale)?
                        }
                    })
                }
                false => None,
            };
            // Nothing may come between the product and the rope for the store to do it.
            let between = [&lw.attn_q_b, &lw.attn_k_b, &lw.attn_v_b].iter().any(|b| b.is_some())
                || lw.attn_q_norm.is_some()
                || lw.attn_k_norm.is_some();
            let put = rope_kv.as_ref().and_then(RopeKv::put).filter(|_| gpu.caps().rope_store && !between);
            let fused = lw.attn_fused.as_ref().map(|(t, m)| (t, *m));
            let roped = self.normed_projs(&mut ops, rows, &a.x, &lw.attn_norm, &a.xn, d, &qkv, fused, put)?;
            if let Some(k) = rope_kv.as_mut().filter(|_| roped) {
                k.leave_single_token_to_matvec();
            }
            self.bias(&mut ops, q, &lw.attn_q_b, qd)?;
            self.bias(&mut ops, k, &lw.attn_k_b, kvd)?;
            self.bias(&mut ops, v, &lw.attn_v_b, kvd)?;
            if let Some(norm) = &lw.attn_q_norm {
                ops.push(self.norm(q, norm, None, hd, c.n_head)?);
            }
            if let Some(norm) = &lw.attn_k_norm {
                ops.push(self.norm(k, norm, None, hd, c.n_head_kv)?);
            }
            match rope_kv {
                Some(k) => ops.push(Op::RopeKv(k)),
                None => {
                    let heads = [(q, c.n_head, c.q_scale), (k, c.n_head_kv, 1.0)];
                    for (x, n_heads, scale) in heads {
                        let rope = Rope::new(
                            gpu,
                            step,
                            table,
                            x,
                            n_heads as u32,
                            hd as u32,
                            n_rot,
                            kind,
                            freqs,
                            scale,
                        )?;
                        ops.push(Op::Rope(rope));
                    }
                    let (kvd, n_ctx, n_seq) = (kvd as u32, n_ctx as u32, n_seq as u32);
                    let store = KvStore::new(gpu, step, table, k, v, k_cache, v_cache, 0, kvd, n_ctx, n_seq)?;
                    ops.push(Op::KvStore(store));
                }
            }
            let attn =
                Attention::new(gpu, q.0, q.1, k_cache, v_cache, &a.att, 0, table, &attn_scratch, dims(l))?;
            ops.push(Op::Attention(attn));
            let o = [(&lw.attn_output, (&a.proj, 0))];
            if lw.attn_output_b.is_none() && lw.attn_post_norm.is_none() {
                self.projs(&mut ops, rows, &a.att, qd, &o, Some(&a.x))?;
            } else {
                self.projs(&mut ops, rows, &a.att, qd, &o, None)?;
                self.bias(&mut ops, (&a.proj, 0), &lw.attn_output_b, d)?;
                if let Some(norm) = &lw.attn_post_norm {
                    ops.push(self.norm((&a.proj, 0), norm, None, d, 1)?);
                }
                ops.push(self.add((&a.x, 0), &a.proj, d, false)?);
            }

            let gate_up = [(&lw.ffn_gate, (&a.gate.0, a.gate.1)), (&lw.ffn_up, (&a.up.0, a.up.1))];
            let fused = lw.ffn_fused.as_ref().map(|(t, m)| (t, *m));
            self.normed_projs(&mut ops, rows, &a.x, &lw.ffn_norm, &a.xn, d, &gate_up, fused, None)?;
            if let Some(norm) = &lw.ffn_post_norm {
                self.down(&mut ops, a, &lw.ffn_down, &a.proj, None)?;
                ops.push(self.norm((&a.proj, 0), norm, None, d, 1)?);
                ops.push(self.add((&a.x, 0), &a.proj, d, false)?);
            } else {
                self.down(&mut ops, a, &lw.ffn_down, &a.proj, Some(&a.x))?;
            }
        }
        Ok((ops, attn_scratch))
    }

    /// The head over the step's output rows (counted by the head's step): their residual rows
    /// gathered, normed, projected to logits, biased and capped.
    fn head(&self, m: &GpuModel, a: &Acts) -> Result<Vec<Op>> {
        let (gpu, c, step, n) = (self.gpu, self.c, self.head_step, self.max_out);
        let (d, v) = (c.n_embd as u32, c.n_vocab as u32);
        let mut ops =
            vec![Op::Gather(Gather::new(gpu, step, self.table.outputs(), (&a.x, 0), (&a.proj, 0), d, n)?)];
        let rows = ProjRows { step, max_rows: n, output: true };
        let out = [(m.output(), (&a.logits, 0))];
        self.normed_projs(&mut ops, rows, &a.proj, &m.output_norm, &a.xn, c.n_embd, &out, None, None)?;
        if let Some(b) = &m.output_b {
            ops.push(Op::Add(Add::new(gpu, step, (&a.logits, 0), (b, 0), v, true, Rows::Step)?));
        }
        if let Some(cap) = c.final_logit_softcap {
            ops.push(Op::Softcap(Softcap::new(gpu, (&a.logits, 0), v * n, cap)?));
        }
        Ok(ops)
    }
}
