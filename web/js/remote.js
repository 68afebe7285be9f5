// `Engine.remote`: the package's API over an `aether serve` endpoint (or any server that speaks
// OpenAI's chat/text completions with server-sent events), so a page switches between the
// visitor's GPU and a server by changing one line. Requests go out as the server's JSON; stream
// chunks and responses come back as the server sends them, which are the shapes the local engine
// produces. HTTP errors become the package's typed errors, carrying the server's status and its
// OpenAI error object.

import { AetherError, InvalidRequestError, RemoteError } from "./errors.js";
import { Stream } from "./stream.js";

export class RemoteEngine {
  #base;
  #headers;
  #inFlight = new Set(); // AbortControllers of the requests not finished yet
  #closed = false;

  /** { model, backend: "remote", baseUrl }: `model` is the first id of the server's /v1/models. */
  info;
  chat;
  completions;

  constructor(base, headers, info) {
    this.#base = base;
    this.#headers = headers;
    this.info = info;
    this.chat = { completions: { create: (req, opts) => this.#create("/chat/completions", req, opts) } };
    this.completions = { create: (req, opts) => this.#create("/completions", req, opts) };
  }

  /** Connects to `baseUrl` (with or without the trailing `/v1`); checks it by listing its models. */
  static async connect(baseUrl, { apiKey, signal } = {}) {
    const base = new URL(String(baseUrl), globalThis.location?.href).href.replace(/\/+$/, "").replace(/\/v1$/, "") + "/v1";
    const headers = apiKey ? { authorization: `Bearer ${apiKey}` } : {};
    const r = await send(`${base}/models`, { headers, signal });
    const models = await r.json();
    const model = models?.data?.[0]?.id;
    if (typeof model !== "string") throw new RemoteError(`${base}/models listed no model`, { status: r.status });
    return new RemoteEngine(base, headers, { model, backend: "remote", baseUrl: base });
  }

  /** Cancels the requests in flight; later requests reject. Nothing is freed on the server but their slots. */
  unload() {
    this.#closed = true;
    for (const c of this.#inFlight) c.abort(new AetherError("the engine was unloaded"));
  }

  async #create(path, request, options = {}) {
    if (this.#closed) throw new AetherError("the engine was unloaded");
    const { signal: reqSignal, ...body } = request ?? {};
    const signal = options.signal ?? reqSignal;
    signal?.throwIfAborted();
    const control = new AbortController();
    const onAbort = () => control.abort(signal.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#inFlight.add(control);
    const done = () => {
      signal?.removeEventListener("abort", onAbort);
      this.#inFlight.delete(control);
    };
    try {
      const r = await send(`${this.#base}${path}`, {
        method: "POST",
        headers: { ...this.#headers, "content-type": "application/json" },
        body: JSON.stringify({ model: this.info.model, ...body }),
        signal: control.signal,
      });
      if (!body.stream) {
        const json = await r.json();
        done();
        return json;
      }
      return new Stream(events(r, control.signal, done), () => control.abort(new DOMException("the request was aborted", "AbortError")));
    } catch (e) {
      done();
      throw aborted(control.signal) ?? e;
    }
  }
}

/** fetch, with network failures and HTTP errors as typed errors. */
async function send(url, init) {
  let r;
  try {
    r = await fetch(url, init);
  } catch (e) {
    throw aborted(init.signal) ?? new RemoteError(`cannot reach ${url}: ${e.message}`, { status: 0, cause: e });
  }
  if (r.ok) return r;
  const text = await r.text().catch(() => "");
  let error = null;
  try {
    error = JSON.parse(text).error ?? null;
  } catch {}
  const message = `${r.status} from ${url}: ${error?.message ?? (text.slice(0, 200) || r.statusText)}`;
  const fields = { status: r.status, error, retryAfter: Number(r.headers.get("retry-after")) || null };
  throw r.status === 400 ? new InvalidRequestError(message, fields) : new RemoteError(message, fields);
}

/** The JSON chunks of a server-sent event stream, up to `data: [DONE]`; calls `done` at the end. */
async function* events(response, signal, done) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  let finished = false;
  try {
    for (;;) {
      let read;
      try {
        read = await reader.read();
      } catch (e) {
        throw aborted(signal) ?? new RemoteError(`the stream broke: ${e.message}`, { status: response.status, cause: e });
      }
      if (read.done) break;
      buffered += read.value;
      // Events end with a blank line; a line of one event may arrive in pieces.
      let end;
      while ((end = buffered.search(/\r?\n\r?\n/)) >= 0) {
        const event = buffered.slice(0, end);
        buffered = buffered.slice(end).replace(/^\r?\n\r?\n/, "");
        const data = event
          .split(/\r?\n/)
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).replace(/^ /, ""))
          .join("\n");
        if (!data) continue; // comments (keep-alives) and events without data
        if (data === "[DONE]") {
          finished = true;
          return;
        }
        const chunk = JSON.parse(data);
        if (chunk.error) throw new RemoteError(`the server failed mid-stream: ${chunk.error.message}`, { status: 200, error: chunk.error });
        yield chunk;
      }
    }
    if (!finished) throw new RemoteError("the stream ended without [DONE]", { status: response.status });
  } finally {
    reader.cancel().catch(() => {});
    done();
  }
}

/** The error an aborted request throws: the signal's reason, or an AbortError. */
function aborted(signal) {
  if (!signal?.aborted) return null;
  const r = signal.reason;
  return r instanceof Error || r instanceof DOMException ? r : new DOMException("the request was aborted", "AbortError");
}
