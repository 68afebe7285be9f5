// Types for aether-llm (index.js). Request and response shapes follow OpenAI's chat/text
// completions API, with the fields `aether serve` takes.

export type Role = "system" | "user" | "assistant" | (string & {});

export interface ChatMessage {
  role: Role;
  content: string | Array<{ type: "text"; text: string }>;
}

/** Sampling and length fields shared by both endpoints (the server's set and ranges). */
export interface GenerationOptions {
  stream?: boolean;
  /** Default 512. */
  max_tokens?: number;
  max_completion_tokens?: number;
  /** 0 to 2; 0 is greedy. Default 0.8. */
  temperature?: number;
  /** 0 to 1. Default 0.95. */
  top_p?: number;
  /** 0 disables. Default 40. */
  top_k?: number;
  /** 0 to 1. Default 0.05. */
  min_p?: number;
  /** 0 to 10; 1 disables. */
  repeat_penalty?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  seed?: number;
  /** Up to 16 strings; the text stops before the first match. */
  stop?: string | string[];
  /** Token id (as a string) → bias in -100..100. */
  logit_bias?: Record<string, number>;
  /** Only 1. */
  n?: number;
  ignore_eos?: boolean;
  /** Ignored (one model per engine). */
  model?: string;
  signal?: AbortSignal;
}

export interface ChatCompletionRequest extends GenerationOptions {
  messages: ChatMessage[];
}

export interface CompletionRequest extends GenerationOptions {
  prompt: string | [string];
}

export type FinishReason = "stop" | "length";

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** Non-standard, as llama.cpp's server reports them. */
export interface Timings {
  prompt_ms: number;
  predicted_ms: number;
  prompt_per_second: number;
  predicted_per_second: number;
}

interface Base {
  id: string;
  created: number;
  model: string;
}

export interface ChatCompletion extends Base {
  object: "chat.completion";
  choices: Array<{
    index: 0;
    message: { role: "assistant"; content: string };
    finish_reason: FinishReason;
    logprobs: null;
  }>;
  usage: Usage;
  timings: Timings;
}

export interface ChatCompletionChunk extends Base {
  object: "chat.completion.chunk";
  choices: Array<{
    index: 0;
    delta: { role?: "assistant"; content?: string };
    finish_reason: FinishReason | null;
    logprobs: null;
  }>;
  /** On the last chunk only. */
  usage?: Usage;
  timings?: Timings;
}

export interface Completion extends Base {
  object: "text_completion";
  choices: Array<{ index: 0; text: string; finish_reason: FinishReason | null; logprobs: null }>;
  /** On the response, or the last chunk of a stream. */
  usage?: Usage;
  timings?: Timings;
}

