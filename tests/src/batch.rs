//! Many sequences over one `BatchBackend`, driven the way the server's engine drives them: each
//! round, the pending tokens of every active sequence (prompt chunks of at most `chunk` tokens)
//! go into one `eval_batch`, each sequence takes its output, and those with nothing left pending
//! emit a token. Sequence i joins at round `i · stagger`, so its prompt is prefilled while the
//! others decode. The solo reference is a `Session` over a backend of its own.

use aether_core::session::{Backend, BatchBackend, GenerateParams, Run, Sequence, Session};
use aether_core::tokenizer::Tokenizer;

/// The text each prompt generates when all of them share `backend` (sequence i = prompt i).
pub fn generate_batched<B: BatchBackend>(
    backend: &mut B,
    tok: &Tokenizer,
    prompts: &[Vec<u32>],
    params: &GenerateParams,
    chunk: usize,
    stagger: usize,
) -> Vec<String> {
    let n = prompts.len();
    assert!(n <= backend.n_seq(), "{n} prompts for {} sequences", backend.n_seq());
    let mut seqs: Vec<Sequence<'_>> = (0..n).map(|_| Sequence::new(tok, backend.n_ctx())).collect();
    let (mut text, mut started, mut done) = (vec![String::new(); n], vec![false; n], vec![false; n]);
    for round in 0.. {
        for i in 0..n {
            if !started[i] && round >= i * stagger {
                let keep = seqs[i].begin(&prompts[i], params.clone(), backend.seq_len(i)).expect("begin");
                backend.seq_truncate(i, keep);
                started[i] = true;
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
        let runs: Vec<Run<'_>> = (0..n)
            .filter(|&i| started[i] && !done[i])
            .filter_map(|i| {
                let tokens = seqs[i].pending(chunk);
                (!tokens.is_empty()).then(|| Run { seq: i, tokens, want: seqs[i].want(tokens.len()) })
            })
            .collect();
        let evaluated: Vec<(usize, usize)> = runs.iter().map(|r| (r.seq, r.tokens.len())).collect();
        let out = pollster::block_on(backend.eval_batch(&runs)).expect("eval_batch");
        for (j, &(i, len)) in evaluated.iter().enumerate() {
            seqs[i].accept(len, out.get(j)).expect("accept");
        }
        for i in 0..n {
            if started[i] && !done[i] && seqs[i].pending(1).is_empty() {
                let step = seqs[i].emit().expect("emit");
                text[i] += &step.text;
                done[i] = step.finish.is_some();
            }
        }
    }
    text
}

/// The text `prompt` generates alone, through a `Session` over `backend`.
pub fn generate_solo<B: Backend>(
    backend: B,
    tok: &Tokenizer,
    prompt: &[u32],
    params: &GenerateParams,
) -> String {
    let mut s = Session::new(backend, tok);
    pollster::block_on(s.start(prompt, params.clone())).expect("start");
    let mut text = String::new();
    loop {
        let step = pollster::block_on(s.step()).expect("step");
        text += &step.text;
        if step.finish.is_some() {
            return text;
        }
    }
}
