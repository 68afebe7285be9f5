//! The vocabulary as llama.cpp loads it from `tokenizer.ggml.*`: token texts, scores, attributes,
//! the text → id index, the special ids and the end-of-generation set.
//!
//! Layout: token `i` has text `texts[offsets[i]..offsets[i + 1]]`, `scores[i]`, `attrs[i]` (a bit
//! set, [`attr`]) and, once [`Vocab::build_pieces`] ran, its rendered piece
//! `pieces[piece_offsets[i]..piece_offsets[i + 1]]`. The text → id index is an open-addressed
//! table over the texts (no per-token allocation); it keeps the *last* id of a duplicated text, as
//! llama.cpp's `token_to_id` map does.
//!
//! Reference: llama.cpp `src/llama-vocab.cpp`, `llama_vocab::impl::load` — special-id defaults and
//! overrides, the text-based detection of EOT/EOM/FIM tokens, the EOG set and its workarounds.
//! Where llama.cpp walks an unordered map (so its choice among several candidates is unspecified),
//! we take the first candidate in the order its list names them.

use super::fxhash::hash_str;
use crate::error::{Error, Result};
use crate::gguf::{Metadata, Value, ValueType};

/// Token attributes, the bits of llama.cpp's `llama_token_attr`.
pub(crate) mod attr {
    pub const UNKNOWN: u32 = 1 << 0;
    pub const UNUSED: u32 = 1 << 1;
    pub const NORMAL: u32 = 1 << 2;
    pub const CONTROL: u32 = 1 << 3;
    pub const USER_DEFINED: u32 = 1 << 4;
    pub const BYTE: u32 = 1 << 5;
    pub const LSTRIP: u32 = 1 << 7;
    pub const RSTRIP: u32 = 1 << 8;

    /// `tokenizer.ggml.token_type` value → attribute (1 normal, 2 unknown, 3 control,
    /// 4 user-defined, 5 unused, 6 byte; anything else is undefined = no bits).
    pub fn from_type(t: i32) -> u32 {
        match t {
            1 => NORMAL,
            2 => UNKNOWN,
            3 => CONTROL,
            4 => USER_DEFINED,
            5 => UNUSED,
            6 => BYTE,
            _ => 0,
        }
    }
}

pub(crate) const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
const KEY_SCORES: &str = "tokenizer.ggml.scores";
const KEY_TYPES: &str = "tokenizer.ggml.token_type";

/// Special token ids; `None` where the vocabulary has none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub mask: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
}

pub(crate) struct Vocab {
    texts: String,
    offsets: Vec<usize>, // [n_vocab + 1]
    pub scores: Vec<f32>,
    pub attrs: Vec<u32>,
    /// Open-addressed text → id table: `(hash >> 32) << 32 | (id + 1)`, 0 for empty; linear
    /// probing; the length is a power of two at least twice the vocabulary.
    index: Vec<u64>,
    pieces: Vec<u8>,
    piece_offsets: Vec<usize>, // [n_vocab + 1], empty until build_pieces
}

