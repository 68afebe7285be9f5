//! aether-web: the wasm-bindgen boundary over `aether-core`, packaged as the npm module
//! `aether-llm` (built by scripts/build-web.sh; the JS around it lives in web/js/).
//!
//! The JS side (web/js/worker.js, in a dedicated Web Worker) drives three objects:
//! - [`WasmLoader`]: fed the model file chunk by chunk as it downloads; parses the header from the
//!   first chunks and checks the model can run before the weights arrive (loader.rs holds the one
//!   switch point between the CPU and GPU engines);
//! - [`WasmEngine`]: what a finished loader's `finish` resolves to (on the GPU once the device has
//!   accepted every buffer); `beginChat`/`beginCompletion` take the request
//!   JSON the server takes, then `prefill` and `step` advance it a bounded amount per call so the
//!   worker can yield (aborts) and time tokens between calls;
//! - [`capabilities`]: what this build can run;
//! - [`open_gpu`] (`openGpu`): opens the WebGPU device once per worker; a loader made with
//!   `useGpu` then streams the weights into GPU buffers and the engine runs on the GPU. `prefill`
//!   and `step` return Promises (the GPU's read-back is async). A lost device fails them with
//!   `DeviceLostError` (`deviceLost` tells a read-back that failed for that reason).
//!
//! Every error is a JS `Error` whose `name` is a kind (error.rs); the JS side rethrows it as the
//! matching `Error` subclass. Logic lives in plain Rust modules (tested natively); this file only
//! converts at the boundary.

pub mod engine;
pub mod error;
pub mod loader;
pub mod request;

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use aether_core::gpu::{Gpu, GpuOptions, shaders};
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

thread_local! {
    /// The worker's GPU, opened once by `openGpu` and kept for the worker's life.
    static GPU: OnceCell<&'static Gpu> = const { OnceCell::new() };
}

fn the_gpu() -> Option<&'static Gpu> {
    GPU.with(|g| g.get().copied())
}

/// Opens the WebGPU device (once; later calls answer at once). Resolves to the adapter's
/// description as JSON, or rejects with `WebGPUUnavailableError`-kind errors when there is none.
/// `numerics`: "exact" (the CPU reference's results bit for bit, [`GpuOptions::exact`]), "fast"
/// (the default kernels), or "auto"/none: exact on a software adapter (the browser's fallback),
/// where it costs nothing, fast elsewhere.
#[wasm_bindgen(js_name = openGpu)]
pub async fn open_gpu(numerics: Option<String>) -> Result<String, JsValue> {
    let gpu = match the_gpu() {
        Some(g) => g,
        None => {
            let opts = match numerics.as_deref() {
                Some("exact") => GpuOptions { exact: true, ..Default::default() },
                Some("fast") => GpuOptions::default(),
                None | Some("auto") => GpuOptions { exact_if_software: true, ..Default::default() },
                Some(other) => {
                    let message = format!("numerics `{other}`: expected \"auto\", \"exact\" or \"fast\"");
                    return Err(js(WebError::new(error::Kind::InvalidRequest, message)));
                }
            };
            let g: &'static Gpu = Box::leak(Box::new(Gpu::new(opts).await.map_err(|e| js(e.into()))?));
            GPU.with(|c| *c.get_or_init(|| g))
        }
    };
    let info = gpu.info();
    let caps = gpu.caps();
    Ok(serde_json::json!({
        "adapter": info.name,
        "backend": format!("{:?}", info.backend),
        "subgroups": caps.subgroups,
        "shaderF16": caps.shader_f16,
        "maxStorageBinding": caps.max_storage_binding,
        "exact": caps.exact,
    })
    .to_string())
}

/// For tests: builds every kernel the engine could run on this device ([`shaders::browser_kernels`])
/// with the browser's own WGSL compiler, and returns `{ "checked", "failures": [{ "name",
/// "message" }], "slowest": [{ "name", "ms" }] }` as JSON (the eight that took longest to build).
/// Needs `openGpu` first.
#[wasm_bindgen(js_name = compileAll)]
pub async fn compile_all() -> Result<String, JsValue> {
    let gpu = the_gpu()
        .ok_or_else(|| js(WebError::new(error::Kind::Internal, "openGpu has not opened a device")))?;
    let kernels = shaders::browser_kernels(gpu.caps().subgroups);
    let mut failures = Vec::new();
    let mut times = Vec::with_capacity(kernels.len());
    for (name, src) in &kernels {
        let t0 = js_sys::Date::now();
        if let Err(e) = gpu.check_kernel(name, src).await {
            failures.push(serde_json::json!({ "name": name, "message": e.to_string() }));
        }
        times.push((js_sys::Date::now() - t0, name));
    }
    times.sort_by(|a, b| b.0.total_cmp(&a.0));
    let slowest: Vec<_> =
        times.iter().take(8).map(|(ms, name)| serde_json::json!({ "name": name, "ms": ms })).collect();
    Ok(serde_json::json!({ "checked": kernels.len(), "failures": failures, "slowest": slowest }).to_string())
}

/// What this build of the engine can run, as JSON: `{ "version", "backends", "gpu" }` (`gpu`:
/// whether `openGpu` has opened a device).
#[wasm_bindgen]
pub fn capabilities() -> String {
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "backends": ["cpu", "gpu"],
        "gpu": the_gpu().is_some(),
        "architectures": ["llama", "qwen2", "qwen3", "phi3", "gemma3"],
    })
    .to_string()
}

