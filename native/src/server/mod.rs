//! `aether serve`: an OpenAI-compatible HTTP API over a pool of generation sessions.
//!
//! `app(state)` builds the router alone, so tests drive it with `oneshot` and no socket. The
//! model loads in the background while the socket already answers `/health` with 503; handlers
//! tokenize and validate, then hand jobs to the engine thread ([`engine`]) and stream its events
//! back as server-sent events or collect them into one response.

pub mod api;
pub mod engine;
pub mod error;
pub mod metrics;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use aether_core::chat_template::{ChatTemplate, DateTime, Message, RenderOptions};
use aether_core::gguf::Gguf;
use aether_core::model::Model;
use aether_core::session::GenerateParams;
use aether_core::tokenizer::Tokenizer;
use anyhow::Context;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use api::{ChatRequest, Common, CompletionRequest, usage};
use engine::{EngineConfig, EngineHandle, Event, Job};
use error::ApiError;
use metrics::Metrics;

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
    /// CPU threads (default: one per core).
    #[arg(short, long, default_value_t = 0)]
    threads: usize,
}

/// What exists once the model has loaded.
pub struct Ready {
    pub engine: EngineHandle,
    pub tokenizer: Arc<Tokenizer>,
    pub template: ChatTemplate,
    pub n_ctx: usize,
}

pub struct AppState {
    pub model_id: String,
    pub api_key: Option<String>,
    pub max_body: usize,
    pub parallel: usize,
    pub ready: OnceLock<Ready>,
    pub metrics: Arc<Metrics>,
    next_id: AtomicU64,
}

impl AppState {
    pub fn new(model_id: String, api_key: Option<String>, max_body: usize, parallel: usize) -> Arc<AppState> {
        Arc::new(AppState {
            model_id,
            api_key,
            max_body,
            parallel,
            ready: OnceLock::new(),
            metrics: Arc::new(Metrics::default()),
            next_id: AtomicU64::new(1),
        })
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
    threads: usize,
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
    let cfg = EngineConfig { parallel, n_ctx, max_queue, threads };
    let engine = engine::spawn(file.clone(), tokenizer.clone(), cfg, state.metrics.clone())?;
    let _ = state.ready.set(Ready { engine, tokenizer, template, n_ctx });
    Ok(())
}

pub fn app(state: Arc<AppState>) -> Router {
    let limit = state.max_body;
    let api = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/health", get(health))
        .merge(api)
        .fallback(|req: Request| async move { ApiError::not_found(req.uri().path()) })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), count_status))
        .with_state(state)
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
    let state = AppState::new(model_id, api_key, a.max_body, a.parallel.max(1));
    let mut router = app(state.clone());
    if let Some(origin) = &a.cors_origin {
        use tower_http::cors::{AllowOrigin, Any, CorsLayer};
        let allow = if origin == "*" { AllowOrigin::any() } else { AllowOrigin::exact(origin.parse()?) };
        router = router.layer(CorsLayer::new().allow_origin(allow).allow_headers(Any).allow_methods(Any));
    }
    let addr: SocketAddr = format!("{}:{}", a.host, a.port).parse().context("bad --host/--port")?;
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot bind {addr}"))?;
    eprintln!("listening on http://{addr} (loading {})", path.display());
    let loader_state = state.clone();
    let (parallel, ctx, queue, threads) = (a.parallel.max(1), a.ctx_size, a.max_queue, a.threads);
    std::thread::spawn(move || {
        let t = Instant::now();
        match load(&loader_state, &path, parallel, ctx, queue, threads) {
            Ok(()) => eprintln!("model ready in {:.1} s", t.elapsed().as_secs_f64()),
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::exit(1);
            }
        }
    });
    axum::serve(listener, router).with_graceful_shutdown(shutdown_signal()).await?;
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

