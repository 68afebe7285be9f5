//! The OpenAI request fields the browser engine takes — the same ones, ranges and defaults as
//! `aether serve` (native/src/server/api.rs), so a page can switch between the two without
//! changing its requests. Requests arrive as JSON text from the worker (`JSON.stringify` of the
//! caller's object); fields the engine does not use (`model`, `stream`, `signal`, …) are ignored.
//!
//! The validation mirrors the server's rather than sharing it: the server's lives in the native
//! crate (axum, tokio), which does not build for wasm. Keep the two in step.

use std::collections::HashMap;

use aether_core::chat_template::Message;
use aether_core::sample::SamplingParams;
use aether_core::session::GenerateParams;
use serde::Deserialize;

use crate::error::{Kind, Result, WebError};

/// `stop`: one string or a list.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize, Debug)]
struct ContentPart {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Deserialize, Debug)]
struct ChatMessage {
    role: String,
    content: Option<Content>,
}

/// Fields shared by chat and text completions.
#[derive(Deserialize, Debug, Default)]
struct Common {
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<i64>,
    min_p: Option<f32>,
    repeat_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    seed: Option<u64>,
    stop: Option<Stop>,
    logit_bias: Option<HashMap<String, f32>>,
    n: Option<i64>,
    #[serde(default)]
    ignore_eos: bool,
}

#[derive(Deserialize, Debug)]
struct ChatRequest {
    messages: Vec<ChatMessage>,
    #[serde(flatten)]
    common: Common,
}

#[derive(Deserialize, Debug)]
struct CompletionRequest {
    prompt: serde_json::Value,
    #[serde(flatten)]
    common: Common,
}

/// Largest `max_tokens` accepted; beyond it the context bounds generation anyway.
pub const MAX_TOKENS_LIMIT: i64 = 1 << 20;
pub const DEFAULT_MAX_TOKENS: usize = 512;

fn invalid(message: impl Into<String>) -> WebError {
    WebError::new(Kind::InvalidRequest, message)
}

fn parse<T: for<'de> Deserialize<'de>>(json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| invalid(format!("invalid request: {e}")))
}

/// A chat request: its messages and generation parameters.
pub fn chat(json: &str, n_vocab: usize) -> Result<(Vec<Message>, GenerateParams)> {
    let req: ChatRequest = parse(json)?;
    if req.messages.is_empty() {
        return Err(invalid("messages must not be empty"));
    }
    let messages = req
        .messages
        .iter()
        .map(|m| Ok(Message { role: m.role.clone(), content: text(m)? }))
        .collect::<Result<Vec<_>>>()?;
    Ok((messages, req.common.params(n_vocab)?))
}

/// A text completion request: its prompt and generation parameters.
pub fn completion(json: &str, n_vocab: usize) -> Result<(String, GenerateParams)> {
    let req: CompletionRequest = parse(json)?;
    let prompt = match &req.prompt {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) if a.len() == 1 => match a[0].as_str() {
            Some(s) => s.to_string(),
            None => return Err(invalid("prompt must be a string")),
        },
        _ => return Err(invalid("prompt must be a string")),
    };
    Ok((prompt, req.common.params(n_vocab)?))
}

/// The message text: a string, or the text parts of a list joined.
fn text(m: &ChatMessage) -> Result<String> {
    match &m.content {
        None => Ok(String::new()),
        Some(Content::Text(t)) => Ok(t.clone()),
        Some(Content::Parts(parts)) => parts
            .iter()
            .map(|p| match (p.kind.as_str(), &p.text) {
                ("text", Some(t)) => Ok(t.as_str()),
                (kind, _) => Err(invalid(format!("content part of type `{kind}` is not supported"))),
            })
            .collect::<Result<Vec<_>>>()
            .map(|v| v.concat()),
    }
}

