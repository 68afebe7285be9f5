//! The engine thread: owns the model and a pool of `--parallel` sessions, each with its own KV
//! cache and backend (on the GPU, all sharing the one copy of the weights). HTTP handlers never run model code; they submit a [`Job`] over a bounded queue and
//! receive [`Event`]s over the job's own channel. A job whose receiver is gone (the client
//! disconnected) is dropped and its slot freed at the next step.
//!
//! Scheduling today: each round admits at most one queued job, evaluates at most
//! `PREFILL_CHUNK` prompt tokens of each prefilling slot, and advances every generating slot by
//! one token, so a long prompt never stalls the streams already running. Slots step one after
//! another; advancing all of them in one batched forward pass is the next step for throughput.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Instant;

use aether_core::gguf::Gguf;
use aether_core::model::Model;
use aether_core::session::{AnyBackend, Backend, FinishReason, GenerateParams, Session, TokenLogprobs};
use aether_core::tokenizer::Tokenizer;
use pollster::block_on;
use tokio::sync::mpsc::UnboundedSender;

use super::metrics::Metrics;
use crate::backend::Backends;
use crate::model_file::MappedFile;

/// A generation request, already tokenized.
pub struct Job {
    pub prompt: Vec<u32>,
    pub params: GenerateParams,
    pub events: UnboundedSender<Event>,
    pub queued_at: Instant,
}

#[derive(Debug)]
pub enum Event {
    /// Text released by one step (may be empty while a stop string or a character is pending).
    Text(String),
    /// A generated token's log-probabilities (when the job asked), sent before its text.
    Logprobs(TokenLogprobs),
    Done {
        finish: FinishReason,
        prompt_tokens: usize,
        completion_tokens: usize,
    },
    Error(String),
}

#[derive(Debug)]
pub struct QueueFull;

/// The HTTP side's handle: submit jobs without blocking.
#[derive(Clone)]
pub struct EngineHandle {
    queue: SyncSender<Job>,
}

impl EngineHandle {
    /// Queues a job; `Err` when the queue is full (or the engine is gone).
    pub fn submit(&self, job: Job) -> Result<(), QueueFull> {
        self.queue.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) | TrySendError::Disconnected(_) => QueueFull,
        })
    }
}

pub struct EngineConfig {
    pub parallel: usize,
    pub n_ctx: usize,
    pub max_queue: usize,
}

/// Starts the engine thread over an already-validated model file, readied on its device, and
/// returns once every slot's backend exists (or with the error that prevented it).
pub fn spawn(
    file: Arc<MappedFile>,
    tokenizer: Arc<Tokenizer>,
    backends: Backends,
    cfg: EngineConfig,
    metrics: Arc<Metrics>,
) -> anyhow::Result<EngineHandle> {
    let (tx, rx) = std::sync::mpsc::sync_channel(cfg.max_queue.max(1));
    let (started_tx, started) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new().name("aether-engine".into()).spawn(move || {
        if let Err(e) = run(&file, &tokenizer, &backends, &cfg, &rx, &metrics, &started_tx) {
            // Before start-up completed, `spawn` reports the error; after, only this line can.
            if let Err(TrySendError::Full(Err(e)) | TrySendError::Disconnected(Err(e))) =
                started_tx.try_send(Err(e))
            {
                eprintln!("engine stopped: {e:#}");
            }
        }
    })?;
    started.recv().unwrap_or_else(|_| Err(anyhow::anyhow!("the engine thread ended while starting")))?;
    Ok(EngineHandle { queue: tx })
}

/// Prompt tokens a slot evaluates per round while others decode.
const PREFILL_CHUNK: usize = 128;

struct Slot<'m> {
    session: Session<'m, AnyBackend<'m>>,
    job: Option<Job>,
    /// The prompt is not fully evaluated yet.
    prefilling: bool,
    first_token_at: Option<Instant>,
    last_token_at: Instant,
}

fn run(
    file: &MappedFile,
    tokenizer: &Tokenizer,
    backends: &Backends,
    cfg: &EngineConfig,
    rx: &Receiver<Job>,
    metrics: &Metrics,
    started: &SyncSender<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let g = Gguf::parse(file.bytes())?;
    let model = Model::from_gguf(&g)?;
    let mut slots = (0..cfg.parallel.max(1))
        .map(|_| {
            Ok(Slot {
                session: Session::new(backends.backend(&model, cfg.n_ctx, PREFILL_CHUNK)?, tokenizer),
                job: None,
                prefilling: false,
                first_token_at: None,
                last_token_at: Instant::now(),
            })
        })
        .collect::<anyhow::Result<Vec<Slot<'_>>>>()?;
    let _ = started.send(Ok(()));
    loop {
        // Admit one queued job per round into a free slot (so running streams keep flowing while
        // prompts are prefilled); block only when nothing is running.
        let busy = slots.iter().filter(|s| s.job.is_some()).count();
        metrics.set_busy_slots(busy);
        let kv: usize = slots.iter().filter(|s| s.job.is_some()).map(|s| s.session.backend().n_past()).sum();
        metrics.set_kv_tokens(kv);
        if busy < slots.len() {
            let next = if busy == 0 {
                match rx.recv() {
                    Ok(job) => Some(job),
                    Err(_) => return Ok(()), // the server is gone
                }
            } else {
                rx.try_recv().ok()
            };
            if let (Some(job), Some(slot)) = (next, slots.iter_mut().find(|s| s.job.is_none())) {
                metrics.dequeued();
                if job.events.is_closed() {
                    metrics.cancelled();
                } else {
                    match slot.session.begin(&job.prompt, job.params.clone()) {
                        Ok(_) => {
                            slot.job = Some(job);
                            slot.prefilling = true;
                            slot.first_token_at = None;
                            slot.last_token_at = Instant::now();
                        }
                        Err(e) => {
                            let _ = job.events.send(Event::Error(e.to_string()));
                        }
                    }
                }
            }
        }

        for slot in slots.iter_mut() {
            let Some(job) = &slot.job else { continue };
            if job.events.is_closed() {
                metrics.cancelled();
                slot.job = None;
                continue;
            }
            if slot.prefilling {
                match block_on(slot.session.prefill(PREFILL_CHUNK)) {
                    Ok(done) => slot.prefilling = !done,
                    Err(e) => {
                        let _ = job.events.send(Event::Error(e.to_string()));
                        slot.job = None;
                    }
                }
                continue;
            }
            match block_on(slot.session.step()) {
                Ok(step) => {
                    let now = Instant::now();
                    match slot.first_token_at {
                        None => {
                            metrics.observe_ttft(now - job.queued_at);
                            slot.first_token_at = Some(now);
                        }
                        Some(_) => metrics.observe_token_latency(now - slot.last_token_at),
                    }
                    slot.last_token_at = now;
                    if let Some(lp) = step.logprobs {
                        let _ = job.events.send(Event::Logprobs(lp));
                    }
                    if !step.text.is_empty() {
                        let _ = job.events.send(Event::Text(step.text));
                    }
                    if let Some(finish) = step.finish {
                        let (p, c) = (slot.session.n_prompt(), slot.session.n_generated());
                        metrics.add_tokens(p, c);
                        let _ =
                            job.events.send(Event::Done { finish, prompt_tokens: p, completion_tokens: c });
                        slot.job = None;
                    }
                }
                Err(e) => {
                    let _ = job.events.send(Event::Error(e.to_string()));
                    slot.job = None;
                }
            }
        }
    }
}
