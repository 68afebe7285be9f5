//! `GenerateParams::logprobs` on the default model: asking for log-probabilities does not change
//! the text, every generated token gets its entry, and greedy picks the most likely token.

use aether_core::cpu::Serial;
use aether_core::gguf::Gguf;
use aether_core::model::Model;
use aether_core::sample::SamplingParams;
use aether_core::session::{CpuBackend, GenerateParams, Session, Step};
use aether_core::tokenizer::Tokenizer;
use aether_tests::default_model_bytes;

const PROMPT: [u32; 5] = [504, 3575, 282, 4649, 314]; // "The capital of France is"

fn steps(s: &mut Session<'_, CpuBackend<'_, '_>>, params: GenerateParams) -> Vec<Step> {
    pollster::block_on(s.start(&PROMPT, params)).unwrap();
    let mut out = Vec::new();
    loop {
        let step = pollster::block_on(s.step()).unwrap();
        let done = step.finish.is_some();
        out.push(step);
        if done {
            return out;
        }
    }
}

#[test]
fn logprobs_leave_the_text_alone_and_rank_the_greedy_token_first() {
    let bytes = default_model_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    let model = Model::from_gguf(&g).unwrap();
    let tok = Tokenizer::from_metadata(g.metadata()).unwrap();
    let mut s = Session::new(CpuBackend::new(&model, 64, &Serial), &tok);
    let greedy = |logprobs| GenerateParams {
        max_tokens: 6,
        sampling: SamplingParams::greedy(),
        logprobs,
        ..Default::default()
    };

    let plain = steps(&mut s, greedy(None));
    let with = steps(&mut s, greedy(Some(5)));
    let tokens = |v: &[Step]| v.iter().map(|s| (s.token, s.text.clone())).collect::<Vec<_>>();
    assert_eq!(tokens(&plain), tokens(&with), "asking for logprobs changed the generation");
    assert!(plain.iter().all(|s| s.logprobs.is_none()), "logprobs without asking");
    for (i, step) in with.iter().enumerate() {
        let lp = step.logprobs.as_ref().unwrap_or_else(|| panic!("step {i} has no logprobs"));
        assert_eq!(Some(lp.token), step.token, "step {i}");
        assert_eq!(lp.top.len(), 5, "step {i}");
        assert_eq!(
            lp.top[0],
            (lp.token, lp.logprob),
            "step {i}: greedy took a token that is not the most likely"
        );
        assert!(lp.top.windows(2).all(|w| w[0].1 >= w[1].1), "step {i}: not best first: {:?}", lp.top);
        let mass: f32 = lp.top.iter().map(|t| t.1.exp()).sum();
        assert!(lp.logprob <= 0.0 && mass <= 1.0 + 1e-4, "step {i}: logprob {} mass {mass}", lp.logprob);
    }
}
