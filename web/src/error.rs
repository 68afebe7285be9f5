//! Errors at the JS boundary: every failure becomes a JS `Error` whose `name` is one of the kinds
//! the npm package exports as `Error` subclasses (`ModelFormatError`, `UnsupportedModelError`, …),
//! so a page can branch on `e.name` or `instanceof` without parsing messages. The message is
//! aether-core's own, which names the key, tensor or byte offset.
//!
//! The logic works on [`WebError`] (plain Rust, testable natively); only [`WebError::into_js`]
//! touches JS.

use aether_core::Error;
use wasm_bindgen::JsValue;

/// The error kinds the JS package knows; `name()` is the JS class name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Not GGUF, malformed, truncated, or missing what the model needs.
    ModelFormat,
    /// Well-formed, but an architecture, tokenizer or tensor type aether cannot run.
    UnsupportedModel,
    /// A request the engine refuses: bad sampling values, empty or too long a prompt, a chat
    /// template that rejects the conversation.
    InvalidRequest,
    /// Wasm memory (or GPU memory) could not hold the model or its buffers.
    OutOfMemory,
    WebGpuUnavailable,
    DeviceLost,
    /// Anything else (a bug, or a state the API forbids, e.g. using a finished loader).
    Internal,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::ModelFormat => "ModelFormatError",
            Kind::UnsupportedModel => "UnsupportedModelError",
            Kind::InvalidRequest => "InvalidRequestError",
            Kind::OutOfMemory => "OutOfMemoryError",
            Kind::WebGpuUnavailable => "WebGPUUnavailableError",
            Kind::DeviceLost => "DeviceLostError",
            Kind::Internal => "AetherError",
        }
    }

    /// The kind of a core error raised while loading a model. (During generation the same
    /// variants mean the same thing, except the request-shaped ones listed first.)
    pub fn of(e: &Error) -> Kind {
        use Error::*;
        match e {
            ContextFull { .. } | EmptyPrompt => Kind::InvalidRequest,
            TemplateRaised { .. } | TemplateRender { .. } | InvalidDate { .. } => Kind::InvalidRequest,
            UnsupportedVersion { .. }
            | BigEndian { .. }
            | UnsupportedArchitecture { .. }
            | UnsupportedRopeScaling { .. }
            | UnexpectedTensor { .. }
            | UnsupportedTokenizerModel { .. }
            | UnknownPreTokenizer { .. }
            | UnsupportedPreTokenizer { .. }
            | UnsupportedType { .. }
            | ExactUnsupported { .. } => Kind::UnsupportedModel,
            NoAdapter { .. } | DeviceRequest { .. } => Kind::WebGpuUnavailable,
            DeviceLost { .. } => Kind::DeviceLost,
            GpuOutOfMemory { .. } | GpuTensorTooLarge { .. } | GpuRowTooLarge { .. } => Kind::OutOfMemory,
            GpuValidation { .. } | GpuInternal { .. } | GpuTimeout { .. } | GpuReadback { .. } => {
                Kind::Internal
            }
            Io(_) => Kind::Internal,
            // Everything else describes the file: the container, lookups, shapes, quant blocks,
            // the vocabulary, a template that does not compile.
            _ => Kind::ModelFormat,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct WebError {
    pub kind: Kind,
    pub message: String,
}

pub type Result<T, E = WebError> = std::result::Result<T, E>;

impl WebError {
    pub fn new(kind: Kind, message: impl Into<String>) -> WebError {
        WebError { kind, message: message.into() }
    }

    /// A JS `Error` with `name` set to the kind's class name.
    pub fn into_js(self) -> JsValue {
        let e = js_sys::Error::new(&self.message);
        e.set_name(self.kind.name());
        e.into()
    }
}

impl From<Error> for WebError {
    fn from(e: Error) -> WebError {
        WebError { kind: Kind::of(&e), message: e.to_string() }
    }
}

impl std::fmt::Display for WebError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GPU's failures reach the page as the typed errors the package documents.
    #[test]
    fn gpu_errors_map_to_their_js_kinds() {
        let c = || "building the model's GPU buffers".to_string();
        for (e, kind) in [
            (Error::DeviceLost { reason: "Destroyed".into(), message: "gone".into() }, Kind::DeviceLost),
            (Error::GpuOutOfMemory { context: c() }, Kind::OutOfMemory),
            (Error::GpuTensorTooLarge { name: "t".into(), bytes: 1, why: "w".into() }, Kind::OutOfMemory),
            (Error::NoAdapter { reason: "none".into() }, Kind::WebGpuUnavailable),
            (Error::GpuValidation { context: c(), message: "m".into() }, Kind::Internal),
        ] {
            let w = WebError::from(e.clone());
            assert_eq!(w.kind, kind, "{e}");
            assert_eq!(w.message, e.to_string());
        }
        assert_eq!(Kind::DeviceLost.name(), "DeviceLostError");
        assert_eq!(Kind::OutOfMemory.name(), "OutOfMemoryError");
    }
}
