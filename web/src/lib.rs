//! aether-web: the wasm-bindgen boundary over `aether-core`, packaged as the npm module
//! `aether-llm` (built by scripts/build-web.sh; the JS around it lives in web/js/).
//!
//! The JS side (web/js/worker.js, in a dedicated Web Worker) drives three objects:
//! - [`WasmLoader`]: fed the model file chunk by chunk as it downloads; parses the header from the
//!   first chunks and checks the model can run before the weights arrive (loader.rs holds the one
//!   switch point between the CPU and GPU engines);
//! - [`WasmEngine`]: built from a finished loader; `beginChat`/`beginCompletion` take the request
//!   JSON the server takes, then `prefill` and `step` advance it a bounded amount per call so the
//!   worker can yield (aborts) and time tokens between calls;
//! - [`capabilities`]: what this build can run.
//!
//! Every error is a JS `Error` whose `name` is a kind (error.rs); the JS side rethrows it as the
//! matching `Error` subclass. Logic lives in plain Rust modules (tested natively); this file only
//! converts at the boundary.

pub mod engine;
pub mod error;
pub mod loader;
pub mod request;

use wasm_bindgen::prelude::*;

use crate::engine::EngineCore;
use crate::error::WebError;
use crate::loader::Loader;

fn js(e: WebError) -> JsValue {
    e.into_js()
}

/// How many bytes of a GGUF download must be present before its header can be parsed: 0 when the
/// prefix already holds the whole header, otherwise at least the returned count.
#[wasm_bindgen(js_name = ggufHeaderNeeds)]
pub fn gguf_header_needs(prefix: &[u8], total_len: Option<f64>) -> Result<f64, JsValue> {
    use aether_core::gguf::{HeaderParse, parse_header};
    match parse_header(prefix, total_len.map(|t| t as u64)) {
        Ok(HeaderParse::Complete(_)) => Ok(0.0),
        Ok(HeaderParse::NeedBytes(n)) => Ok(n as f64),
        Err(e) => Err(js(e.into())),
    }
}

/// What this build of the engine can run, as JSON: `{ "version", "backends": ["cpu"], "gpu" }`.
/// (`gpu` turns true when the crate is built with aether-core's `gpu` feature.)
#[wasm_bindgen]
pub fn capabilities() -> String {
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "backends": ["cpu"],
        "gpu": false,
        "architectures": ["llama", "qwen2", "qwen3", "phi3", "gemma3"],
    })
    .to_string()
}

/// A model file arriving in chunks.
#[wasm_bindgen]
pub struct WasmLoader(Option<Loader>);

#[wasm_bindgen]
impl WasmLoader {
    /// `total`: the file's length if the source announced it; `hash`: compute its SHA-256.
    #[wasm_bindgen(constructor)]
    pub fn new(total: Option<f64>, hash: bool) -> WasmLoader {
        WasmLoader(Some(Loader::new(total.map(|t| t as u64), hash)))
    }

    fn get(&mut self) -> Result<&mut Loader, JsValue> {
        self.0.as_mut().ok_or_else(|| js(WebError::new(error::Kind::Internal, "the loader has finished")))
    }

    /// The next chunk of the file, copied once, straight into its place in wasm memory.
    pub fn push(&mut self, chunk: &js_sys::Uint8Array) -> Result<(), JsValue> {
        let n = chunk.length() as usize;
        self.get()?.push_with(n, |dst| chunk.copy_to(dst)).map_err(js)
    }

    /// The file's length, once the source announces it (before the first chunk).
    #[wasm_bindgen(js_name = setTotal)]
    pub fn set_total(&mut self, total: f64) -> Result<(), JsValue> {
        self.get()?.set_total(total as u64).map_err(js)
    }

    /// Bytes pushed so far.
    pub fn received(&self) -> f64 {
        self.0.as_ref().map_or(0.0, |l| l.received() as f64)
    }

    /// True once the header has been parsed and checked.
    #[wasm_bindgen(js_name = headerDone)]
    pub fn header_done(&self) -> bool {
        self.0.as_ref().is_some_and(|l| l.plan().is_some())
    }

    /// The file's length as the header implies it (known once `headerDone`).
    #[wasm_bindgen(js_name = fileLength)]
    pub fn file_length(&self) -> Option<f64> {
        self.0.as_ref().and_then(|l| l.plan()).map(|p| p.keep_len as f64)
    }

    /// SHA-256 of the bytes pushed so far, hex (undefined unless `hash` was asked for).
    pub fn sha256(&self) -> Option<String> {
        self.0.as_ref().and_then(|l| l.sha256_hex())
    }

    /// Ends the stream and builds the engine (`contextSize` 0: the model's, capped at 4096).
    pub fn finish(&mut self, context_size: u32) -> Result<WasmEngine, JsValue> {
        let loader =
            self.0.take().ok_or_else(|| js(WebError::new(error::Kind::Internal, "finished twice")))?;
        let (plan, sink) = loader.finish().map_err(js)?;
        Ok(WasmEngine(EngineCore::new(plan, sink, context_size as usize).map_err(js)?))
    }
}

/// A loaded model with its generation session.
#[wasm_bindgen]
pub struct WasmEngine(EngineCore);

/// One generation step: the text it released (may be empty), the token sampled (undefined on a
/// final step that sampled none) and, on the last step, the finish reason.
#[wasm_bindgen(getter_with_clone)]
pub struct WasmStep {
    pub text: String,
    pub token: Option<u32>,
    pub finish: Option<String>,
}

#[wasm_bindgen]
impl WasmEngine {
    /// The model's description (JSON).
    pub fn info(&self) -> String {
        self.0.info_json()
    }

    /// Starts a chat completion from the request JSON; returns the prompt's token count.
    #[wasm_bindgen(js_name = beginChat)]
    pub fn begin_chat(&mut self, request_json: &str, now_unix_seconds: f64) -> Result<u32, JsValue> {
        self.0.begin_chat(request_json, now_unix_seconds as i64).map(|n| n as u32).map_err(js)
    }

    /// Starts a text completion from the request JSON; returns the prompt's token count.
    #[wasm_bindgen(js_name = beginCompletion)]
    pub fn begin_completion(&mut self, request_json: &str) -> Result<u32, JsValue> {
        self.0.begin_completion(request_json).map(|n| n as u32).map_err(js)
    }

    /// Evaluates up to `budget` prompt tokens; true once the whole prompt is in.
    pub fn prefill(&mut self, budget: u32) -> Result<bool, JsValue> {
        self.0.prefill(budget as usize).map_err(js)
    }

    pub fn step(&mut self) -> Result<WasmStep, JsValue> {
        let s = self.0.step().map_err(js)?;
        Ok(WasmStep { text: s.text, token: s.token, finish: s.finish.map(String::from) })
    }

    pub fn cancel(&mut self) {
        self.0.cancel()
    }

    #[wasm_bindgen(js_name = promptTokens)]
    pub fn prompt_tokens(&self) -> u32 {
        self.0.n_prompt() as u32
    }

    #[wasm_bindgen(js_name = completionTokens)]
    pub fn completion_tokens(&self) -> u32 {
        self.0.n_generated() as u32
    }
}
