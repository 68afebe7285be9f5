//! The forward pass on the GPU: the model's weights in GPU buffers ([`GpuModel`]) and one
//! sequence's KV cache and activations with every kernel launcher prepared ([`GpuBackend`]).
//!
//! It computes what the CPU reference (`cpu/forward.rs`) computes, with the same per-architecture
//! switches, kernel by kernel; each kernel is tested against its CPU twin and the whole pass
//! against the CPU path (`tests/tests/gpu_forward.rs`).
//!
//! Everything is built at load: buffers for a chunk of up to `max_batch` tokens, the KV cache for
//! `n_ctx` positions (f16, one buffer per layer for K and one for V), and one launcher per kernel
//! invocation of a step, each with its bind groups. A step then writes the token ids and the
//! [`Step`] uniform, records every launcher into ONE compute pass and submits: no GPU object is
//! created per token, and the pass count does not grow with the layers. A projection is a mat-vec
//! when the step has one token and a tiled matmul otherwise ([`Proj`]). The logits of the last
//! token come back only when the sampler needs them; a greedy step runs the argmax on the GPU and
//! reads back one `u32`.

use std::cell::RefCell;
use std::collections::BTreeMap;

use super::stream_load::{GpuModelBuilder, model_stream};
use super::{
    ActQuant, Add, Argmax, Attention, AttnDims, GetRows, Glu, Gpu, GpuTensor, KvStore, MatMul, MatVec,
    Readback, RmsNorm, Rope, Rows, Softcap, Step, StepBuffer,
};
use crate::cpu::ops::RopeFreqs;
use crate::error::{Error, Result};
use crate::model::{Config, FfnAct, Model, WeightSet};
use crate::quant::{self, GgmlType};
use crate::session::{Backend, Output, Want};

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
                Ok(Layer {
                    attn_norm: vector(&name("attn_norm"), &l.attn_norm)?,
                    attn_q: need(l.attn_q)?,
                    attn_k: need(l.attn_k)?,
                    attn_v: need(l.attn_v)?,
                    attn_q_b: optional(&name("attn_q.bias"), &l.attn_q_b)?,
                    attn_k_b: optional(&name("attn_k.bias"), &l.attn_k_b)?,
                    attn_v_b: optional(&name("attn_v.bias"), &l.attn_v_b)?,
                    attn_q_norm: optional(&name("attn_q_norm"), &l.attn_q_norm)?,
                    attn_k_norm: optional(&name("attn_k_norm"), &l.attn_k_norm)?,
                    attn_output: need(l.attn_output)?,
                    attn_output_b: optional(&name("attn_output.bias"), &l.attn_output_b)?,
                    attn_post_norm: optional(&name("post_attention_norm"), &l.attn_post_norm)?,
                    ffn_norm: vector(&name("ffn_norm"), &l.ffn_norm)?,
                    ffn_gate: need(l.ffn_gate)?,
                    ffn_up: need(l.ffn_up)?,
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

/// A projection `y = W·x` of a step: a mat-vec for one token, a tiled matmul for more. With
/// `add`, the product goes into a residual stream: the mat-vec adds it itself, the matmul writes
/// it to y and `add` adds y to the stream.
struct Proj {
    vec: MatVec,
    mat: MatMul,
    add: Option<Add>,
}

/// One kernel invocation of a step, prepared.
enum Op {
    Proj(Proj),
    /// With a fixed row count, or the step's.
    ActQuant(ActQuant, Option<u32>),
    GetRows(GetRows),
    RmsNorm(RmsNorm),
    Rope(Rope),
    Add(Add),
    Glu(Glu),
    KvStore(KvStore),
    Attention(Attention),
    Softcap(Softcap),
    MatVec(MatVec),
    Argmax(Argmax),
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
            Op::Add(_) => "add",
            Op::Glu(_) => "glu",
            Op::KvStore(_) => "kv_store",
            Op::Attention(_) => "attention",
            Op::Softcap(_) => "softcap",
            Op::MatVec(_) => "output mat-vec",
            Op::Argmax(_) => "argmax",
        }
    }

    /// Records the op for `step`; only attention checks the step (against its cache).
    fn encode(&self, pass: &mut wgpu::ComputePass<'_>, step: Step) -> Result<()> {
        let n = step.n_tokens;
        match self {
            Op::Attention(k) => return k.encode(pass, step),
            Op::Proj(p) if n == 1 => p.vec.encode(pass),
            Op::Proj(p) => {
                p.mat.encode(pass, n);
                if let Some(add) = &p.add {
                    add.encode(pass, n);
                }
            }
            Op::ActQuant(k, rows) => k.encode(pass, rows.unwrap_or(n)),
            Op::GetRows(k) => k.encode(pass, n),
            Op::RmsNorm(k) => k.encode(pass, n),
            Op::Rope(k) => k.encode(pass, n),
            Op::Add(k) => k.encode(pass, n),
            Op::Glu(k) => k.encode(pass, n),
            Op::KvStore(k) => k.encode(pass, n),
            Op::Softcap(k) => k.encode(pass, n),
            Op::MatVec(k) => k.encode(pass),
            Op::Argmax(k) => k.encode(pass, n),
        }
        Ok(())
    }
}

