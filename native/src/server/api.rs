//! The OpenAI request fields aether takes, their validation, and the response shapes.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use aether_core::sample::SamplingParams;
use aether_core::session::{GenerateParams, TokenLogprobs};
use aether_core::tokenizer::Tokenizer;
use serde::Deserialize;
use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde_json::{Value, json};

use super::error::ApiError;

/// A JSON integer. Integral floats (`883.0`) count too, as JSON Schema says they do; the range
/// is checked where the field is used ([`Int::within`]), with the field named in the error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Int(pub i128);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Int, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Int, E> {
                Ok(Int(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Int, E> {
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
    /// The value if `lo ≤ value ≤ hi`, else a 400 naming `name`.
    pub fn within(self, name: &str, lo: i128, hi: i128) -> Result<i128, ApiError> {
        if (lo..=hi).contains(&self.0) {
            Ok(self.0)
        } else {
            Err(ApiError::invalid(
                Some(name),
                format!("{name} must be between {lo} and {hi}, got {}", self.0),
            ))
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

/// Fields shared by chat and text completions (OpenAI's, plus llama.cpp's extensions). Numbers
/// are read as f64 and range-checked before narrowing, so 2.0000001 is out of range for a
/// maximum of 2 rather than rounded into it.
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
/// Longest stop string, in characters.
pub const MAX_STOP_CHARS: usize = 256;
/// Most alternatives `top_logprobs`/`logprobs` may ask for (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: i128 = 20;

impl ChatRequest {
    /// `logprobs: true` with `top_logprobs` alternatives (0 when absent).
    pub fn logprobs(&self) -> Result<Option<usize>, ApiError> {
        let top = match self.top_logprobs {
            None => 0,
            Some(k) => k.within("top_logprobs", 0, MAX_TOP_LOGPROBS)? as usize,
        };
        // `top_logprobs` without `logprobs: true` is ignored (as llama-server does).
        Ok((self.logprobs == Some(true)).then_some(top))
    }
}

impl CompletionRequest {
    /// `logprobs: k`: the sampled token's log-probability and `k` alternatives.
    pub fn logprobs(&self) -> Result<Option<usize>, ApiError> {
        self.logprobs.map(|k| Ok(k.within("logprobs", 0, MAX_TOP_LOGPROBS)? as usize)).transpose()
    }
}

/// A seed for a request that gave none, different every call (std's per-instance random hash
/// keys), so unseeded sampling is not the same text every time.
fn random_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    h.write_u64(now.map_or(0, |d| d.as_nanos() as u64));
    h.finish()
}

impl Common {
    /// Validated generation parameters for a vocabulary of `n_vocab` tokens; `cap` (the
    /// server's `--max-tokens`) bounds `max_tokens`.
    pub fn params(
        &self,
        n_vocab: usize,
        logprobs: Option<usize>,
        cap: Option<usize>,
    ) -> Result<GenerateParams, ApiError> {
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
        let range = |name: &str, v: f64, lo: f64, hi: f64| -> Result<f32, ApiError> {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(v as f32)
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
        // Matching holds back every prefix of every stop string each token: keep them short.
        if let Some(long) = stop.iter().find(|s| s.chars().count() > MAX_STOP_CHARS) {
            return Err(ApiError::invalid(
                Some("stop"),
                format!("stop strings are at most {MAX_STOP_CHARS} characters, got {}", long.chars().count()),
            ));
        }
        Ok(GenerateParams { max_tokens, sampling: s, stop, ignore_eos: false, logprobs })
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

/// JSON has no −∞; OpenAI reports impossible tokens as −9999.
fn logprob_value(l: f32) -> f64 {
    if l.is_finite() { f64::from(l) } else { -9999.0 }
}

/// A token as text (lossy where it holds part of a character) and its bytes.
fn token_text(tok: &Tokenizer, id: u32) -> (String, Vec<u8>) {
    let bytes = tok.token_to_piece(id, true).map(<[u8]>::to_vec).unwrap_or_default();
    (String::from_utf8_lossy(&bytes).into_owned(), bytes)
}

/// Chat's `logprobs` object: `{"content": [{token, logprob, bytes, top_logprobs}], "refusal": null}`.
pub fn chat_logprobs(tok: &Tokenizer, steps: &[TokenLogprobs]) -> Value {
    let entry = |id: u32, l: f32| {
        let (token, bytes) = token_text(tok, id);
        json!({ "token": token, "logprob": logprob_value(l), "bytes": bytes })
    };
    let content: Vec<Value> = steps
        .iter()
        .map(|s| {
            let mut e = entry(s.token, s.logprob);
            e["top_logprobs"] = s.top.iter().map(|&(t, l)| entry(t, l)).collect();
            e
        })
        .collect();
    json!({ "content": content, "refusal": null })
}

/// Legacy completions' `logprobs` object: parallel lists of tokens, their log-probabilities,
/// `{token: logprob}` maps of the alternatives, and each token's character offset in the text
/// (from `offset0`, the characters already sent).
pub fn completion_logprobs(tok: &Tokenizer, steps: &[TokenLogprobs], offset0: usize) -> Value {
    let (mut tokens, mut lps, mut tops, mut offsets) = (vec![], vec![], vec![], vec![]);
    let mut offset = offset0;
    for s in steps {
        let (text, _) = token_text(tok, s.token);
        offsets.push(offset);
        offset += text.chars().count();
        tokens.push(text);
        lps.push(logprob_value(s.logprob));
        let top: serde_json::Map<String, Value> =
            s.top.iter().map(|&(t, l)| (token_text(tok, t).0, json!(logprob_value(l)))).collect();
        tops.push(Value::Object(top));
    }
    json!({ "tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets })
}

/// A regular expression matching the decimal numbers below `n` (no leading zeros): the token ids
/// of a vocabulary of `n`, for the OpenAPI document's `logit_bias` keys.
pub fn below_pattern(n: usize) -> String {
    let Some(max) = n.checked_sub(1) else { return "^(?!)$".into() };
    let d: Vec<u8> = max.to_string().bytes().map(|b| b - b'0').collect();
    let mut alts = vec!["0".to_string()];
    // Shorter numbers: 1 to d.len() - 1 digits.
    if d.len() > 1 {
        alts.push(format!("[1-9][0-9]{{0,{}}}", d.len() - 2));
    }
    // As long as max: equal on a prefix, lower at the next digit, anything after.
    for i in 0..d.len() {
        let lo = if i == 0 { 1 } else { 0 };
        if d[i] > lo {
            let prefix: String = d[..i].iter().map(|x| char::from(b'0' + x)).collect();
            let rest = d.len() - i - 1;
            alts.push(format!("{prefix}[{lo}-{}][0-9]{{{rest}}}", d[i] - 1));
        }
    }
    if max > 0 {
        alts.push(max.to_string());
    }
    format!("^({})$", alts.join("|"))
}
