//! The OpenAI request fields aether takes for chat and text completions (with llama.cpp's
//! sampling extensions), their ranges and defaults, and their validation into
//! [`GenerateParams`]: one parser for `aether serve` and the browser package, so a page can switch
//! between the two without changing its requests. Feature `openai` (serde).
//!
//! Fields neither host uses (`user`, …) are ignored, as OpenAI's own server ignores unknown ones.
//! Numbers are read wide and range-checked before narrowing, so 2.0000001 is out of range for a
//! maximum of 2 rather than rounded into it. Each error names the field it is about.

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde_json::Value;

use crate::sample::SamplingParams;
use crate::session::GenerateParams;

/// A request that does not validate: the field (`param` of an OpenAI error) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestError {
    pub param: Option<String>,
    pub message: String,
}

impl RequestError {
    pub fn new(param: &str, message: impl Into<String>) -> RequestError {
        RequestError { param: Some(param.to_string()), message: message.into() }
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RequestError {}

type Result<T> = std::result::Result<T, RequestError>;

/// A JSON integer. Integral floats (`883.0`) count too, as JSON Schema says they do; the range
/// is checked where the field is used ([`Int::within`]), with the field named in the error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Int(pub i128);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Int, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Int, E> {
                Ok(Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<Int, E> {
                Ok(Int(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Int, E> {
                // 1e30 is beyond every field's range yet still an integer: keep it for the range
                // check's message.
                if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e36 {
                    Ok(Int(v as i128))
                } else {
                    Err(E::invalid_type(Unexpected::Float(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Int {
    /// The value if `lo ≤ value ≤ hi`, else an error naming `name`.
    pub fn within(self, name: &str, lo: i128, hi: i128) -> Result<i128> {
        if (lo..=hi).contains(&self.0) {
            Ok(self.0)
        } else {
            Err(RequestError::new(name, format!("{name} must be between {lo} and {hi}, got {}", self.0)))
        }
    }
}

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
    pub max_tokens: Option<Int>,
    pub max_completion_tokens: Option<Int>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<Int>,
    pub min_p: Option<f64>,
    pub repeat_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub seed: Option<Int>,
    pub stop: Option<Stop>,
    pub logit_bias: Option<HashMap<String, f64>>,
    pub n: Option<Int>,
    pub stream_options: Option<StreamOptions>,
    /// Keep generating past end-of-generation tokens (llama.cpp's extension).
    #[serde(default)]
    pub ignore_eos: bool,
}

#[derive(Deserialize, Debug, Default)]
pub struct StreamOptions {
    /// Send a last chunk with `usage` and no choices, as OpenAI does.
    #[serde(default)]
    pub include_usage: bool,
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
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<Int>,
    #[serde(flatten)]
    pub common: Common,
}

#[derive(Deserialize, Debug)]
pub struct CompletionRequest {
    pub prompt: Value,
    /// How many alternatives to report with each token's log-probability (0 = none).
    pub logprobs: Option<Int>,
    #[serde(flatten)]
    pub common: Common,
}

/// Largest `max_tokens` accepted; beyond it the context bounds generation anyway.
pub const MAX_TOKENS_LIMIT: i128 = 1 << 20;
pub const DEFAULT_MAX_TOKENS: usize = 512;
/// Most stop strings, and the longest, in characters: matching holds back every prefix of every
/// stop string each token.
pub const MAX_STOPS: usize = 16;
pub const MAX_STOP_CHARS: usize = 256;
/// Most alternatives `top_logprobs`/`logprobs` may ask for (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: i128 = 20;

impl ChatRequest {
    /// `logprobs: true` with `top_logprobs` alternatives (0 when absent).
    pub fn logprobs(&self) -> Result<Option<usize>> {
        let top = match self.top_logprobs {
            None => 0,
            Some(k) => k.within("top_logprobs", 0, MAX_TOP_LOGPROBS)? as usize,
        };
        // `top_logprobs` without `logprobs: true` is ignored (as llama-server does).
        Ok((self.logprobs == Some(true)).then_some(top))
    }

    /// The messages as the chat template takes them; at least one.
    pub fn messages(&self) -> Result<Vec<crate::chat_template::Message>> {
        if self.messages.is_empty() {
            return Err(RequestError::new("messages", "messages must not be empty"));
        }
        self.messages
            .iter()
            .map(|m| Ok(crate::chat_template::Message { role: m.role.clone(), content: m.text()? }))
            .collect()
    }
}

impl CompletionRequest {
    /// `logprobs: k`: the sampled token's log-probability and `k` alternatives.
    pub fn logprobs(&self) -> Result<Option<usize>> {
        self.logprobs.map(|k| Ok(k.within("logprobs", 0, MAX_TOP_LOGPROBS)? as usize)).transpose()
    }

    /// The prompt: a string, or a list of one string.
    pub fn prompt_text(&self) -> Result<String> {
        match &self.prompt {
            Value::String(s) => Ok(s.clone()),
            Value::Array(a) if a.len() == 1 && a[0].is_string() => {
                Ok(a[0].as_str().unwrap_or_default().to_string())
            }
            _ => Err(RequestError::new("prompt", "prompt must be a string or a list of one string")),
        }
    }
}

impl Common {
    /// Validated generation parameters for a vocabulary of `n_vocab` tokens, with `logprobs`
    /// alternatives per token when asked for; `cap` (a server's `--max-tokens`) bounds
    /// `max_tokens`, and `random_seed` gives the seed of a request that sets none (the host's
    /// randomness: unseeded sampling must not give the same text every time).
    pub fn params(
        &self,
        n_vocab: usize,
        logprobs: Option<usize>,
        cap: Option<usize>,
        random_seed: impl FnOnce() -> u64,
    ) -> Result<GenerateParams> {
        // Both are checked; max_completion_tokens (OpenAI's newer name) wins.
        let max_tokens = self.max_tokens.map(|m| m.within("max_tokens", 1, MAX_TOKENS_LIMIT)).transpose()?;
        let max_completion = self
            .max_completion_tokens
            .map(|m| m.within("max_completion_tokens", 1, MAX_TOKENS_LIMIT))
            .transpose()?;
        let max_tokens = max_completion.or(max_tokens).map_or(DEFAULT_MAX_TOKENS, |m| m as usize);
        let max_tokens = cap.map_or(max_tokens, |c| max_tokens.min(c.max(1)));
        if let Some(n) = self.n {
            n.within("n", 1, 1)?;
        }
        let mut s = SamplingParams::default();
        let range = |name: &str, v: f64, lo: f64, hi: f64| -> Result<f32> {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(v as f32)
            } else {
                Err(RequestError::new(name, format!("{name} must be between {lo} and {hi}, got {v}")))
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
            s.top_k = usize::try_from(k.within("top_k", 0, i64::MAX.into())?).unwrap_or(usize::MAX);
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
        s.seed = match self.seed {
            Some(seed) => seed.within("seed", 0, u64::MAX.into())? as u64,
            None => random_seed(),
        };
        if let Some(bias) = &self.logit_bias {
            for (k, &v) in bias {
                let id: u32 =
                    k.parse().ok().filter(|&id: &u32| (id as usize) < n_vocab).ok_or_else(|| {
                        RequestError::new(
                            "logit_bias",
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
            Some(Stop::Many(v)) if v.len() <= MAX_STOPS => v.clone(),
            Some(Stop::Many(_)) => {
                return Err(RequestError::new("stop", format!("at most {MAX_STOPS} stop strings")));
            }
        };
        if let Some(long) = stop.iter().find(|s| s.chars().count() > MAX_STOP_CHARS) {
            return Err(RequestError::new(
                "stop",
                format!("stop strings are at most {MAX_STOP_CHARS} characters, got {}", long.chars().count()),
            ));
        }
        Ok(GenerateParams { max_tokens, sampling: s, stop, ignore_eos: self.ignore_eos, logprobs })
    }
}

impl ChatMessage {
    /// The message text: a string, or the text parts of a list joined.
    pub fn text(&self) -> Result<String> {
        match &self.content {
            None => Ok(String::new()),
            Some(Content::Text(t)) => Ok(t.clone()),
            Some(Content::Parts(parts)) => parts
                .iter()
                .map(|p| match (p.kind.as_str(), &p.text) {
                    ("text", Some(t)) => Ok(t.as_str()),
                    (kind, _) => Err(RequestError::new(
                        "messages",
                        format!("content part of type `{kind}` is not supported"),
                    )),
                })
                .collect::<Result<Vec<_>>>()
                .map(|v| v.concat()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(json: &str) -> CompletionRequest {
        serde_json::from_str(json).expect("parses")
    }

    fn params(json: &str, cap: Option<usize>) -> Result<GenerateParams> {
        let req = completion(json);
        req.common.params(10, req.logprobs()?, cap, || 77)
    }

    #[test]
    fn integral_floats_are_integers_and_others_are_not() {
        assert_eq!(params(r#"{"prompt":"a","max_tokens":7.0}"#, None).unwrap().max_tokens, 7);
        assert!(serde_json::from_str::<CompletionRequest>(r#"{"prompt":"a","max_tokens":7.5}"#).is_err());
        let e = params(r#"{"prompt":"a","seed":1e30}"#, None).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("seed"), "{e}");
    }

    #[test]
    fn max_completion_tokens_wins_and_the_cap_bounds_both() {
        let g = params(r#"{"prompt":"a","max_tokens":5,"max_completion_tokens":9}"#, None).unwrap();
        assert_eq!(g.max_tokens, 9);
        assert_eq!(params(r#"{"prompt":"a","max_tokens":50}"#, Some(8)).unwrap().max_tokens, 8);
        assert_eq!(params(r#"{"prompt":"a"}"#, None).unwrap().max_tokens, DEFAULT_MAX_TOKENS);
        let e = params(r#"{"prompt":"a","max_tokens":5,"max_completion_tokens":0}"#, None).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_completion_tokens"));
    }

    #[test]
    fn the_seed_is_the_requests_or_the_hosts() {
        assert_eq!(params(r#"{"prompt":"a"}"#, None).unwrap().sampling.seed, 77);
        assert_eq!(params(r#"{"prompt":"a","seed":5}"#, None).unwrap().sampling.seed, 5);
    }

    #[test]
    fn log_probabilities_and_prompts() {
        assert_eq!(params(r#"{"prompt":"a","logprobs":3}"#, None).unwrap().logprobs, Some(3));
        assert_eq!(
            params(r#"{"prompt":"a","logprobs":21}"#, None).unwrap_err().param.as_deref(),
            Some("logprobs")
        );
        let chat: ChatRequest =
            serde_json::from_str(r#"{"messages":[{"role":"user","content":"hi"}],"top_logprobs":2}"#)
                .unwrap();
        assert_eq!(chat.logprobs().unwrap(), None, "top_logprobs alone is ignored");
        assert_eq!(completion(r#"{"prompt":["x"]}"#).prompt_text().unwrap(), "x");
        assert_eq!(
            completion(r#"{"prompt":["x","y"]}"#).prompt_text().unwrap_err().param.as_deref(),
            Some("prompt")
        );
    }

    #[test]
    fn stop_strings_and_bias_keys_are_bounded() {
        let many = format!(r#"{{"prompt":"a","stop":[{}]}}"#, vec![r#""s""#; 17].join(","));
        assert_eq!(params(&many, None).unwrap_err().param.as_deref(), Some("stop"));
        let bias = params(r#"{"prompt":"a","logit_bias":{"3":1,"1":-2}}"#, None).unwrap();
        assert_eq!(bias.sampling.logit_bias, vec![(1, -2.0), (3, 1.0)], "sorted by id");
        assert_eq!(
            params(r#"{"prompt":"a","logit_bias":{"x":1}}"#, None).unwrap_err().param.as_deref(),
            Some("logit_bias")
        );
    }
}
