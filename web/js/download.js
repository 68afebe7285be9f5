// Getting the model file's bytes to the worker, chunk by chunk: from the Cache API when a valid
// copy is stored there, else over HTTP with progress, resuming a cut download with Range
// requests, and storing what arrives in the cache as it streams (never a partial file: the
// stored response's body is errored, so `cache.put` fails, unless every byte arrived and checked).
//
// A cached entry carries its expected size (and sha256, when the caller gave one) in headers; an
// entry whose body is shorter or longer is deleted and fetched again. Runs in the worker.

import { DownloadError } from "./errors.js";

export const DEFAULT_CACHE = "aether-llm-models";
const SIZE_HEADER = "x-aether-size";
const SHA_HEADER = "x-aether-sha256";

/** Opens the cache, or null where there is no Cache API (an insecure context, some private modes). */
export async function openCache(name) {
  try {
    return typeof caches === "undefined" ? null : await caches.open(name);
  } catch {
    return null;
  }
}

/**
 * A cached copy of `url` as a Blob, or null. Entries without a recorded size, or whose body is
 * not exactly that size (a write cut short, a quota eviction), are deleted.
 */
export async function cachedBlob(cache, url) {
  if (!cache) return null;
  const resp = await cache.match(url);
  if (!resp) return null;
  const want = Number(resp.headers.get(SIZE_HEADER));
  const blob = await resp.blob();
  if (!Number.isFinite(want) || want <= 0 || blob.size !== want) {
    await cache.delete(url);
    return { invalid: `cached size ${blob.size} != recorded ${resp.headers.get(SIZE_HEADER)}` };
  }
  return { blob, sha256: resp.headers.get(SHA_HEADER) };
}

/** Reads a Blob (a File, a cached body) as a stream of Uint8Array chunks. */
export async function readBlob(blob, onChunk, signal) {
  const reader = blob.stream().getReader();
  for (;;) {
    if (signal?.aborted) {
      await reader.cancel();
      throw signal.reason;
    }
    const { done, value } = await reader.read();
    if (done) return;
    onChunk(value);
  }
}

/**
 * Whether `bytes` more fit in this origin's storage. Unknown (no StorageManager) counts as yes:
 * the put itself then fails and the model still loads.
 */
export async function quotaAllows(bytes) {
  try {
    const { usage = 0, quota } = await navigator.storage.estimate();
    if (quota === undefined) return { ok: true };
    return { ok: quota - usage >= bytes, free: quota - usage };
  } catch {
    return { ok: true };
  }
}

/**
 * A writer that streams the download into the cache as a Response under `url`, as it arrives
 * (`cache.put` reads the body while it is written, so the file is never held whole in JS).
 * `close()` stores it, once the caller has checked the file; `abort()` errors the body, so the put
 * fails and nothing is stored. The size (and expected sha256) are recorded in headers, for
 * `cachedBlob` to check the entry against on the next load.
 */
export function cacheWriter(cache, url, total, sha256) {
  let controller;
  const body = new ReadableStream({ start: (c) => (controller = c) });
  const headers = { "content-type": "application/octet-stream", [SIZE_HEADER]: String(total) };
  if (sha256) headers[SHA_HEADER] = sha256;
  const stored = cache.put(url, new Response(body, { headers }));
  stored.catch(() => {});
  return {
    write(chunk) {
      controller.enqueue(chunk);
    },
    async close() {
      controller.close();
      await stored;
    },
    abort() {
      try {
        controller.error(new Error("download not complete"));
      } catch {}
    },
  };
}

/**
 * Fetches `url`, calling `onStart(total)` once with the length (or null) and `onChunk(u8)` per
 * chunk in order. A connection that fails or ends early is resumed with `Range: bytes=N-` up to
 * `retries` times (backing off); a server that ignores the range (200) has the first N bytes
 * skipped. HTTP errors and exhausted retries throw DownloadError; an abort throws the signal's
 * reason.
 */
export async function fetchResumable(url, { onStart, onChunk, signal, retries = 5, onRetry }) {
  let offset = 0;
  let total = null;
  let validator = null;
  let attempt = 0;
  let resumes = 0;
  let lastError = null;
  for (;;) {
    if (signal?.aborted) throw signal.reason;
    if (attempt > retries) {
      throw new DownloadError(
        `download of ${url} failed after ${attempt} attempts at byte ${offset}: ${lastError?.message ?? lastError}`,
      );
    }
    if (attempt > 0) {
      onRetry?.({ attempt, offset, error: String(lastError?.message ?? lastError) });
      await sleep(Math.min(200 * 2 ** (attempt - 1), 3000), signal);
    }
    attempt++;
    const headers = {};
    if (offset > 0) {
      resumes++;
      headers.Range = `bytes=${offset}-`;
      if (validator) headers["If-Range"] = validator;
    }
    let resp;
    try {
      resp = await fetch(url, { headers, signal, cache: "no-store" });
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      lastError = e;
      continue;
    }
    let skip = 0;
    if (offset === 0) {
      if (!resp.ok) {
        throw new DownloadError(`GET ${url}: HTTP ${resp.status} ${resp.statusText}`.trim());
      }
      const len = resp.headers.get("content-length");
      const encoded = resp.headers.get("content-encoding");
      total = len !== null && !encoded ? Number(len) : null;
      validator = resp.headers.get("etag") ?? resp.headers.get("last-modified");
      if (validator?.startsWith("W/")) validator = null; // If-Range needs a strong validator
      await onStart(total);
    } else if (resp.status === 206) {
      const m = /^bytes (\d+)-/.exec(resp.headers.get("content-range") ?? "");
      if (!m || Number(m[1]) !== offset) {
        throw new DownloadError(`GET ${url}: resumed at byte ${m?.[1]}, expected ${offset}`);
      }
    } else if (resp.status === 200) {
      skip = offset; // the server ignored the range: read past what we have
    } else if (resp.status >= 500 || resp.status === 429) {
      lastError = new Error(`HTTP ${resp.status}`);
      continue;
    } else {
      throw new DownloadError(`GET ${url} (resuming at byte ${offset}): HTTP ${resp.status}`);
    }
    const reader = resp.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        let chunk = value;
        if (skip > 0) {
          const n = Math.min(skip, chunk.length);
          skip -= n;
          chunk = chunk.subarray(n);
          if (chunk.length === 0) continue;
        }
        offset += chunk.length;
        onChunk(chunk);
        attempt = Math.min(attempt, 1); // progress made: the retry budget starts over
      }
    } catch (e) {
      reader.cancel().catch(() => {});
      if (signal?.aborted) throw signal.reason;
      if (e instanceof DownloadError || !(e instanceof TypeError)) throw e; // from onChunk
      lastError = e;
      continue;
    }
    if (total === null || offset >= total) return { total: total ?? offset, resumes };
    lastError = new Error(`connection closed at byte ${offset} of ${total}`);
  }
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}
