//! The server's side of the OpenAI API: the requests are `aether_core::openai`'s (shared with the
//! browser package), their errors become 400s here; and the response shapes.

use std::hash::{BuildHasher, Hasher};

pub use aether_core::openai::{ChatRequest, Common, CompletionRequest, Int, RequestError};
use aether_core::session::TokenLogprobs;
use aether_core::tokenizer::Tokenizer;
use serde_json::{Value, json};

use super::error::ApiError;

/// A seed for a request that gave none, different every call (std's per-instance random hash
/// keys), so unseeded sampling is not the same text every time.
pub fn random_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    h.write_u64(now.map_or(0, |d| d.as_nanos() as u64));
    h.finish()
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> ApiError {
        ApiError::invalid(e.param.as_deref(), e.message)
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
