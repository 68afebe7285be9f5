//! `aether serve`: an OpenAI-compatible HTTP API over a pool of generation sessions.
//!
//! `app(state)` builds the router alone, so tests drive it with `oneshot` and no socket. The
//! model loads in the background while the socket already answers `/health` with 503; handlers
//! tokenize and validate, then hand jobs to the engine thread ([`engine`]) and stream its events
//! back as server-sent events or collect them into one response ([`respond`]). With a built
//! demo site, `/` serves it ([`site`]).
//!
//! Shutdown (SIGINT/SIGTERM): the listener closes, running answers get `--shutdown-timeout`
//! seconds to finish, then end early (a stream with an error event and `[DONE]`); the process
//! exits 0.

pub mod api;
pub mod engine;
pub mod error;
pub mod info;
pub mod metrics;
pub mod respond;
pub mod site;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aether_core::chat_template::{ChatTemplate, DateTime, Message, RenderOptions};
use aether_core::gguf::Gguf;
use aether_core::model::Model;
use aether_core::session::GenerateParams;
use aether_core::tokenizer::Tokenizer;
use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::HandlerWithoutStateExt;
use axum::http::Method;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tower_http::services::{ServeDir, ServeFile};

use api::{ChatRequest, Common, CompletionRequest};
use engine::{EngineConfig, EngineHandle, Event, Job};
use error::ApiError;
use metrics::Metrics;
use respond::{Kind, Reply};
pub use site::Site;

use crate::backend::{Device, DeviceArgs};
use crate::model_file::{self, MappedFile};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The GGUF model (default: the default model).
    #[arg(short, long)]
    model: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Require `Authorization: Bearer KEY` (everything but /health).
    #[arg(long, conflicts_with = "api_key_file")]
    api_key: Option<String>,
    /// Read the API key from a file (first line).
    #[arg(long)]
    api_key_file: Option<PathBuf>,
    /// Concurrent sequences, each with its own KV cache.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Context size per sequence (default: the model's, capped at 4096).
    #[arg(short = 'c', long)]
    ctx_size: Option<usize>,
    /// Requests waiting for a slot before new ones get 429.
    #[arg(long, default_value_t = 64)]
    max_queue: usize,
    /// Allowed CORS origin (`*` for any); no CORS headers when absent.
    #[arg(long)]
    cors_origin: Option<String>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    max_body: usize,
    /// Most tokens one request may generate; larger `max_tokens` are lowered to it.
    #[arg(long, value_name = "N")]
    max_tokens: Option<usize>,
    /// Serve this folder at `/` (default: the checkout's built demo site, www/dist, if present).
    #[arg(long, value_name = "DIR")]
    www: Option<PathBuf>,
    /// Serve no site at `/`.
    #[arg(long, conflicts_with = "www")]
    no_www: bool,
    /// Seconds running answers get to finish after SIGINT/SIGTERM before they are ended.
    #[arg(long, default_value_t = 30)]
    shutdown_timeout: u64,
    #[command(flatten)]
    device: DeviceArgs,
}

/// What exists once the model has loaded.
pub struct Ready {
    pub engine: EngineHandle,
    pub tokenizer: Arc<Tokenizer>,
    pub template: ChatTemplate,
    pub n_ctx: usize,
    /// The longest text one token stands for (at least 4: an unknown character), in bytes.
    pub max_token_bytes: usize,
    /// `--max-queue`.
    pub max_queue: usize,
}

pub struct AppState {
    pub model_id: String,
    pub api_key: Option<String>,
    pub max_body: usize,
    pub parallel: usize,
    /// `--max-tokens`: the most tokens a request may generate.
    pub max_tokens: Option<usize>,
    pub ready: OnceLock<Ready>,
    pub metrics: Arc<Metrics>,
    next_id: AtomicU64,
    /// True once in-flight answers must end (shutdown past its grace period).
    closing: watch::Sender<bool>,
}

impl AppState {
    pub fn new(model_id: String, api_key: Option<String>, max_body: usize, parallel: usize) -> Arc<AppState> {
        Self::with_max_tokens(model_id, api_key, max_body, parallel, None)
    }

