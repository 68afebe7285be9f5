//! Tokenizers built from a GGUF file's `tokenizer.ggml.*` metadata, reproducing llama.cpp's
//! tokenization token for token.
//!
//! Two models, chosen by `tokenizer.ggml.model`:
//! - `llama`: SentencePiece-style BPE over token scores with `<0xXX>` byte fallback ([`spm`]);
//!   a space is prepended to each text fragment after a special token or at the start
//!   (`tokenizer.ggml.add_space_prefix`) and spaces become U+2581.
//! - `gpt2`: byte-level BPE over `tokenizer.ggml.merges` ([`bpe`]) after the pre-tokenizer that
//!   `tokenizer.ggml.pre` names ([`pretok`]).
//!
//! Encoding first splits special tokens out of the text ([`special`]), then tokenizes each
//! remaining fragment. Decoding renders each token's piece (llama.cpp `token_to_piece`): control
//! and unknown tokens only when asked, byte tokens as their byte, byte-level characters as their
//! bytes. [`StreamDecoder`] does the same one token at a time and emits only whole characters.
//!
//! Everything is written here rather than built on the Hugging Face `tokenizers` crate: GGUF
//! SentencePiece vocabularies have scores but no merges (the crate's BPE needs merges), llama.cpp
//! decides per call whether control tokens are parsed and splits special tokens longest-first,
//! and its pieces are per token; the crate would also bring some sixty dependencies (rayon, rand,
//! serde_json among them) into this pure crate. What remains — two merge loops and the splitters —
//! is small, and matches llama.cpp by construction.
//!
//! Deliberate differences from llama.cpp: [`Tokenizer::decode`] does not apply llama.cpp's
//! `clean_spaces` clean-up (which drops the space in " ," and similar and so is not lossless);
//! where llama.cpp picks among several EOT candidates in hash order we take the first of its list.
//!
//! Reference: llama.cpp `src/llama-vocab.cpp`, `src/unicode.cpp`; test vectors
//! `ggml-vocab-*.gguf.{inp,out}` from llama.cpp's `models/`.

mod bpe;
mod fxhash;
mod pretok;
mod special;
mod spm;
mod stream;
mod unicode;
mod vocab;

#[cfg(test)]
mod tests;

pub use stream::StreamDecoder;

use crate::error::{Error, Result};
use crate::gguf::Metadata;
use bpe::Merges;
use pretok::{PreKind, PreSpec};
use special::Fragment;
use vocab::{SpecialIds, Vocab, attr};

/// The SentencePiece space, U+2581.
const SPM_SPACE: &str = "\u{2581}";

enum Model {
    Spm,
    Bpe { pre: PreKind, ignore_merges: bool, merges: Merges },
}

pub struct Tokenizer {
    vocab: Vocab,
    model: Model,
    model_name: String,
    pre_name: Option<String>,
    ids: SpecialIds,
    /// End-of-generation ids, sorted.
    eog: Vec<u32>,
    /// Ids split out of text before tokenizing, in the order they are tried.
    special_order: Vec<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
}

// The engine tokenizes on its own thread and shares the tokenizer with servers.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Tokenizer>();
};

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("model", &self.model_name)
            .field("pre", &self.pre_name)
            .field("n_vocab", &self.n_vocab())
            .field(
                "n_merges",
                &match &self.model {
                    Model::Spm => 0,
                    Model::Bpe { merges, .. } => merges.len(),
                },
            )
            .field("ids", &self.ids)
            .field("eog", &self.eog)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .field("add_space_prefix", &self.add_space_prefix)
            .finish()
    }
}

/// An optional metadata value: absent is `None`, present with the wrong type is an error.
fn optional<'a, T>(
    meta: &Metadata<'a>,
    key: &str,
    get: impl Fn(&Metadata<'a>, &str) -> Result<T>,
) -> Result<Option<T>> {
    if meta.contains(key) { get(meta, key).map(Some) } else { Ok(None) }
}