/// The activation buffers of a step of up to `max_batch` tokens.
struct Acts {
    /// [max_batch] u32 token ids of the step.
    ids: wgpu::Buffer,
    /// [max_batch, n_embd] residual stream.
    x: wgpu::Buffer,
    /// [max_batch, n_embd] normed input of a sub-layer.
    xn: wgpu::Buffer,
    q: wgpu::Buffer,
    k: wgpu::Buffer,
    v: wgpu::Buffer,
    /// [max_batch, q_dim] attention output.
    att: wgpu::Buffer,
    /// [max_batch, n_embd] a sub-layer's output.
    proj: wgpu::Buffer,
    gate: wgpu::Buffer,
    up: wgpu::Buffer,
    /// [n_vocab] the last token's logits.
    logits: wgpu::Buffer,
    /// [1] u32 their argmax.
    token: wgpu::Buffer,
}

impl Acts {
    fn new(gpu: &Gpu, c: &Config, b: u64) -> Result<Acts> {
        let f32s = |label: &str, n: usize| gpu.storage(label, b * n as u64 * 4);
        Ok(Acts {
            ids: gpu.storage("ids", b * 4)?,
            x: f32s("x", c.n_embd)?,
            xn: f32s("xn", c.n_embd)?,
            q: f32s("q", c.q_dim())?,
            k: f32s("k", c.kv_dim())?,
            v: f32s("v", c.kv_dim())?,
            att: f32s("att", c.q_dim())?,
            proj: f32s("proj", c.n_embd)?,
            gate: f32s("gate", c.n_ff)?,
            up: f32s("up", c.n_ff)?,
            logits: gpu.storage("logits", c.n_vocab as u64 * 4)?,
            token: gpu.storage("token", 4)?,
        })
    }
}

/// Greedy decoding runs one step ahead. After a step whose argmax is wanted, the next step is
/// submitted at once with that argmax as its input, copied on the GPU from the argmax's buffer to
/// the token ids, before the CPU has read it: while the CPU maps the result, returns it, samples
/// nothing (greedy) and feeds the same token back, the GPU is already running that token's step —
/// the CPU's recording and the read-back wait overlap the GPU's work instead of idling it. When
/// the next call asks for that very step (one token, equal to the argmax, argmax wanted) it is
/// already in flight; any other call discards it: the position it took is released and later
/// steps overwrite what it wrote.
struct Ahead {
    /// Its input: the argmax of the step before, once read back.
    input: Option<u32>,
    /// Where its own argmax lands, and its submission (to wait for that alone).
    slot: usize,
    submission: wgpu::SubmissionIndex,
}

/// One sequence on the GPU: its KV cache, activations and the prepared kernels of a step.
pub struct GpuBackend<'g> {
    gpu: &'g Gpu,
    model: &'g GpuModel,
    n_ctx: usize,
    n_past: usize,
    max_batch: usize,
    step: StepBuffer,
    acts: Acts,
    /// The layers, from the embedding lookup to the last residual add.
    body: Vec<Op>,
    /// The last token's logits: final norm, output projection, bias, soft-cap.
    head: Vec<Op>,
    argmax: Op,
    readback: Readback,
    logits: Vec<f32>,
    /// Two 4-byte staging buffers the argmax of greedy steps comes back through, alternately.
    token_staging: [wgpu::Buffer; 2],
    /// The step submitted ahead on the GPU's own argmax (see [`Ahead`]).
    ahead: Option<Ahead>,
    /// Compute passes recorded so far (one per submitted chunk).
    passes: u64,
    /// Per layer (K, V), f16 pairs in u32: [n_ctx, kv_dim].
    _kv: Vec<(wgpu::Buffer, wgpu::Buffer)>,
    /// Projection inputs in their weights' activation formats, one per format.
    _scratch: Vec<wgpu::Buffer>,
}

