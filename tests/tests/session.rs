//! The generation session on the default model: seeds, stop strings and finish reasons.

use aether_core::cpu::Serial;
use aether_core::gguf::Gguf;
use aether_core::model::Model;
use aether_core::sample::SamplingParams;
use aether_core::session::{FinishReason, GenerateParams, Session};
use aether_core::tokenizer::Tokenizer;
use aether_tests::default_model_bytes;

const PROMPT: [u32; 5] = [504, 3575, 282, 4649, 314]; // "The capital of France is"

fn generate(session: &mut Session<'_, '_>, params: GenerateParams) -> (String, FinishReason, usize) {
    session.start(&PROMPT, params, &Serial).unwrap();
    let mut text = String::new();
    loop {
        let step = session.step(&Serial).unwrap();
        text += &step.text;
        if let Some(reason) = step.finish {
            return (text, reason, session.n_generated());
        }
    }
}

#[test]
fn seeds_stops_and_lengths() {
    let bytes = default_model_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    let model = Model::from_gguf(&g).unwrap();
    let tok = Tokenizer::from_metadata(g.metadata()).unwrap();
    let mut s = Session::new(&model, &tok, 128);

    // A stop string spanning four tokens ('.', '\n', '\n', 'The') stops generation and is not shown.
    let (text, reason, _) = generate(
        &mut s,
        GenerateParams {
            stop: vec![".\n\nThe".into()],
            sampling: SamplingParams::greedy(),
            ..Default::default()
        },
    );
    assert_eq!((text.as_str(), reason), (" Paris", FinishReason::Stop));

    // max_tokens ends with `length`, and the text is what the tokens decode to.
    let (text, reason, n) = generate(
        &mut s,
        GenerateParams { max_tokens: 3, sampling: SamplingParams::greedy(), ..Default::default() },
    );
    assert_eq!((text.as_str(), reason, n), (" Paris.\n", FinishReason::Length, 3));

    // Same seed, same text; other seeds, other texts.
    let sampled = |s: &mut Session<'_, '_>, seed| {
        let sampling =
            SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.0, seed, ..Default::default() };
        generate(s, GenerateParams { max_tokens: 24, sampling, ignore_eos: true, ..Default::default() }).0
    };
    let a = sampled(&mut s, 11);
    assert_eq!(a, sampled(&mut s, 11), "same seed gave different text");
    let others: Vec<String> = (12..15).map(|seed| sampled(&mut s, seed)).collect();
    assert!(others.iter().any(|o| *o != a), "seeds 11..15 all gave {a:?}");
}

#[test]
fn chunked_prefill_matches_one_go_and_long_prompts_are_refused() {
    let bytes = default_model_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    let model = Model::from_gguf(&g).unwrap();
    let tok = Tokenizer::from_metadata(g.metadata()).unwrap();
    let mut s = Session::new(&model, &tok, 16);
    let greedy =
        || GenerateParams { max_tokens: 4, sampling: SamplingParams::greedy(), ..Default::default() };
    let (one_go, _, _) = generate(&mut s, greedy());

    let mut s = Session::new(&model, &tok, 16);
    assert_eq!(s.begin(&PROMPT, greedy()).unwrap(), 5);
    let mut rounds = 0;
    while !s.prefill(2, &Serial).unwrap() {
        rounds += 1;
    }
    assert_eq!(rounds, 2, "5 tokens in chunks of 2 take 3 calls");
    let mut text = String::new();
    loop {
        let step = s.step(&Serial).unwrap();
        text += &step.text;
        if step.finish.is_some() {
            break;
        }
    }
    assert_eq!(text, one_go);

    let long = vec![504u32; 16];
    assert!(matches!(s.begin(&long, greedy()), Err(aether_core::Error::ContextFull { n_ctx: 16 })));
}
