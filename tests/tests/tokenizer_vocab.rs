//! Tokenizers against llama.cpp's test vectors and the default model.
//!
//! For each `../shared/vocab/ggml-vocab-NAME.gguf` (tokenizer metadata only), the `.inp` file holds
//! test strings separated by `\n__ggml_vocab_test__\n` and the `.out` file one line of expected ids
//! per string, as llama.cpp's `tests/test-tokenizer-0.cpp` reads them (encoded without BOS and
//! without parsing special tokens). Every line must match exactly, and ids → text must give the
//! input back. The default model (SmolLM2) adds a known prompt, special-token parsing and the
//! streaming decoder over characters split across tokens.

use std::sync::OnceLock;
use std::time::Instant;

use aether_core::gguf::Gguf;
use aether_core::tokenizer::Tokenizer;
use aether_tests::{default_model_bytes, vocab_cases as cases, vocab_path};

const VOCABS: [&str; 5] = ["llama-spm", "llama-bpe", "qwen2", "phi-3", "gpt-2"];

/// The tokenizer of `ggml-vocab-NAME.gguf`, built once per test binary (and timed).
fn load_vocab(name: &str) -> &'static Tokenizer {
    static BUILT: [OnceLock<Tokenizer>; VOCABS.len()] = [const { OnceLock::new() }; VOCABS.len()];
    let k = VOCABS.iter().position(|v| *v == name).expect("a vocab of VOCABS");
    BUILT[k].get_or_init(|| {
        let bytes = std::fs::read(vocab_path(&format!("ggml-vocab-{name}.gguf"))).expect("read vocab");
        let gguf = Gguf::parse(&bytes).expect("parse vocab gguf");
        let t0 = Instant::now();
        let tok = Tokenizer::from_metadata(gguf.metadata()).unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!("{name}: built in {:.1} ms ({} tokens)", t0.elapsed().as_secs_f64() * 1e3, tok.n_vocab());
        tok
    })
}

fn default_model() -> &'static Tokenizer {
    static BUILT: OnceLock<Tokenizer> = OnceLock::new();
    BUILT.get_or_init(|| {
        let bytes = default_model_bytes();
        let gguf = Gguf::parse(&bytes).expect("parse default model");
        Tokenizer::from_metadata(gguf.metadata()).expect("default model tokenizer")
    })
}

/// Ids with their token texts, for failure messages.
fn show(tok: &Tokenizer, ids: &[u32]) -> String {
    let parts: Vec<String> =
        ids.iter().map(|&i| format!("{i} {:?}", tok.token_str(i).unwrap_or("?"))).collect();
    format!("[{}]", parts.join(", "))
}

