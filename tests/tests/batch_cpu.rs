//! The CPU pool of sequences (`CpuBackend::with_seqs` as a `BatchBackend`) against each sequence
//! alone, on the default model:
//! - logits: four sequences advanced together in rounds — one decoding a token per round while
//!   others prefill chunks of 2 to 7 tokens, one joining late, some runs wanting no output, one
//!   the argmax — give, bit for bit, the logits of each sequence evaluated alone one token at a
//!   time; also with a forward batch of 6 tokens, so runs are cut across forward passes;
//! - text: four prompts generated together (prefill chunks interleaved with decode, staggered
//!   starts) give the same text as each alone, greedy and with a seeded sampler.
//!
//! The CPU computes every token's values the same way whatever the batch (projections row by
//! row, rope at the token's position, attention over its own sequence's cache), so nothing less
//! than bit-equality is accepted.

use aether_core::cpu::Serial;
use aether_core::gguf::Gguf;
use aether_core::model::Model;
use aether_core::sample::SamplingParams;
use aether_core::session::{Backend, BatchBackend, CpuBackend, GenerateParams, Output, Run, Want};
use aether_core::tokenizer::Tokenizer;
use aether_tests::batch::{generate_batched, generate_solo};
use aether_tests::default_model_bytes;
use aether_tests::logits::argmax;

const PROMPTS: [&str; 4] = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea, there lived",
    "def fibonacci(n):",
    "1, 2, 3, 4,",
];

/// Per sequence, the tokens each round evaluates (cycled), and the round it joins.
const CHUNKS: [(&[usize], usize); 4] = [(&[1], 0), (&[5, 2], 0), (&[3, 2, 1], 0), (&[7, 1], 2)];

/// The logits after each of `tokens`, evaluated one at a time on a backend of their own.
fn solo_logits(model: &Model<'_>, tokens: &[u32]) -> Vec<Vec<f32>> {
    let mut b = CpuBackend::new(model, 64, &Serial);
    tokens
        .iter()
        .map(|&t| match pollster::block_on(b.eval(&[t], Want::Logits)).expect("eval") {
            Output::Logits(l) => l.to_vec(),
            other => panic!("asked for logits, got {other:?}"),
        })
        .collect()
}

fn first_difference(got: &[f32], want: &[f32]) -> Option<(usize, f32, f32)> {
    if got.len() != want.len() {
        return Some((usize::MAX, got.len() as f32, want.len() as f32));
    }
    got.iter()
        .zip(want)
        .enumerate()
        .find(|(_, (g, w))| g.to_bits() != w.to_bits())
        .map(|(i, (g, w))| (i, *g, *w))
}

#[test]
fn batched_logits_are_bit_identical_to_each_sequence_alone() {
    let bytes = default_model_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    let model = Model::from_gguf(&g).unwrap();
    let tok = Tokenizer::from_metadata(g.metadata()).unwrap();
    // Each prompt, then a few tokens of another (teacher-forced: any tokens will do).
    let seqs: Vec<Vec<u32>> = (0..4)
        .map(|i| {
            let mut t = tok.encode(PROMPTS[i], true, false).unwrap();
            t.extend(tok.encode(PROMPTS[(i + 1) % 4], false, false).unwrap().iter().take(6));
            t
        })
        .collect();
    let solo: Vec<Vec<Vec<f32>>> = seqs.iter().map(|t| solo_logits(&model, t)).collect();

    for max_batch in [64, 6] {
        let mut b = CpuBackend::with_seqs(&model, 64, 4, max_batch, &Serial);
        let mut done = [0usize; 4];
        let mut checked = 0;
        for round in 0.. {
            let mut runs = Vec::new();
            for (i, &(sizes, join)) in CHUNKS.iter().enumerate() {
                if round < join || done[i] == seqs[i].len() {
                    continue;
                }
                let n = sizes[(round - join) % sizes.len()].min(seqs[i].len() - done[i]);
                // Sequence 1 skips its output every other round; sequence 2 wants the argmax.
                let want = match i {
                    1 if round % 2 == 1 => Want::Nothing,
                    2 => Want::Argmax,
                    _ => Want::Logits,
                };
                runs.push(Run { seq: i, tokens: &seqs[i][done[i]..done[i] + n], want });
            }
            if runs.is_empty() {
                break;
            }
            let out = pollster::block_on(b.eval_batch(&runs)).expect("eval_batch");
            for (j, r) in runs.iter().enumerate() {
                let (i, last) = (r.seq, done[r.seq] + r.tokens.len() - 1);
                let want = &solo[i][last];
                let what =
                    format!("max_batch {max_batch}, round {round}, sequence {i} after position {last}");
                match (r.want, out.get(j)) {
                    (Want::Logits, Output::Logits(got)) => {
                        if let Some((at, g, w)) = first_difference(got, want) {
                            panic!("{what}: logit {at} is {g}, alone {w}");
                        }
                        checked += 1;
                    }
                    (Want::Argmax, Output::Argmax(id)) => {
                        assert_eq!(id, argmax(want), "{what}: argmax");
                        checked += 1;
                    }
                    (Want::Nothing, Output::Nothing) => {}
                    (w, o) => panic!("{what}: asked for {w:?}, got {o:?}"),
                }
            }
            for r in &runs {
                done[r.seq] += r.tokens.len();
            }
            for (i, &d) in done.iter().enumerate() {
                assert_eq!(b.seq_len(i), d, "{max_batch}: sequence {i}'s cache length");
            }
        }
        assert!(checked >= 20, "only {checked} outputs compared");
        eprintln!("max_batch {max_batch}: {checked} outputs bit-identical to the solo runs");
    }
}

#[test]
fn text_is_the_same_alone_and_among_others() {
    let bytes = default_model_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    let model = Model::from_gguf(&g).unwrap();
    let tok = Tokenizer::from_metadata(g.metadata()).unwrap();
    let prompts: Vec<Vec<u32>> = PROMPTS.iter().map(|p| tok.encode(p, true, false).unwrap()).collect();
    let greedy = GenerateParams { max_tokens: 16, sampling: SamplingParams::greedy(), ..Default::default() };
    let sampled = GenerateParams {
        max_tokens: 16,
        sampling: SamplingParams { temperature: 0.8, top_k: 40, seed: 7, ..Default::default() },
        ..Default::default()
    };
    for (name, params) in [("greedy", greedy), ("sampled", sampled)] {
        let alone: Vec<String> = prompts
            .iter()
            .map(|p| generate_solo(CpuBackend::new(&model, 128, &Serial), &tok, p, &params))
            .collect();
        let mut pool = CpuBackend::with_seqs(&model, 128, 4, 64, &Serial);
        let together = generate_batched(&mut pool, &tok, &prompts, &params, 4, 1);
        for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
            assert_eq!(t, a, "{name}: prompt {i} ({:?}) among others vs alone", PROMPTS[i]);
        }
        assert!(alone.iter().all(|t| !t.is_empty()), "{name}: {alone:?}");
        eprintln!("{name}: {together:?}");
    }
}
