// aether-llm: run GGUF language models in the browser. The engine (aether-core compiled to wasm)
// runs in a dedicated Web Worker; this module is the page's side: `Engine.load` starts the worker
// and streams the model into it, `engine.chat.completions.create` / `engine.completions.create`
// take OpenAI request objects and return OpenAI-shaped responses, or async-iterable chunks when
// `stream: true`. An AbortSignal (`signal` in the request or the second argument) cancels.
//
// Wire protocol with worker.js: {type: load|generate|abort, id, ...} in; {type: progress|result|
// token|done|error, id, ...} out. One request runs at a time; others wait their turn in order.

import { AetherError, WebGPUUnavailableError, fromWire } from "./errors.js";
import { RemoteEngine } from "./remote.js";
import { Stream } from "./stream.js";

export * from "./errors.js";
export { RemoteEngine } from "./remote.js";
export { Stream } from "./stream.js";

/** Whether this build of the package carries the WebGPU engine (mirrors the wasm's capabilities()). */
const GPU_ENGINE = true;

export class Engine {
  #worker;
  #pending = new Map(); // id -> { onMessage(msg) }
  #nextId = 0;
  #dead = null;

  /** The loaded model: architecture, name, context size, backend, … */
  info;
  /** OpenAI-style chat completions. */
  chat;
  /** OpenAI-style text completions. */
  completions;

  constructor(worker, url) {
    this.#worker = worker;
    worker.onmessage = (ev) => {
      // The GPU device is gone: the request that saw it has its DeviceLostError already; every
      // other one gets it too, and the worker goes (Engine.load makes a new one, on a new device).
      if (ev.data.type === "lost") this.#die(fromWire(ev.data.error));
      else this.#pending.get(ev.data.id)?.onMessage(ev.data);
    };
    worker.onerror = (ev) => {
      ev.preventDefault?.();
      // An error thrown in the worker comes with its message; a module worker whose script (or
      // an import of it: the wasm glue) could not be fetched or parsed gets a bare Event.
      const why = ev.message
        ? ev.message
        : `its script ${url} or one of its imports could not be loaded (see the browser's console)`;
      this.#die(new AetherError(`the engine worker failed: ${why}`));
    };
    this.chat = { completions: { create: (req, opts) => this.#create("chat", req, opts) } };
    this.completions = { create: (req, opts) => this.#create("text", req, opts) };
  }

  /**
   * Loads a GGUF model from a URL, File or Blob into a new engine worker.
   * options: onProgress({phase, loaded, total, progress}), contextSize, sha256, cache (true |
   * false | "required"), cacheName, device ("auto" | "cpu" | "gpu"), numerics ("auto" | "exact" |
   * "fast"), signal, workerUrl.
   */
  static async load(source, options = {}) {
    const { onProgress, signal, workerUrl, device = "auto", ...rest } = options;
    if (device === "gpu") {
      const caps = await Engine.capabilities();
      if (!caps.webgpu) throw new WebGPUUnavailableError(`WebGPU is not available: ${caps.reason}`);
    }
    signal?.throwIfAborted();
    const url = workerUrl ?? new URL("./worker.js", import.meta.url);
    const engine = new Engine(new Worker(url, { type: "module", name: "aether-llm" }), url);
    // A relative URL means the page's, not the worker's (which sits in the package folder).
    const src =
      typeof source === "string" || source instanceof URL
        ? new URL(String(source), globalThis.location?.href).href
        : source;
    const onAbort = () => engine.unload();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const result = await engine.#call({ type: "load", source: src, options: { ...rest, device } }, (m) => {
        if (m.type === "progress") onProgress?.(m);
      });
      signal?.throwIfAborted();
      engine.info = { ...result.info, cache: result.cache, resumes: result.resumes, engine: result.engine };
      engine.info.model = engine.info.name || modelName(src);
      return engine;
    } catch (e) {
      engine.unload();
      throw signal?.aborted ? signal.reason : e;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * The same API over an `aether serve` (or other OpenAI-compatible) endpoint: resolves once the
   * server has listed its model. options: apiKey, signal.
   */
  static remote(baseUrl, options = {}) {
    return RemoteEngine.connect(baseUrl, options);
  }

  /**
   * What this browser offers: WebGPU availability, the adapter, its features and limits, and the
   * backend `Engine.load` will use.
   */
  static async capabilities() {
    const out = {
      webgpu: false,
      adapter: null,
      features: [],
      limits: {},
      shaderF16: false,
      subgroups: false,
      gpuEngine: GPU_ENGINE,
      backend: "cpu",
      reason: null,
    };
    const gpu = globalThis.navigator?.gpu;
    if (!gpu) {
      out.reason = "navigator.gpu is undefined (no WebGPU in this browser or context)";
      return out;
    }
    let adapter = null;
    try {
      adapter = await gpu.requestAdapter();
    } catch (e) {
      out.reason = `requestAdapter failed: ${e.message}`;
      return out;
    }
    if (!adapter) {
      out.reason = "requestAdapter returned no adapter";
      return out;
    }
    const info = adapter.info ?? {};
    out.webgpu = true;
    out.adapter = {
      vendor: info.vendor ?? "",
      architecture: info.architecture ?? "",
      device: info.device ?? "",
      description: info.description ?? "",
      isFallbackAdapter: !!(info.isFallbackAdapter ?? adapter.isFallbackAdapter),
    };
    out.features = [...adapter.features].sort();
    for (const k in adapter.limits) {
      if (typeof adapter.limits[k] === "number") out.limits[k] = adapter.limits[k];
    }
    out.shaderF16 = adapter.features.has("shader-f16");
    out.subgroups = adapter.features.has("subgroups");
    // The worker makes the same choice for device "auto".
    if (!GPU_ENGINE) {
      out.reason = "this build has no WebGPU engine; models run on the CPU in wasm";
    } else if (out.adapter.isFallbackAdapter) {
      out.reason =
        'the only adapter is the browser\'s software fallback, slower than the CPU engine in wasm; device: "gpu" uses it anyway';
    } else {
      out.backend = "webgpu";
    }
    return out;
  }

  /**
   * Test hooks, not API: `"stats"` resolves to `{ wasmMemoryBytes }` (the worker's wasm memory,
   * which never shrinks: the peak so far); `"loseDevice"` destroys the worker's GPU device, as a
   * driver reset would lose it; `"compileAll"` builds every kernel the engine could run with the
   * browser's WGSL compiler and resolves to `{ checked, failures: [{ name, message }] }`.
   */
  _debug(op) {
    return this.#call({ type: "debug", op });
  }

  /** Stops the worker and frees everything it held (pending requests reject). */
  unload() {
    this.#die(new AetherError("the engine was unloaded"));
  }

  #die(error) {
    if (this.#dead) return;
    this.#dead = error;
    this.#worker.terminate();
    for (const p of this.#pending.values()) p.onMessage({ type: "error", error });
    this.#pending.clear();
  }

  /** Sends one message; resolves with its result, calling `each` on intermediate messages. */
  #call(msg, each) {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = ++this.#nextId;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, {
        onMessage: (m) => {
          if (m.type === "result") {
            this.#pending.delete(id);
            resolve(m.value);
          } else if (m.type === "error") {
            this.#pending.delete(id);
            reject(m.error instanceof Error ? m.error : fromWire(m.error));
          } else {
            each?.(m);
          }
        },
      });
      this.#worker.postMessage({ ...msg, id });
    });
  }

  #create(kind, request, options = {}) {
    const { signal: reqSignal, ...body } = request ?? {};
    const signal = options.signal ?? reqSignal;
    if (this.#dead) return Promise.reject(this.#dead);
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const id = ++this.#nextId;
    const events = new EventQueue();
    const onAbort = () => {
      this.#worker.postMessage({ type: "abort", id });
      this.#pending.delete(id);
      events.fail(abortError(signal));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#pending.set(id, {
      onMessage: (m) => {
        if (m.type === "error") {
          events.fail(m.error instanceof Error ? m.error : fromWire(m.error));
        } else {
          events.push(m);
        }
        if (m.type === "done" || m.type === "error") {
          this.#pending.delete(id);
          signal?.removeEventListener("abort", onAbort);
          events.end();
        }
      },
    });
    this.#worker.postMessage({ type: "generate", id, kind, request: body });
    const shape = {
      id: kind === "chat" ? `chatcmpl-${id}` : `cmpl-${id}`,
      created: Math.floor(Date.now() / 1000),
      model: this.info?.model ?? "",
    };
    if (body.stream) return Promise.resolve(new Stream(chunks(kind, shape, events), () => onAbort()));
    return collect(kind, shape, events);
  }
}

