//! Tokenizers over byte-built vocabularies: the merge loops, special-token splitting, byte
//! fallback, streaming, and malformed metadata (which must give errors, never panics). The real
//! vocabularies and llama.cpp's test vectors are checked in `tests/tests/tokenizer_vocab.rs`.

use super::*;
use crate::gguf::{Gguf, MetaValue, ValueType, Writer};

/// Builds the metadata of a vocabulary-only GGUF and hands it to `f`.
fn with_meta<T>(w: &Writer, f: impl FnOnce(&Metadata<'_>) -> T) -> T {
    let bytes = w.to_bytes(&[]).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    f(g.metadata())
}

fn build(w: &Writer) -> Result<Tokenizer> {
    with_meta(w, Tokenizer::from_metadata)
}

/// A SentencePiece vocabulary: `<unk> <s> </s>`, 256 byte tokens, a few pieces and two added
/// tokens (`<ctl>` control, `<ud>` user-defined).
fn spm_writer() -> Writer {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut scores = vec![0.0f32; 3];
    let mut types = vec![2, 3, 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        scores.push(0.0);
        types.push(6);
    }
    for (t, s) in
        [("▁", -1.0), ("a", -2.0), ("b", -3.0), ("▁a", -1.5), ("ab", -1.2), ("▁ab", -0.5), ("▁b", -2.5)]
    {
        tokens.push(t.into());
        scores.push(s);
        types.push(1);
    }
    for (t, ty) in [("<ctl>", 3), ("<ud>", 4)] {
        tokens.push(t.into());
        scores.push(0.0);
        types.push(ty);
    }
    let mut w = Writer::new();
    w.set("tokenizer.ggml.model", "llama")
        .set("tokenizer.ggml.tokens", MetaValue::strings(tokens))
        .set("tokenizer.ggml.scores", MetaValue::f32s(scores))
        .set("tokenizer.ggml.token_type", MetaValue::i32s(types));
    w
}

const SPM_FIRST_PIECE: u32 = 3 + 256;

fn spm() -> Tokenizer {
    build(&spm_writer()).unwrap()
}

/// A byte-level BPE vocabulary: the 256 byte characters, `Ġt Ġth he Ġthe`, and `<|endoftext|>`.
fn bpe_writer(pre: &str) -> Writer {
    let mut tokens: Vec<String> = (0..=255u8).map(|b| unicode::byte_to_char(b).to_string()).collect();
    tokens.extend(["Ġt", "Ġth", "he", "Ġthe", "<|endoftext|>"].map(String::from));
    let mut types = vec![1; tokens.len()];
    *types.last_mut().unwrap() = 3;
    let mut w = Writer::new();
    w.set("tokenizer.ggml.model", "gpt2")
        .set("tokenizer.ggml.pre", pre)
        .set("tokenizer.ggml.tokens", MetaValue::strings(tokens))
        .set("tokenizer.ggml.token_type", MetaValue::i32s(types))
        .set("tokenizer.ggml.merges", MetaValue::strings(["Ġ t", "Ġt h", "Ġth e", "h e", "x y"]))
        .set("tokenizer.ggml.eos_token_id", 260u32);
    w
}

fn byte_id(b: u8) -> u32 {
    b as u32
}

#[test]
fn spm_merges_by_score_and_falls_back_to_bytes() {
    let t = spm();
    let [sp, _a, _b, _spa, _ab, spab] = [0, 1, 2, 3, 4, 5].map(|k| SPM_FIRST_PIECE + k);
    // "▁a"(-1.5) loses to "ab"(-1.2), then "▁"+"ab" forms "▁ab".
    assert_eq!(t.encode("ab", false, false).unwrap(), [spab]);
    assert_eq!(t.encode("ab", true, false).unwrap(), [1, spab], "llama vocabularies add BOS by default");
    // "é" is not a piece: its two UTF-8 bytes.
    assert_eq!(t.encode("é", false, false).unwrap(), [sp, 3 + 0xC3, 3 + 0xA9]);
    assert_eq!(t.decode(&[sp, 3 + 0xC3, 3 + 0xA9], false).unwrap(), "é", "the prepended space is dropped");
    assert_eq!(t.encode("", true, false).unwrap(), [1]);
    assert_eq!(t.decode(&[], false).unwrap(), "");
}

#[test]
fn spm_prepends_a_space_after_special_tokens() {
    let t = spm();
    let [ctl, ud] = [SPM_FIRST_PIECE + 7, SPM_FIRST_PIECE + 8];
    let spb = SPM_FIRST_PIECE + 6;
    let spa = SPM_FIRST_PIECE + 3;
    // User-defined tokens are always split out; the text after them gets its own "▁".
    assert_eq!(t.encode("a<ud>b", false, false).unwrap(), [spa, ud, spb]);
    // Control tokens only with parse_special; otherwise `<ctl>` is text (bytes here).
    assert_eq!(t.encode("<ctl>", false, true).unwrap(), [ctl]);
    let plain = t.encode("<ctl>", false, false).unwrap();
    assert!(!plain.contains(&ctl) && plain.len() > 1, "{plain:?}");
    assert_eq!(t.decode(&plain, false).unwrap(), "<ctl>");
    assert_eq!(t.decode(&[ctl], false).unwrap(), "", "control tokens render only with special");
    assert_eq!(t.decode(&[ctl], true).unwrap(), "<ctl>");
    assert_eq!(t.token_to_piece(ud, false).unwrap(), b"<ud>");
}

#[test]
fn spm_without_byte_tokens_uses_unk() {
    let mut w = Writer::new();
    w.set("tokenizer.ggml.model", "llama")
        .set("tokenizer.ggml.tokens", MetaValue::strings(["<unk>", "<s>", "</s>", "▁", "a"]))
        .set("tokenizer.ggml.add_space_prefix", false);
    let t = build(&w).unwrap();
    assert_eq!(t.encode("aé", false, false).unwrap(), [4, 0, 0], "one unknown per byte of é");
    // A negative id (some writers' "none") keeps the default.
    w.set("tokenizer.ggml.unknown_token_id", MetaValue::I32(-1));
    assert_eq!(build(&w).unwrap().unk(), Some(0));
    // Defaults out of range are disabled.
    w.set("tokenizer.ggml.tokens", MetaValue::strings(["x"]));
    let t = build(&w).unwrap();
    assert_eq!((t.bos(), t.eos(), t.unk()), (None, None, Some(0)));
}

#[test]
fn bpe_merges_by_rank() {
    let t = build(&bpe_writer("gpt-2")).unwrap();
    assert_eq!(t.encode(" the", false, false).unwrap(), [259]);
    assert_eq!(t.encode("he", false, false).unwrap(), [258]);
    // "x y" merges into "xy", which is no token: llama.cpp falls back to the single bytes.
    assert_eq!(t.encode("xy", false, false).unwrap(), [byte_id(b'x'), byte_id(b'y')]);
    assert_eq!(t.encode("<|endoftext|>", false, true).unwrap(), [260]);
    assert_ne!(t.encode("<|endoftext|>", false, false).unwrap(), [260]);
    assert!(t.is_eog(260));
    assert_eq!(t.eot(), Some(260), "EOT is recognised by its text");
    assert!(!t.add_bos());
}

#[test]
fn bpe_round_trips_arbitrary_text() {
    let t = build(&bpe_writer("llama-bpe")).unwrap();
    // A fixed pseudo-random walk over ASCII, accents, CJK, emoji, whitespace and special text.
    let alphabet: Vec<char> = "ab e h t xy 7\n\t\r'sé我😶\u{200d}🌫️<|endoftext|>  \u{3000}".chars().collect();
    let mut state = 0x2545F4914F6CDD1Du64;
    for len in 0..200 {
        let s: String = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                alphabet[(state % alphabet.len() as u64) as usize]
            })
            .collect();
        let ids = t.encode(&s, false, false).unwrap();
        assert_eq!(t.decode(&ids, false).unwrap(), s, "ids {ids:?}");
        let ids = t.encode(&s, false, true).unwrap();
        assert_eq!(t.decode(&ids, true).unwrap(), s, "with special tokens: ids {ids:?}");
    }
}