impl Tokenizer {
    pub fn from_metadata(meta: &Metadata<'_>) -> Result<Tokenizer> {
        let model_name = meta.get_str("tokenizer.ggml.model")?;
        let pre_name = optional(meta, "tokenizer.ggml.pre", Metadata::get_str)?;
        let mut vocab = Vocab::from_metadata(meta)?;

        // Per-model defaults, as llama.cpp's `load`.
        let mut defaults = SpecialIds::default();
        let (model, mut add_bos, add_space_prefix) = match model_name {
            "llama" => {
                (defaults.bos, defaults.eos, defaults.unk) = (Some(1), Some(2), Some(0));
                (Model::Spm, true, true)
            }
            "gpt2" => {
                let spec = PreSpec::from_name(pre_name.unwrap_or(""))?;
                let lines = meta.get_str_array("tokenizer.ggml.merges")?;
                let merges = Merges::new(&vocab, &lines)?;
                (defaults.bos, defaults.eos) = (Some(11), Some(11));
                if spec.no_bos {
                    defaults.bos = None;
                }
                (
                    Model::Bpe { pre: spec.kind, ignore_merges: spec.ignore_merges, merges },
                    spec.add_bos,
                    false,
                )
            }
            other => return Err(Error::UnsupportedTokenizerModel { model: other.into() }),
        };
        let add_space_prefix = optional(meta, "tokenizer.ggml.add_space_prefix", Metadata::get_bool)?
            .unwrap_or(add_space_prefix);
        let mut ids = vocab.special_ids(meta, defaults)?;
        add_bos = optional(meta, "tokenizer.ggml.add_bos_token", Metadata::get_bool)?.unwrap_or(add_bos);
        let add_eos = optional(meta, "tokenizer.ggml.add_eos_token", Metadata::get_bool)?.unwrap_or(false);

        let eog = vocab.detect_special(&mut ids);
        let special_order = vocab.special_order();
        vocab.apply_strip_attrs(meta, pre_name.unwrap_or(""), &special_order);
        match model {
            Model::Spm => vocab.build_pieces(|text, out| out.extend(text.replace(SPM_SPACE, " ").bytes())),
            Model::Bpe { .. } => vocab.build_pieces(render_byte_level),
        }
        Ok(Tokenizer {
            vocab,
            model,
            model_name: model_name.into(),
            pre_name: pre_name.map(Into::into),
            ids,
            eog,
            special_order,
            add_bos,
            add_eos,
            add_space_prefix,
        })
    }

