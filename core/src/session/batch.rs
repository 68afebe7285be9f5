//! Many sequences through one copy of the weights: a [`BatchBackend`] holds `n_seq` KV regions of
//! `n_ctx` positions each and evaluates a batch of [`Run`]s — each some tokens appended to one
//! sequence — in one forward pass, so every matrix is read once for all of them. A server's
//! round is such a batch: one token of every decoding sequence plus a bounded chunk of each
//! prompt being prefilled.
//!
//! Inside a backend a forward pass takes at most `max_batch` tokens, so [`BatchPlan::plan`] cuts
//! the runs into consecutive batches ([`Piece`]s of runs), after checking all of them first: a
//! rejected batch leaves every cache as it was. Each token carries its own (sequence, position);
//! a run's output is taken at its last token. A single-sequence [`Backend`] is the special case
//! of one sequence: the CPU and GPU backends implement it as sequence 0 of their pool, through
//! the same code.

use super::{Backend, Output, Want};
use crate::error::{Error, Result};

/// Tokens appended to sequence `seq`'s cache, at the positions after those it holds; `want`
/// says what to return for the last of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run<'t> {
    pub seq: usize,
    pub tokens: &'t [u32],
    pub want: Want,
}

/// A batched evaluation's results, one per run, as each asked.
#[derive(Clone, Copy, Debug)]
pub struct Outputs<'a> {
    /// Per run: what it asked for and its row in `logits` / `argmax`.
    rows: &'a [(Want, usize)],
    /// [outputs, n_vocab] (rows of runs that asked for logits are valid)
    logits: &'a [f32],
    /// [outputs] (rows of runs that asked for the argmax or a sample are valid)
    argmax: &'a [u32],
    n_vocab: usize,
}

impl<'a> Outputs<'a> {
    pub fn new(rows: &'a [(Want, usize)], logits: &'a [f32], argmax: &'a [u32], n_vocab: usize) -> Self {
        Outputs { rows, logits, argmax, n_vocab }
    }

    /// Runs evaluated.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Run `run`'s output (`Nothing` past the last run).
    pub fn get(&self, run: usize) -> Output<'a> {
        let n = self.n_vocab;
        match self.rows.get(run) {
            Some(&(Want::Logits, row)) => {
                Output::Logits(self.logits.get(row * n..(row + 1) * n).unwrap_or(&[]))
            }
            Some(&(Want::Argmax, row)) => Output::Argmax(self.argmax.get(row).copied().unwrap_or(0)),
            Some(&(Want::Sample(_), row)) => Output::Sampled(self.argmax.get(row).copied().unwrap_or(0)),
            _ => Output::Nothing,
        }
    }
}

