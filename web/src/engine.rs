//! A loaded model and its one generation session, driven a step at a time by the worker, which
//! yields to its event loop between steps (so an abort message gets through) and times them (the
//! core has no clock).
//!
//! Lifetime: a worker loads one model and is terminated to unload it. That is the only way to give
//! memory back to the browser (a wasm memory grows but never shrinks), so the model's bytes and
//! its tables are leaked to `'static` here instead of being tied into a self-referential struct:
//! `Model<'a>` and `Session<'m, 'a>` borrow the file's bytes, and the leak lets them live in a
//! `#[wasm_bindgen]` struct without `unsafe`.

use aether_core::chat_template::{ChatTemplate, DateTime, RenderOptions};
use aether_core::cpu::Serial;
use aether_core::gguf::Gguf;
use aether_core::model::Model;
use aether_core::session::{CpuBackend, GenerateParams, Session};
use aether_core::tokenizer::Tokenizer;

use crate::error::{Kind, Result, WebError};
use crate::loader::{Plan, Sink};
use crate::request;

/// What a model load leaves behind, for the life of the worker.
pub struct Loaded {
    pub model: Model<'static>,
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

pub struct EngineCore {
    loaded: &'static Loaded,
    session: Session<'static, CpuBackend<'static, 'static>>,
    /// A request has been begun and not yet finished.
    active: bool,
}

/// Context size when the caller gives none: the model's, capped (the KV cache is f16, 2 ×
/// n_layer × n_ctx × kv_dim × 2 bytes; 4096 is what the server defaults to as well).
pub const DEFAULT_CONTEXT: usize = 4096;

impl EngineCore {
    /// Builds the engine from a finished load. `n_ctx` 0 means the default.
    pub fn new(plan: Box<Plan>, sink: Sink, n_ctx: usize) -> Result<EngineCore> {
        let Plan { architecture, name, tokenizer, template, n_tensors, .. } = *plan;
        let Sink::Cpu { bytes } = sink;
        let file_len = bytes.len() as u64;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let g = Gguf::parse(bytes)?;
        let model = Model::from_gguf(&g)?;
        let n_ctx = if n_ctx == 0 { model.config.n_ctx_train.min(DEFAULT_CONTEXT) } else { n_ctx };
        if n_ctx < 2 {
            return Err(WebError::new(Kind::InvalidRequest, format!("contextSize {n_ctx} is below 2")));
        }
        let loaded: &'static Loaded = Box::leak(Box::new(Loaded {
            model,
            tokenizer,
            template,
            architecture,
            name,
            file_len,
            n_tensors,
        }));
        let session = Session::new(CpuBackend::new(&loaded.model, n_ctx, &Serial), &loaded.tokenizer);
        Ok(EngineCore { loaded, session, active: false })
    }

    pub fn loaded(&self) -> &'static Loaded {
        self.loaded
    }

    pub fn n_ctx(&self) -> usize {
        self.session.n_ctx()
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
        self.session.begin(&tokens, params)?;
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
    pub fn prefill(&mut self, budget: usize) -> Result<bool> {
        self.require_active()?;
        ready(self.session.prefill(budget))
    }

    /// Samples one token (prefilling what remains first).
    pub fn step(&mut self) -> Result<StepOut> {
        self.require_active()?;
        let s = ready(self.session.step())?;
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
        self.session.n_prompt()
    }

    pub fn n_generated(&self) -> usize {
        self.session.n_generated()
    }

    /// The model's description as JSON, for `engine.info` on the JS side.
    pub fn info_json(&self) -> String {
        let l = self.loaded;
        let c = &l.model.config;
        serde_json::json!({
            "architecture": l.architecture,
            "name": l.name,
            "backend": "cpu",
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
/// compute before returning). The GPU path will await instead, through wasm-bindgen-futures.
pub(crate) fn ready<T>(f: impl std::future::Future<Output = aether_core::Result<T>>) -> Result<T> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(r) => Ok(r?),
        std::task::Poll::Pending => Err(WebError::new(Kind::Internal, "a CPU evaluation did not complete")),
    }
}