impl Common {
    fn params(&self, n_vocab: usize) -> Result<GenerateParams> {
        let (param, max) = match (self.max_completion_tokens, self.max_tokens) {
            (Some(m), _) => ("max_completion_tokens", Some(m)),
            (None, m) => ("max_tokens", m),
        };
        let max_tokens = match max {
            None => DEFAULT_MAX_TOKENS,
            Some(m) if (1..=MAX_TOKENS_LIMIT).contains(&m) => m as usize,
            Some(m) => {
                return Err(invalid(format!("{param} must be between 1 and {MAX_TOKENS_LIMIT}, got {m}")));
            }
        };
        if self.n.is_some_and(|n| n != 1) {
            return Err(invalid("only n = 1 is supported"));
        }
        let range = |name: &str, v: f32, lo: f32, hi: f32| -> Result<f32> {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(v)
            } else {
                Err(invalid(format!("{name} must be between {lo} and {hi}, got {v}")))
            }
        };
        let mut s = SamplingParams::default();
        if let Some(t) = self.temperature {
            s.temperature = range("temperature", t, 0.0, 2.0)?;
        }
        if let Some(p) = self.top_p {
            s.top_p = range("top_p", p, 0.0, 1.0)?;
        }
        if let Some(p) = self.min_p {
            s.min_p = range("min_p", p, 0.0, 1.0)?;
        }
        if let Some(k) = self.top_k {
            if k < 0 {
                return Err(invalid(format!("top_k must be ≥ 0, got {k}")));
            }
            s.top_k = k as usize;
        }
        if let Some(r) = self.repeat_penalty {
            s.repeat_penalty = range("repeat_penalty", r, 0.0, 10.0)?;
        }
        if let Some(p) = self.presence_penalty {
            s.presence_penalty = range("presence_penalty", p, -2.0, 2.0)?;
        }
        if let Some(p) = self.frequency_penalty {
            s.frequency_penalty = range("frequency_penalty", p, -2.0, 2.0)?;
        }
        if let Some(seed) = self.seed {
            s.seed = seed;
        }
        if let Some(bias) = &self.logit_bias {
            for (k, &v) in bias {
                let id = k.parse::<u32>().ok().filter(|&id| (id as usize) < n_vocab).ok_or_else(|| {
                    invalid(format!("logit_bias key `{k}` is not a token id below {n_vocab}"))
                })?;
                s.logit_bias.push((id, range("logit_bias", v, -100.0, 100.0)?));
            }
            s.logit_bias.sort_by_key(|b| b.0);
        }
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) if v.len() <= 16 => v.clone(),
            Some(Stop::Many(_)) => return Err(invalid("at most 16 stop strings")),
        };
        Ok(GenerateParams { max_tokens, sampling: s, stop, ignore_eos: self.ignore_eos, logprobs: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_server() {
        let (p, g) = completion(r#"{"prompt":"hi"}"#, 10).unwrap();
        assert_eq!(p, "hi");
        assert_eq!(g.max_tokens, DEFAULT_MAX_TOKENS);
        assert_eq!(g.sampling, SamplingParams::default());
    }

    #[test]
    fn fields_reach_the_sampler() {
        let json = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
            "max_tokens":7,"temperature":0,"top_p":0.5,"top_k":3,"seed":9,"stop":"X","logit_bias":{"4":-100},
            "model":"ignored","stream":true}"#;
        let (m, g) = chat(json, 10).unwrap();
        assert_eq!(m, vec![Message::new("user", "ab")]);
        assert_eq!((g.max_tokens, g.sampling.temperature, g.sampling.top_p), (7, 0.0, 0.5));
        assert_eq!((g.sampling.top_k, g.sampling.seed), (3, 9));
        assert_eq!(g.stop, vec!["X".to_string()]);
        assert_eq!(g.sampling.logit_bias, vec![(4, -100.0)]);
    }

    #[test]
    fn out_of_range_values_are_invalid_requests() {
        for (json, needle) in [
            (r#"{"prompt":"a","temperature":3}"#, "temperature"),
            (r#"{"prompt":"a","max_tokens":0}"#, "max_tokens"),
            (r#"{"prompt":"a","top_k":-1}"#, "top_k"),
            (r#"{"prompt":"a","n":2}"#, "n = 1"),
            (r#"{"prompt":"a","logit_bias":{"10":1}}"#, "below 10"),
            (r#"{"prompt":5}"#, "string"),
            (r#"{"prompt":"a","max_tokens":"x"}"#, "invalid request"),
        ] {
            let e = completion(json, 10).unwrap_err();
            assert_eq!(e.kind, Kind::InvalidRequest, "{json}");
            assert!(e.message.contains(needle), "{json}: message `{}` lacks `{needle}`", e.message);
        }
        let e = chat(r#"{"messages":[]}"#, 10).unwrap_err();
        assert!(e.message.contains("empty"), "{}", e.message);
    }
}