    /// Token ids of `text`. `add_special` adds BOS/EOS as the file's `add_bos_token` /
    /// `add_eos_token` (or llama.cpp's defaults) say; `parse_special` lets control tokens written
    /// in the text (`<|im_start|>`) become those tokens. User-defined tokens always do.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        let frags = special::partition(&self.vocab, &self.special_order, text, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.push(self.ids.bos.ok_or(Error::MissingSpecialToken { what: "BOS" })?);
        }
        match &self.model {
            Model::Spm => {
                // A space goes before the first fragment and before each fragment after a token.
                let mut after_special = true;
                let mut buf = String::new();
                for f in frags {
                    match f {
                        Fragment::Text(r) => {
                            buf.clear();
                            if self.add_space_prefix && after_special {
                                buf.push(' ');
                            }
                            buf.push_str(&text[r]);
                            let escaped = buf.replace(' ', SPM_SPACE);
                            spm::encode(&self.vocab, self.ids.unk, &escaped, &mut out)?;
                            after_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            after_special = true;
                        }
                    }
                }
            }
            Model::Bpe { pre, ignore_merges, merges } => {
                let mut word = String::new();
                for f in frags {
                    let r = match f {
                        Fragment::Token(id) => {
                            out.push(id);
                            continue;
                        }
                        Fragment::Text(r) => r,
                    };
                    let cps: Vec<char> = text[r].chars().collect();
                    for w in pretok::split(*pre, &cps) {
                        word.clear();
                        for &c in &cps[w] {
                            for &b in c.encode_utf8(&mut [0; 4]).as_bytes() {
                                word.push(unicode::byte_to_char(b));
                            }
                        }
                        merges.encode_word(&self.vocab, &word, *ignore_merges, &mut out);
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.push(self.ids.eos.ok_or(Error::MissingSpecialToken { what: "EOS" })?);
        }
        Ok(out)
    }

    /// The bytes token `id` stands for. Control and unknown tokens render as their text when
    /// `special`, as nothing otherwise; user-defined tokens always render as their text.
    pub fn token_to_piece(&self, id: u32, special: bool) -> Result<&[u8]> {
        self.check(id)?;
        if !special && self.vocab.has(id, attr::CONTROL | attr::UNKNOWN) {
            return Ok(&[]);
        }
        Ok(self.vocab.piece(id))
    }

    /// The text of `ids` (llama.cpp `detokenize` without clean-up): pieces concatenated, the first
    /// one's leading space dropped where the vocabulary prepends one (`add_space_prefix`). Bytes
    /// that do not form UTF-8 become U+FFFD.
    pub fn decode(&self, ids: &[u32], special: bool) -> Result<String> {
        let mut bytes = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let piece = self.token_to_piece(id, special)?;
            let strip = i == 0 && self.add_space_prefix && piece.first() == Some(&b' ');
            bytes.extend_from_slice(&piece[strip as usize..]);
        }
        Ok(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    /// A decoder for generated tokens; `special` as in [`Tokenizer::token_to_piece`].
    pub fn stream_decoder(&self, special: bool) -> StreamDecoder<'_> {
        StreamDecoder::new(self, special)
    }

    pub fn n_vocab(&self) -> usize {
        self.vocab.len()
    }

    /// The token's text as the vocabulary spells it (`Ġhello`, `▁hello`, `<0x0A>`).
    pub fn token_str(&self, id: u32) -> Option<&str> {
        self.vocab.get_text(id)
    }

    /// The id whose text is exactly `s`, e.g. `<|im_start|>`.
    pub fn token_id(&self, s: &str) -> Option<u32> {
        self.vocab.id(s)
    }

    pub fn bos(&self) -> Option<u32> {
        self.ids.bos
    }
    pub fn eos(&self) -> Option<u32> {
        self.ids.eos
    }
    pub fn eot(&self) -> Option<u32> {
        self.ids.eot
    }
    pub fn unk(&self) -> Option<u32> {
        self.ids.unk
    }
    pub fn pad(&self) -> Option<u32> {
        self.ids.pad
    }

    /// Whether `encode(.., add_special = true, ..)` adds BOS / EOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// End-of-generation: EOS, EOT, EOM and the tokens llama.cpp recognises by text.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }

    /// A control or unknown token: rendered only when decoding with `special`.
    pub fn is_control(&self, id: u32) -> bool {
        self.vocab.has(id, attr::CONTROL | attr::UNKNOWN)
    }

    /// `tokenizer.ggml.model` and `tokenizer.ggml.pre` as the file gives them.
    pub fn model_name(&self) -> &str {
        &self.model_name
    }
    pub fn pre_name(&self) -> Option<&str> {
        self.pre_name.as_deref()
    }

    fn check(&self, id: u32) -> Result<()> {
        if (id as usize) < self.n_vocab() {
            Ok(())
        } else {
            Err(Error::TokenOutOfRange { id, n_vocab: self.n_vocab() })
        }
    }
}

/// A byte-level token's bytes: each character stands for one byte. A character that does not
/// (a malformed vocabulary) renders as llama.cpp renders it, `[UNK_BYTE_0x<utf8 hex><token>]`.
fn render_byte_level(text: &str, out: &mut Vec<u8>) {
    for c in text.chars() {
        match unicode::char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                for b in c.encode_utf8(&mut [0; 4]).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
}