#[test]
fn stream_decoder_waits_for_whole_characters() {
    let t = spm();
    let sp = SPM_FIRST_PIECE;
    let mut d = t.stream_decoder(false);
    assert_eq!(d.push(sp).unwrap(), " ");
    // 🦙 = F0 9F A6 99
    for b in [0xF0u32, 0x9F, 0xA6] {
        assert_eq!(d.push(3 + b).unwrap(), "");
    }
    assert_eq!(d.pending().len(), 3);
    assert_eq!(d.push(3 + 0x99).unwrap(), "🦙");
    // A byte that can never start a character is released at once as U+FFFD.
    assert_eq!(d.push(3 + 0x80).unwrap(), "\u{FFFD}");
    // An incomplete character cut off by a normal token: U+FFFD, then the token.
    assert_eq!(d.push(3 + 0xE6).unwrap(), "");
    assert_eq!(d.push(sp + 1).unwrap(), "\u{FFFD}a");
    assert_eq!(d.push(3 + 0xE6).unwrap(), "");
    assert_eq!(d.finish(), "\u{FFFD}");
    assert!(d.pending().is_empty());
    assert!(matches!(d.push(99_999), Err(Error::TokenOutOfRange { id: 99_999, .. })));
}

#[test]
fn out_of_range_ids_are_errors() {
    let t = spm();
    let n = t.n_vocab() as u32;
    assert!(matches!(t.decode(&[1, n], false), Err(Error::TokenOutOfRange { id, .. }) if id == n));
    assert!(matches!(t.token_to_piece(u32::MAX, true), Err(Error::TokenOutOfRange { .. })));
    assert_eq!(t.token_str(n), None);
    assert!(!t.is_eog(n));
}

