//! The engine thread: owns the model and a pool of `--parallel` sessions, each with its own KV
//! cache. HTTP handlers never run model code; they submit a [`Job`] over a bounded queue and
//! receive [`Event`]s over the job's own channel. A job whose receiver is gone (the client
//! disconnected) is dropped and its slot freed at the next step.
//!
//! Scheduling today: each round admits at most one queued job, evaluates at most
//! `PREFILL_CHUNK` prompt tokens of each prefilling slot, and advances every generating slot by
//! one token, so a long prompt never stalls the streams already running. Slots step one after another; advancing all of them in one batched forward
//! pass is the next step for throughput.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Instant;

use aether_core::gguf::Gguf;
use aether_core::model::Model;
use aether_core::session::{FinishReason, GenerateParams, Session};
use aether_core::tokenizer::Tokenizer;
use tokio::sync::mpsc::UnboundedSender;

use super::metrics::Metrics;
use crate::exec::Pool;
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
    pub threads: usize,
}

/// Starts the engine thread over an already-validated model file.
pub fn spawn(
    file: Arc<MappedFile>,
    tokenizer: Arc<Tokenizer>,
    cfg: EngineConfig,
    metrics: Arc<Metrics>,
) -> anyhow::Result<EngineHandle> {
    let (tx, rx) = std::sync::mpsc::sync_channel(cfg.max_queue.max(1));
    let pool = Pool::new(cfg.threads)?;
    std::thread::Builder::new().name("aether-engine".into()).spawn(move || {
        if let Err(e) = run(&file, &tokenizer, &cfg, &pool, &rx, &metrics) {
            eprintln!("engine stopped: {e:#}");
        }
    })?;
    Ok(EngineHandle { queue: tx })
}

/// Prompt tokens a slot evaluates per round while others decode.
const PREFILL_CHUNK: usize = 128;

struct Slot<'m, 'a> {
    session: Session<'m, 'a>,
    job: Option<Job>,
    /// The prompt is not fully evaluated yet.
    prefilling: bool,
    first_token_at: Option<Instant>,
    last_token_at: Instant,
}

fn run(
    file: &MappedFile,
    tokenizer: &Tokenizer,
    cfg: &EngineConfig,
    pool: &Pool,
    rx: &Receiver<Job>,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let g = Gguf::parse(file.bytes())?;
    let model = Model::from_gguf(&g)?;
    let mut slots: Vec<Slot<'_, '_>> = (0..cfg.parallel.max(1))
        .map(|_| Slot {
            session: Session::new(&model, tokenizer, cfg.n_ctx),
            job: None,
            prefilling: false,
            first_token_at: None,
            last_token_at: Instant::now(),
        })
        .collect();
    loop {
        // Admit one queued job per round into a free slot (so running streams keep flowing while
        // prompts are prefilled); block only when nothing is running.
        let busy = slots.iter().filter(|s| s.job.is_some()).count();
        metrics.set_busy_slots(busy);
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
                match slot.session.prefill(PREFILL_CHUNK, pool) {
                    Ok(done) => slot.prefilling = !done,
                    Err(e) => {
                        let _ = job.events.send(Event::Error(e.to_string()));
                        slot.job = None;
                    }
                }
                continue;
            }
            match slot.session.step(pool) {
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
