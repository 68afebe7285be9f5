//! The HTTP API through `app(state).oneshot(request)`: no socket, the real engine on the default
//! model, every answer checked for OpenAI's shape. The engine runs on the CPU: these tests are
//! about the HTTP side, and the CPU is the fast path on a machine whose GPU is lavapipe.

use std::sync::{Arc, OnceLock};

use aether_tests::{DEFAULT_MODEL, model_path};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use aether::backend::DeviceArgs;
use aether::server::{self, AppState};

/// One loaded server for the whole test binary (loading is the slow part).
fn state(api_key: Option<&str>) -> Arc<AppState> {
    static OPEN: OnceLock<Arc<AppState>> = OnceLock::new();
    static KEYED: OnceLock<Arc<AppState>> = OnceLock::new();
    let cell = if api_key.is_some() { &KEYED } else { &OPEN };
    cell.get_or_init(|| {
        let st = AppState::new("SmolLM2-135M-Instruct.Q4_1".into(), api_key.map(str::to_string), 4096, 2);
        server::load(&st, &model_path(DEFAULT_MODEL), 2, Some(256), 4, &device(2))
            .expect("load the default model");
        st
    })
    .clone()
}

/// The CPU with `threads` threads.
fn device(threads: usize) -> DeviceArgs {
    DeviceArgs { cpu: true, threads, ..Default::default() }
}

async fn call(st: Arc<AppState>, req: Request<Body>) -> (StatusCode, String) {
    let resp = server::app(st).oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).expect("UTF-8 body"))
}