    pub fn with_max_tokens(
        model_id: String,
        api_key: Option<String>,
        max_body: usize,
        parallel: usize,
        max_tokens: Option<usize>,
    ) -> Arc<AppState> {
        Arc::new(AppState {
            model_id,
            api_key,
            max_body,
            parallel,
            max_tokens,
            ready: OnceLock::new(),
            metrics: Arc::new(Metrics::default()),
            next_id: AtomicU64::new(1),
            closing: watch::Sender::new(false),
        })
    }

    /// Ends every answer in flight: streams with an error event and `[DONE]`, others with 503.
    pub fn close_answers(&self) {
        self.closing.send_replace(true);
    }

    fn ready(&self) -> Result<&Ready, ApiError> {
        self.ready.get().ok_or_else(ApiError::loading)
    }
}

/// Loads the model, starts the engine and marks the state ready.
pub fn load(
    state: &AppState,
    path: &std::path::Path,
    parallel: usize,
    ctx_size: Option<usize>,
    max_queue: usize,
    device: &DeviceArgs,
) -> anyhow::Result<()> {
    let file = Arc::new(MappedFile::open(path)?);
    file.page_in();
    let g = Gguf::parse(file.bytes()).with_context(|| path.display().to_string())?;
    // Validate the whole model here, where an error can still be reported before serving.
    let model = Model::from_gguf(&g).with_context(|| path.display().to_string())?;
    let n_ctx = ctx_size.unwrap_or(model.config.n_ctx_train.min(4096));
    let tokenizer = Arc::new(Tokenizer::from_metadata(g.metadata())?);
    let template = ChatTemplate::from_metadata(g.metadata())?;
    if template.is_fallback() {
        eprintln!("note: the model has no chat template; chat requests use ChatML");
    }
    let device = Device::open(device)?;
    eprintln!("backend: {}", device.describe());
    let backends = device.load(&model)?;
    state.metrics.set_kv_capacity(parallel.max(1) * n_ctx);
    let cfg = EngineConfig { parallel, n_ctx, max_queue };
    let engine = engine::spawn(file.clone(), tokenizer.clone(), backends, cfg, state.metrics.clone())?;
    let max_token_bytes = (0..tokenizer.n_vocab() as u32)
        .filter_map(|t| tokenizer.token_to_piece(t, true).ok().map(<[u8]>::len))
        .fold(4, usize::max);
    let _ = state.ready.set(Ready { engine, tokenizer, template, n_ctx, max_token_bytes, max_queue });
    Ok(())
}

/// The API alone.
pub fn app(state: Arc<AppState>) -> Router {
    app_with_site(state, None)
}

/// The API, and `site` for every path the API does not claim.
pub fn app_with_site(state: Arc<AppState>, site: Option<&Site>) -> Router {
    let limit = state.max_body;
    let api = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(info::models))
        .route("/tokenize", post(info::tokenize))
        .route("/detokenize", post(info::detokenize))
        .route("/metrics", get(info::metrics_text))
        .route("/openapi.json", get(info::openapi))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    let mut router = Router::new().route("/health", get(info::health)).merge(api);
    match site {
        Some(site) => {
            if let Some((model, route)) = site.model.as_ref().and_then(|m| Some((m, site::model_route(m)?))) {
                router = router.merge(
                    Router::new()
                        .route_service(&route, ServeFile::new(model))
                        .route_layer(middleware::from_fn_with_state(state.clone(), auth)),
                );
            }
            let files = ServeDir::new(&site.dir)
                .call_fallback_on_method_not_allowed(true)
                .not_found_service(not_found.into_service());
            router = router.fallback_service(files);
        }
        None => router = router.fallback(not_found),
    }
    router
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), count_status))
        .with_state(state)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(req.uri().path())
}

async fn method_not_allowed(method: Method, req: Request) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), req.uri().path())
}

