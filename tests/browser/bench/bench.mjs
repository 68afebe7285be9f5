// aether-llm beside wllama in headless Debian chromium: the same model from the same loopback
// server into the same page, a fresh browser per run, median of RUNS. Prints a markdown table for
// docs/PERF.md and each engine's greedy text (they should agree: both follow llama.cpp's
// numerics on the CPU).
//
// Per run: load (fetch + build, the model cache off), then a greedy completion of PROMPT with
// MAX_TOKENS tokens. Prefill and decode tok/s are the engines' own `timings` (llama.cpp's
// definitions, which aether's API reproduces: decode excludes the first token, prefill is the
// prompt's evaluation); load is wall time in the page. The page is cross-origin isolated, so
// wllama can start its threads; aether's CPU path runs one wasm thread in its Web Worker.
//
// Environment: AETHER_PKG (the built package, default web/pkg), AETHER_MODELS_DIR, CHROMIUM,
// RUNS (default 3), MAX_TOKENS (default 64).

import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { launch } from "../launch.mjs";
import { startServer } from "../server.mjs";

const here = import.meta.dirname;
const root = resolve(here, "../../..");
const MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf";
const RUNS = Number(process.env.RUNS ?? 3);
const MAX_TOKENS = Number(process.env.MAX_TOKENS ?? 64);
const PROMPT = "The capital of France is";

const server = await startServer({
  roots: {
    "/pkg/": resolve(process.env.AETHER_PKG ?? join(root, "web/pkg")),
    "/models/": process.env.AETHER_MODELS_DIR ?? join(root, "models"),
    "/wllama/": join(here, "node_modules/@wllama/wllama"),
    "/": here,
  },
  headers: { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" },
});
const MODEL_URL = `${server.url}/models/${MODEL}`;

/** One run of `fn` in the page of a fresh browser; returns what it returns. */
async function inFreshBrowser(fn, arg) {
  const profile = mkdtempSync(join(tmpdir(), "aether-bench-"));
  const { context } = await launch(chromium, profile);
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${server.url}/page.html`);
    await page.waitForFunction(() => window.benchReady, null, { timeout: 30_000 });
    const isolated = await page.evaluate(() => crossOriginIsolated);
    if (!isolated) throw new Error("the page is not cross-origin isolated");
    const r = await page.evaluate(fn, arg);
    if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
    return r;
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

async function aetherRun({ url, prompt, maxTokens }) {
  const t0 = performance.now();
  const engine = await window.aether.Engine.load(url, { device: "cpu", cache: false });
  const loadMs = performance.now() - t0;
  const chunks = [];
  const stream = await engine.completions.create({ prompt, max_tokens: maxTokens, temperature: 0, stream: true });
  for await (const c of stream) chunks.push(c);
  const end = chunks.at(-1);
  return {
    loadMs,
    text: chunks.map((c) => c.choices[0]?.text ?? "").join(""),
    tokens: end.usage.completion_tokens,
    prefill: end.timings.prompt_per_second,
    decode: end.timings.predicted_per_second,
  };
}

async function wllamaRun({ url, prompt, maxTokens, threads }) {
  const wllama = new window.Wllama({ default: "/wllama/esm/wasm/wllama.wasm" }, { suppressNativeLog: true });
  const t0 = performance.now();
  await wllama.loadModelFromUrl(url, { n_threads: threads, n_ctx: 512, n_gpu_layers: 0, useCache: false });
  const loadMs = performance.now() - t0;
  const r = await wllama.createCompletion({ prompt, max_tokens: maxTokens, temperature: 0 });
  await wllama.exit();
  return {
    loadMs,
    text: r.choices[0].text,
    tokens: r.usage?.completion_tokens ?? r.timings.predicted_n,
    prefill: r.timings.prompt_per_second,
    decode: r.timings.predicted_per_second,
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const configs = [
  { name: "aether-llm, CPU wasm (1 thread, Web Worker)", fn: aetherRun, arg: {} },
  { name: "wllama 3.8.1, 1 thread", fn: wllamaRun, arg: { threads: 1 } },
  { name: "wllama 3.8.1, 2 threads", fn: wllamaRun, arg: { threads: 2 } },
];
const rows = [];
const texts = new Map();
for (const c of configs) {
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await inFreshBrowser(c.fn, { url: MODEL_URL, prompt: PROMPT, maxTokens: MAX_TOKENS, ...c.arg });
    console.error(`${c.name} run ${i + 1}: load ${r.loadMs.toFixed(0)} ms, prefill ${r.prefill.toFixed(1)}, decode ${r.decode.toFixed(1)} tok/s, ${r.tokens} tokens`);
    runs.push(r);
  }
  texts.set(c.name, runs[0].text);
  rows.push(`| ${c.name} | ${median(runs.map((r) => r.loadMs)).toFixed(0)} | ${median(runs.map((r) => r.prefill)).toFixed(1)} | ${median(runs.map((r) => r.decode)).toFixed(1)} | ${runs[0].tokens} |`);
}
await server.close();

console.log(`SmolLM2-135M-Instruct Q4_1, prompt ${JSON.stringify(PROMPT)}, ${MAX_TOKENS} greedy tokens, median of ${RUNS} fresh browsers`);
console.log();
console.log("| engine | load ms | prefill tok/s | decode tok/s | tokens |");
console.log("|---|---|---|---|---|");
for (const r of rows) console.log(r);
console.log();
for (const [name, text] of texts) console.log(`${name}: ${JSON.stringify(text)}`);