#[test]
fn vocab_test_vectors_encode_exactly() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for name in VOCABS {
        let tok = load_vocab(name);
        for (i, (text, want)) in cases(name).iter().enumerate() {
            let got = tok.encode(text, false, false).unwrap_or_else(|e| panic!("{name} case {i}: {e}"));
            checked += 1;
            if &got != want {
                let first =
                    got.iter().zip(want).position(|(g, w)| g != w).unwrap_or(got.len().min(want.len()));
                failures.push(format!(
                    "{name} case {i}: input {text:?}\n  first difference at index {first}\n  want {}\n  got  {}",
                    show(tok, want),
                    show(tok, &got)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {checked} cases differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn vocab_test_vectors_decode_to_their_input() {
    let mut failures = Vec::new();
    for name in VOCABS {
        let tok = load_vocab(name);
        for (i, (text, want)) in cases(name).iter().enumerate() {
            // The expected ids decode to the input (SentencePiece drops the space it prepended) ...
            let from_want = tok.decode(want, false).unwrap();
            // ... and so do our own ids.
            let ids = tok.encode(text, false, false).unwrap();
            let round = tok.decode(&ids, false).unwrap();
            for (what, got) in [("decode(.out ids)", &from_want), ("decode(encode(s))", &round)] {
                if got != text {
                    failures.push(format!("{name} case {i}: {what}\n  want {text:?}\n  got  {got:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} round trips differ:\n{}", failures.len(), failures.join("\n"));
}

/// Streams `ids` and checks every chunk is whole text; returns the chunks.
fn stream(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
    let mut dec = tok.stream_decoder(false);
    let mut chunks: Vec<String> = ids.iter().map(|&id| dec.push(id).unwrap()).collect();
    assert!(dec.pending().is_empty(), "bytes still pending after the last token: {:?}", dec.pending());
    chunks.push(dec.finish());
    chunks
}

#[test]
fn streaming_matches_decode_on_every_vector() {
    for name in VOCABS {
        let tok = load_vocab(name);
        for (i, (text, want)) in cases(name).iter().enumerate() {
            let streamed: String = stream(tok, want).concat();
            // The stream keeps the leading space a SentencePiece vocabulary prepends.
            let expect = if tok.model_name() == "llama" && !text.is_empty() {
                format!(" {text}")
            } else {
                text.clone()
            };
            assert_eq!(streamed, expect, "{name} case {i}: streamed text differs");
        }
    }
}

/// `text` must encode to several tokens whose chunks are empty until the character completes.
fn assert_held_until_complete(tok: &Tokenizer, name: &str, ch: &str) {
    let ids = tok.encode(ch, false, false).unwrap();
    let chunks = stream(tok, &ids);
    let lead = if tok.model_name() == "llama" { " " } else { "" };
    // Tokens before the character's bytes (a SentencePiece "▁") may emit the space.
    let joined = chunks.concat();
    assert_eq!(joined, format!("{lead}{ch}"), "{name}: {ch:?} streamed as {chunks:?}");
    let done = chunks.iter().position(|c| c.contains(ch)).expect("character emitted");
    let bytes_from = ids.iter().position(|&id| !tok.token_to_piece(id, false).unwrap().is_ascii()).unwrap();
    assert!(done > bytes_from, "{name}: {ch:?} should span several tokens, got {}", show(tok, &ids));
    for (k, c) in chunks.iter().enumerate().take(done).skip(bytes_from) {
        assert!(c.is_empty(), "{name}: chunk {k} of {ch:?} emitted {c:?} before the character was complete");
    }
    assert_eq!(chunks[done], ch, "{name}: the completing token must emit the whole character");
}

#[test]
fn stream_decoder_holds_split_characters() {
    for name in ["llama-spm", "gpt-2", "llama-bpe"] {
        let tok = load_vocab(name);
        assert_held_until_complete(tok, name, "🦙");
    }
    assert_held_until_complete(default_model(), "smollm2", "🦙");
}

#[test]
fn smollm2_encodes_like_llama_cpp() {
    let tok = default_model();
    assert_eq!(tok.model_name(), "gpt2");
    assert_eq!(tok.pre_name(), Some("smollm"));
    assert!(!tok.add_bos(), "SmolLM2 sets add_bos_token = false");
    let ids = tok.encode("The capital of France is", true, false).unwrap();
    assert_eq!(ids, [504, 3575, 282, 4649, 314], "got {}", show(tok, &ids));
    assert_eq!(tok.decode(&ids, false).unwrap(), "The capital of France is");
    assert_eq!((tok.bos(), tok.eos(), tok.eot(), tok.unk()), (Some(1), Some(2), Some(2), Some(0)));
    for id in [0, 2] {
        assert!(tok.is_eog(id), "{:?} should end generation", tok.token_str(id));
    }
    assert!(!tok.is_eog(1) && !tok.is_eog(504));
}

#[test]
fn smollm2_parses_special_tokens_only_when_asked() {
    let tok = default_model();
    let text = "<|im_start|>user\nHi<|im_end|>\n";
    let ids = tok.encode(text, false, true).unwrap();
    assert_eq!(ids.first(), Some(&1), "got {}", show(tok, &ids));
    let end =
        ids.iter().position(|&i| i == 2).unwrap_or_else(|| panic!("no <|im_end|> in {}", show(tok, &ids)));
    let user = tok.encode("user\nHi", false, false).unwrap();
    assert_eq!(ids[1..end], user[..], "text between the special tokens tokenizes alone");
    assert_eq!(ids[end + 1..], tok.encode("\n", false, false).unwrap()[..]);
    assert_eq!(tok.decode(&ids, true).unwrap(), text);
    assert_eq!(tok.decode(&ids, false).unwrap(), "user\nHi\n", "control tokens render only with special");

    let plain = tok.encode(text, false, false).unwrap();
    assert!(
        plain.iter().all(|&i| !tok.is_control(i)),
        "unparsed text must not yield control tokens: {}",
        show(tok, &plain)
    );
    assert_eq!(tok.decode(&plain, false).unwrap(), text);
}

#[test]
fn llama3_adds_bos_by_default_and_knows_its_eog_tokens() {
    let tok = load_vocab("llama-bpe");
    assert!(tok.add_bos());
    let ids = tok.encode("Hello", true, false).unwrap();
    assert_eq!(ids, [128000, 9906]);
    let eot = tok.token_id("<|eot_id|>").unwrap();
    assert_eq!(tok.eot(), Some(eot));
    for id in [128001, eot] {
        assert!(tok.is_eog(id), "{:?} should end generation", tok.token_str(id));
    }
    let spm = load_vocab("llama-spm");
    assert_eq!(spm.encode("Hello", true, false).unwrap(), [1, 15043]);
    assert_eq!(spm.decode(&[1, 15043], false).unwrap(), " Hello", "llama.cpp keeps the space after BOS");
}
