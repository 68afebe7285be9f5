// The engine's Web Worker: loads the wasm module and one model, then runs generation requests one
// at a time, yielding to its event loop between steps so that abort messages get through and the
// page never blocks. Messages in: load, generate, abort, debug. Messages out: progress, result,
// token, done, error (errors as { name, message }; index.js rebuilds the typed Error), and lost
// (unasked: the GPU device is gone; the page retires this worker).
//
// Loading (see download.js for the transport): chunks go straight into the wasm loader, which
// parses the GGUF header from the first ones and fails early on an unsupported or malformed
// model. A cached copy is used when valid; a cached copy that fails its checks is deleted and the
// file fetched again.

import init, { WasmLoader, capabilities, compileAll, openGpu } from "./wasm/aether_web.js";
import { DownloadError, toWire } from "./errors.js";
import {
  DEFAULT_CACHE,
  cacheWriter,
  cachedBlob,
  fetchResumable,
  openCache,
  quotaAllows,
  readBlob,
} from "./download.js";

/** Prompt tokens evaluated between yields (an abort waits at most this long). */
const PREFILL_CHUNK = 32;

let engine = null;
let ready = null; // the wasm module's init promise
const aborted = new Set();
let queue = Promise.resolve();

// A macrotask yield (setTimeout is clamped to 4 ms when nested): lets queued messages run.
const channel = new MessageChannel();
const wakeups = [];
channel.port1.onmessage = () => wakeups.shift()?.();
const yieldNow = () =>
  new Promise((resolve) => {
    wakeups.push(resolve);
    channel.port2.postMessage(0);
  });

self.onmessage = (ev) => {
  const m = ev.data;
  switch (m.type) {
    case "load":
      load(m).then(
        (value) => post({ type: "result", id: m.id, value }),
        (e) => post({ type: "error", id: m.id, error: toWire(e) }),
      );
      break;
    case "generate":
      queue = queue.then(() =>
        generate(m).catch(async (e) => {
          e = await gpuError(e);
          post({ type: "error", id: m.id, error: toWire(e) });
          if (e.name === "DeviceLostError") post({ type: "lost", error: toWire(e) });
        }),
      );
      break;
    case "abort":
      aborted.add(m.id);
      break;
    case "debug":
      // Test hooks. loseDevice: destroy the GPU device, even mid-step. stats: the wasm memory's
      // size now (it never shrinks: the peak so far). compileAll: build every kernel.
      if (m.op === "loseDevice") engine?.loseDevice();
      if (m.op === "compileAll") {
        // Every kernel through this browser's WGSL compiler (needs the GPU opened by a load).
        (ready ?? Promise.reject(new Error("no engine loaded")))
          .then(() => compileAll())
          .then(
            (json) => post({ type: "result", id: m.id, value: JSON.parse(json) }),
            (e) => post({ type: "error", id: m.id, error: toWire(e) }),
          );
        break;
      }
      (ready ?? Promise.resolve(null)).then((wasm) =>
        post({ type: "result", id: m.id, value: { wasmMemoryBytes: wasm?.memory.buffer.byteLength ?? 0 } }),
      );
      break;
  }
};

function post(msg) {
  self.postMessage(msg);
}

/** Progress reporter: phases in order, `progress` never going back, at most every 0.25%. */
function progressReporter(id) {
  let last = -1;
  let lastPhase = null;
  return (phase, loaded, total, force = false, extra = {}) => {
    const progress = total ? Math.min(loaded / total, 1) : 0;
    if (!force && phase === lastPhase && progress - last < 0.0025) return;
    last = Math.max(last, progress);
    lastPhase = phase;
    post({ type: "progress", id, phase, loaded, total, progress: last, ...extra });
  };
}

