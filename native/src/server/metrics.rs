//! Prometheus metrics, kept in atomics so the engine thread and handlers update them without locks.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            if s <= *b {
                c.fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {}", c.load(Relaxed));
        }
        let n = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_us.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {n}");
    }
}

#[derive(Default)]
pub struct Metrics {
    /// Requests answered, by HTTP status.
    requests: Mutex<Vec<(u16, u64)>>,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    queued: AtomicU64,
    busy_slots: AtomicU64,
    /// Tokens held in the KV caches of busy slots, and what all slots hold at most.
    kv_tokens: AtomicU64,
    kv_capacity: AtomicU64,
    cancelled: AtomicU64,
    /// Forward steps of the pool, and the runs (sequences advanced) summed over them: their
    /// ratio is how many requests a step serves at once.
    steps: AtomicU64,
    step_runs: AtomicU64,
    ttft: Histogram,
    token_latency: Histogram,
}

impl Metrics {
    pub fn request(&self, status: u16) {
        let mut r = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        match r.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => r.push((status, 1)),
        }
    }

    pub fn queued(&self) {
        self.queued.fetch_add(1, Relaxed);
    }

    pub fn dequeued(&self) {
        let _ = self.queued.fetch_update(Relaxed, Relaxed, |q| q.checked_sub(1));
    }

    /// Requests waiting for a slot now.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Relaxed) as usize
    }

    pub fn cancelled(&self) {
        self.cancelled.fetch_add(1, Relaxed);
    }

    /// One forward step of the pool that advanced `runs` sequences.
    pub fn step(&self, runs: usize) {
        self.steps.fetch_add(1, Relaxed);
        self.step_runs.fetch_add(runs as u64, Relaxed);
    }

    pub fn set_busy_slots(&self, n: usize) {
        self.busy_slots.store(n as u64, Relaxed);
    }

    pub fn set_kv_tokens(&self, n: usize) {
        self.kv_tokens.store(n as u64, Relaxed);
    }

    pub fn set_kv_capacity(&self, n: usize) {
        self.kv_capacity.store(n as u64, Relaxed);
    }

    pub fn add_tokens(&self, prompt: usize, completion: usize) {
        self.prompt_tokens.fetch_add(prompt as u64, Relaxed);
        self.completion_tokens.fetch_add(completion as u64, Relaxed);
    }

    pub fn observe_ttft(&self, d: Duration) {
        self.ttft.observe(d);
    }

    pub fn observe_token_latency(&self, d: Duration) {
        self.token_latency.observe(d);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, parallel: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP aether_requests_total HTTP requests answered, by status.\n# TYPE aether_requests_total counter"
        );
        let mut r = self.requests.lock().unwrap_or_else(|p| p.into_inner()).clone();
        r.sort();
        for (status, n) in r {
            let _ = writeln!(out, "aether_requests_total{{status=\"{status}\"}} {n}");
        }
        let counters = [
            ("aether_prompt_tokens_total", "Prompt tokens processed.", &self.prompt_tokens),
            ("aether_completion_tokens_total", "Tokens generated.", &self.completion_tokens),
            ("aether_cancelled_total", "Requests dropped because the client went away.", &self.cancelled),
            ("aether_forward_steps_total", "Forward steps of the slot pool.", &self.steps),
            (
                "aether_forward_step_runs_total",
                "Sequences advanced, summed over the forward steps (per step: the batch).",
                &self.step_runs,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Relaxed));
        }
        let gauges = [
            ("aether_queue_depth", "Requests waiting for a slot.", self.queued.load(Relaxed)),
            ("aether_busy_slots", "Slots generating now.", self.busy_slots.load(Relaxed)),
            ("aether_slots", "Slots (--parallel).", parallel as u64),
            (
                "aether_kv_cache_tokens",
                "Tokens in the KV caches of busy slots.",
                self.kv_tokens.load(Relaxed),
            ),
            (
                "aether_kv_cache_capacity_tokens",
                "Tokens the KV caches of all slots hold (--parallel × context).",
                self.kv_capacity.load(Relaxed),
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let (used, cap) = (self.kv_tokens.load(Relaxed), self.kv_capacity.load(Relaxed));
        let ratio = if cap == 0 { 0.0 } else { used as f64 / cap as f64 };
        let name = "aether_kv_cache_usage_ratio";
        let _ = writeln!(
            out,
            "# HELP {name} Share of the KV cache capacity in use.\n# TYPE {name} gauge\n{name} {ratio}"
        );
        self.ttft.render(
            &mut out,
            "aether_time_to_first_token_seconds",
            "Time from queueing to the first token.",
        );
        self.token_latency.render(&mut out, "aether_token_latency_seconds", "Time between generated tokens.");
        out
    }
}