#[test]
fn malformed_metadata_is_an_error() {
    let missing = |w: &mut Writer| -> Error { build(w).unwrap_err() };
    let mut w = Writer::new();
    w.set("tokenizer.ggml.tokens", MetaValue::strings(["a"]));
    assert!(matches!(missing(&mut w), Error::MissingKey { key } if key == "tokenizer.ggml.model"));

    let mut w = spm_writer();
    w.set("tokenizer.ggml.model", "bert");
    assert!(matches!(missing(&mut w), Error::UnsupportedTokenizerModel { model } if model == "bert"));

    let mut w = bpe_writer("nonsense");
    assert!(matches!(missing(&mut w), Error::UnknownPreTokenizer { pre } if pre == "nonsense"));
    let mut w = bpe_writer("tekken");
    assert!(matches!(missing(&mut w), Error::UnsupportedPreTokenizer { pre } if pre == "tekken"));
    let mut w = bpe_writer("gpt-2");
    w.set("tokenizer.ggml.merges", MetaValue::i32s([1]));
    assert!(matches!(missing(&mut w), Error::WrongType { key, .. } if key == "tokenizer.ggml.merges"));

    let mut w = spm_writer();
    w.set("tokenizer.ggml.scores", MetaValue::f32s([0.0; 4]));
    assert!(matches!(
        missing(&mut w),
        Error::VocabArrayTooShort { key: "tokenizer.ggml.scores", len: 4, n_vocab } if n_vocab > 256
    ));
    let mut w = spm_writer();
    w.set("tokenizer.ggml.token_type", MetaValue::strings(["1"]));
    assert!(matches!(missing(&mut w), Error::WrongType { key, .. } if key == "tokenizer.ggml.token_type"));
    let mut w = spm_writer();
    w.set("tokenizer.ggml.tokens", MetaValue::strings(Vec::<String>::new()));
    assert!(matches!(missing(&mut w), Error::Tokenizer(_)));
    let mut w = spm_writer();
    w.set("tokenizer.ggml.bos_token_id", "1");
    assert!(matches!(missing(&mut w), Error::WrongType { key, .. } if key == "tokenizer.ggml.bos_token_id"));
    let mut w = spm_writer();
    w.set("tokenizer.ggml.add_bos_token", 1u32);
    assert!(matches!(missing(&mut w), Error::WrongType { key, .. } if key == "tokenizer.ggml.add_bos_token"));
    let mut w = spm_writer();
    w.set("tokenizer.ggml.pre", MetaValue::Array(ValueType::String, vec![]));
    // SentencePiece ignores the pre-tokenizer name, but a wrongly typed one is still an error.
    assert!(matches!(missing(&mut w), Error::WrongType { key, .. } if key == "tokenizer.ggml.pre"));
}

#[test]
fn special_ids_default_override_and_range() {
    let mut w = spm_writer();
    w.set("tokenizer.ggml.bos_token_id", 100_000u32).set("tokenizer.ggml.eos_token_id", 4u32);
    let t = build(&w).unwrap();
    assert_eq!(t.bos(), Some(1), "an out-of-range id keeps the default");
    assert_eq!(t.eos(), Some(4));
    assert!(t.is_eog(4) && t.is_eog(2), "</s> ends generation by its text too");

    // A GPT-2 vocabulary asking for BOS without having one.
    let mut w = bpe_writer("gpt-2");
    w.set("tokenizer.ggml.add_bos_token", true).set("tokenizer.ggml.bos_token_id", 9999u32);
    let t = build(&w).unwrap();
    assert_eq!(t.bos(), Some(11), "llama.cpp's GPT-2 default BOS is 11");
    w.set("tokenizer.ggml.pre", "chatglm-bpe");
    let t = build(&w).unwrap();
    assert_eq!(t.bos(), None);
    assert!(matches!(t.encode("x", true, false), Err(Error::MissingSpecialToken { what: "BOS" })));
    assert_eq!(t.encode("x", false, false).unwrap(), [byte_id(b'x')]);
}

#[test]
fn phi3_special_tokens_swallow_following_whitespace() {
    let mut w = spm_writer();
    w.set("general.name", "Phi3");
    let t = build(&w).unwrap();
    let [spa, ctl, ud] = [SPM_FIRST_PIECE + 3, SPM_FIRST_PIECE + 7, SPM_FIRST_PIECE + 8];
    // "<ud>" (rstrip) eats "  " after it; "a" then gets the space prefix back.
    assert_eq!(t.encode("<ud>  a", false, false).unwrap(), [ud, spa]);
    assert_eq!(t.encode("<ctl>\na", false, true).unwrap(), [ctl, spa]);
}
