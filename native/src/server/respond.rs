//! A job's [`Event`]s turned into OpenAI's answer: one JSON completion ([`collect`]) or
//! server-sent chunks ending with `data: [DONE]` ([`stream`]).
//!
//! Log-probabilities arrive as their own events just before their token's text; a token whose
//! text is held back (a possible stop string, part of a character) keeps its entry pending until
//! text is released, so each chunk carries the entries of the tokens behind its text. When the
//! server shuts down past its grace period (`closing` turns true), a stream ends with an error
//! event and `[DONE]`, and a collected answer becomes a 503.

use std::convert::Infallible;
use std::sync::Arc;

use aether_core::session::TokenLogprobs;
use aether_core::tokenizer::Tokenizer;
use axum::Json;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::api::{chat_logprobs, completion_logprobs, usage};
use super::engine::Event;
use super::error::ApiError;

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Kind {
    Chat,
    Text,
}

/// What every chunk of one answer repeats, and what the request asked for.
#[derive(Clone)]
pub struct Reply {
    pub kind: Kind,
    pub id: String,
    pub created: u64,
    pub model: String,
    pub tokenizer: Arc<Tokenizer>,
    /// Report log-probabilities (the engine sends them only when asked).
    pub logprobs: bool,
    /// `stream_options.include_usage`: usage in a last chunk of its own.
    pub include_usage: bool,
    /// Turns true when in-flight answers must end (shutdown past its grace period).
    pub closing: watch::Receiver<bool>,
}

impl Reply {
    /// The `logprobs` value for these tokens (`offset`: characters before them in the text).
    fn logprobs_json(&self, steps: &[TokenLogprobs], offset: usize) -> Value {
        match (self.logprobs, self.kind) {
            (false, _) => Value::Null,
            (true, Kind::Chat) => chat_logprobs(&self.tokenizer, steps),
            (true, Kind::Text) => completion_logprobs(&self.tokenizer, steps, offset),
        }
    }

    fn envelope(&self, object: &str, choices: Value) -> Value {
        json!({ "id": self.id, "object": object, "created": self.created, "model": self.model, "choices": choices })
    }

    /// One streamed chunk: `text` (None: the role-only opening delta of chat, or the closing
    /// chunk when `finish` is set).
    fn chunk(&self, text: Option<&str>, finish: Option<&str>, lps: Value) -> Value {
        let choice = match self.kind {
            Kind::Chat => {
                let delta = match (text, finish) {
                    (Some(t), _) => json!({ "content": t }),
                    (None, None) => json!({ "role": "assistant", "content": "" }),
                    (None, Some(_)) => json!({}),
                };
                json!({ "index": 0, "delta": delta, "finish_reason": finish, "logprobs": lps })
            }
            Kind::Text => {
                json!({ "index": 0, "text": text.unwrap_or(""), "finish_reason": finish, "logprobs": lps })
            }
        };
        self.envelope(self.chunk_object(), json!([choice]))
    }

    fn chunk_object(&self) -> &'static str {
        if self.kind == Kind::Chat { "chat.completion.chunk" } else { "text_completion" }
    }
}

fn sse(v: &Value) -> SseEvent {
    SseEvent::default().data(v.to_string())
}

