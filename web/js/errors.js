// aether-llm errors: one Error subclass per kind, each with `name` set, so callers can test
// `e instanceof ModelFormatError` or `e.name === "ModelFormatError"`. The worker sends errors as
// { name, message } (structured clone keeps only the built-in Error names); `fromWire` rebuilds
// the subclass on the page's side.

export class AetherError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = "AetherError";
  }
}

function kind(name) {
  const cls = class extends AetherError {
    constructor(message, options) {
      super(message, options);
      this.name = name;
    }
  };
  Object.defineProperty(cls, "name", { value: name });
  return cls;
}

/** No WebGPU adapter, or the caller asked for the GPU and this browser/build has none. */
export const WebGPUUnavailableError = kind("WebGPUUnavailableError");
/** Not a GGUF file, malformed, or truncated. */
export const ModelFormatError = kind("ModelFormatError");
/** A well-formed GGUF whose architecture, tokenizer or tensor types aether cannot run. */
export const UnsupportedModelError = kind("UnsupportedModelError");
/** The download failed (HTTP status, network, checksum mismatch, storage quota). */
export const DownloadError = kind("DownloadError");
/** The model or its buffers do not fit in wasm (or GPU) memory. */
export const OutOfMemoryError = kind("OutOfMemoryError");
/** The GPU device was lost; load the model again. */
export const DeviceLostError = kind("DeviceLostError");
/** A request the engine refuses (bad sampling values, a prompt longer than the context, …). */
export const InvalidRequestError = kind("InvalidRequestError");

const byName = {
  AetherError,
  WebGPUUnavailableError,
  ModelFormatError,
  UnsupportedModelError,
  DownloadError,
  OutOfMemoryError,
  DeviceLostError,
  InvalidRequestError,
};

/** An error as it crosses postMessage. */
export function toWire(e) {
  if (e && typeof e === "object" && typeof e.name === "string") {
    return { name: e.name, message: String(e.message ?? e) };
  }
  return { name: "AetherError", message: String(e) };
}

/** The typed error for a wire error; AbortError becomes a DOMException, as fetch throws it. */
export function fromWire(w) {
  if (w.name === "AbortError") return new DOMException(w.message, "AbortError");
  const cls = byName[w.name] ?? AetherError;
  return new cls(w.message);
}