/// Tokenizes, checks the context and queues a job; returns its event receiver.
fn submit(
    st: &AppState,
    ready: &Ready,
    prompt: &str,
    params: GenerateParams,
) -> Result<(mpsc::UnboundedReceiver<Event>, usize), ApiError> {
    let tokens = ready
        .tokenizer
        .encode(prompt, true, true)
        .map_err(|e| ApiError::invalid(Some("prompt"), e.to_string()))?;
    if tokens.is_empty() {
        return Err(ApiError::invalid(Some("prompt"), "the prompt is empty"));
    }
    if tokens.len() >= ready.n_ctx {
        return Err(ApiError {
            code: Some("context_length_exceeded"),
            ..ApiError::invalid(
                Some("messages"),
                format!("the prompt is {} tokens; the context holds {}", tokens.len(), ready.n_ctx),
            )
        });
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let n = tokens.len();
    let job = Job { prompt: tokens, params, events: tx, queued_at: Instant::now() };
    ready.engine.submit(job).map_err(|_| ApiError::queue_full())?;
    st.metrics.queued();
    Ok((rx, n))
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Chat,
    Text,
}

async fn chat_completions(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: ChatRequest = parse_json(&st, &headers, body)?;
    check_model(&st, &req.common)?;
    let ready = st.ready()?;
    if req.messages.is_empty() {
        return Err(ApiError::invalid(Some("messages"), "messages must not be empty"));
    }
    let messages = req
        .messages
        .iter()
        .map(|m| Ok(Message { role: m.role.clone(), content: m.text()? }))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let params = req.common.params(ready.tokenizer.n_vocab())?;
    let opts =
        RenderOptions { add_generation_prompt: true, now: DateTime::from_unix_seconds(now_secs() as i64) };
    let prompt = ready
        .template
        .render(&messages, &opts)
        .map_err(|e| ApiError::invalid(Some("messages"), e.to_string()))?;
    respond(&st, ready, &prompt, params, req.common.stream, Kind::Chat).await
}

async fn completions(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: CompletionRequest = parse_json(&st, &headers, body)?;
    check_model(&st, &req.common)?;
    let ready = st.ready()?;
    let prompt = match &req.prompt {
        Value::String(s) => s.clone(),
        Value::Array(a) if a.len() == 1 && a[0].is_string() => a[0].as_str().unwrap_or_default().to_string(),
        _ => return Err(ApiError::invalid(Some("prompt"), "prompt must be a string")),
    };
    let params = req.common.params(ready.tokenizer.n_vocab())?;
    respond(&st, ready, &prompt, params, req.common.stream, Kind::Text).await
}

async fn respond(
    st: &AppState,
    ready: &Ready,
    prompt: &str,
    params: GenerateParams,
    stream: bool,
    kind: Kind,
) -> Result<Response, ApiError> {
    let (rx, _n_prompt) = submit(st, ready, prompt, params)?;
    let n = st.next_id.fetch_add(1, Ordering::Relaxed);
    let (id, object) = match kind {
        Kind::Chat => (format!("chatcmpl-{n}"), "chat.completion"),
        Kind::Text => (format!("cmpl-{n}"), "text_completion"),
    };
    let created = now_secs();
    let model = st.model_id.clone();
    if stream {
        return Ok(stream_response(rx, id, created, model, kind).into_response());
    }
    let mut rx = rx;
    let mut text = String::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Text(t) => text += &t,
            Event::Error(e) => return Err(ApiError::internal(e)),
            Event::Done { finish, prompt_tokens, completion_tokens } => {
                let choice = match kind {
                    Kind::Chat => {
                        json!({ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": finish.as_str(), "logprobs": null })
                    }
                    Kind::Text => {
                        json!({ "index": 0, "text": text, "finish_reason": finish.as_str(), "logprobs": null })
                    }
                };
                let object = if kind == Kind::Chat { object } else { "text_completion" };
                return Ok(Json(json!({
                    "id": id, "object": object, "created": created, "model": model,
                    "choices": [choice], "usage": usage(prompt_tokens, completion_tokens),
                }))
                .into_response());
            }
        }
    }
    Err(ApiError::internal("the engine stopped"))
}

fn stream_response(
    rx: mpsc::UnboundedReceiver<Event>,
    id: String,
    created: u64,
    model: String,
    kind: Kind,
) -> impl IntoResponse {
    let object = match kind {
        Kind::Chat => "chat.completion.chunk",
        Kind::Text => "text_completion",
    };
    let chunk = move |delta: Value, finish: Option<&str>, usage: Option<Value>| -> SseEvent {
        let choice = match kind {
            Kind::Chat => json!({ "index": 0, "delta": delta, "finish_reason": finish, "logprobs": null }),
            Kind::Text => {
                json!({ "index": 0, "text": delta.get("content").cloned().unwrap_or(json!("")), "finish_reason": finish, "logprobs": null })
            }
        };
        let mut body =
            json!({ "id": id, "object": object, "created": created, "model": model, "choices": [choice] });
        if let Some(u) = usage {
            body["usage"] = u;
        }
        SseEvent::default().data(body.to_string())
    };
    let first =
        (kind == Kind::Chat).then(|| chunk(json!({ "role": "assistant", "content": "" }), None, None));
    let events = futures_util::stream::unfold((rx, false), move |(mut rx, done)| {
        let chunk = chunk.clone();
        async move {
            if done {
                return None;
            }
            let out: Vec<SseEvent> = match rx.recv().await {
                Some(Event::Text(t)) => vec![chunk(json!({ "content": t }), None, None)],
                Some(Event::Done { finish, prompt_tokens, completion_tokens }) => {
                    let last = chunk(
                        json!({}),
                        Some(finish.as_str()),
                        Some(usage(prompt_tokens, completion_tokens)),
                    );
                    return Some((vec![last, SseEvent::default().data("[DONE]")], (rx, true)));
                }
                Some(Event::Error(e)) => {
                    let err = ApiError::internal(e).body().to_string();
                    return Some((
                        vec![SseEvent::default().data(err), SseEvent::default().data("[DONE]")],
                        (rx, true),
                    ));
                }
                None => return None,
            };
            Some((out, (rx, false)))
        }
    });
    let all = futures_util::stream::iter(first).chain(events.flat_map(futures_util::stream::iter));
    Sse::new(all.map(Ok::<_, std::convert::Infallible>)).keep_alive(KeepAlive::default())
}

async fn health(State(st): State<Arc<AppState>>) -> Response {
    match st.ready.get() {
        Some(_) => Json(json!({ "status": "ok" })).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "loading", "error": ApiError::loading().body()["error"] })),
        )
            .into_response(),
    }
}