/// Resolves once `closing` is true; never if the sender is gone.
async fn closed(closing: &mut watch::Receiver<bool>) {
    if closing.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Waits for the whole answer and returns it as one JSON object.
pub async fn collect(reply: Reply, mut rx: mpsc::UnboundedReceiver<Event>) -> Result<Response, ApiError> {
    let mut closing = reply.closing.clone();
    let (mut text, mut lps) = (String::new(), Vec::new());
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            () = closed(&mut closing) => return Err(ApiError::shutting_down()),
        };
        match ev {
            Some(Event::Text(t)) => text += &t,
            Some(Event::Logprobs(l)) => lps.push(l),
            Some(Event::Error(e)) => return Err(ApiError::internal(e)),
            None => return Err(ApiError::internal("the engine stopped")),
            Some(Event::Done { finish, prompt_tokens, completion_tokens }) => {
                let lps = reply.logprobs_json(&lps, 0);
                let (object, choice) = match reply.kind {
                    Kind::Chat => (
                        "chat.completion",
                        json!({ "index": 0, "message": { "role": "assistant", "content": text }, "finish_reason": finish.as_str(), "logprobs": lps }),
                    ),
                    Kind::Text => (
                        "text_completion",
                        json!({ "index": 0, "text": text, "finish_reason": finish.as_str(), "logprobs": lps }),
                    ),
                };
                let mut body = reply.envelope(object, json!([choice]));
                body["usage"] = usage(prompt_tokens, completion_tokens);
                return Ok(Json(body).into_response());
            }
        }
    }
}

struct StreamState {
    rx: mpsc::UnboundedReceiver<Event>,
    closing: watch::Receiver<bool>,
    /// Entries of tokens whose text has not been sent yet.
    pending: Vec<TokenLogprobs>,
    /// Characters sent so far (completions' `text_offset`).
    sent_chars: usize,
    done: bool,
}

/// Streams the answer as server-sent events, with keep-alive comments while a prompt is queued
/// or prefilled.
pub fn stream(reply: Reply, rx: mpsc::UnboundedReceiver<Event>) -> Response {
    let first = (reply.kind == Kind::Chat).then(|| sse(&reply.chunk(None, None, Value::Null)));
    let st =
        StreamState { rx, closing: reply.closing.clone(), pending: Vec::new(), sent_chars: 0, done: false };
    let events = futures_util::stream::unfold(st, move |mut st| {
        let reply = reply.clone();
        async move {
            if st.done {
                return None;
            }
            let ev = tokio::select! {
                ev = st.rx.recv() => ev,
                () = closed(&mut st.closing) => {
                    st.done = true;
                    let err = ApiError::shutting_down().body().to_string();
                    return Some((vec![SseEvent::default().data(err), SseEvent::default().data("[DONE]")], st));
                }
            };
            let out = match ev {
                Some(Event::Logprobs(l)) => {
                    st.pending.push(l);
                    vec![]
                }
                Some(Event::Text(t)) => {
                    let lps = reply.logprobs_json(&st.pending, st.sent_chars);
                    st.pending.clear();
                    st.sent_chars += t.chars().count();
                    vec![sse(&reply.chunk(Some(&t), None, lps))]
                }
                Some(Event::Done { finish, prompt_tokens, completion_tokens }) => {
                    st.done = true;
                    let lps = if st.pending.is_empty() {
                        Value::Null
                    } else {
                        reply.logprobs_json(&st.pending, st.sent_chars)
                    };
                    let usage = usage(prompt_tokens, completion_tokens);
                    let mut last = reply.chunk(None, Some(finish.as_str()), lps);
                    let mut out = vec![];
                    if reply.include_usage {
                        let mut u = reply.envelope(reply.chunk_object(), json!([]));
                        u["usage"] = usage;
                        out.extend([sse(&last), sse(&u)]);
                    } else {
                        // Usage on the closing chunk (llama-server's habit) for clients that never ask.
                        last["usage"] = usage;
                        out.push(sse(&last));
                    }
                    out.push(SseEvent::default().data("[DONE]"));
                    out
                }
                Some(Event::Error(e)) => {
                    st.done = true;
                    let err = ApiError::internal(e).body().to_string();
                    vec![SseEvent::default().data(err), SseEvent::default().data("[DONE]")]
                }
                None => return None,
            };
            Some((out, st))
        }
    });
    let all = futures_util::stream::iter(first).chain(events.flat_map(futures_util::stream::iter));
    Sse::new(all.map(Ok::<_, Infallible>)).keep_alive(KeepAlive::default()).into_response()
}
