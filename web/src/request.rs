//! The OpenAI requests the browser engine takes: `aether_core::openai`'s parser, the one
//! `aether serve` uses, so a page can switch between the two without changing its requests.
//! Requests arrive as JSON text from the worker (`JSON.stringify` of the caller's object); fields
//! the engine does not use (`model`, `stream`, `signal`, log-probabilities, …) are ignored.

use aether_core::chat_template::Message;
use aether_core::openai::{ChatRequest, CompletionRequest, RequestError};
use aether_core::session::GenerateParams;
use serde::Deserialize;

use crate::error::{Kind, Result, WebError};

impl From<RequestError> for WebError {
    fn from(e: RequestError) -> WebError {
        WebError::new(Kind::InvalidRequest, e.message)
    }
}

fn parse<T: for<'de> Deserialize<'de>>(json: &str) -> Result<T> {
    serde_json::from_str(json)
        .map_err(|e| WebError::new(Kind::InvalidRequest, format!("invalid request: {e}")))
}

/// A seed for a request that sets none: unseeded sampling must not repeat itself.
fn random_seed() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        // Math.random gives 52 random bits at most: two draws of 32.
        let draw = || (js_sys::Math::random() * 4_294_967_296.0) as u64;
        (draw() << 32) | draw()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map_or(0, |d| d.as_nanos() as u64)
    }
}

/// A chat request: its messages and generation parameters.
pub fn chat(json: &str, n_vocab: usize) -> Result<(Vec<Message>, GenerateParams)> {
    let req: ChatRequest = parse(json)?;
    let messages = req.messages()?;
    Ok((messages, req.common.params(n_vocab, None, None, random_seed)?))
}

/// A text completion request: its prompt and generation parameters.
pub fn completion(json: &str, n_vocab: usize) -> Result<(String, GenerateParams)> {
    let req: CompletionRequest = parse(json)?;
    Ok((req.prompt_text()?, req.common.params(n_vocab, None, None, random_seed)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_core::openai::DEFAULT_MAX_TOKENS;
    use aether_core::sample::SamplingParams;

    #[test]
    fn defaults_match_the_server() {
        let (p, g) = completion(r#"{"prompt":"hi","seed":42}"#, 10).unwrap();
        assert_eq!(p, "hi");
        assert_eq!(g.max_tokens, DEFAULT_MAX_TOKENS);
        assert_eq!(g.sampling, SamplingParams { seed: 42, ..SamplingParams::default() });
    }

    #[test]
    fn fields_reach_the_sampler() {
        let json = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
            "max_tokens":7,"temperature":0,"top_p":0.5,"top_k":3.0,"seed":9,"stop":"X","logit_bias":{"4":-100},
            "model":"ignored","stream":true,"ignore_eos":true}"#;
        let (m, g) = chat(json, 10).unwrap();
        assert_eq!(m, vec![Message::new("user", "ab")]);
        assert_eq!((g.max_tokens, g.sampling.temperature, g.sampling.top_p), (7, 0.0, 0.5));
        assert_eq!((g.sampling.top_k, g.sampling.seed, g.ignore_eos), (3, 9, true));
        assert_eq!(g.stop, vec!["X".to_string()]);
        assert_eq!(g.sampling.logit_bias, vec![(4, -100.0)]);
    }

    #[test]
    fn out_of_range_values_are_invalid_requests() {
        let long_stop = format!(r#"{{"prompt":"a","stop":"{}"}}"#, "s".repeat(257));
        for (json, needle) in [
            (r#"{"prompt":"a","temperature":3}"#, "temperature"),
            (r#"{"prompt":"a","max_tokens":0}"#, "max_tokens"),
            (r#"{"prompt":"a","top_k":-1}"#, "top_k"),
            (r#"{"prompt":"a","n":2}"#, "n must be between 1 and 1"),
            (r#"{"prompt":"a","seed":-1}"#, "seed"),
            (r#"{"prompt":"a","logit_bias":{"10":1}}"#, "below 10"),
            (r#"{"prompt":5}"#, "string"),
            (r#"{"prompt":"a","max_tokens":"x"}"#, "invalid request"),
            (long_stop.as_str(), "at most 256 characters"),
        ] {
            let e = completion(json, 10).unwrap_err();
            assert_eq!(e.kind, Kind::InvalidRequest, "{json}");
            assert!(e.message.contains(needle), "{json}: message `{}` lacks `{needle}`", e.message);
        }
        let e = chat(r#"{"messages":[]}"#, 10).unwrap_err();
        assert!(e.message.contains("empty"), "{}", e.message);
    }

    /// Unseeded requests draw their own seeds.
    #[test]
    fn an_unseeded_request_gets_a_fresh_seed() {
        let seed = || completion(r#"{"prompt":"a"}"#, 10).unwrap().1.sampling.seed;
        let seeds: std::collections::BTreeSet<u64> = (0..4).map(|_| seed()).collect();
        assert!(seeds.len() > 1, "{seeds:?}");
    }
}
