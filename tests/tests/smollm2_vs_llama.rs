//! The CPU reference forward pass against llama.cpp itself on the default model (SmolLM2-135M
//! Q4_1), from the goldens of `tests/scripts/make_llama_goldens.py` (llama-cpp-python 0.3.36, its
//! default CPU settings) under `tests/goldens/llama/`:
//! - greedy decoding of "The capital of France is" gives llama.cpp's 32 tokens exactly;
//! - teacher-forced along llama.cpp's tokens (llama.cpp evaluating them one at a time, the mode
//!   aether's kernels mirror), every position's top-1 agrees and KL(llama.cpp ‖ aether), computed
//!   over llama.cpp's top 100 tokens plus one bucket for the rest of the vocabulary, has mean
//!   ≤ 1e-3 and max ≤ 1e-2 over the 37 positions;
//! - the residual stream after each of the first three layers agrees with llama.cpp's to f32
//!   rounding;
//! - a batch and the same tokens one at a time give bit-identical logits.

use aether_core::cpu::{Forward, Serial, State};
use aether_core::gguf::Gguf;
use aether_core::model::Model;
use aether_tests::logits::{TopRow, argmax, bucketed_kl, margin, parse_top};
use aether_tests::{default_model_bytes, goldens_dir};

fn golden(name: &str) -> String {
    let p = goldens_dir().join("llama").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!("{}: {e} (make it with `python3 tests/scripts/make_llama_goldens.py`)", p.display())
    })
}

/// The value of the tab-separated line starting with `key`.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('\t')))
        .unwrap_or_else(|| panic!("golden has no `{key}` line"))
}

fn ids(s: &str) -> Vec<u32> {
    s.split_whitespace().map(|t| t.parse().expect("token id")).collect()
}

struct Greedy {
    prompt: Vec<u32>,
    ids: Vec<u32>,
    text: String,
}

fn greedy_golden() -> Greedy {
    let g = golden("smollm2_greedy.tsv");
    let text = field(&g, "text").replace("\\n", "\n").replace("\\t", "\t").replace("\\\\", "\\");
    Greedy { prompt: ids(field(&g, "prompt")), ids: ids(field(&g, "ids")), text }
}

/// One position of llama.cpp's teacher-forced logits.
struct Row {
    logits: TopRow,
    /// llama.cpp's own noise: the same bucketed KL between its token-by-token and batched paths.
    noise: f64,
}

fn teacher_golden() -> (Vec<u32>, Vec<Row>) {
    let g = golden("smollm2_teacher.tsv");
    let tokens = ids(field(&g, "tokens"));
    let rows = g
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let num = |i: usize| f[i].parse::<f64>().expect("number");
            Row { logits: TopRow { lse: num(1), tail: num(2), top: parse_top(f[4]) }, noise: num(3) }
        })
        .collect::<Vec<_>>();
    assert_eq!(rows.len(), tokens.len(), "one teacher-forced row per token");
    (tokens, rows)
}

/// Readable text of token ids from the model's vocabulary (GPT-2 byte-level pieces; spaces and
/// newlines mapped back, enough for a failure message).
fn render(g: &Gguf<'_>, ids: &[u32]) -> String {
    let vocab = g.metadata().get_str_array("tokenizer.ggml.tokens").expect("vocabulary");
    ids.iter()
        .map(|&t| vocab.get(t as usize).copied().unwrap_or("<?>"))
        .collect::<String>()
        .replace('Ġ', " ")
        .replace('Ċ', "\n")
}

#[test]
fn greedy_32_tokens_match_llama_cpp() {
    let gold = greedy_golden();
    let bytes = default_model_bytes();
    let g = Gguf::parse(&bytes).expect("parse");
    let model = Model::from_gguf(&g).expect("model");
    let fwd = Forward { model: &model };
    let mut s = State::new(&model.config, 64, 64);

    let mut logits = fwd.eval(&mut s, &gold.prompt, &Serial).expect("prompt").to_vec();
    let (mut got, mut margins) = (Vec::new(), Vec::new());
    for _ in 0..gold.ids.len() {
        let t = argmax(&logits);
        got.push(t);
        margins.push(margin(&logits));
        logits = fwd.eval(&mut s, &[t], &Serial).expect("decode").to_vec();
    }
    if got != gold.ids {
        let at = got.iter().zip(&gold.ids).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "greedy tokens differ from llama.cpp's from step {at} (aether picked {} with top-2 margin {:.4}, \
             llama.cpp {})\n  aether:    {:?}\n  llama.cpp: {:?}\n  aether ids:    {got:?}\n  llama.cpp ids: {:?}",
            got[at],
            margins[at],
            gold.ids[at],
            render(&g, &got),
            gold.text,
            gold.ids
        );
    }
    let (m, at) =
        margins.iter().zip(0..).fold((f32::INFINITY, 0), |b, (&m, i)| if m < b.0 { (m, i) } else { b });
    eprintln!("greedy text matches llama.cpp: {:?} (smallest top-2 margin {m:.4} at step {at})", gold.text);
}

