// aether-llm errors: one Error subclass per kind, each with `name` set, so callers can test
// `e instanceof ModelFormatError` or `e.name === "ModelFormatError"`. The worker sends errors as
// { name, message } (structured clone keeps only the built-in Error names); `fromWire` rebuilds
// the subclass on the page's side.

export class AetherError extends Error {
  /**
   * options: `cause`, and for errors of a remote engine the server's answer: `status` (HTTP, 0
   * when the server could not be reached), `error` (its OpenAI error object) and `retryAfter`
   * (seconds, from a 429's Retry-After).
   */
  constructor(message, options = {}) {
    super(message, options);
    this.name = "AetherError";
    for (const k of ["status", "error", "retryAfter"]) {
      if (options[k] !== undefined) this[k] = options[k];
    }
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
/** A remote engine's server answered with an error status (other than 400) or could not be reached. */
export const RemoteError = kind("RemoteError");

const byName = {
  AetherError,
  WebGPUUnavailableError,
  ModelFormatError,
  UnsupportedModelError,
  DownloadError,
  OutOfMemoryError,
  DeviceLostError,
  InvalidRequestError,
  RemoteError,
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