/// A pool of sequences over one model, evaluated together. As a [`Backend`] it is sequence 0.
// Hosts block on the future or await it on one thread, as for `Backend`.
#[allow(async_fn_in_trait)]
pub trait BatchBackend: Backend {
    /// Sequences in the pool (each a KV region of [`Backend::n_ctx`] positions).
    fn n_seq(&self) -> usize;
    /// Tokens in sequence `seq`'s cache (0 past the last sequence).
    fn seq_len(&self, seq: usize) -> usize;
    /// Forgets sequence `seq`'s cached tokens from position `n` on.
    fn seq_truncate(&mut self, seq: usize, n: usize);
    /// Appends every run's tokens to its sequence in one forward pass (several when they hold more
    /// tokens than the backend's batch), and returns each run's output. The runs name distinct
    /// sequences; nothing is evaluated if any run is invalid (sequence out of range or repeated,
    /// context full, token out of the vocabulary).
    async fn eval_batch(&mut self, runs: &[Run<'_>]) -> Result<Outputs<'_>>;
}

/// A run's tokens inside one forward batch: all of them, or one of the pieces a run longer than
/// the space left in a batch is cut into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// The run's index.
    pub run: usize,
    pub seq: usize,
    /// Position of the piece's first token in its sequence.
    pub pos0: usize,
    /// The piece's tokens: `run.tokens[start..end]`.
    pub start: usize,
    pub end: usize,
    /// The output row the piece's last token fills (its run's last piece, and the run wants an
    /// output).
    pub output: Option<usize>,
}

impl Piece {
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// The shape of the pool [`BatchPlan::plan`] checks runs against.
#[derive(Clone, Copy, Debug)]
pub struct Pool<'s> {
    pub n_seq: usize,
    pub n_ctx: usize,
    pub n_vocab: usize,
    /// Tokens each sequence holds: [n_seq].
    pub seq_len: &'s [usize],
    /// Most tokens in one forward batch.
    pub max_batch: usize,
}

/// The forward batches of an evaluation: per run its want and output row, and the pieces of each
/// batch (reused between evaluations).
#[derive(Clone, Debug, Default)]
pub struct BatchPlan {
    /// Per run: what it asked for and its output row (rows count the runs that want an output, in
    /// order; `Nothing` for a run without tokens).
    pub rows: Vec<(Want, usize)>,
    /// Every batch's pieces, batch after batch.
    pub pieces: Vec<Piece>,
    /// Where each batch's pieces end in `pieces`.
    pub ends: Vec<usize>,
}

impl BatchPlan {
    /// Checks `runs` against `pool` and cuts them into forward batches of at most
    /// `pool.max_batch` tokens. On an error the plan is empty: nothing must be evaluated.
    pub fn plan(&mut self, runs: &[Run<'_>], pool: Pool<'_>) -> Result<()> {
        self.rows.clear();
        self.pieces.clear();
        self.ends.clear();
        for (i, r) in runs.iter().enumerate() {
            if r.seq >= pool.n_seq || r.seq >= pool.seq_len.len() {
                return Err(Error::SeqOutOfRange { seq: r.seq, n_seq: pool.n_seq });
            }
            if runs[..i].iter().any(|o| o.seq == r.seq) {
                return Err(Error::SeqTwiceInBatch { seq: r.seq });
            }
            if pool.seq_len[r.seq] + r.tokens.len() > pool.n_ctx {
                return Err(Error::ContextFull { n_ctx: pool.n_ctx });
            }
            if let Some(&id) = r.tokens.iter().find(|&&t| t as usize >= pool.n_vocab) {
                return Err(Error::TokenOutOfRange { id, n_vocab: pool.n_vocab });
            }
        }
        let mut n_out = 0;
        for r in runs {
            let want = if r.tokens.is_empty() { Want::Nothing } else { r.want };
            self.rows.push((want, n_out));
            n_out += (want != Want::Nothing) as usize;
        }
        let max = pool.max_batch.max(1);
        let mut filled = 0;
        for (i, r) in runs.iter().enumerate() {
            let mut start = 0;
            while start < r.tokens.len() {
                let end = r.tokens.len().min(start + max - filled);
                let (want, row) = self.rows[i];
                let output = (end == r.tokens.len() && want != Want::Nothing).then_some(row);
                let pos0 = pool.seq_len[r.seq] + start;
                self.pieces.push(Piece { run: i, seq: r.seq, pos0, start, end, output });
                filled += end - start;
                start = end;
                if filled == max {
                    self.ends.push(self.pieces.len());
                    filled = 0;
                }
            }
        }
        if filled > 0 {
            self.ends.push(self.pieces.len());
        }
        Ok(())
    }

    /// The pieces of forward batch `i` (empty past the last).
    pub fn batch(&self, i: usize) -> &[Piece] {
        let start = if i == 0 { 0 } else { self.ends.get(i - 1).copied().unwrap_or(0) };
        let end = self.ends.get(i).copied().unwrap_or(start);
        &self.pieces[start..end]
    }

    /// Forward batches.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(runs: &[Run<'_>], seq_len: &[usize], max_batch: usize) -> Result<Vec<Vec<Piece>>> {
        let pool = Pool { n_seq: seq_len.len(), n_ctx: 16, n_vocab: 100, seq_len, max_batch };
        let mut plan = BatchPlan::default();
        plan.plan(runs, pool)?;
        Ok((0..plan.len()).map(|i| plan.batch(i).to_vec()).collect())
    }

    #[test]
    fn runs_are_cut_at_the_batch_size_and_outputs_counted_in_order() {
        let (a, b, c) = ([1, 2, 3, 4, 5], [6], [7, 8, 9]);
        let runs = [
            Run { seq: 2, tokens: &a, want: Want::Nothing },
            Run { seq: 0, tokens: &b, want: Want::Argmax },
            Run { seq: 1, tokens: &c, want: Want::Logits },
        ];
        let got = plan(&runs, &[4, 0, 1], 4).unwrap();
        let p = |run, seq, pos0, start, end, output| Piece { run, seq, pos0, start, end, output };
        assert_eq!(
            got,
            vec![
                vec![p(0, 2, 1, 0, 4, None)],
                vec![p(0, 2, 5, 4, 5, None), p(1, 0, 4, 0, 1, Some(0)), p(2, 1, 0, 0, 2, None)],
                vec![p(2, 1, 2, 2, 3, Some(1))],
            ]
        );
    }

    #[test]
    fn an_invalid_run_evaluates_nothing() {
        let t = [1u32];
        let run = |seq, tokens| Run { seq, tokens, want: Want::Argmax };
        let err = |runs: &[Run<'_>], lens: &[usize]| plan(runs, lens, 8).unwrap_err().to_string();
        assert!(err(&[run(0, &t), run(3, &t)], &[0, 0]).contains("out of range"));
        assert!(err(&[run(1, &t), run(1, &t)], &[0, 0]).contains("twice"));
        assert!(err(&[run(0, &t), run(1, &t)], &[0, 16]).contains("full"));
        assert!(err(&[run(0, &[100])], &[0]).contains("token id 100"));
    }
}
