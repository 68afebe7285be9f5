// Runs a wasm32-wasip1 program (a cargo test binary) under Node's built-in WASI, so that
// `cargo test --target wasm32-wasip1` needs no other runtime. Cargo passes the .wasm path, then
// the test harness's arguments:
//
//   CARGO_TARGET_WASM32_WASIP1_RUNNER="node scripts/wasi-run.mjs" \
//     cargo test -p aether-core --target wasm32-wasip1 -- quant::simd
//
// (scripts/test-wasm-simd.sh sets that up, with simd128 enabled). The program sees the current
// directory as `.`; its exit code is the process's.
import { readFile } from 'node:fs/promises';
import process from 'node:process';
import { WASI } from 'node:wasi';

const [file, ...args] = process.argv.slice(2);
if (!file) {
  console.error('usage: node scripts/wasi-run.mjs PROGRAM.wasm [ARGS...]');
  process.exit(2);
}
const wasi = new WASI({
  version: 'preview1',
  args: [file, ...args],
  env: process.env,
  preopens: { '.': process.cwd() },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(file));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