async function* chunks(kind, shape, events) {
  const object = kind === "chat" ? "chat.completion.chunk" : "text_completion";
  const chunk = (delta, finish_reason = null, extra = {}) => ({
    ...shape,
    object,
    choices: [
      kind === "chat"
        ? { index: 0, delta, finish_reason, logprobs: null }
        : { index: 0, text: delta.content ?? "", finish_reason, logprobs: null },
    ],
    ...extra,
  });
  if (kind === "chat") yield chunk({ role: "assistant", content: "" });
  for await (const m of events) {
    if (m.type === "token" && m.text) yield chunk({ content: m.text });
    if (m.type === "done") yield chunk({}, m.finish_reason, { usage: m.usage, timings: m.timings });
  }
}

async function collect(kind, shape, events) {
  let text = "";
  for await (const m of events) {
    if (m.type === "token") text += m.text;
    if (m.type === "done") {
      const choice =
        kind === "chat"
          ? { index: 0, message: { role: "assistant", content: text }, finish_reason: m.finish_reason, logprobs: null }
          : { index: 0, text, finish_reason: m.finish_reason, logprobs: null };
      return {
        ...shape,
        object: kind === "chat" ? "chat.completion" : "text_completion",
        choices: [choice],
        usage: m.usage,
        timings: m.timings,
      };
    }
  }
  throw new AetherError("the engine stopped without finishing the request");
}

/** Messages from the worker as an async iterable; `fail` makes the next read throw. */
class EventQueue {
  #items = [];
  #waiting = null;
  #error = null;
  #ended = false;
  push(m) {
    this.#items.push(m);
    this.#wake();
  }
  fail(e) {
    this.#error ??= e;
    this.#wake();
  }
  end() {
    this.#ended = true;
    this.#wake();
  }
  #wake() {
    const w = this.#waiting;
    this.#waiting = null;
    w?.();
  }
  async *[Symbol.asyncIterator]() {
    for (;;) {
      if (this.#error) throw this.#error;
      if (this.#items.length) {
        yield this.#items.shift();
        continue;
      }
      if (this.#ended) return;
      await new Promise((r) => (this.#waiting = r));
    }
  }
}

function abortError(signal) {
  const r = signal?.reason;
  return r instanceof Error ? r : new DOMException("the request was aborted", "AbortError");
}

function modelName(src) {
  if (typeof src !== "string") return src?.name ?? "model";
  const last = src.split(/[?#]/)[0].split("/").pop() || "model";
  return last.replace(/\.gguf$/i, "");
}