impl<'g> GpuBackend<'g> {
    /// A context of `n_ctx` positions, evaluated in chunks of up to `max_batch` tokens.
    pub fn new(gpu: &'g Gpu, model: &'g GpuModel, n_ctx: usize, max_batch: usize) -> Result<GpuBackend<'g>> {
        let c = &model.config;
        let max_batch = max_batch.clamp(1, n_ctx.max(1));
        let step = StepBuffer::new(gpu)?;
        let acts = Acts::new(gpu, c, max_batch as u64)?;
        let kv_bytes = (n_ctx * c.kv_dim() * 2) as u64;
        let kv = (0..c.n_layer)
            .map(|l| {
                Ok((
                    gpu.storage(&format!("k_cache.{l}"), kv_bytes)?,
                    gpu.storage(&format!("v_cache.{l}"), kv_bytes)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let b = Builder { gpu, step: &step, c, max_batch: max_batch as u32, scratch: RefCell::default() };
        let body = b.body(model, &acts, &kv, n_ctx)?;
        let head = b.head(model, &acts)?;
        let scratch = b.scratch;
        let argmax = Op::Argmax(Argmax::new(gpu, (&acts.logits, 0), c.n_vocab as u32, (&acts.token, 0))?);
        let readback = Readback::new(gpu, c.n_vocab as u64 * 4)?;
        let staging = |i: usize| {
            gpu.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("token read-back {i}")),
                size: 4,
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
            n_past: 0,
            max_batch,
            step,
            acts,
            body,
            head,
            argmax,
            readback,
            logits: vec![0.0; c.n_vocab],
            token_staging,
            ahead: None,
            passes: 0,
            _kv: kv,
            _scratch: scratch.into_inner().into_values().flat_map(|(a, b)| [a, b]).collect(),
        })
    }

    /// GPU time of one greedy decode step of `token`, per kernel family (nanoseconds, summed over
    /// the step's dispatches of that family, in order of first use), from timestamps written
    /// between every two ops. Needs the adapter's timestamp queries inside passes; the profile
    /// objects are made per call (this is a measuring tool, not the decode loop).
    pub async fn profile_step(&mut self, token: u32) -> Result<Vec<(&'static str, f64)>> {
        let gpu = self.gpu;
        let inside = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
        if !gpu.device().features().contains(inside) {
            return Err(Error::GpuInternal {
                context: "profiling a step".into(),
                message: "the adapter has no timestamp queries inside compute passes".into(),
            });
        }
        self.discard_ahead();
        if self.n_past >= self.n_ctx {
            return Err(Error::ContextFull { n_ctx: self.n_ctx });
        }
        let ops: Vec<&Op> = self.body.iter().chain(&self.head).chain([&self.argmax]).collect();
        let n = (ops.len() + 1) as u32;
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
        let step = Step::new(self.n_past as u32, 1);
        gpu.queue().write_buffer(&self.acts.ids, 0, bytemuck::bytes_of(&token));
        self.step.write(gpu, step);
        let mut encoder = gpu.device().create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.write_timestamp(&set, 0);
            for (i, op) in ops.iter().enumerate() {
                op.encode(&mut pass, step)?;
                pass.write_timestamp(&set, i as u32 + 1);
            }
        }
        encoder.resolve_query_set(&set, 0..n, &resolved, 0);
        gpu.submit(encoder, "a profiled step")?;
        self.n_past += 1;
        let mut bytes = vec![0u8; n as usize * 8];
        Readback::new(gpu, n as u64 * 8)?.read(gpu, &resolved, 0, &mut bytes).await?;
        let ticks: Vec<u64> = bytes.as_chunks::<8>().0.iter().map(|b| u64::from_le_bytes(*b)).collect();
        let period = gpu.queue().get_timestamp_period() as f64;
        let mut kinds: Vec<(&'static str, f64)> = Vec::new();
        for (op, t) in ops.iter().zip(ticks.windows(2)) {
            let ns = t[1].saturating_sub(t[0]) as f64 * period;
            match kinds.iter_mut().find(|(k, _)| *k == op.kind()) {
                Some((_, total)) => *total += ns,
                None => kinds.push((op.kind(), ns)),
            }
        }
        Ok(kinds)
    }

    /// Compute passes recorded since the backend was made: one per chunk of a step, whatever the
    /// model's depth (a test holds it to that).
    pub fn passes(&self) -> u64 {
        self.passes
    }

    /// Records and submits one chunk; with `want` other than `Nothing`, also the last token's
    /// logits (and their argmax for `Want::Argmax`). `tokens: None`: one token, the argmax of the
    /// step before, taken on the GPU. `staging`: copy the argmax to this token read-back slot.
    fn submit_chunk(
        &mut self,
        tokens: Option<&[u32]>,
        want: Want,
        staging: Option<usize>,
    ) -> Result<wgpu::SubmissionIndex> {
        let n = tokens.map_or(1, |t| t.len());
        let step = Step::new(self.n_past as u32, n as u32);
        if let Some(tokens) = tokens {
            self.gpu.queue().write_buffer(&self.acts.ids, 0, bytemuck::cast_slice(tokens));
        }
        self.step.write(self.gpu, step);
        let mut encoder = self.gpu.device().create_command_encoder(&Default::default());
        if tokens.is_none() {
            encoder.copy_buffer_to_buffer(&self.acts.token, 0, &self.acts.ids, 0, 4);
        }
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("step"),
                timestamp_writes: None,
            });
            let head = if want == Want::Nothing { &[][..] } else { &self.head[..] };
            let argmax = (want == Want::Argmax).then_some(&self.argmax);
            for op in self.body.iter().chain(head).chain(argmax) {
                op.encode(&mut pass, step)?;
            }
        }
        if let Some(slot) = staging {
            encoder.copy_buffer_to_buffer(&self.acts.token, 0, &self.token_staging[slot], 0, 4);
        }
        self.passes += 1;
        let submission = self.gpu.submit(encoder, "a forward step")?;
        self.n_past += n;
        Ok(submission)
    }

    /// Submits the step of the GPU's own argmax of the last step ([`Ahead`]), if there is room.
    fn submit_ahead(&mut self, slot: usize) -> Result<()> {
        if self.n_past < self.n_ctx {
            let submission = self.submit_chunk(None, Want::Argmax, Some(slot))?;
            self.ahead = Some(Ahead { input: None, slot, submission });
        }
        Ok(())
    }

    /// Drops the step submitted ahead, releasing its position.
    fn discard_ahead(&mut self) {
        if self.ahead.take().is_some() {
            self.n_past -= 1;
        }
    }

    /// The argmax in read-back slot `slot` once `submission` has finished.
    async fn read_token(&self, slot: usize, submission: wgpu::SubmissionIndex) -> Result<u32> {
        let context = "reading a step's argmax back";
        let staging = &self.token_staging[slot];
        let slice = staging.slice(..);
        let done = super::readback::MapDone::default();
        let signal = done.clone();
        slice.map_async(wgpu::MapMode::Read, move |result| signal.set(result));
        self.gpu.wait(Some(submission), context)?;
        let mapped = done.await;
        self.gpu.check(context)?;
        mapped.map_err(|e| Error::GpuReadback { context: context.into(), message: e.to_string() })?;
        let id = match slice.get_mapped_range() {
            Ok(view) => Ok(u32::from_le_bytes([view[0], view[1], view[2], view[3]])),
            Err(e) => Err(Error::GpuReadback { context: context.into(), message: e.to_string() }),
        };
        staging.unmap();
        id
    }

    /// A greedy evaluation: the argmax of the last of `tokens`, with the next step submitted
    /// ahead on it.
    async fn eval_greedy(&mut self, tokens: &[u32]) -> Result<u32> {
        let (slot, submission) = match self.ahead.take() {
            Some(a) if a.input.is_some() && tokens == [a.input.unwrap_or(0)] => (a.slot, a.submission),
            other => {
                self.ahead = other;
                self.discard_ahead();
                let mut last = None;
                let n_chunks = tokens.len().div_ceil(self.max_batch);
                for (i, chunk) in tokens.chunks(self.max_batch).enumerate() {
                    let (want, staging) =
                        if i + 1 == n_chunks { (Want::Argmax, Some(0)) } else { (Want::Nothing, None) };
                    last = Some(self.submit_chunk(Some(chunk), want, staging)?);
                }
                (0, last.ok_or(Error::EmptyPrompt)?)
            }
        };
        self.submit_ahead(1 - slot)?;
        let token = self.read_token(slot, submission).await?;
        if let Some(a) = &mut self.ahead {
            a.input = Some(token);
        }
        Ok(token)
    }
}

