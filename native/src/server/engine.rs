//! The engine thread: owns the model and one backend holding a pool of `--parallel` sequences
//! (a KV region each, one copy of the weights), and a slot per sequence with its generation state
//! ([`Sequence`]). HTTP handlers never run model code; they submit a [`Job`] over a bounded queue
//! and receive [`Event`]s over the job's own channel. A job whose receiver is gone (the client
//! disconnected) is dropped and its slot freed before the next round.
//!
//! Continuous batching: each round admits queued jobs into free slots (blocking only when
//! nothing runs), then evaluates ONE batch ([`BatchBackend::eval_batch`], one forward pass): the
//! pending token of every generating slot, plus prompt chunks of the prefilling slots, oldest
//! first, up to `PREFILL_CHUNK` prompt tokens per round, so a long prompt never stalls the streams
//! already running. Every slot then takes its output, and each that has a token ready (a stream's
//! next, or the first after its prompt) sends its text. A free slot is chosen for the longest
//! prefix its cache shares with the prompt, which it keeps.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Instant;

use aether_core::gguf::Gguf;
use aether_core::model::Model;
use aether_core::session::{
    AnyBackend, BatchBackend, FinishReason, GenerateParams, Run, Sequence, TokenLogprobs,
};
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

/// Prompt tokens evaluated per round, across the prefilling slots, beside the decode tokens.
const PREFILL_CHUNK: usize = 128;

struct Slot<'m> {
    seq: Sequence<'m>,
    job: Option<Job>,
    /// Admission order: the oldest prompt is prefilled first.
    admitted: u64,
    first_token_at: Option<Instant>,
    last_token_at: Instant,
}

impl Slot<'_> {
    /// Ends the slot's job with an error.
    fn fail(&mut self, e: impl std::fmt::Display) {
        if let Some(job) = self.job.take() {
            let _ = job.events.send(Event::Error(e.to_string()));
        }
    }
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
    let n_slots = cfg.parallel.max(1);
    let mut backend = backends.pool(&model, cfg.n_ctx, n_slots, n_slots + PREFILL_CHUNK)?;
    let mut slots: Vec<Slot<'_>> = (0..n_slots)
        .map(|_| Slot {
            seq: Sequence::new(tokenizer, cfg.n_ctx),
            job: None,
            admitted: 0,
            first_token_at: None,
            last_token_at: Instant::now(),
        })
        .collect();
    let _ = started.send(Ok(()));
    let mut admitted = 0u64;
    loop {
        for slot in slots.iter_mut() {
            if slot.job.as_ref().is_some_and(|j| j.events.is_closed()) {
                metrics.cancelled();
                slot.job = None;
            }
        }
        let busy = slots.iter().filter(|s| s.job.is_some()).count();
        metrics.set_busy_slots(busy);
        // Cache use: the positions the busy slots hold.
        let kv: usize = slots.iter().filter(|s| s.job.is_some()).map(|s| s.seq.n_past()).sum();
        metrics.set_kv_tokens(kv);
        // Admit queued jobs while slots are free; block only when nothing is running.
        let mut first = busy == 0;
        while slots.iter().any(|s| s.job.is_none()) {
            let next = if first {
                match rx.recv() {
                    Ok(job) => Some(job),
                    Err(_) => return Ok(()), // the server is gone
                }
            } else {
                rx.try_recv().ok()
            };
            let Some(job) = next else { break };
            first = false;
            metrics.dequeued();
            if job.events.is_closed() {
                metrics.cancelled();
                continue;
            }
            admitted += 1;
            admit(&mut slots, &mut backend, job, admitted);
        }
        metrics.set_busy_slots(slots.iter().filter(|s| s.job.is_some()).count());

        // The round: every generating slot's token, then prompt chunks oldest first.
        let mut order: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].job.is_some()).collect();
        order.sort_by_key(|&i| (slots[i].seq.is_prefilling(), slots[i].admitted));
        let mut budget = PREFILL_CHUNK;
        let mut runs: Vec<Run<'_>> = Vec::with_capacity(order.len());
        for &i in &order {
            let seq = &slots[i].seq;
            let tokens = if seq.is_prefilling() { seq.pending(budget) } else { seq.pending(1) };
            if tokens.is_empty() || (seq.is_prefilling() && budget == 0) {
                continue;
            }
            if seq.is_prefilling() {
                budget -= tokens.len();
            }
            runs.push(Run { seq: i, tokens, want: seq.want(tokens.len()) });
        }
        let evaluated: Vec<(usize, usize)> = runs.iter().map(|r| (r.seq, r.tokens.len())).collect();
        if !runs.is_empty() {
            metrics.step(runs.len());
            match block_on(backend.eval_batch(&runs)) {
                Ok(out) => {
                    for (j, &(i, n)) in evaluated.iter().enumerate() {
                        if let Err(e) = slots[i].seq.accept(n, out.get(j)) {
                            slots[i].fail(e);
                        }
                    }
                }
                Err(e) => {
                    for &(i, _) in &evaluated {
                        slots[i].fail(&e);
                    }
                }
            }
        }

        for slot in slots.iter_mut() {
            if slot.job.is_none() || !slot.seq.pending(1).is_empty() {
                continue;
            }
            match slot.seq.emit() {
                Ok(step) => {
                    let Some(job) = &slot.job else { continue };
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
                        let (p, c) = (slot.seq.n_prompt(), slot.seq.n_generated());
                        metrics.add_tokens(p, c);
                        let _ =
                            job.events.send(Event::Done { finish, prompt_tokens: p, completion_tokens: c });
                        slot.job = None;
                    }
                }
                Err(e) => slot.fail(e),
            }
        }
    }
}

/// Puts `job` in the free slot whose cache shares the longest prefix with its prompt, keeping that
/// prefix; a prompt the slot refuses (empty, longer than the context) gets an error instead.
fn admit<'m>(slots: &mut [Slot<'m>], backend: &mut AnyBackend<'m>, job: Job, order: u64) {
    let shared = |s: &Slot<'_>| {
        let cached = &s.seq.tokens()[..s.seq.n_past().min(s.seq.tokens().len())];
        cached.iter().zip(&job.prompt).take_while(|(a, b)| a == b).count()
    };
    let free = (0..slots.len())
        .filter(|&i| slots[i].job.is_none())
        .max_by_key(|&i| (shared(&slots[i]), usize::MAX - i));
    let Some(i) = free else { return };
    let slot = &mut slots[i];
    match slot.seq.begin(&job.prompt, job.params.clone(), backend.seq_len(i)) {
        Ok(keep) => {
            backend.seq_truncate(i, keep);
            slot.job = Some(job);
            slot.admitted = order;
            slot.first_token_at = None;
            slot.last_token_at = Instant::now();
        }
        Err(e) => {
            let _ = job.events.send(Event::Error(e.to_string()));
        }
    }
}
