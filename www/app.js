// The demo site: load a model (URL or local file) with a progress bar, or connect to an
// `aether serve` endpoint, then chat with streamed tokens, a stop button, sampling settings and a
// tokens/s readout. Built on the aether-llm package, which scripts/build-web.sh copies next to
// this file as ./pkg/. The chat code is the same for both engines: one API.

import { Engine } from "./pkg/index.js";

const $ = (id) => document.getElementById(id);
const DEFAULT_MODEL = new URL("models/SmolLM2-135M-Instruct.Q4_1.gguf", location.href).href;
$("url").value = new URLSearchParams(location.search).get("model") ?? DEFAULT_MODEL;

let engine = null;
let history = [];
let abort = null;

/** Replaces the engine with what `open()` resolves to; `describe(engine, seconds)` is the status line. */
async function start(open, describe) {
  engine?.unload();
  engine = null;
  $("chat").hidden = true;
  const t0 = performance.now();
  try {
    engine = await open();
  } catch (e) {
    $("bar").hidden = true;
    $("status").innerHTML = "";
    $("status").append(Object.assign(document.createElement("span"), { className: "error", textContent: `${e.name}: ${e.message}` }));
    return;
  }
  $("status").textContent = describe(engine.info, (performance.now() - t0) / 1000);
  $("bar").hidden = true;
  $("chat").hidden = false;
  history = [];
  $("log").textContent = "";
}

function load(source) {
  $("bar").hidden = false;
  $("bar").value = 0;
  const onProgress = (p) => {
    $("bar").value = p.progress;
    $("status").textContent = `${p.phase} ${(p.loaded / 1e6).toFixed(1)} / ${(p.total / 1e6).toFixed(1)} MB`;
  };
  return start(
    () => Engine.load(source, { onProgress }),
    (i, s) =>
      `${i.model} (${i.architecture}, ${(i.fileBytes / 1e6).toFixed(0)} MB, context ${i.contextSize}) ` +
      `loaded in ${s.toFixed(1)} s on the ${i.backend}; cache: ${i.cache}`,
  );
}

function connect(url, apiKey) {
  $("status").textContent = `connecting to ${url}…`;
  return start(
    () => Engine.remote(url, { apiKey: apiKey || undefined }),
    (i) => `${i.model} on ${i.baseUrl}`,
  );
}

function line(cls, text) {
  const div = Object.assign(document.createElement("div"), { className: cls, textContent: text });
  $("log").append(div);
  return div;
}

async function send(ev) {
  ev.preventDefault();
  const text = $("prompt").value.trim();
  if (!text || !engine || abort) return;
  $("prompt").value = "";
  history.push({ role: "user", content: text });
  line("user", text);
  const out = line("assistant", "");
  abort = new AbortController();
  $("stop").disabled = false;
  $("send").disabled = true;
  const num = (id) => Number($(id).value);
  try {
    const stream = await engine.chat.completions.create({
      messages: history,
      stream: true,
      stream_options: { include_usage: true },
      temperature: num("temperature"),
      top_p: num("top_p"),
      top_k: num("top_k"),
      max_tokens: num("max_tokens"),
      seed: num("seed"),
      signal: abort.signal,
    });
    // A server's stream has no timings: then the readout is the rate the page saw.
    let first = 0;
    let finish = null;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      if (c?.delta.content) {
        out.textContent += c.delta.content;
        first ||= performance.now();
      }
      finish = c?.finish_reason ?? finish;
      const u = chunk.usage;
      if (chunk.timings) {
        const t = chunk.timings;
        $("speed").textContent = `prompt ${u.prompt_tokens} tokens at ${t.prompt_per_second.toFixed(0)} tok/s · ` +
          `${u.completion_tokens} tokens at ${t.predicted_per_second.toFixed(1)} tok/s · ${finish}`;
      } else if (u) {
        const s = (performance.now() - first) / 1000;
        $("speed").textContent = `${u.completion_tokens} tokens` +
          (s > 0 && u.completion_tokens > 1 ? ` at ${((u.completion_tokens - 1) / s).toFixed(1)} tok/s (seen by this page)` : "") +
          ` · ${finish}`;
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") line("error", `${e.name}: ${e.message}`);
  } finally {
    history.push({ role: "assistant", content: out.textContent });
    abort = null;
    $("stop").disabled = true;
    $("send").disabled = false;
  }
}

$("load-url").onclick = () => load($("url").value);
$("file").onchange = () => $("file").files[0] && load($("file").files[0]);
$("connect").onclick = () => connect($("server").value || location.origin, $("key").value);
$("ask").onsubmit = send;
$("stop").onclick = () => abort?.abort();
$("prompt").onkeydown = (e) => {
  if (e.key === "Enter" && !e.shiftKey) send(e);
};

Engine.capabilities().then((c) => {
  $("adapter").textContent = c.webgpu
    ? `WebGPU adapter: ${[c.adapter.vendor, c.adapter.architecture, c.adapter.description].filter(Boolean).join(" ")}` +
      `${c.adapter.isFallbackAdapter ? " (fallback)" : ""}; shader-f16 ${c.shaderF16 ? "yes" : "no"}, subgroups ` +
      `${c.subgroups ? "yes" : "no"}, max buffer ${(c.limits.maxBufferSize / 2 ** 20).toFixed(0)} MiB. Engine: ${c.backend}` +
      (c.reason ? ` (${c.reason})` : "")
    : `No WebGPU: ${c.reason}. Models run on the CPU in wasm.`;
});