async fn models(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(
        json!({ "object": "list", "data": [{ "id": st.model_id, "object": "model", "created": 0, "owned_by": "aether" }] }),
    )
}

#[derive(Deserialize)]
struct TokenizeRequest {
    content: String,
    #[serde(default)]
    add_special: bool,
    #[serde(default = "yes")]
    parse_special: bool,
}

fn yes() -> bool {
    true
}

async fn tokenize(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: TokenizeRequest = parse_json(&st, &headers, body)?;
    let ready = st.ready()?;
    let tokens = ready
        .tokenizer
        .encode(&req.content, req.add_special, req.parse_special)
        .map_err(|e| ApiError::invalid(Some("content"), e.to_string()))?;
    Ok(Json(json!({ "tokens": tokens })))
}

#[derive(Deserialize)]
struct DetokenizeRequest {
    tokens: Vec<u32>,
}

async fn detokenize(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: DetokenizeRequest = parse_json(&st, &headers, body)?;
    let ready = st.ready()?;
    let content = ready
        .tokenizer
        .decode(&req.tokens, false)
        .map_err(|e| ApiError::invalid(Some("tokens"), e.to_string()))?;
    Ok(Json(json!({ "content": content })))
}

async fn metrics_text(State(st): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], st.metrics.render(st.parallel)).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("openapi.json")).into_response()
}