pub async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let path = model_file::resolve(a.model.as_deref())?;
    let api_key = match (&a.api_key, &a.api_key_file) {
        (Some(k), _) => Some(k.clone()),
        (None, Some(f)) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
            Some(text.lines().next().unwrap_or("").trim().to_string()).filter(|k| !k.is_empty())
        }
        (None, None) => None,
    };
    let model_id =
        path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    let state = AppState::with_max_tokens(model_id, api_key, a.max_body, a.parallel.max(1), a.max_tokens);
    let www = if a.no_www { None } else { a.www.clone().or_else(site::default_dir) };
    if let Some(dir) = &www {
        anyhow::ensure!(dir.is_dir(), "--www {}: not a folder", dir.display());
    }
    let site = www.map(|dir| Site { dir, model: Some(path.clone()) });
    let mut router = app_with_site(state.clone(), site.as_ref());
    if let Some(origin) = &a.cors_origin {
        use tower_http::cors::{AllowOrigin, Any, CorsLayer};
        let allow = if origin == "*" { AllowOrigin::any() } else { AllowOrigin::exact(origin.parse()?) };
        router = router.layer(CorsLayer::new().allow_origin(allow).allow_headers(Any).allow_methods(Any));
    }
    let addr: SocketAddr = format!("{}:{}", a.host, a.port).parse().context("bad --host/--port")?;
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot bind {addr}"))?;
    eprintln!("listening on http://{addr} (loading {})", path.display());
    if let Some(site) = &site {
        eprintln!("serving {} at /", site.dir.display());
    }
    let loader_state = state.clone();
    let (parallel, ctx, queue, device) = (a.parallel.max(1), a.ctx_size, a.max_queue, a.device);
    std::thread::spawn(move || {
        let t = Instant::now();
        match load(&loader_state, &path, parallel, ctx, queue, &device) {
            Ok(()) => eprintln!("model ready in {:.1} s", t.elapsed().as_secs_f64()),
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::exit(1);
            }
        }
    });
    // On a signal the listener closes and axum waits for open connections; answers still
    // running after the grace period are ended, and connections still open a few seconds after
    // that (a client that stopped reading) are dropped with the process.
    let grace = Duration::from_secs(a.shutdown_timeout);
    let (signalled_tx, signalled) = tokio::sync::oneshot::channel::<()>();
    let graceful = async move {
        shutdown_signal().await;
        eprintln!("shutting down: finishing answers in flight (up to {} s)", grace.as_secs());
        let _ = signalled_tx.send(());
    };
    let server = axum::serve(listener, router).with_graceful_shutdown(graceful).into_future();
    let deadline = async move {
        if signalled.await.is_err() {
            return std::future::pending().await;
        }
        tokio::time::sleep(grace).await;
        eprintln!("ending the answers still in flight");
        state.close_answers();
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    tokio::select! {
        r = server => r?,
        () = deadline => eprintln!("connections still open after the grace period; closing them"),
    }
    eprintln!("shut down");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Constant-time comparison, so response timing does not reveal how much of a key matched.
fn same_key(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, &x) in a.iter().enumerate() {
        diff |= x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0);
    }
    diff == 0
}

async fn auth(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &st.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same_key(given.as_bytes(), key.as_bytes()) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

async fn count_status(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    st.metrics.request(resp.status().as_u16());
    resp
}

/// Parses a JSON body, answering OpenAI-shaped 413/415/400 errors.
fn parse_json<T: for<'de> Deserialize<'de>>(
    st: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(st.max_body),
        _ => ApiError::invalid(None, format!("cannot read the request body: {e}")),
    })?;
    let json_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    });
    if !json_type {
        return Err(ApiError::unsupported_media_type());
    }
    serde_json::from_slice(&body).map_err(|e| ApiError::invalid(None, format!("invalid JSON body: {e}")))
}

fn check_model(st: &AppState, c: &Common) -> Result<(), ApiError> {
    match c.model.as_deref() {
        None | Some("") => Ok(()),
        Some(m) if m == st.model_id || m.strip_suffix(".gguf") == Some(&st.model_id) => Ok(()),
        Some(m) => Err(ApiError::model_not_found(m)),
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Where a prompt comes from: chat messages (rendered with the model's template) or text.
enum Prompt {
    Chat(Vec<Message>),
    Text(String),
}

impl Prompt {
    fn param(&self) -> &'static str {
        match self {
            Prompt::Chat(_) => "messages",
            Prompt::Text(_) => "prompt",
        }
    }
}

/// Runs CPU-heavy request work (template rendering, tokenizing megabytes) on tokio's blocking
/// pool, so the async workers keep answering other requests meanwhile.
async fn blocking<T: Send + 'static>(
    st: &Arc<AppState>,
    f: impl FnOnce(&Ready) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let st = st.clone();
    tokio::task::spawn_blocking(move || f(st.ready()?))
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("request worker failed: {e}"))))
}

