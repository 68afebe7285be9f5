// A tiny static server for the browser tests, on 127.0.0.1. Serves folders under URL prefixes and
// in-memory files, answers Range requests (206, with a strong ETag for If-Range), counts the
// bytes it sends per request, and can be told to cut the next responses for a path after N bytes
// (the socket is destroyed mid-body, as a dropped connection looks to the browser).

import { createServer } from "node:http";
import { createReadStream, statSync } from "node:fs";
import { extname, join, normalize } from "node:path";
import { Readable } from "node:stream";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".ts": "text/plain; charset=utf-8",
  ".md": "text/plain; charset=utf-8",
};

/**
 * roots: { "/prefix/": "/dir" }; files: { "/path": Buffer }; headers: sent with every file (e.g.
 * the cross-origin isolation a multi-threaded wasm page needs). Returns { url, log, cut, reset,
 * bytesFor, close }.
 */
export async function startServer({ roots, files = {}, headers: extra = {} }) {
  const log = []; // { path, range, status, bytes }
  const cuts = new Map(); // path -> [{ after }]

  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const entry = { path, range: req.headers.range ?? null, status: 0, bytes: 0 };
    log.push(entry);
    let body; // { size, mtime, open(start, end) }
    if (files[path]) {
      const buf = files[path];
      // Streamed in 64 kB pieces like a file, so backpressure bounds what counts as sent.
      const pieces = function* (s, e) {
        for (let at = s; at <= e; at += 65536) yield buf.subarray(at, Math.min(at + 65536, e + 1));
      };
      body = { size: buf.length, mtime: 0, open: (s, e) => Readable.from(pieces(s, e), { objectMode: false }) };
    } else {
      const prefix = Object.keys(roots).find((p) => path.startsWith(p));
      const file = prefix && normalize(join(roots[prefix], path.slice(prefix.length)));
      let st = null;
      try {
        st = file && file.startsWith(normalize(roots[prefix])) ? statSync(file) : null;
      } catch {}
      if (st?.isDirectory()) return redirectToIndex(res, entry, path);
      if (st?.isFile()) {
        body = { size: st.size, mtime: st.mtimeMs, open: (s, e) => createReadStream(file, { start: s, end: e }) };
      }
    }
    if (!body) {
      entry.status = 404;
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    const etag = `"${body.size.toString(16)}-${Math.floor(body.mtime).toString(16)}"`;
    let start = 0;
    let end = body.size - 1;
    let status = 200;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    const ifRange = req.headers["if-range"];
    if (m && (!ifRange || ifRange === etag)) {
      start = Number(m[1]);
      if (m[2]) end = Math.min(Number(m[2]), end);
      if (start > end) {
        entry.status = 416;
        res.writeHead(416, { "content-range": `bytes */${body.size}` }).end();
        return;
      }
      status = 206;
    }
    const headers = {
      "content-type": TYPES[extname(path)] ?? "application/octet-stream",
      "content-length": end - start + 1,
      "accept-ranges": "bytes",
      etag,
      "cache-control": "no-cache",
      ...extra,
    };
    if (status === 206) headers["content-range"] = `bytes ${start}-${end}/${body.size}`;
    entry.status = status;
    res.writeHead(status, headers);
    if (req.method === "HEAD") return res.end();
    const cut = cuts.get(path)?.shift();
    const src = body.open(start, end);
    let sent = 0;
    const onData = (chunk) => {
      if (cut && sent + chunk.length >= cut.after) {
        const part = chunk.subarray(0, Math.max(0, cut.after - sent));
        sent += part.length;
        entry.bytes = sent;
        entry.cut = true;
        res.write(part, () => res.destroy());
        src.destroy?.();
        return false;
      }
      sent += chunk.length;
      entry.bytes = sent;
      return res.write(chunk);
    };
    src.on("data", (c) => {
      if (onData(c) === false) return;
      if (res.writableNeedDrain) {
        src.pause();
        res.once("drain", () => src.resume());
      }
    });
    src.on("end", () => res.end());
    src.on("error", () => res.destroy());
    res.on("close", () => src.destroy());
  });

  function redirectToIndex(res, entry, path) {
    entry.status = 301;
    res.writeHead(301, { location: path.endsWith("/") ? `${path}index.html` : `${path}/` }).end();
  }

  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    log,
    /** The next `times` responses for `path` stop after `after` bytes. */
    cut(path, after, times = 1) {
      cuts.set(path, Array.from({ length: times }, () => ({ after })));
    },
    reset() {
      log.length = 0;
      cuts.clear();
    },
    /** Body bytes sent for paths under `prefix` since the last reset. */
    bytesFor(prefix) {
      return log.filter((e) => e.path.startsWith(prefix)).reduce((n, e) => n + e.bytes, 0);
    },
    close: () =>
      new Promise((r) => {
        server.closeAllConnections?.();
        server.close(r);
      }),
  };
}