/// A model file arriving in chunks.
#[wasm_bindgen]
pub struct WasmLoader(Option<Loader>);

#[wasm_bindgen]
impl WasmLoader {
    /// `total`: the file's length if the source announced it; `hash`: compute its SHA-256;
    /// `use_gpu`: stream the weights to the GPU `openGpu` opened (the CPU engine otherwise).
    #[wasm_bindgen(constructor)]
    pub fn new(total: Option<f64>, hash: bool, use_gpu: Option<bool>) -> WasmLoader {
        let gpu = if use_gpu.unwrap_or(false) { the_gpu() } else { None };
        WasmLoader(Some(Loader::with_gpu(total.map(|t| t as u64), hash, gpu)))
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

    /// Ends the stream and builds the engine (`contextSize` 0: the model's, capped at 4096);
    /// resolves to a `WasmEngine`. On the GPU it first awaits the device's verdict on the buffers
    /// the load made (the browser reports errors asynchronously): a KV cache or weights that do
    /// not fit reject here with `OutOfMemoryError`, not at the first request.
    pub fn finish(&mut self, context_size: u32) -> Result<js_sys::Promise, JsValue> {
        let loader =
            self.0.take().ok_or_else(|| js(WebError::new(error::Kind::Internal, "finished twice")))?;
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let gpu = loader.gpu();
            let scope = gpu.map(|g| g.error_scope());
            let built =
                loader.finish().and_then(|(plan, sink)| EngineCore::new(plan, sink, context_size as usize));
            if let (Some(gpu), Some(scope)) = (gpu, scope) {
                // The device's own error comes first: a failed check inside the build is its echo.
                scope.finish(gpu, "building the model's GPU buffers").await.map_err(|e| js(e.into()))?;
            }
            Ok(WasmEngine(Rc::new(RefCell::new(built.map_err(js)?))).into())
        }))
    }
}

/// A loaded model with its generation session.
#[wasm_bindgen]
pub struct WasmEngine(Rc<RefCell<EngineCore>>);

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
        self.0.borrow().info_json()
    }

    /// Starts a chat completion from the request JSON; returns the prompt's token count.
    #[wasm_bindgen(js_name = beginChat)]
    pub fn begin_chat(&mut self, request_json: &str, now_unix_seconds: f64) -> Result<u32, JsValue> {
        self.core()?.begin_chat(request_json, now_unix_seconds as i64).map(|n| n as u32).map_err(js)
    }

    /// Starts a text completion from the request JSON; returns the prompt's token count.
    #[wasm_bindgen(js_name = beginCompletion)]
    pub fn begin_completion(&mut self, request_json: &str) -> Result<u32, JsValue> {
        self.core()?.begin_completion(request_json).map(|n| n as u32).map_err(js)
    }

    /// Evaluates up to `budget` prompt tokens; resolves to true once the whole prompt is in.
    #[allow(clippy::await_holding_refcell_ref)] // `busy` refuses overlapping calls
    pub fn prefill(&self, budget: u32) -> js_sys::Promise {
        let core = self.0.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let r = busy(&core)?.prefill(budget as usize).await;
            r.map(JsValue::from_bool).map_err(js)
        })
    }

    /// Samples one token; resolves to a `WasmStep`.
    #[allow(clippy::await_holding_refcell_ref)] // `busy` refuses overlapping calls
    pub fn step(&self) -> js_sys::Promise {
        let core = self.0.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let s = busy(&core)?.step().await.map_err(js)?;
            Ok(WasmStep { text: s.text, token: s.token, finish: s.finish.map(String::from) }.into())
        })
    }

    pub fn cancel(&mut self) {
        if let Ok(mut c) = self.0.try_borrow_mut() {
            c.cancel()
        }
    }

    fn core(&self) -> Result<std::cell::RefMut<'_, EngineCore>, JsValue> {
        busy(&self.0)
    }

    #[wasm_bindgen(js_name = promptTokens)]
    pub fn prompt_tokens(&self) -> u32 {
        self.0.borrow().n_prompt() as u32
    }

    #[wasm_bindgen(js_name = completionTokens)]
    pub fn completion_tokens(&self) -> u32 {
        self.0.borrow().n_generated() as u32
    }

    /// Why the engine's GPU device was lost, once the browser has said so (undefined otherwise,
    /// and on the CPU). A step that fails because the device went away may fail first with a
    /// read-back error; the worker asks this to report it as `DeviceLostError`.
    #[wasm_bindgen(js_name = deviceLost)]
    pub fn device_lost(&self) -> Option<String> {
        self.0.try_borrow().ok()?.gpu()?.lost().map(|e| e.to_string())
    }

    /// For tests: destroys the worker's GPU device (if `openGpu` opened one), which loses it as a
    /// driver reset or the browser reclaiming the GPU would: pending read-backs fail and the
    /// device's `lost` promise resolves. Callable while a step is in flight.
    #[wasm_bindgen(js_name = loseDevice)]
    pub fn lose_device(&self) {
        if let Some(gpu) = the_gpu() {
            gpu.device().destroy();
        }
    }
}

/// The engine, unless a prefill or step is still running (the worker awaits each in turn).
fn busy(core: &RefCell<EngineCore>) -> Result<std::cell::RefMut<'_, EngineCore>, JsValue> {
    core.try_borrow_mut()
        .map_err(|_| js(WebError::new(error::Kind::Internal, "the engine is busy with another step")))
}
