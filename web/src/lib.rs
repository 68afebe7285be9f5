//! aether-web: the wasm-bindgen boundary over `aether-core`, packaged as the npm module
//! `aether-llm`. The JS API, streaming loader and worker arrive with the browser work; for now the
//! crate proves the core links for wasm32 and exposes the incremental GGUF header probe the
//! streaming loader is built on.

use wasm_bindgen::prelude::*;

/// How many bytes of a GGUF download must be present before its header can be parsed: 0 when the
/// prefix already holds the whole header, otherwise at least the returned count. Errors (a file
/// that is not GGUF, a malformed header) come back as a JS `Error` with aether's message.
#[wasm_bindgen(js_name = ggufHeaderNeeds)]
pub fn gguf_header_needs(prefix: &[u8], total_len: Option<f64>) -> Result<f64, JsError> {
    use aether_core::gguf::{HeaderParse, parse_header};
    match parse_header(prefix, total_len.map(|t| t as u64)) {
        Ok(HeaderParse::Complete(_)) => Ok(0.0),
        Ok(HeaderParse::NeedBytes(n)) => Ok(n as f64),
        Err(e) => Err(JsError::new(&e.to_string())),
    }
}