impl Backend for GpuBackend<'_> {
    fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    fn n_past(&self) -> usize {
        self.n_past - self.ahead.is_some() as usize
    }

    fn truncate(&mut self, n: usize) {
        self.discard_ahead();
        self.n_past = self.n_past.min(n);
    }

    async fn eval(&mut self, tokens: &[u32], want: Want) -> Result<Output<'_>> {
        let n_vocab = self.model.config.n_vocab;
        if self.n_past() + tokens.len() > self.n_ctx {
            return Err(Error::ContextFull { n_ctx: self.n_ctx });
        }
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(Error::TokenOutOfRange { id, n_vocab });
        }
        if want == Want::Argmax && !tokens.is_empty() {
            return Ok(Output::Argmax(self.eval_greedy(tokens).await?));
        }
        self.discard_ahead();
        let n_chunks = tokens.len().div_ceil(self.max_batch);
        for (i, chunk) in tokens.chunks(self.max_batch).enumerate() {
            self.submit_chunk(Some(chunk), if i + 1 == n_chunks { want } else { Want::Nothing }, None)?;
        }
        match want {
            Want::Nothing | Want::Argmax => Ok(Output::Nothing),
            Want::Logits => {
                let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut self.logits);
                self.readback.read(self.gpu, &self.acts.logits, 0, bytes).await?;
                Ok(Output::Logits(&self.logits))
            }
        }
    }
}

