//! A loaded model and its one generation session, driven a step at a time by the worker, which
//! yields to its event loop between steps (so an abort message gets through) and times them (the
//! core has no clock).
//!
//! Lifetime: a worker loads one model and is terminated to unload it. That is the only way to give
//! memory back to the browser (a wasm memory grows but never shrinks), so the model's bytes and
//! its tables are leaked to `'static` here instead of being tied into a self-referential struct:
//! `Model<'a>` and `Session<'m, 'a>` borrow the file's bytes, and the leak lets them live in a
//! `#[wasm_bindgen]` struct without `unsafe`. The GPU engine's device and weights are leaked
//! the same way.
//!
//! `prefill` and `step` are async: the GPU backend awaits its read-back (the browser cannot
//! block); the CPU backend's futures are ready at once.

use aether_core::chat_template::{ChatTemplate, DateTime, RenderOptions};
use aether_core::cpu::Serial;
use aether_core::gguf::Gguf;
use aether_core::gpu::{Gpu, GpuBackend, GpuModel};
use aether_core::model::{Config, Model};
use aether_core::session::{CpuBackend, GenerateParams, Session, Step};
use aether_core::tokenizer::Tokenizer;

use crate::error::{Kind, Result, WebError};
use crate::loader::{Plan, Sink};
use crate::request;

/// What a model load leaves behind, for the life of the worker.
pub struct Loaded {
    pub config: Config,
    /// The CPU engine's model (`None` on the GPU).
    pub model: Option<Model<'static>>,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub architecture: String,
    pub name: String,
    pub file_len: u64,
    pub n_tensors: usize,
}

/// One step's result, as the JS side receives it.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOut {
    pub text: String,
    pub token: Option<u32>,
    /// `"stop"` or `"length"` on the last step.
    pub finish: Option<&'static str>,
}