/// The prompt's tokens, refused when empty or when they do not leave room in the context.
fn prompt_tokens(ready: &Ready, prompt: &Prompt) -> Result<Vec<u32>, ApiError> {
    let param = prompt.param();
    let rendered;
    let text = match prompt {
        Prompt::Text(t) => t.as_str(),
        Prompt::Chat(messages) => {
            let now = DateTime::from_unix_seconds(now_secs() as i64);
            let opts = RenderOptions { add_generation_prompt: true, now };
            rendered = ready
                .template
                .render(messages, &opts)
                .map_err(|e| ApiError::invalid(Some(param), e.to_string()))?;
            rendered.as_str()
        }
    };
    let too_long = |what: String| ApiError {
        code: Some("context_length_exceeded"),
        ..ApiError::invalid(Some(param), format!("the prompt is {what}; the context holds {}", ready.n_ctx))
    };
    // No token covers more than `max_token_bytes` bytes of text, so a text this long is over the
    // context for sure: refuse it without tokenizing megabytes.
    if text.len() > ready.n_ctx.saturating_mul(ready.max_token_bytes) {
        return Err(too_long(format!("{} bytes", text.len())));
    }
    let tokens = ready
        .tokenizer
        .encode(text, true, true)
        .map_err(|e| ApiError::invalid(Some(param), e.to_string()))?;
    if tokens.is_empty() {
        return Err(ApiError::invalid(Some(param), "the prompt is empty"));
    }
    if tokens.len() >= ready.n_ctx {
        return Err(too_long(format!("{} tokens", tokens.len())));
    }
    Ok(tokens)
}

/// Queues a job; returns its event receiver.
fn submit(
    st: &AppState,
    ready: &Ready,
    tokens: Vec<u32>,
    params: GenerateParams,
) -> Result<mpsc::UnboundedReceiver<Event>, ApiError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let job = Job { prompt: tokens, params, events: tx, queued_at: Instant::now() };
    // Counted before the engine can take it (and count it out), so the gauge never sticks at +1.
    st.metrics.queued();
    if ready.engine.submit(job).is_err() {
        st.metrics.dequeued();
        return Err(ApiError::queue_full());
    }
    Ok(rx)
}

async fn chat_completions(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: ChatRequest = parse_json(&st, &headers, body)?;
    check_model(&st, &req.common)?;
    let ready = st.ready()?;
    let messages = req.messages()?;
    let params =
        req.common.params(ready.tokenizer.n_vocab(), req.logprobs()?, st.max_tokens, api::random_seed)?;
    respond(&st, Prompt::Chat(messages), params, &req.common, Kind::Chat).await
}

async fn completions(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: CompletionRequest = parse_json(&st, &headers, body)?;
    check_model(&st, &req.common)?;
    let ready = st.ready()?;
    let prompt = req.prompt_text()?;
    let params =
        req.common.params(ready.tokenizer.n_vocab(), req.logprobs()?, st.max_tokens, api::random_seed)?;
    respond(&st, Prompt::Text(prompt), params, &req.common, Kind::Text).await
}

async fn respond(
    st: &Arc<AppState>,
    prompt: Prompt,
    params: GenerateParams,
    common: &Common,
    kind: Kind,
) -> Result<Response, ApiError> {
    // A full queue answers 429 before the prompt is rendered and tokenized: under overload the
    // refusals must stay cheap. (The queue can still fill meanwhile; `submit` refuses then.)
    if st.metrics.queue_depth() >= st.ready()?.max_queue.max(1) {
        return Err(ApiError::queue_full());
    }
    let tokens = blocking(st, move |ready| prompt_tokens(ready, &prompt)).await?;
    let ready = st.ready()?;
    let logprobs = params.logprobs.is_some();
    let rx = submit(st, ready, tokens, params)?;
    let n = st.next_id.fetch_add(1, Ordering::Relaxed);
    let reply = Reply {
        kind,
        id: match kind {
            Kind::Chat => format!("chatcmpl-{n}"),
            Kind::Text => format!("cmpl-{n}"),
        },
        created: now_secs(),
        model: st.model_id.clone(),
        tokenizer: ready.tokenizer.clone(),
        logprobs,
        include_usage: common.stream_options.as_ref().is_some_and(|o| o.include_usage),
        closing: st.closing.subscribe(),
    };
    if common.stream { Ok(respond::stream(reply, rx)) } else { respond::collect(reply, rx).await }
}
