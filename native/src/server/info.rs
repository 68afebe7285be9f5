//! The endpoints around generation: `/health`, `/v1/models`, `/tokenize`, `/detokenize`,
//! `/metrics` and `/openapi.json`.

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::{AppState, api, blocking, parse_json};

pub async fn health(State(st): State<Arc<AppState>>) -> Response {
    match st.ready.get() {
        Some(_) => Json(json!({ "status": "ok" })).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "loading", "error": ApiError::loading().body()["error"] })),
        )
            .into_response(),
    }
}

pub async fn models(State(st): State<Arc<AppState>>) -> Json<Value> {
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

pub async fn tokenize(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: TokenizeRequest = parse_json(&st, &headers, body)?;
    let tokens = blocking(&st, move |ready| {
        ready
            .tokenizer
            .encode(&req.content, req.add_special, req.parse_special)
            .map_err(|e| ApiError::invalid(Some("content"), e.to_string()))
    })
    .await?;
    Ok(Json(json!({ "tokens": tokens })))
}

#[derive(Deserialize)]
struct DetokenizeRequest {
    tokens: Vec<api::Int>,
}

pub async fn detokenize(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let req: DetokenizeRequest = parse_json(&st, &headers, body)?;
    let ready = st.ready()?;
    let ids = req
        .tokens
        .iter()
        .map(|t| Ok(t.within("tokens", 0, u32::MAX.into())? as u32))
        .collect::<Result<Vec<u32>, ApiError>>()?;
    let content =
        ready.tokenizer.decode(&ids, false).map_err(|e| ApiError::invalid(Some("tokens"), e.to_string()))?;
    Ok(Json(json!({ "content": content })))
}

pub async fn metrics_text(State(st): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], st.metrics.render(st.parallel)).into_response()
}

/// The OpenAPI document; once the model has loaded, it names the served model and bounds token
/// ids by the vocabulary, so a client (or a fuzzer) can tell a valid request from the document.
pub async fn openapi(State(st): State<Arc<AppState>>) -> Response {
    static DOC: OnceLock<Value> = OnceLock::new();
    let mut doc =
        DOC.get_or_init(|| serde_json::from_str(include_str!("openapi.json")).unwrap_or(Value::Null)).clone();
    if let Some(ready) = st.ready.get() {
        let schemas = &mut doc["components"]["schemas"];
        let id = &st.model_id;
        schemas["ModelName"]["enum"] = json!([id, format!("{id}.gguf"), "", null]);
        let n_vocab = ready.tokenizer.n_vocab();
        schemas["TokenId"]["maximum"] = json!(n_vocab.saturating_sub(1));
        schemas["LogitBias"]["propertyNames"]["pattern"] = json!(api::below_pattern(n_vocab));
    }
    Json(doc).into_response()
}