async function load(m) {
  const { source, options = {} } = m;
  ready ??= init();
  const wasm = await ready;
  const report = progressReporter(m.id);
  const sha256 = options.sha256?.toLowerCase() ?? null;
  const hash = !!sha256;
  const contextSize = options.contextSize ?? 0;
  let cacheState = "off";
  // The GPU engine when the worker has WebGPU (`device`: "auto" | "gpu" | "cpu"): the weights
  // stream straight into GPU buffers. "gpu" fails without it; "auto" falls back to the CPU, and
  // also takes the CPU when the only adapter is the browser's software fallback (SwiftShader):
  // the wasm CPU engine is many times faster than a GPU emulated on the same cores.
  const device = options.device ?? "auto";
  let gpu = null;
  if (device !== "cpu" && self.navigator?.gpu) {
    try {
      const adapter = device === "auto" ? await self.navigator.gpu.requestAdapter() : null;
      if (device === "gpu" || (adapter && !adapter.info?.isFallbackAdapter)) {
        // `numerics`: "auto" (exact on a software adapter, where it costs nothing), "exact", "fast".
        gpu = JSON.parse(await openGpu(options.numerics ?? "auto"));
      }
    } catch (e) {
      if (device === "gpu") throw e;
    }
  }
  if (device === "gpu" && !gpu) {
    const e = new Error("WebGPU is not available in this worker");
    e.name = "WebGPUUnavailableError";
    throw e;
  }

  // Feeds one source into a fresh loader and builds the engine from it.
  const feed = async (phase, total, pump) => {
    const loader = new WasmLoader(total ?? undefined, hash, !!gpu);
    try {
      let size = total;
      await pump(
        (chunk) => {
          loader.push(chunk);
          report(phase, loader.received(), size ?? loader.fileLength() ?? 0);
        },
        (t) => {
          size = t;
          if (t !== null) loader.setTotal(t);
        },
      );
      size = loader.received();
      report(phase, size, size, true);
      const digest = hash ? loader.sha256() : null;
      if (hash && digest !== sha256) {
        throw new DownloadError(`sha256 mismatch: got ${digest}, expected ${sha256}`);
      }
      report("build", size, size, true);
      return { engine: await loader.finish(contextSize), bytes: size };
    } finally {
      loader.free();
    }
  };

  let built;
  if (typeof source !== "string") {
    // A File or Blob the page handed over.
    built = await feed("file", source.size, (push) => readBlob(source, push));
  } else {
    const url = new URL(source, self.location.href).href;
    const cache = options.cache === false ? null : await openCache(options.cacheName ?? DEFAULT_CACHE);
    const hit = await cachedBlob(cache, url);
    if (hit?.blob && (!sha256 || !hit.sha256 || hit.sha256 === sha256)) {
      try {
        built = await feed("cache", hit.blob.size, (push) => readBlob(hit.blob, push));
        cacheState = "hit";
      } catch (e) {
        // A stored copy that does not check out is never trusted: drop it, fetch again.
        await cache.delete(url);
        cacheState = `invalid (${e.name}: ${e.message})`;
      }
    } else if (hit?.invalid || hit?.blob) {
      await cache.delete(url);
      cacheState = `invalid (${hit.invalid ?? "sha256 differs"})`;
    }
    if (!built) {
      let writer = null;
      let resumes = 0;
      const onStart = async (total) => {
        if (!cache || total === null) {
          cacheState = cache ? "skipped (no content-length)" : cacheState;
          return;
        }
        const q = await quotaAllows(total);
        if (!q.ok) {
          if (options.cache === "required") {
            throw new DownloadError(
              `not enough storage to cache the model: ${total} bytes needed, ${q.free} free`,
            );
          }
          cacheState = `skipped (quota: ${total} bytes needed, ${q.free} free)`;
          return;
        }
        writer = cacheWriter(cache, url, total, sha256);
      };
      try {
        let total = null;
        built = await feed("download", null, async (push, setTotal) => {
          const r = await fetchResumable(url, {
            onStart: (t) => {
              total = t;
              setTotal(t);
              return onStart(t);
            },
            onChunk: (chunk) => {
              push(chunk);
              writer?.write(chunk);
            },
            onRetry: (r) =>
              report("resume", r.offset, total ?? 0, true, { attempt: r.attempt, error: r.error }),
            retries: options.retries ?? 5,
          });
          resumes = r.resumes;
        });
      } catch (e) {
        writer?.abort();
        throw e;
      }
      if (writer) {
        try {
          await writer.close();
          cacheState = "stored";
        } catch (e) {
          cacheState = `not stored (${e.message})`;
        }
      }
      built.resumes = resumes;
    }
  }
  engine = built.engine;
  const info = JSON.parse(engine.info());
  report("ready", built.bytes, built.bytes, true);
  info.wasmMemoryBytes = wasm.memory.buffer.byteLength;
  return { info, engine: JSON.parse(capabilities()), cache: cacheState, resumes: built.resumes ?? 0 };
}

/**
 * A failed GPU step as the page should see it: when the device was lost, the step may fail first
 * with a read-back error and the browser tell of the loss some time later (one yield was not
 * always enough in headless Chromium), so the device is asked for up to a second; a lost device
 * makes the error a DeviceLostError. Only failed steps wait.
 */
async function gpuError(e) {
  if (!engine || e?.name === "DeviceLostError" || e?.name === "AbortError") return e;
  for (let waited = 0; ; waited += 10) {
    await (waited ? new Promise((r) => setTimeout(r, 10)) : yieldNow());
    const lost = engine.deviceLost();
    if (lost) {
      const d = new Error(lost);
      d.name = "DeviceLostError";
      return d;
    }
    if (waited >= 1000) return e;
  }
}

async function generate(m) {
  if (!engine) throw new Error("no model loaded");
  const { id, kind, request } = m;
  const check = () => {
    if (aborted.delete(id)) {
      engine.cancel();
      const e = new Error("the request was aborted");
      e.name = "AbortError";
      throw e;
    }
  };
  check();
  const body = JSON.stringify(request);
  const t0 = performance.now();
  const nPrompt =
    kind === "chat" ? engine.beginChat(body, Date.now() / 1000) : engine.beginCompletion(body);
  while (!(await engine.prefill(PREFILL_CHUNK))) {
    await yieldNow();
    check();
  }
  const t1 = performance.now();
  for (;;) {
    await yieldNow();
    check();
    const s = await engine.step();
    const { text, token, finish } = s;
    s.free();
    if (text || token !== undefined) post({ type: "token", id, text, token });
    if (finish) {
      const t2 = performance.now();
      const completion = engine.completionTokens();
      post({
        type: "done",
        id,
        finish_reason: finish,
        usage: { prompt_tokens: nPrompt, completion_tokens: completion, total_tokens: nPrompt + completion },
        timings: {
          prompt_ms: t1 - t0,
          predicted_ms: t2 - t1,
          prompt_per_second: (nPrompt / (t1 - t0)) * 1000,
          predicted_per_second: (completion / (t2 - t1)) * 1000,
        },
      });
      return;
    }
  }
}
