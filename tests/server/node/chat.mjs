// One streaming chat through the official `openai` npm client against `aether serve` at
// $AETHER_URL: the chunks must add up to the non-streamed (greedy) answer, end with a
// finish_reason, and carry the usage. Prints the text; exits non-zero on any mismatch.
import OpenAI from "openai";

// Debian 12's node is 18, which lacks the global File the client expects (for uploads only).
globalThis.File ??= (await import("node:buffer")).File;

const url = process.env.AETHER_URL;
if (!url) throw new Error("set AETHER_URL");
const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 120_000 });
const request = {
  model: "SmolLM2-135M-Instruct.Q4_1",
  messages: [{ role: "user", content: "Name a fruit." }],
  max_tokens: 16,
  temperature: 0,
};

const whole = await client.chat.completions.create(request);
const want = whole.choices[0].message.content;

const stream = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
let text = "";
let finish = null;
let usage = null;
let chunks = 0;
for await (const chunk of stream) {
  chunks++;
  for (const c of chunk.choices) {
    text += c.delta?.content ?? "";
    finish = c.finish_reason ?? finish;
  }
  usage = chunk.usage ?? usage;
}

const fail = (msg) => {
  console.error(`node check failed: ${msg}`);
  process.exit(1);
};
if (text !== want) fail(`streamed ${JSON.stringify(text)} != non-streamed ${JSON.stringify(want)}`);
if (!["stop", "length"].includes(finish)) fail(`finish_reason ${finish}`);
if (!usage || usage.completion_tokens !== whole.usage.completion_tokens) fail(`usage ${JSON.stringify(usage)}`);
if (chunks < 3) fail(`only ${chunks} chunks`);
console.log(`node openai client: ${chunks} chunks, ${JSON.stringify(text)}, finish_reason ${finish}`);