fn post(path: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn json_of(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Asserts an OpenAI-shaped error with the given status.
fn assert_error(got: (StatusCode, String), status: StatusCode, needle: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    let v = json_of(&got.1);
    let msg = v["error"]["message"].as_str().unwrap_or_else(|| panic!("no error.message: {}", got.1));
    assert!(v["error"]["type"].is_string(), "{}", got.1);
    assert!(msg.contains(needle), "error {msg:?} lacks {needle:?}");
}

#[tokio::test]
async fn health_is_503_while_loading_then_200() {
    let loading = AppState::new("m".into(), None, 1024, 1);
    let (status, body) = call(loading, Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(&body)["status"], "loading");
    let (status, body) = call(state(None), Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!((status, json_of(&body)["status"].clone()), (StatusCode::OK, json!("ok")));
}

#[tokio::test]
async fn completion_greedy_stream_and_non_stream_agree() {
    let body = r#"{"prompt":"The capital of France is","max_tokens":8,"temperature":0}"#;
    let (status, text) = call(state(None), post("/v1/completions", body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let v = json_of(&text);
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], " Paris.\n\nThe United States has");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"], json!({"prompt_tokens": 5, "completion_tokens": 8, "total_tokens": 13}));

    let body = r#"{"prompt":"The capital of France is","max_tokens":8,"temperature":0,"stream":true}"#;
    let (status, sse) = call(state(None), post("/v1/completions", body)).await;
    assert_eq!(status, StatusCode::OK);
    let data: Vec<&str> = sse.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{sse}");
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| json_of(d)).collect();
    let streamed: String = chunks.iter().map(|c| c["choices"][0]["text"].as_str().unwrap_or("")).collect();
    assert_eq!(streamed, " Paris.\n\nThe United States has");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert_eq!(last["usage"]["completion_tokens"], 8);
}

#[tokio::test]
async fn chat_completion_uses_the_template_and_stops() {
    let body = json!({
        "messages": [{"role": "user", "content": "Say hi"}],
        "max_completion_tokens": 6, "temperature": 0, "stop": ["\n"],
    });
    let (status, text) = call(state(None), post("/v1/chat/completions", &body.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let v = json_of(&text);
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!content.contains('\n'), "stop string emitted: {content:?}");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 10, "template not applied: {text}");

    let body = json!({"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 4, "stream": true});
    let (_, sse) = call(state(None), post("/v1/chat/completions", &body.to_string())).await;
    let data: Vec<&str> = sse.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(json_of(data[0])["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(data.last(), Some(&"[DONE]"));
    for d in &data[..data.len() - 1] {
        assert_eq!(json_of(d)["object"], "chat.completion.chunk");
    }
}

#[tokio::test]
async fn client_errors_are_openai_shaped_4xx() {
    let st = state(None);
    let chat = "/v1/chat/completions";
    let user = r#"[{"role":"user","content":"hi"}]"#;
    assert_error(call(st.clone(), post(chat, "{not json")).await, StatusCode::BAD_REQUEST, "invalid JSON");
    assert_error(
        call(st.clone(), post(chat, &format!(r#"{{"messages":{user},"temperature":"hot"}}"#))).await,
        StatusCode::BAD_REQUEST,
        "invalid",
    );
    assert_error(
        call(st.clone(), post(chat, &format!(r#"{{"messages":{user},"max_tokens":-5}}"#))).await,
        StatusCode::BAD_REQUEST,
        "max_tokens",
    );
    assert_error(
        call(st.clone(), post(chat, &format!(r#"{{"messages":{user},"max_tokens":100000000000}}"#))).await,
        StatusCode::BAD_REQUEST,
        "max_tokens",
    );
    assert_error(
        call(st.clone(), post(chat, &format!(r#"{{"messages":{user},"logit_bias":{{"999999":1}}}}"#))).await,
        StatusCode::BAD_REQUEST,
        "logit_bias",
    );
    assert_error(call(st.clone(), post(chat, r#"{"messages":[]}"#)).await, StatusCode::BAD_REQUEST, "empty");
    let long = "word ".repeat(400);
    assert_error(
        call(st.clone(), post("/v1/completions", &json!({"prompt": long}).to_string())).await,
        StatusCode::BAD_REQUEST,
        "context",
    );
    assert_error(
        call(st.clone(), post(chat, &format!(r#"{{"messages":{user},"model":"gpt-4"}}"#))).await,
        StatusCode::NOT_FOUND,
        "gpt-4",
    );
    let big = format!(r#"{{"prompt":"{}"}}"#, "x".repeat(8192));
    assert_error(
        call(st.clone(), post("/v1/completions", &big)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body",
    );
    let text_plain =
        Request::post(chat).header(header::CONTENT_TYPE, "text/plain").body(Body::from("{}")).unwrap();
    assert_error(call(st.clone(), text_plain).await, StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type");
    assert_error(
        call(st, Request::get("/nope").body(Body::empty()).unwrap()).await,
        StatusCode::NOT_FOUND,
        "/nope",
    );
}

#[tokio::test]
async fn api_key_guards_everything_but_health() {
    let st = state(Some("s3cret"));
    let models = || Request::get("/v1/models");
    assert_error(
        call(st.clone(), models().body(Body::empty()).unwrap()).await,
        StatusCode::UNAUTHORIZED,
        "API key",
    );
    let wrong = models().header(header::AUTHORIZATION, "Bearer s3cre").body(Body::empty()).unwrap();
    assert_error(call(st.clone(), wrong).await, StatusCode::UNAUTHORIZED, "API key");
    let right = models().header(header::AUTHORIZATION, "Bearer s3cret").body(Body::empty()).unwrap();
    let (status, body) = call(st.clone(), right).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["data"][0]["id"], "SmolLM2-135M-Instruct.Q4_1");
    let (status, _) = call(st, Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn tokenize_detokenize_metrics_openapi() {
    let st = state(None);
    let (_, body) = call(st.clone(), post("/tokenize", r#"{"content":"The capital of France is"}"#)).await;
    assert_eq!(json_of(&body)["tokens"], json!([504, 3575, 282, 4649, 314]));
    let (_, body) = call(st.clone(), post("/detokenize", r#"{"tokens":[504, 3575, 282, 4649, 314]}"#)).await;
    assert_eq!(json_of(&body)["content"], "The capital of France is");
    let (status, text) = call(st.clone(), Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    for name in [
        "aether_requests_total",
        "aether_queue_depth",
        "aether_busy_slots",
        "aether_time_to_first_token_seconds_bucket",
    ] {
        assert!(text.contains(name), "metrics lack {name}:\n{text}");
    }
    let (status, text) = call(st, Request::get("/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let doc = json_of(&text);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/chat/completions"]["post"].is_object());
}

/// A client that goes away mid-stream frees its slot within a step: the engine counts it as
/// cancelled and no slot stays busy.
#[tokio::test]
async fn disconnected_stream_frees_its_slot() {
    let st = AppState::new("SmolLM2-135M-Instruct.Q4_1".into(), None, 4096, 1);
    server::load(&st, &model_path(DEFAULT_MODEL), 1, Some(256), 4, &device(1)).expect("load");
    let body = r#"{"prompt":"Once upon a time","max_tokens":200,"stream":true,"temperature":0}"#;
    let resp = server::app(st.clone()).oneshot(post("/v1/completions", body)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = body.frame().await.expect("a first event").expect("frame");
    assert!(first.data_ref().is_some_and(|d| d.starts_with(b"data: ")));
    drop(body); // the client disconnects

    let metric = |text: &str, name: &str| -> u64 {
        text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(u64::MAX)
    };
    for _ in 0..200 {
        let (_, text) = call(st.clone(), Request::get("/metrics").body(Body::empty()).unwrap()).await;
        if metric(&text, "aether_cancelled_total ") == 1 && metric(&text, "aether_busy_slots ") == 0 {
            // The slot serves the next request at once.
            let (status, _) =
                call(st.clone(), post("/v1/completions", r#"{"prompt":"Hi","max_tokens":2}"#)).await;
            assert_eq!(status, StatusCode::OK);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the slot was not freed within 10 s of the disconnect");
}

/// Requests served together — four slots decoding in one batched forward pass per step, four more
/// waiting in the queue, streamed and not — each get exactly the text they get alone (greedy; the
/// CPU gives each sequence the same logits whatever the batch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_get_their_solo_text() {
    let st = AppState::new("SmolLM2-135M-Instruct.Q4_1".into(), None, 4096, 4);
    server::load(&st, &model_path(DEFAULT_MODEL), 4, Some(256), 8, &device(2)).expect("load");
    let prompts = ["The capital of France is", "Once upon a time", "def fibonacci(n):", "1, 2, 3, 4,"];
    let body = |p: &str, stream: bool| {
        json!({"prompt": p, "max_tokens": 12, "temperature": 0, "stream": stream}).to_string()
    };
    let text_of = |(status, body): (StatusCode, String), stream: bool| -> String {
        assert_eq!(status, StatusCode::OK, "{body}");
        if !stream {
            return json_of(&body)["choices"][0]["text"].as_str().expect("text").to_string();
        }
        let data: Vec<&str> = body.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
        assert_eq!(data.last(), Some(&"[DONE]"), "{body}");
        data[..data.len() - 1]
            .iter()
            .map(|d| json_of(d)["choices"][0]["text"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let mut alone = Vec::new();
    for p in prompts {
        alone.push(text_of(call(st.clone(), post("/v1/completions", &body(p, false))).await, false));
    }
    let handles: Vec<_> = [false, true]
        .into_iter()
        .flat_map(|stream| prompts.map(|p| (p, stream)))
        .map(|(p, stream)| {
            let req = post("/v1/completions", &body(p, stream));
            (stream, tokio::spawn(call(st.clone(), req)))
        })
        .collect();
    for (k, (stream, h)) in handles.into_iter().enumerate() {
        let got = text_of(h.await.expect("request task"), stream);
        assert_eq!(got, alone[k % 4], "{:?} (stream: {stream}) among 8 vs alone", prompts[k % 4]);
    }
}

#[tokio::test]
async fn other_methods_get_an_openai_shaped_405_with_allow() {
    let st = state(None);
    let put = Request::put("/v1/models").body(Body::empty()).unwrap();
    let resp = server::app(st.clone()).oneshot(put).await.unwrap();
    assert_eq!(resp.headers().get(header::ALLOW).map(|v| v.to_str().unwrap()), Some("GET,HEAD"));
    assert_error(
        call(st, Request::get("/v1/completions").body(Body::empty()).unwrap()).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "GET",
    );
}

#[tokio::test]
async fn logprobs_come_in_openais_shapes() {
    let st = state(None);
    let body = r#"{"prompt":"The capital of France is","max_tokens":3,"temperature":0,"logprobs":2}"#;
    let (status, text) = call(st.clone(), post("/v1/completions", body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let lp = &json_of(&text)["choices"][0]["logprobs"];
    assert_eq!(lp["tokens"], json!([" Paris", ".", "\n"]), "{lp}");
    assert_eq!(lp["text_offset"], json!([0, 6, 7]), "{lp}");
    for (i, top) in lp["top_logprobs"].as_array().unwrap().iter().enumerate() {
        let best = top.as_object().unwrap().values().map(|v| v.as_f64().unwrap()).fold(f64::MIN, f64::max);
        let chosen = lp["token_logprobs"][i].as_f64().unwrap();
        assert!((best - chosen).abs() < 1e-6, "token {i}: greedy chose {chosen}, the best is {best}");
    }
    let body = json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0,
        "logprobs": true, "top_logprobs": 4});
    let (_, text) = call(st, post("/v1/chat/completions", &body.to_string())).await;
    let content = &json_of(&text)["choices"][0]["logprobs"]["content"];
    assert_eq!(content.as_array().map(Vec::len), Some(2), "{text}");
    assert_eq!(content[0]["top_logprobs"].as_array().map(Vec::len), Some(4), "{text}");
    assert!(content[0]["bytes"].is_array() && content[0]["logprob"].as_f64().unwrap() <= 0.0, "{text}");
}

/// The demo site at `/`, the model file at `/models/<name>`; misses are JSON 404s, and nothing
/// outside the folder is reachable.
#[tokio::test]
async fn the_site_is_served_beside_the_api() {
    let dir = std::env::temp_dir().join(format!("aether-site-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><title>aether</title>").unwrap();
    std::fs::write(dir.join("sub/app.js"), "export {};").unwrap();
    let site = server::Site { dir: dir.clone(), model: Some(model_path(DEFAULT_MODEL)) };
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    let app = || server::app_with_site(state(None), Some(&site));

    let resp = app().oneshot(get("/")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/html");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"<!doctype html><title>aether</title>");
    let resp = app().oneshot(get("/sub/app.js")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()[header::CONTENT_TYPE].to_str().unwrap().contains("javascript"));

    let range = Request::get(format!("/models/{DEFAULT_MODEL}"))
        .header(header::RANGE, "bytes=0-3")
        .body(Body::empty())
        .unwrap();
    let resp = app().oneshot(range).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(&resp.into_body().collect().await.unwrap().to_bytes()[..], b"GGUF");

    for path in ["/missing.js", "/../Cargo.toml", "/sub/../../Cargo.toml", "/models/other.gguf"] {
        let resp = app().oneshot(get(path)).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_error(
            (status, String::from_utf8_lossy(&body).into_owned()),
            StatusCode::NOT_FOUND,
            "no route",
        );
    }
    // The API keeps its paths.
    let (status, body) = call(state(None), get("/health")).await;
    assert_eq!((status, json_of(&body)["status"].clone()), (StatusCode::OK, json!("ok")));
    let _ = std::fs::remove_dir_all(&dir);
}
