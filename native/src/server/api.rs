//! The OpenAI request fields aether takes, their validation, and the response shapes.

use std::collections::HashMap;

use aether_core::sample::SamplingParams;
use aether_core::session::GenerateParams;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;

/// `stop`: one string or a list.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// Fields shared by chat and text completions (OpenAI's, plus llama.cpp's extensions).
#[derive(Deserialize, Debug, Default)]
pub struct Common {
    pub model: Option<String>,
    #[serde(default)]
    pub stream: bool,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<i64>,
    pub min_p: Option<f32>,
    pub repeat_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub seed: Option<u64>,
    pub stop: Option<Stop>,
    pub logit_bias: Option<HashMap<String, f32>>,
    pub n: Option<i64>,
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize, Debug)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

#[derive(Deserialize, Debug)]
pub struct ChatMessage {
    pub role: String,
    pub content: Option<Content>,
}

#[derive(Deserialize, Debug)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    #[serde(flatten)]
    pub common: Common,
}

#[derive(Deserialize, Debug)]
pub struct CompletionRequest {
    pub prompt: Value,
    #[serde(flatten)]
    pub common: Common,
}

/// Largest `max_tokens` accepted; beyond it the context bounds generation anyway.
pub const MAX_TOKENS_LIMIT: i64 = 1 << 20;
pub const DEFAULT_MAX_TOKENS: usize = 512;

impl Common {
    /// Validated generation parameters for a vocabulary of `n_vocab` tokens.
    pub fn params(&self, n_vocab: usize) -> Result<GenerateParams, ApiError> {
        let (param, max) = match (self.max_completion_tokens, self.max_tokens) {
            (Some(m), _) => ("max_completion_tokens", Some(m)),
            (None, m) => ("max_tokens", m),
        };
        let max_tokens = match max {
            None => DEFAULT_MAX_TOKENS,
            Some(m) if (1..=MAX_TOKENS_LIMIT).contains(&m) => m as usize,
            Some(m) => {
                return Err(ApiError::invalid(
                    Some(param),
                    format!("{param} must be between 1 and {MAX_TOKENS_LIMIT}, got {m}"),
                ));
            }
        };
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::invalid(Some("n"), "only n = 1 is supported"));
        }
        let mut s = SamplingParams::default();
        let range = |name: &str, v: f32, lo: f32, hi: f32| -> Result<f32, ApiError> {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(v)
            } else {
                Err(ApiError::invalid(Some(name), format!("{name} must be between {lo} and {hi}, got {v}")))
            }
        };
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
                return Err(ApiError::invalid(Some("top_k"), format!("top_k must be ≥ 0, got {k}")));
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
                let id: u32 =
                    k.parse().ok().filter(|&id: &u32| (id as usize) < n_vocab).ok_or_else(|| {
                        ApiError::invalid(
                            Some("logit_bias"),
                            format!("logit_bias key `{k}` is not a token id below {n_vocab}"),
                        )
                    })?;
                s.logit_bias.push((id, range("logit_bias", v, -100.0, 100.0)?));
            }
            s.logit_bias.sort_by_key(|b| b.0);
        }
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) if v.len() <= 16 => v.clone(),
            Some(Stop::Many(_)) => return Err(ApiError::invalid(Some("stop"), "at most 16 stop strings")),
        };
        Ok(GenerateParams { max_tokens, sampling: s, stop, ignore_eos: false })
    }
}

impl ChatMessage {
    /// The message text: a string, or the text parts of a list joined.
    pub fn text(&self) -> Result<String, ApiError> {
        match &self.content {
            None => Ok(String::new()),
            Some(Content::Text(t)) => Ok(t.clone()),
            Some(Content::Parts(parts)) => parts
                .iter()
                .map(|p| match (p.kind.as_str(), &p.text) {
                    ("text", Some(t)) => Ok(t.as_str()),
                    (kind, _) => Err(ApiError::invalid(
                        Some("messages"),
                        format!("content part of type `{kind}` is not supported"),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|v| v.concat()),
        }
    }
}

pub fn usage(prompt: usize, completion: usize) -> Value {
    json!({ "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion })
}