/// The golden rows are llama.cpp's logits evaluating the tokens one at a time: for a batch,
/// llama.cpp switches the f16 attention products and the Q8_0 output matrix to the llamafile
/// sgemm, whose roundings differ, and on this model (activation outliers of 10^4 in one channel,
/// re-quantized to 8 bits before every matmul) one-ulp differences turn into whole-level flips that
/// grow through the layers: its batched logits differ from its own token-by-token ones by KL mean
/// 1.2e-3, max 7.2e-3 (the golden's "noise" column). aether mirrors the one-token kernels for every
/// batch size and, on an x86 build like the goldens', reproduces these rows bit for bit (KL 0);
/// the thresholds are the (mean ≤ 1e-3, max ≤ 1e-2), which leave room for libm and
/// platform differences.
#[test]
fn teacher_forced_logits_match_llama_cpp() {
    let (tokens, rows) = teacher_golden();
    let bytes = default_model_bytes();
    let g = Gguf::parse(&bytes).expect("parse");
    let model = Model::from_gguf(&g).expect("model");
    let fwd = Forward { model: &model };
    let mut s = State::new(&model.config, 64, 64);

    let (mut kls, mut noise) = (Vec::new(), Vec::new());
    let mut report = String::new();
    let mut top1_mismatch = Vec::new();
    for (i, (&t, row)) in tokens.iter().zip(&rows).enumerate() {
        let logits = fwd.eval(&mut s, &[t], &Serial).expect("eval");
        let k = bucketed_kl(&row.logits, logits);
        let (ours, theirs) = (argmax(logits), row.logits.top[0].0);
        if ours != theirs {
            top1_mismatch.push(i);
        }
        report += &format!(
            "  pos {i:2}: KL {k:.2e} (llama.cpp's own noise {:.2e})  top-1 llama.cpp {theirs} ({:.4}) aether {ours} \
             ({:.4}; llama.cpp's token there {:.4})\n",
            row.noise, row.logits.top[0].1, logits[ours as usize], logits[theirs as usize]
        );
        kls.push(k);
        noise.push(row.noise);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let max = |v: &[f64]| v.iter().fold(0f64, |m, &k| m.max(k));
    let (kl_mean, kl_max, noise_mean, noise_max) = (mean(&kls), max(&kls), mean(&noise), max(&noise));
    const MAX_MEAN: f64 = 1e-3;
    const MAX_ANY: f64 = 1e-2;
    let ok = top1_mismatch.is_empty() && kl_mean <= MAX_MEAN && kl_max <= MAX_ANY;
    assert!(
        ok,
        "teacher-forced logits vs llama.cpp: KL mean {kl_mean:.2e} (limit {MAX_MEAN:.0e}), max {kl_max:.2e} (limit \
         {MAX_ANY:.0e}); top-1 differs at positions {top1_mismatch:?} (llama.cpp's own batched-vs-one-by-one noise: \
         mean {noise_mean:.2e}, max {noise_max:.2e})\n{report}"
    );
    eprintln!(
        "teacher-forced vs llama.cpp over {} positions: KL mean {kl_mean:.2e}, max {kl_max:.2e} (llama.cpp's \
         own batched-vs-one-by-one noise: mean {noise_mean:.2e}, max {noise_max:.2e})",
        kls.len()
    );
}

/// The residual stream after each of the first three layers, for the first three prompt tokens,
/// against llama.cpp's (`l_out-0..2`, read through ggml's eval callback). Here rounding
/// differences have not yet compounded, so the match is to f32 rounding: the largest error is
/// below 1e-6 of the largest value (measured: 0, bit for bit, on x86 with AVX2). Plausible numeric
/// variants fail by three orders of magnitude: f32 instead of Q8 activations gives 3e-3 to 1e-2
/// of the largest value, attention probabilities kept in f32 instead of rounded to f16 up to 7e-3.
#[test]
fn first_layers_match_llama_cpp_to_rounding() {
    const N_TOK: usize = 3;
    const N_LAYER: usize = 3;
    let p = goldens_dir().join("llama").join("smollm2_hidden.f32");
    let raw = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let want: Vec<f32> = raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let prompt = greedy_golden().prompt;
    let bytes = default_model_bytes();
    let g = Gguf::parse(&bytes).expect("parse");
    let d = Model::from_gguf(&g).expect("model").config.n_embd;
    assert_eq!(want.len(), N_TOK * N_LAYER * d, "{}: size", p.display());

    let mut failures = String::new();
    for n_layer in 1..=N_LAYER {
        // The model cut after `n_layer` layers: its hidden state is llama.cpp's l_out-{n_layer-1}.
        let mut model = Model::from_gguf(&g).expect("model");
        model.weights.layers.truncate(n_layer);
        model.config.n_layer = n_layer;
        let fwd = Forward { model: &model };
        let mut s = State::new(&model.config, 8, 8);
        for (pos, &t) in prompt[..N_TOK].iter().enumerate() {
            fwd.eval(&mut s, &[t], &Serial).expect("eval");
            let want = &want[(pos * N_LAYER + n_layer - 1) * d..][..d];
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let (i, err) = s.hidden().iter().zip(want).map(|(a, b)| (a - b).abs()).enumerate().fold(
                (0, 0f32),
                |b, (i, e)| {
                    if e > b.1 { (i, e) } else { b }
                },
            );
            let rel = err / scale;
            eprintln!(
                "l_out-{} pos {pos}: max error {err:.2e} = {rel:.1e} of max |x| {scale:.1}",
                n_layer - 1
            );
            if rel > 1e-6 {
                failures += &format!(
                    "  l_out-{} pos {pos}: element {i}: aether {} vs llama.cpp {} (error {err:.2e} = {rel:.1e} of \
                     max |x| {scale})\n",
                    n_layer - 1,
                    s.hidden()[i],
                    want[i]
                );
            }
        }
    }
    assert!(failures.is_empty(), "residual stream differs from llama.cpp's beyond f32 rounding:\n{failures}");
}

#[test]
fn batch_and_token_by_token_logits_are_bit_identical() {
    let (tokens, _) = teacher_golden();
    let bytes = default_model_bytes();
    let g = Gguf::parse(&bytes).expect("parse");
    let model = Model::from_gguf(&g).expect("model");
    let fwd = Forward { model: &model };

    // One token at a time, keeping the logits after the prompt and after the last token.
    let n_prompt = 5;
    let mut s = State::new(&model.config, 64, 64);
    let mut one_by_one = Vec::new();
    for (i, &t) in tokens.iter().enumerate() {
        let l = fwd.eval(&mut s, &[t], &Serial).expect("eval");
        if i + 1 == n_prompt || i + 1 == tokens.len() {
            one_by_one.push(l.to_vec());
        }
    }

    for max_batch in [64, 8] {
        let mut s = State::new(&model.config, 64, max_batch);
        let after_prompt = fwd.eval(&mut s, &tokens[..n_prompt], &Serial).expect("prompt").to_vec();
        let after_all = fwd.eval(&mut s, &tokens[n_prompt..], &Serial).expect("rest").to_vec();
        for (what, got, want) in [
            ("after the prompt", &after_prompt, &one_by_one[0]),
            ("after all tokens", &after_all, &one_by_one[1]),
        ] {
            let diff = got.iter().zip(want.iter()).position(|(a, b)| a.to_bits() != b.to_bits());
            if let Some(i) = diff {
                panic!(
                    "max_batch {max_batch}, {what}: batched logits differ from token-by-token at id {i}: {} vs {} \
                     ({} ids differ)",
                    got[i],
                    want[i],
                    got.iter().zip(want.iter()).filter(|(a, b)| a.to_bits() != b.to_bits()).count()
                );
            }
        }
    }
}