/// The session on the engine the load chose.
#[allow(clippy::large_enum_variant)] // one per worker
enum Sessions {
    Cpu(Session<'static, CpuBackend<'static, 'static>>),
    Gpu(Session<'static, GpuBackend<'static>>),
}

/// Tokens a GPU prefill chunk holds (the worker's prefill budget).
pub const GPU_MAX_BATCH: usize = 64;

/// Tokens per GPU prefill chunk on `gpu`: [`GPU_MAX_BATCH`], or 1 on a software adapter (the
/// browser's fallback, SwiftShader), where the prefill mat-mul's 256-invocation tiles, with two
/// barriers per 32 columns, cost ~13 s per prompt token of SmolLM2-135M against ~5 s for a
/// one-token mat-vec step (2 busy cores): one token at a time is faster there.
pub fn gpu_max_batch(gpu: &Gpu) -> usize {
    if gpu.caps().software { 1 } else { GPU_MAX_BATCH }
}

pub struct EngineCore {
    loaded: &'static Loaded,
    gpu: Option<&'static Gpu>,
    session: Sessions,
    /// A request has been begun and not yet finished.
    active: bool,
}

/// Context size when the caller gives none: the model's, capped (the KV cache is f16, 2 ×
/// n_layer × n_ctx × kv_dim × 2 bytes; 4096 is what the server defaults to as well).
pub const DEFAULT_CONTEXT: usize = 4096;

impl EngineCore {
    /// Builds the engine from a finished load. `n_ctx` 0 means the default.
    pub fn new(plan: Box<Plan>, sink: Sink, n_ctx: usize) -> Result<EngineCore> {
        let Plan { architecture, name, tokenizer, template, n_tensors, config, keep_len, .. } = *plan;
        let n_ctx = if n_ctx == 0 { config.n_ctx_train.min(DEFAULT_CONTEXT) } else { n_ctx };
        if n_ctx < 2 {
            return Err(WebError::new(Kind::InvalidRequest, format!("contextSize {n_ctx} is below 2")));
        }
        let (model, gpu) = match sink {
            Sink::Cpu { bytes } => {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                let g = Gguf::parse(bytes)?;
                (Some(Model::from_gguf(&g)?), None)
            }
            Sink::Gpu { gpu, builder } => {
                let gm: &'static GpuModel = Box::leak(Box::new(builder.finish()?));
                (None, Some((gpu, gm)))
            }
        };
        let loaded: &'static Loaded = Box::leak(Box::new(Loaded {
            config,
            model,
            tokenizer,
            template,
            architecture,
            name,
            file_len: keep_len,
            n_tensors,
        }));
        let device = gpu.map(|(g, _)| g);
        let session = match (&loaded.model, gpu) {
            (_, Some((gpu, gm))) => Sessions::Gpu(Session::new(
                GpuBackend::new(gpu, gm, n_ctx, gpu_max_batch(gpu))?,
                &loaded.tokenizer,
            )),
            (Some(model), None) => {
                Sessions::Cpu(Session::new(CpuBackend::new(model, n_ctx, &Serial), &loaded.tokenizer))
            }
            (None, None) => return Err(WebError::new(Kind::Internal, "a load with neither engine")),
        };
        Ok(EngineCore { loaded, gpu: device, session, active: false })
    }

    /// `"webgpu"` or `"cpu"` (as `Engine.capabilities().backend` names them).
    pub fn backend(&self) -> &'static str {
        match self.session {
            Sessions::Cpu(_) => "cpu",
            Sessions::Gpu(_) => "webgpu",
        }
    }

    /// The device the engine runs on (`None` on the CPU).
    pub fn gpu(&self) -> Option<&'static Gpu> {
        self.gpu
    }

    pub fn loaded(&self) -> &'static Loaded {
        self.loaded
    }

    pub fn n_ctx(&self) -> usize {
        match &self.session {
            Sessions::Cpu(s) => s.n_ctx(),
            Sessions::Gpu(s) => s.n_ctx(),
        }
    }

    /// Starts a chat request: renders the messages with the model's template. Returns the prompt's
    /// token count.
    pub fn begin_chat(&mut self, json: &str, now_unix_seconds: i64) -> Result<usize> {
        let (messages, params) = request::chat(json, self.loaded.tokenizer.n_vocab())?;
        let opts =
            RenderOptions { add_generation_prompt: true, now: DateTime::from_unix_seconds(now_unix_seconds) };
        let prompt = self.loaded.template.render(&messages, &opts)?;
        self.begin(&prompt, params)
    }

    /// Starts a text completion request. Returns the prompt's token count.
    pub fn begin_completion(&mut self, json: &str) -> Result<usize> {
        let (prompt, params) = request::completion(json, self.loaded.tokenizer.n_vocab())?;
        self.begin(&prompt, params)
    }

    fn begin(&mut self, prompt: &str, params: GenerateParams) -> Result<usize> {
        let tokens = self.loaded.tokenizer.encode(prompt, true, true)?;
        if tokens.is_empty() {
            return Err(WebError::new(Kind::InvalidRequest, "the prompt is empty"));
        }
        if tokens.len() >= self.n_ctx() {
            return Err(WebError::new(
                Kind::InvalidRequest,
                format!("the prompt is {} tokens; the context holds {}", tokens.len(), self.n_ctx()),
            ));
        }
        match &mut self.session {
            Sessions::Cpu(s) => s.begin(&tokens, params)?,
            Sessions::Gpu(s) => s.begin(&tokens, params)?,
        };
        self.active = true;
        Ok(tokens.len())
    }

    fn require_active(&self) -> Result<()> {
        if self.active {
            Ok(())
        } else {
            Err(WebError::new(Kind::Internal, "no request in progress: call beginChat or beginCompletion"))
        }
    }

    /// Evaluates up to `budget` more prompt tokens; `true` once the prompt is in the cache.
    pub async fn prefill(&mut self, budget: usize) -> Result<bool> {
        self.require_active()?;
        Ok(match &mut self.session {
            Sessions::Cpu(s) => s.prefill(budget).await?,
            Sessions::Gpu(s) => s.prefill(budget).await?,
        })
    }

    /// Samples one token (prefilling what remains first).
    pub async fn step(&mut self) -> Result<StepOut> {
        self.require_active()?;
        let s: Step = match &mut self.session {
            Sessions::Cpu(s) => s.step().await?,
            Sessions::Gpu(s) => s.step().await?,
        };
        if s.finish.is_some() {
            self.active = false;
        }
        Ok(StepOut { text: s.text, token: s.token, finish: s.finish.map(|f| f.as_str()) })
    }

    /// Abandons the request in progress (an abort); the KV cache keeps its prefix for the next.
    pub fn cancel(&mut self) {
        self.active = false;
    }

    pub fn n_prompt(&self) -> usize {
        match &self.session {
            Sessions::Cpu(s) => s.n_prompt(),
            Sessions::Gpu(s) => s.n_prompt(),
        }
    }

    pub fn n_generated(&self) -> usize {
        match &self.session {
            Sessions::Cpu(s) => s.n_generated(),
            Sessions::Gpu(s) => s.n_generated(),
        }
    }

    /// The model's description as JSON, for `engine.info` on the JS side.
    pub fn info_json(&self) -> String {
        let l = self.loaded;
        let c = &l.config;
        serde_json::json!({
            "architecture": l.architecture,
            "name": l.name,
            "backend": self.backend(),
            // The CPU engine is the reference; the GPU's results are its bit for bit under exact
            // numerics.
            "exact": self.gpu().is_none_or(|g| g.caps().exact),
            "fileBytes": l.file_len,
            "tensors": l.n_tensors,
            "contextSize": self.n_ctx(),
            "trainedContextSize": c.n_ctx_train,
            "vocabSize": l.tokenizer.n_vocab(),
            "layers": c.n_layer,
            "embeddingSize": c.n_embd,
            "chatTemplate": !l.template.is_fallback(),
        })
        .to_string()
    }
}

/// The result of a future that is ready when first polled: the CPU backend's evaluations (they
/// compute before returning) in native tests. The wasm boundary awaits instead.
pub fn ready<T, E: Into<WebError>>(
    f: impl std::future::Future<Output = std::result::Result<T, E>>,
) -> Result<T> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(r) => r.map_err(Into::into),
        std::task::Poll::Pending => Err(WebError::new(Kind::Internal, "a CPU evaluation did not complete")),
    }
}