impl Vocab {
    /// Reads the token texts, scores and types. Missing scores are 0 and missing types normal,
    /// as in llama.cpp; arrays shorter than the token list are errors.
    pub fn from_metadata(meta: &Metadata<'_>) -> Result<Vocab> {
        let tokens = meta.get_str_array(KEY_TOKENS)?;
        let n = tokens.len();
        if n == 0 {
            return Err(Error::Tokenizer(format!("{KEY_TOKENS} is empty")));
        }
        if u32::try_from(n).is_err() {
            return Err(Error::Tokenizer(format!("{KEY_TOKENS} has {n} entries, over u32 ids")));
        }
        let scores = match meta.get(KEY_SCORES) {
            None => vec![0.0; n],
            Some(_) => read_scores(meta)?,
        };
        let types = match meta.get(KEY_TYPES) {
            None => vec![1; n],
            Some(_) => meta.get_i32_array(KEY_TYPES)?,
        };
        for (key, len) in [(KEY_SCORES, scores.len()), (KEY_TYPES, types.len())] {
            if len < n {
                return Err(Error::VocabArrayTooShort { key, len, n_vocab: n });
            }
        }

        let mut texts = String::with_capacity(tokens.iter().map(|t| t.len()).sum());
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0);
        for (i, t) in tokens.iter().enumerate() {
            // llama.cpp renames empty tokens so that every token has a findable text.
            if t.is_empty() {
                texts.push_str(&format!("[EMPTY_{i}]"));
            } else {
                texts.push_str(t);
            }
            offsets.push(texts.len());
        }
        let mut vocab = Vocab {
            texts,
            offsets,
            scores: scores[..n].to_vec(),
            attrs: types[..n].iter().map(|&t| attr::from_type(t)).collect(),
            index: vec![0; (2 * n).next_power_of_two()],
            pieces: Vec::new(),
            piece_offsets: Vec::new(),
        };
        for id in 0..n as u32 {
            vocab.index_insert(id);
        }
        Ok(vocab)
    }

    /// The slot where `s` is, or the empty slot where it would go.
    fn slot(&self, s: &str) -> (usize, u64) {
        let h = hash_str(s);
        let tag = h & !0xFFFF_FFFF;
        let mask = self.index.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let e = self.index[i];
            if e == 0 || (e & !0xFFFF_FFFF == tag && self.text((e as u32) - 1) == s) {
                return (i, tag);
            }
            i = (i + 1) & mask;
        }
    }

    /// Indexes token `id`; a later duplicate text replaces an earlier one.
    fn index_insert(&mut self, id: u32) {
        let (i, tag) = self.slot(self.text(id));
        self.index[i] = tag | (u64::from(id) + 1);
    }

    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    /// The text of token `id` (the caller checked the range).
    pub fn text(&self, id: u32) -> &str {
        let i = id as usize;
        &self.texts[self.offsets[i]..self.offsets[i + 1]]
    }

    pub fn get_text(&self, id: u32) -> Option<&str> {
        ((id as usize) < self.len()).then(|| self.text(id))
    }

    /// The id whose text is exactly `s`.
    pub fn id(&self, s: &str) -> Option<u32> {
        let (i, _) = self.slot(s);
        match self.index[i] {
            0 => None,
            e => Some((e as u32) - 1),
        }
    }

    pub fn has(&self, id: u32, bits: u32) -> bool {
        self.attrs.get(id as usize).is_some_and(|a| a & bits != 0)
    }

    /// The token for byte `b` in a SentencePiece vocabulary: `<0xXX>`, else the byte itself as a
    /// one-character token (llama.cpp `byte_to_token`).
    pub fn spm_byte_token(&self, b: u8) -> Option<u32> {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let name = [b'<', b'0', b'x', HEX[(b >> 4) as usize], HEX[(b & 15) as usize], b'>'];
        // Both are ASCII, so valid UTF-8.
        let name = std::str::from_utf8(&name).unwrap_or_default();
        self.id(name)
            .or_else(|| if b.is_ascii() { self.id(char::from(b).encode_utf8(&mut [0; 4])) } else { None })
    }

    /// Renders every token once (special tokens as their text), so that decoding is a lookup.
    /// `render` maps a normal token's text to its bytes.
    pub fn build_pieces(&mut self, render: impl Fn(&str, &mut Vec<u8>)) {
        let mut pieces = Vec::with_capacity(self.texts.len());
        let mut offs = Vec::with_capacity(self.len() + 1);
        offs.push(0);
        for id in 0..self.len() as u32 {
            let a = self.attrs[id as usize];
            let text = self.text(id);
            if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
                pieces.extend_from_slice(text.as_bytes());
            } else if a & attr::NORMAL != 0 {
                render(text, &mut pieces);
            } else if a & attr::BYTE != 0 {
                pieces.extend(byte_token_value(text));
            }
            offs.push(pieces.len());
        }
        self.pieces = pieces;
        self.piece_offsets = offs;
    }

    /// The rendered piece of `id` (special tokens as their text).
    pub fn piece(&self, id: u32) -> &[u8] {
        let i = id as usize;
        match (self.piece_offsets.get(i), self.piece_offsets.get(i + 1)) {
            (Some(&s), Some(&e)) => &self.pieces[s..e],
            _ => &[],
        }
    }

    /// Special ids: the model's defaults, disabled where out of range, then the file's keys.
    /// An id key that is not an integer is an error; one out of range keeps the default
    /// (llama.cpp warns and does the same).
    pub fn special_ids(&self, meta: &Metadata<'_>, defaults: SpecialIds) -> Result<SpecialIds> {
        let mut ids = defaults;
        let n = self.len() as u64;
        type Slot = fn(&mut SpecialIds) -> &mut Option<u32>;
        let slots: [(&str, Slot); 17] = [
            ("tokenizer.ggml.bos_token_id", |s| &mut s.bos),
            ("tokenizer.ggml.eos_token_id", |s| &mut s.eos),
            ("tokenizer.ggml.eot_token_id", |s| &mut s.eot),
            ("tokenizer.ggml.eom_token_id", |s| &mut s.eom),
            ("tokenizer.ggml.unknown_token_id", |s| &mut s.unk),
            ("tokenizer.ggml.seperator_token_id", |s| &mut s.sep),
            ("tokenizer.ggml.padding_token_id", |s| &mut s.pad),
            ("tokenizer.ggml.mask_token_id", |s| &mut s.mask),
            ("tokenizer.ggml.fim_pre_token_id", |s| &mut s.fim_pre),
            ("tokenizer.ggml.fim_suf_token_id", |s| &mut s.fim_suf),
            ("tokenizer.ggml.fim_mid_token_id", |s| &mut s.fim_mid),
            ("tokenizer.ggml.fim_pad_token_id", |s| &mut s.fim_pad),
            ("tokenizer.ggml.fim_rep_token_id", |s| &mut s.fim_rep),
            ("tokenizer.ggml.fim_sep_token_id", |s| &mut s.fim_sep),
            // Deprecated spellings of the first three FIM ids.
            ("tokenizer.ggml.prefix_token_id", |s| &mut s.fim_pre),
            ("tokenizer.ggml.suffix_token_id", |s| &mut s.fim_suf),
            ("tokenizer.ggml.middle_token_id", |s| &mut s.fim_mid),
        ];
        for (key, field) in slots {
            let slot = field(&mut ids);
            if slot.is_some_and(|id| u64::from(id) >= n) {
                *slot = None;
            }
            let Some(v) = meta.get(key) else { continue };
            let Some(v) = v.as_integer() else {
                return Err(Error::WrongType {
                    key: key.into(),
                    expected: "integer",
                    found: v.value_type().name(),
                });
            };
            // Negative (some writers' "none") or out of range: keep the default.
            if (0..i128::from(n)).contains(&v) {
                *slot = Some(v as u32);
            }
        }
        Ok(ids)
    }

    /// Finds the first token whose text is one of `names` (in `names` order) and marks it control.
    fn detect(&mut self, names: &[&str]) -> Option<u32> {
        let id = names.iter().find_map(|s| self.id(s))?;
        self.attrs[id as usize] |= attr::CONTROL;
        Some(id)
    }

    /// Fills unset EOT/EOM/FIM ids from well-known texts, then builds the end-of-generation set
    /// with llama.cpp's workarounds. Returns the sorted EOG ids.
    pub fn detect_special(&mut self, ids: &mut SpecialIds) -> Vec<u32> {
        let detections: [(&mut Option<u32>, &[&str]); 8] = [
            (&mut ids.eot, EOT_TEXTS),
            (&mut ids.eom, &["<|eom_id|>"]),
            (&mut ids.fim_pre, FIM_PRE_TEXTS),
            (&mut ids.fim_suf, FIM_SUF_TEXTS),
            (&mut ids.fim_mid, FIM_MID_TEXTS),
            (&mut ids.fim_pad, &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"]),
            (&mut ids.fim_rep, &["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"]),
            (&mut ids.fim_sep, &["<|file_sep|>"]),
        ];
        for (slot, names) in detections {
            if slot.is_none() {
                *slot = self.detect(names);
            }
        }

        let mut eog: Vec<u32> = [ids.fim_pad, ids.fim_rep, ids.fim_sep].into_iter().flatten().collect();
        for name in EOG_TEXTS {
            if let Some(id) = self.id(name) {
                eog.push(id);
                self.attrs[id as usize] |= attr::CONTROL;
            }
        }
        // gpt-oss: these structure tokens are always rendered.
        for name in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let Some(id) = self.id(name) {
                self.attrs[id as usize] = attr::USER_DEFINED;
            }
        }
        eog.extend([ids.eos, ids.eot, ids.eom].into_iter().flatten());
        eog.sort_unstable();
        eog.dedup();

        // o200k_harmony / solar-open: `<|end|>` ends a message, not the generation.
        if let Some(end) = self.in_set(&eog, "<|end|>") {
            let harmony =
                self.in_set(&eog, "<|return|>").is_some() && self.in_set(&eog, "<|call|>").is_some();
            let solar = self.in_set(&eog, "<|calls|>").is_some() && self.in_set(&eog, "<|flush|>").is_some();
            if harmony || solar {
                eog.retain(|&i| i != end);
                self.attrs[end as usize] = attr::USER_DEFINED;
            }
        }
        // gemma4 / plamo2: `</s>` is a normal token there.
        if let Some(s) = self.in_set(&eog, "</s>") {
            let marker = ["<|tool_response>", "<|plamo:eos|>"].iter().any(|m| self.in_set(&eog, m).is_some());
            if marker {
                eog.retain(|&i| i != s);
                self.attrs[s as usize] = attr::NORMAL;
            }
        }
        eog
    }

    /// The id of text `s` if it is in `set`.
    fn in_set(&self, set: &[u32], s: &str) -> Option<u32> {
        self.id(s).filter(|id| set.contains(id))
    }

    /// Ids llama.cpp splits out of text before tokenizing (control, user-defined and unknown
    /// tokens), longest text first; equal lengths keep id order.
    pub fn special_order(&self) -> Vec<u32> {
        let bits = attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN;
        let mut order: Vec<u32> = (0..self.len() as u32).filter(|&i| self.has(i, bits)).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.text(i).len()));
        order
    }

    /// Per-model strip attributes llama.cpp sets by name: Phi-3's special tokens swallow the
    /// whitespace after them; some BERT-style vocabularies' mask token swallows the one before.
    pub fn apply_strip_attrs(&mut self, meta: &Metadata<'_>, pre: &str, special_order: &[u32]) {
        let get = |k: &str| meta.get(k).and_then(Value::as_str).unwrap_or("");
        let name = get("general.name").to_lowercase();
        let arch = get("general.architecture");
        let any = |s: &str, subs: &[&str]| subs.iter().any(|x| s.contains(x));
        if any(pre, &["jina-v2-de", "jina-v2-es", "jina-v2-code"])
            || any(arch, &["nomic-bert-moe", "jina-bert-v3"])
        {
            if let Some(id) = self.id("<mask>") {
                self.attrs[id as usize] |= attr::LSTRIP;
            }
        } else if any(&name, &["phi-3", "phi3"]) {
            for &id in special_order {
                self.attrs[id as usize] |= attr::RSTRIP;
            }
            if let Some(id) = self.id("</s>") {
                self.attrs[id as usize] |= attr::RSTRIP;
            }
            for s in ["<unk>", "<s>", "<|endoftext|>"] {
                if let Some(id) = self.id(s) {
                    self.attrs[id as usize] &= !attr::RSTRIP;
                }
            }
        } else if name.contains("modern-bert")
            && let Some(id) = self.id("[MASK]")
        {
            self.attrs[id as usize] |= attr::LSTRIP;
        }
    }
}

/// `tokenizer.ggml.scores`: f32 (or f64) scores, or integer scores as llama.cpp also accepts.
fn read_scores(meta: &Metadata<'_>) -> Result<Vec<f32>> {
    let a = meta.get_array(KEY_SCORES)?;
    match a.elem_type() {
        ValueType::F32 | ValueType::F64 => meta.get_f32_array(KEY_SCORES),
        _ => Ok(meta.get_i32_array(KEY_SCORES)?.into_iter().map(|s| s as f32).collect()),
    }
}

/// The byte a `<0xXX>` token stands for (llama.cpp parses the two characters after `<0x` with
/// `strtol`, so a malformed name yields the hex digits it does have, or 0).
pub(crate) fn byte_token_value(text: &str) -> Option<u8> {
    let digits = text.as_bytes().get(3..)?;
    let mut v = 0u8;
    for &d in digits.iter().take(2) {
        match (d as char).to_digit(16) {
            Some(x) => v = v * 16 + x as u8,
            None => break,
        }
    }
    Some(v)
}

const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
/// Texts that end generation wherever they occur in a vocabulary.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];