/// Makes the launchers of a backend.
struct Builder<'b> {
    gpu: &'b Gpu,
    step: &'b StepBuffer,
    c: &'b Config,
    max_batch: u32,
    /// Per activation format, the buffers projection inputs are converted into, f32 and packed
    /// levels (reused by every conversion of a step: each is read by its projections before the
    /// next one writes).
    scratch: RefCell<BTreeMap<GgmlType, (wgpu::Buffer, wgpu::Buffer)>>,
}

impl Builder<'_> {
    /// Projections `y_i = W_i·x` of one input, each reading x in its weight type's activation
    /// format (`act_quant.rs`): one conversion per distinct format, then the products.
    /// `rows`: the conversion's fixed row count (the output head's one row), else the step's.
    /// `residual`: add each product to this stream (the mat-vec does it; after a matmul, an add).
    fn projs(
        &self,
        ops: &mut Vec<Op>,
        x: &wgpu::Buffer,
        cols: usize,
        outs: &[(&GpuTensor, &wgpu::Buffer)],
        rows: Option<u32>,
        residual: Option<&wgpu::Buffer>,
    ) -> Result<()> {
        self.projs_of(ops, x, None, cols, outs, rows, residual)
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
        use GgmlType::*;
        let c = self.c;
        if matches!(quant::vec_dot_type(w.ty)?, Q8_0 | Q8_1 | Q8K) {
            return self.projs_of(ops, &a.gate, Some(&a.up), c.n_ff, &[(w, y)], None, residual);
        }
        ops.push(Op::Glu(Glu::new(self.gpu, self.step, (&a.gate, 0), (&a.up, 0), c.n_ff as u32, c.ffn_act)?));
        self.projs(ops, &a.gate, c.n_ff, &[(w, y)], None, residual)
    }

    /// [`Builder::projs`]; with `glu_up`, x is a gate and the input `act(x) · glu_up`.
    #[allow(clippy::too_many_arguments)]
    fn projs_of(
        &self,
        ops: &mut Vec<Op>,
        x: &wgpu::Buffer,
        glu_up: Option<&wgpu::Buffer>,
        cols: usize,
        outs: &[(&GpuTensor, &wgpu::Buffer)],
        rows: Option<u32>,
        residual: Option<&wgpu::Buffer>,
    ) -> Result<()> {
        let mut converted: Vec<(GgmlType, (wgpu::Buffer, wgpu::Buffer))> = Vec::new();
        for &(w, y) in outs {
            let act = quant::vec_dot_type(w.ty)?;
            let (input, packed) = match converted.iter().find(|(t, _)| *t == act) {
                Some((_, b)) => b.clone(),
                None => {
                    let (buf, packed) = self.scratch_for(act)?;
                    let n = rows.unwrap_or(self.max_batch);
                    let xq = (&packed, 0);
                    let (gpu, step, cols) = (self.gpu, self.step, cols as u32);
                    let k = match glu_up {
                        Some(up) => {
                            let gelu = self.c.ffn_act == FfnAct::GeluTanh;
                            ActQuant::new_glu(gpu, step, w.ty, (x, 0), (&buf, 0), xq, (up, 0), gelu, cols, n)?
                        }
                        None => ActQuant::new(gpu, step, w.ty, (x, 0), (&buf, 0), xq, cols, n)?,
                    };
                    match k {
                        Some(k) => {
                            ops.push(Op::ActQuant(k, rows));
                            converted.push((act, (buf.clone(), packed.clone())));
                            (buf, packed)
                        }
                        None => (x.clone(), x.clone()),
                    }
                }
            };
            let vec_in = if super::packed_input(w.ty) { &packed } else { &input };
            let vec = match residual {
                Some(r) => MatVec::new_add(self.gpu, w, vec_in, 0, r, 0)?,
                None => MatVec::new(self.gpu, w, vec_in, 0, y, 0)?,
            };
            ops.push(match rows {
                // One row whatever the step (the output head): the mat-vec alone.
                Some(1) if residual.is_none() => Op::MatVec(vec),
                _ => Op::Proj(Proj {
                    vec,
                    mat: MatMul::new(self.gpu, w, &input, 0, y, 0, self.step, self.max_batch)?,
                    add: residual.map(|r| self.add_op(r, y, w.rows as usize)).transpose()?,
                }),
            });
        }
        Ok(())
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
        x: &wgpu::Buffer,
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
            (x, 0),
            w,
            y,
            width as u32,
            groups as u32,
            c.rms_eps,
            Rows::Step,
        )?))
    }

    fn add(&self, y: &wgpu::Buffer, x: &wgpu::Buffer, width: usize, broadcast: bool) -> Result<Op> {
        Ok(Op::Add(Add::new(self.gpu, self.step, (y, 0), (x, 0), width as u32, broadcast, Rows::Step)?))
    }

    /// `y += x` over the step's rows of `width`.
    fn add_op(&self, y: &wgpu::Buffer, x: &wgpu::Buffer, width: usize) -> Result<Add> {
        Add::new(self.gpu, self.step, (y, 0), (x, 0), width as u32, false, Rows::Step)
    }

    fn bias(
        &self,
        ops: &mut Vec<Op>,
        y: &wgpu::Buffer,
        b: &Option<wgpu::Buffer>,
        width: usize,
    ) -> Result<()> {
        if let Some(b) = b {
            ops.push(self.add(y, b, width, true)?);
        }
        Ok(())
    }

    fn body(
        &self,
        m: &GpuModel,
        a: &Acts,
        kv: &[(wgpu::Buffer, wgpu::Buffer)],
        n_ctx: usize,
    ) -> Result<Vec<Op>> {
        let (gpu, c, step) = (self.gpu, self.c, self.step);
        let (d, qd, kvd, hd) = (c.n_embd, c.q_dim(), c.kv_dim(), c.head_dim);
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
        for (l, (lw, (k_cache, v_cache))) in m.layers.iter().zip(kv).enumerate() {
            ops.push(self.norm(&a.x, &lw.attn_norm, Some(&a.xn), d, 1)?);
            let qkv = [(&lw.attn_q, &a.q), (&lw.attn_k, &a.k), (&lw.attn_v, &a.v)];
            self.projs(&mut ops, &a.xn, d, &qkv, None, None)?;
            self.bias(&mut ops, &a.q, &lw.attn_q_b, qd)?;
            self.bias(&mut ops, &a.k, &lw.attn_k_b, kvd)?;
            self.bias(&mut ops, &a.v, &lw.attn_v_b, kvd)?;
            if let Some(norm) = &lw.attn_q_norm {
                ops.push(self.norm(&a.q, norm, None, hd, c.n_head)?);
            }
            if let Some(norm) = &lw.attn_k_norm {
                ops.push(self.norm(&a.k, norm, None, hd, c.n_head_kv)?);
            }
            let freqs = if c.is_swa(l) { &local } else { &global };
            let (n_rot, kind) = (c.n_rot as u32, c.rope_kind);
            ops.push(Op::Rope(Rope::new(
                gpu,
                step,
                (&a.q, 0),
                c.n_head as u32,
                hd as u32,
                n_rot,
                kind,
                freqs,
                c.q_scale,
            )?));
            ops.push(Op::Rope(Rope::new(
                gpu,
                step,
                (&a.k, 0),
                c.n_head_kv as u32,
                hd as u32,
                n_rot,
                kind,
                freqs,
                1.0,
            )?));
            ops.push(Op::KvStore(KvStore::new(
                gpu,
                step,
                (&a.k, 0),
                (&a.v, 0),
                k_cache,
                v_cache,
                0,
                kvd as u32,
                n_ctx as u32,
            )?));
            let dims = AttnDims {
                n_head: c.n_head as u32,
                n_head_kv: c.n_head_kv as u32,
                head_dim: hd as u32,
                n_ctx: n_ctx as u32,
                max_tokens: self.max_batch,
                kq_scale: c.kq_scale,
                window: c.window(l).map(|w| w as u32),
            };
            ops.push(Op::Attention(Attention::new(gpu, &a.q, 0, k_cache, v_cache, &a.att, 0, step, dims)?));
            let o = [(&lw.attn_output, &a.proj)];
            if lw.attn_output_b.is_none() && lw.attn_post_norm.is_none() {
                self.projs(&mut ops, &a.att, qd, &o, None, Some(&a.x))?;
            } else {
                self.projs(&mut ops, &a.att, qd, &o, None, None)?;
                self.bias(&mut ops, &a.proj, &lw.attn_output_b, d)?;
                if let Some(norm) = &lw.attn_post_norm {
                    ops.push(self.norm(&a.proj, norm, None, d, 1)?);
                }
                ops.push(self.add(&a.x, &a.proj, d, false)?);
            }

            ops.push(self.norm(&a.x, &lw.ffn_norm, Some(&a.xn), d, 1)?);
            let gate_up = [(&lw.ffn_gate, &a.gate), (&lw.ffn_up, &a.up)];
            self.projs(&mut ops, &a.xn, d, &gate_up, None, None)?;
            if let Some(norm) = &lw.ffn_post_norm {
                self.down(&mut ops, a, &lw.ffn_down, &a.proj, None)?;
                ops.push(self.norm(&a.proj, norm, None, d, 1)?);
                ops.push(self.add(&a.x, &a.proj, d, false)?);
            } else {
                self.down(&mut ops, a, &lw.ffn_down, &a.proj, Some(&a.x))?;
            }
        }
        Ok(ops)
    }

    fn head(&self, m: &GpuModel, a: &Acts) -> Result<Vec<Op>> {
        let (gpu, c) = (self.gpu, self.c);
        let mut ops = vec![Op::RmsNorm(RmsNorm::new(
            gpu,
            self.step,
            (&a.x, 0),
            &m.output_norm,
            Some((&a.xn, 0)),
            c.n_embd as u32,
            1,
            c.rms_eps,
            Rows::Last,
        )?)];
        self.projs(&mut ops, &a.xn, c.n_embd, &[(m.output(), &a.logits)], Some(1), None)?;
        if let Some(b) = &m.output_b {
            ops.push(Op::Add(Add::new(
                gpu,
                self.step,
                (&a.logits, 0),
                (b, 0),
                c.n_vocab as u32,
                true,
                Rows::Fixed(1),
            )?));
        }
        if let Some(cap) = c.final_logit_softcap {
            ops.push(Op::Softcap(Softcap::new(gpu, (&a.logits, 0), c.n_vocab as u32, cap)?));
        }
        Ok(ops)
    }
}