export declare class Stream<T> implements AsyncIterable<T> {
  [Symbol.asyncIterator](): AsyncIterator<T>;
  /** Cancels the request; the iterator then throws an AbortError. */
  abort(): void;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

/** "resume" (a dropped connection picked up again, with `attempt` and `error`) comes between "download" events. */
export type LoadPhase = "download" | "resume" | "cache" | "file" | "build" | "ready";

export interface LoadProgress {
  phase: LoadPhase;
  /** Bytes so far (of the model file). */
  loaded: number;
  total: number;
  /** 0 to 1, never decreasing; 1 on the final "ready" event. */
  progress: number;
}

export interface LoadOptions {
  onProgress?: (p: LoadProgress) => void;
  /** Context size in tokens; default: the model's, capped at 4096. */
  contextSize?: number;
  /** Expected SHA-256 (hex) of the file: checked on download and on cache reads. */
  sha256?: string;
  /** Store the file in the Cache API (default true); "required" fails when the quota is short. */
  cache?: boolean | "required";
  /** Cache API cache name (default "aether-llm-models"). */
  cacheName?: string;
  /** Resume attempts after a failed connection (default 5). */
  retries?: number;
  /**
   * "auto" (default): WebGPU on a hardware adapter, else the CPU engine in wasm (also when the
   * only adapter is a software fallback); "gpu" fails with WebGPUUnavailableError where the
   * WebGPU engine cannot run; "cpu" never uses WebGPU.
   */
  device?: "auto" | "cpu" | "gpu";
  /**
   * The WebGPU engine's arithmetic. "exact": the CPU engine's, in its order, so the logits (and
   * the greedy text) are the CPU engine's and `aether run --cpu`'s bit for bit, whatever the
   * adapter; slower on a real GPU (one token a step; Q4_0, Q4_1 and Q8_0 llama, Qwen 2 and Phi-3 models,
   * others fail with UnsupportedModelError). "fast": the default kernels, which sum in the
   * GPU's own order. "auto" (default): exact on a software adapter, where it runs as fast,
   * fast elsewhere.
   */
  numerics?: "auto" | "exact" | "fast";
  signal?: AbortSignal;
  /** Where worker.js is served, when a bundler moves it. */
  workerUrl?: string | URL;
}

export interface ModelInfo {
  model: string;
  name: string;
  architecture: string;
  backend: "cpu" | "webgpu";
  /** The logits are the CPU reference's bit for bit (the CPU engine, or exact numerics). */
  exact: boolean;
  fileBytes: number;
  tensors: number;
  contextSize: number;
  trainedContextSize: number;
  vocabSize: number;
  layers: number;
  embeddingSize: number;
  chatTemplate: boolean;
  /** "hit", "stored", "off", or why the file was not stored / a stored copy was rejected. */
  cache: string;
  /** Range requests the download needed. */
  resumes: number;
  /**
   * The worker's wasm memory once loaded: the load's peak, as wasm memory never shrinks (the CPU
   * engine holds the file and the KV cache there; the WebGPU engine only chunks in flight).
   */
  wasmMemoryBytes: number;
  engine: { version: string; backends: string[]; gpu: boolean; architectures: string[] };
}

export interface Capabilities {
  webgpu: boolean;
  adapter: {
    vendor: string;
    architecture: string;
    device: string;
    description: string;
    isFallbackAdapter: boolean;
  } | null;
  features: string[];
  limits: Record<string, number>;
  shaderF16: boolean;
  subgroups: boolean;
  /** Whether this build carries the WebGPU engine. */
  gpuEngine: boolean;
  /** Where Engine.load would run the model. */
  backend: "cpu" | "webgpu";
  /** Why WebGPU is not used, when it is not. */
  reason: string | null;
}

export interface RemoteOptions {
  /** Sent as `Authorization: Bearer …` (the server's --api-key). */
  apiKey?: string;
  signal?: AbortSignal;
}

/** The completion API of an engine, local or remote. */
interface Completions {
  readonly chat: {
    completions: {
      create(req: ChatCompletionRequest & { stream: true }, opts?: RequestOptions): Promise<Stream<ChatCompletionChunk>>;
      create(req: ChatCompletionRequest & { stream?: false }, opts?: RequestOptions): Promise<ChatCompletion>;
    };
  };
  readonly completions: {
    create(req: CompletionRequest & { stream: true }, opts?: RequestOptions): Promise<Stream<Completion>>;
    create(req: CompletionRequest & { stream?: false }, opts?: RequestOptions): Promise<Completion>;
  };
}

/**
 * `Engine.remote(baseUrl)`: the same requests and responses over an `aether serve` endpoint
 * (responses are the server's JSON, with its extra fields such as `logprobs` when asked for).
 */
export declare class RemoteEngine implements Completions {
  readonly info: { model: string; backend: "remote"; baseUrl: string };
  readonly chat: Completions["chat"];
  readonly completions: Completions["completions"];
  /** Cancels the requests in flight; later requests reject. */
  unload(): void;
}

export declare class Engine implements Completions {
  static load(source: string | URL | Blob, options?: LoadOptions): Promise<Engine>;
  /** Connects to `baseUrl` (e.g. "http://127.0.0.1:8080", with or without "/v1"). */
  static remote(baseUrl: string | URL, options?: RemoteOptions): Promise<RemoteEngine>;
  static capabilities(): Promise<Capabilities>;
  readonly info: ModelInfo;
  readonly chat: Completions["chat"];
  readonly completions: Completions["completions"];
  /** Terminates the worker, freeing its memory; pending requests reject. */
  unload(): void;
  /** Test hooks, not API: "stats" (the worker's wasm memory size), "loseDevice". */
  _debug(op: "stats" | "loseDevice"): Promise<{ wasmMemoryBytes: number }>;
}

export declare class AetherError extends Error {
  /** Remote engines: the HTTP status (0: the server could not be reached). */
  status?: number;
  /** Remote engines: the server's OpenAI error object. */
  error?: { message: string; type: string; param: string | null; code: string | null } | null;
  /** Remote engines: seconds from a 429's Retry-After. */
  retryAfter?: number | null;
}
export declare class WebGPUUnavailableError extends AetherError {}
export declare class ModelFormatError extends AetherError {}
export declare class UnsupportedModelError extends AetherError {}
export declare class DownloadError extends AetherError {}
export declare class OutOfMemoryError extends AetherError {}
export declare class DeviceLostError extends AetherError {}
export declare class InvalidRequestError extends AetherError {}
export declare class RemoteError extends AetherError {}
