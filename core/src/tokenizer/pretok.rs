//! Pre-tokenizers for byte-level BPE: split text into the words BPE merges within, as llama.cpp
//! does for the `tokenizer.ggml.pre` name.
//!
//! llama.cpp applies a list of regexes in turn, each splitting the pieces the previous one left
//! (matches and the gaps between them both become pieces). The common regexes have hand-written
//! matchers there (`unicode_regex_split_custom_gpt2`, `_llama3`, `_qwen2`, `_qwen35`); the rest run
//! through `std::regex` over a copy of the text where each non-ASCII code point is replaced by a
//! byte standing for its category. We implement each regex as a matcher over code points with
//! the same classes ([`Flags`]), so no regex engine is needed and the splits are llama.cpp's,
//! quirks included. Names llama.cpp knows but we have not implemented are an
//! [`Error::UnsupportedPreTokenizer`]; names it does not know are an [`Error::UnknownPreTokenizer`]
//! (llama.cpp refuses them too). A missing name means `default`, as in llama.cpp.
//!
//! Reference: llama.cpp `src/llama-vocab.cpp` (`llm_tokenizer_bpe`, the `tokenizer_pre` table in
//! `load`) and `src/unicode.cpp` (`unicode_regex_split`).

use std::ops::Range;

use super::unicode::Flags;
use crate::error::{Error, Result};

/// The split a pre-tokenizer name selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PreKind {
    /// `[\p{P}\$\+<=>\^~\|]+`, then GPT-2's regex, then `\p{N}+`, then `[0-9][0-9][0-9]`.
    Default,
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`.
    Gpt2,
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
    Llama3,
    /// Llama 3's regex with single digits (`\p{N}`).
    Qwen2,
    /// Qwen 2's regex with combining marks counted as letters (`[\p{L}\p{M}]+`).
    Qwen35,
    /// `\p{N}` (every digit alone), then GPT-2's regex: StarCoder, SmolLM and kin.
    Starcoder,
    /// `[\p{P}\$\+<=>\^~\|`]+`, then GPT-2's regex, then `[0-9][0-9][0-9]`.
    Falcon,
}

/// What a `tokenizer.ggml.pre` name implies besides the split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PreSpec {
    pub kind: PreKind,
    /// A word that is itself a token is emitted whole, without merging (Llama 3's BPE).
    pub ignore_merges: bool,
    /// The default of `add_bos_token` when the file does not say.
    pub add_bos: bool,
    /// The vocabulary has no BOS token whatever the default (ChatGLM).
    pub no_bos: bool,
}

impl PreSpec {
    pub fn from_name(name: &str) -> Result<PreSpec> {
        use PreKind::*;
        let spec =
            |kind, ignore_merges, add_bos, no_bos| Ok(PreSpec { kind, ignore_merges, add_bos, no_bos });
        match name {
            "" | "default" => spec(Default, false, false, false),
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
            | "lfm2" | "jina-v5-nano" => spec(Llama3, true, true, false),
            "dbrx" | "smaug-bpe" => spec(Llama3, false, false, false),
            "chatglm-bpe" => spec(Llama3, false, false, true),
            "glm4" | "glm5" => spec(Llama3, true, false, true),
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "stablelm2" | "hunyuan" | "solar-open"
            | "megrez" | "grok-2" => spec(Qwen2, false, false, false),
            "qwen35" => spec(Qwen35, false, false, false),
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
            | "a.x-4.0" | "mellum" | "modern-bert" | "exaone4" | "mpt" | "olmo" | "jais" | "trillion"
            | "granite-docling" | "jina-v1-en" | "jina-v2-code" | "roberta-bpe" => {
                spec(Gpt2, false, false, false)
            }
            "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b"
            | "mellum2" => spec(Starcoder, false, false, false),
            "falcon" => spec(Falcon, false, false, false),
            _ if KNOWN_UNSUPPORTED.contains(&name) => {
                Err(Error::UnsupportedPreTokenizer { pre: name.into() })
            }
            _ => Err(Error::UnknownPreTokenizer { pre: name.into() }),
        }
    }
}

/// Names llama.cpp accepts whose splits (other regexes, whitespace escaping, digit grouping) we
/// have not written yet.
const KNOWN_UNSUPPORTED: &[&str] = &[
    "minicpm5",
    "deepseek-llm",
    "deepseek-coder",
    "deepseek-v3",
    "spark2_5",
    "youtu",
    "jais-2",
    "gemma4",
    "granite-embed-multi-311m",
    "sarvam-moe",
    "whitespace",
    "poro-chat",
    "viking",
    "tekken",
    "bloom",
    "gpt3-finnish",
    "exaone-moe",
    "chameleon",
    "gpt-4o",
    "llama4",
    "kanana2",
    "talkie",
    "granite-embed-multi-97m",
    "tiny_aya",
    "cohere2moe",
    "superbpe",
    "bailingmoe",
    "bailingmoe2",
    "llada-moe",
    "seed-coder",
    "hunyuan-dense",
    "hy_v4",
    "joyai-llm",
    "kimi-k2",
    "ufakzeka",
    "afmoe",
    "laguna",
    "minimax-m2",
];

/// Splits `cps` into words, as ranges of code-point indices covering it in order.
pub(crate) fn split(kind: PreKind, cps: &[char]) -> Vec<Range<usize>> {
    let flags: Vec<Flags> = cps.iter().map(|&c| Flags::of(c)).collect();
    let mut pieces = Vec::new();
    if !cps.is_empty() {
        pieces.push(0..cps.len());
    }
    let steps: &[Step] = match kind {
        PreKind::Default => {
            &[Step::Runs(is_default_punct), Step::Gpt2, Step::Runs(is_number), Step::DigitTriples]
        }
        PreKind::Gpt2 => &[Step::Gpt2],
        PreKind::Llama3 => &[Step::Modern { max_digits: 3, marks: false }],
        PreKind::Qwen2 => &[Step::Modern { max_digits: 1, marks: false }],
        PreKind::Qwen35 => &[Step::Modern { max_digits: 1, marks: true }],
        PreKind::Starcoder => &[Step::Each(is_number), Step::Gpt2],
        PreKind::Falcon => &[Step::Runs(is_falcon_punct), Step::Gpt2, Step::DigitTriples],
    };
    for step in steps {
        let mut next = Vec::with_capacity(pieces.len() * 2);
        for r in pieces {
            let mut p = Piece { cps, flags: &flags, start: r.start, end: r.end, out: &mut next };
            match *step {
                Step::Gpt2 => p.gpt2(),
                Step::Modern { max_digits, marks } => p.modern(max_digits, marks),
                Step::Runs(pred) => p.isolate(pred, true),
                Step::Each(pred) => p.isolate(pred, false),
                Step::DigitTriples => p.digit_triples(),
            }
        }
        pieces = next;
    }
    pieces
}

type Pred = fn(char, Flags) -> bool;

/// One regex of a pre-tokenizer's list.
#[derive(Clone, Copy)]
enum Step {
    Gpt2,
    /// Llama 3 / Qwen 2 / Qwen 3.5: digits per group, marks as letters.
    Modern {
        max_digits: usize,
        marks: bool,
    },
    /// `[class]+`: runs of matching code points.
    Runs(Pred),
    /// `[class]`: each matching code point alone.
    Each(Pred),
    /// `[0-9][0-9][0-9]`.
    DigitTriples,
}

fn is_number(_: char, f: Flags) -> bool {
    f.is_number()
}

/// `[\p{P}\$\+<=>\^~\|]` as llama.cpp's category-collapsed `std::regex` reads it: ASCII by the
/// literal set (all ASCII punctuation and symbols but the backtick), other code points by category.
fn is_default_punct(c: char, f: Flags) -> bool {
    if c.is_ascii() { c.is_ascii_punctuation() && c != '`' } else { f.is_punctuation() }
}

/// Falcon's class: the default one plus the backtick.
fn is_falcon_punct(c: char, f: Flags) -> bool {
    if c.is_ascii() { c.is_ascii_punctuation() } else { f.is_punctuation() }
}

/// A piece being split: code points `start..end` of the text; words go to `out`.
struct Piece<'a> {
    cps: &'a [char],
    flags: &'a [Flags],
    start: usize,
    end: usize,
    out: &'a mut Vec<Range<usize>>,
}

impl Piece<'_> {
    /// The code point at `i`, `None` outside the piece.
    fn cp(&self, i: usize) -> Option<char> {
        (self.start..self.end).contains(&i).then(|| self.cps[i])
    }

    /// The classes at `i`, [`Flags::NONE`] outside the piece.
    fn fl(&self, i: usize) -> Flags {
        if (self.start..self.end).contains(&i) { self.flags[i] } else { Flags::NONE }
    }

    /// Ends the current word at `end` (empty words are dropped).
    fn emit(&mut self, from: &mut usize, end: usize) {
        if end > *from {
            self.out.push(*from..end);
        }
        *from = end;
    }

    /// `'s|'t|'m|'d|'re|'ve|'ll` at `pos`: the length matched, case-insensitive if asked.
    fn contraction(&self, pos: usize, fold: bool) -> usize {
        if self.cp(pos) != Some('\'') || pos + 1 >= self.end {
            return 0;
        }
        let lower = |c: Option<char>| c.map(|c| if fold { c.to_ascii_lowercase() } else { c });
        let n1 = lower(self.cp(pos + 1));
        if matches!(n1, Some('s' | 't' | 'm' | 'd')) {
            return 2;
        }
        if pos + 2 < self.end {
            let n2 = lower(self.cp(pos + 2));
            if matches!((n1, n2), (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l'))) {
                return 3;
            }
        }
        0
    }

    /// The whitespace run at `pos`: its length and the end of its last `\r`/`\n`, if any.
    fn whitespace_run(&self, pos: usize) -> (usize, Option<usize>) {
        let mut n = 0;
        let mut last_newline_end = None;
        while self.fl(pos + n).is_whitespace() {
            if matches!(self.cp(pos + n), Some('\r' | '\n')) {
                last_newline_end = Some(pos + n + 1);
            }
            n += 1;
        }
        (n, last_newline_end)
    }

    /// `\s+(?!\S)|\s+` at a whitespace run of `n`: before a non-space, leave its last space to
    /// lead the next word; at the end of the piece, take it all. No run: one code point alone.
    fn whitespace_end(&self, pos: usize, n: usize) -> usize {
        if n > 1 && self.cp(pos + n).is_some() {
            pos + n - 1
        } else if n > 0 {
            pos + n
        } else {
            pos + 1
        }
    }

    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`.
    fn gpt2(&mut self) {
        let mut from = self.start;
        let mut pos = self.start;
        while pos < self.end {
            let k = self.contraction(pos, false);
            if k > 0 {
                pos += k;
                self.emit(&mut from, pos);
                continue;
            }
            // ` ?X+`: a single leading space joins the run of class X that follows it.
            let space = self.cp(pos) == Some(' ');
            let f = if space { self.fl(pos + 1) } else { self.fl(pos) };
            let other = |g: Flags| g.exists() && !(g.is_whitespace() || g.is_letter() || g.is_number());
            let class: Option<fn(Flags) -> bool> = if f.is_letter() {
                Some(Flags::is_letter)
            } else if f.is_number() {
                Some(Flags::is_number)
            } else if other(f) {
                Some(other)
            } else {
                None
            };
            if let Some(class) = class {
                pos += space as usize;
                while class(self.fl(pos)) {
                    pos += 1;
                }
                self.emit(&mut from, pos);
                continue;
            }
            let (n, _) = self.whitespace_run(pos);
            pos = self.whitespace_end(pos, n);
            self.emit(&mut from, pos);
        }
    }

    /// Llama 3 (`max_digits` 3), Qwen 2 (1) and Qwen 3.5 (1, `marks`):
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
    fn modern(&mut self, max_digits: usize, marks: bool) {
        let letter = |f: Flags| f.is_letter() || (marks && f.is_mark());
        let mut from = self.start;
        let mut pos = self.start;
        while pos < self.end {
            let k = self.contraction(pos, true);
            if k > 0 {
                pos += k;
                self.emit(&mut from, pos);
                continue;
            }
            let c = self.cp(pos);
            let f = self.fl(pos);
            // `[^\r\n\p{L}\p{N}]?\p{L}+`: one non-letter, non-digit may lead a run of letters.
            let newline = matches!(c, Some('\r' | '\n'));
            if !(newline || f.is_number()) && (letter(f) || letter(self.fl(pos + 1))) {
                pos += 1;
                while letter(self.fl(pos)) {
                    pos += 1;
                }
                self.emit(&mut from, pos);
                continue;
            }
            // `\p{N}{1,max}`: digits in groups of at most `max_digits`.
            if f.is_number() {
                let mut group = 0;
                while self.fl(pos).is_number() {
                    pos += 1;
                    group += 1;
                    if group == max_digits {
                        self.emit(&mut from, pos);
                        group = 0;
                    }
                }
                self.emit(&mut from, pos);
                continue;
            }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`. As in llama.cpp, a lone trailing space takes this branch
            // (the regex's `\s+` gives the same word).
            let space = c == Some(' ');
            let f2 = if space { self.fl(pos + 1) } else { f };
            if !(f2.is_whitespace() || letter(f2) || f2.is_number()) {
                pos += space as usize;
                while self.fl(pos).exists()
                    && !(self.fl(pos).is_whitespace() || letter(self.fl(pos)) || self.fl(pos).is_number())
                {
                    pos += 1;
                }
                while matches!(self.cp(pos), Some('\r' | '\n')) {
                    pos += 1;
                }
                self.emit(&mut from, pos);
                continue;
            }
            // `\s*[\r\n]+` up to the run's last newline, else `\s+(?!\S)|\s+`.
            let (n, last_newline_end) = self.whitespace_run(pos);
            pos = last_newline_end.unwrap_or_else(|| self.whitespace_end(pos, n));
            self.emit(&mut from, pos);
        }
    }

    /// Isolates code points matching `pred`: each run of them (`runs`) or each one alone becomes a
    /// word, and so does each gap between them.
    fn isolate(&mut self, pred: Pred, runs: bool) {
        let mut from = self.start;
        let mut pos = self.start;
        while pos < self.end {
            if !pred(self.cps[pos], self.flags[pos]) {
                pos += 1;
                continue;
            }
            self.emit(&mut from, pos);
            pos += 1;
            while runs && pos < self.end && pred(self.cps[pos], self.flags[pos]) {
                pos += 1;
            }
            self.emit(&mut from, pos);
        }
        self.emit(&mut from, self.end);
    }

    /// `[0-9][0-9][0-9]`: leftmost, non-overlapping triples of ASCII digits become words.
    fn digit_triples(&mut self) {
        let mut from = self.start;
        let mut pos = self.start;
        while pos + 3 <= self.end {
            if self.cps[pos..pos + 3].iter().all(char::is_ascii_digit) {
                self.emit(&mut from, pos);
                pos += 3;
                self.emit(&mut from, pos);
            } else {
                pos += 1;
            }
        }
        self.emit(&mut from, self.end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(kind: PreKind, s: &str) -> Vec<String> {
        let cps: Vec<char> = s.chars().collect();
        split(kind, &cps).into_iter().map(|r| cps[r].iter().collect()).collect()
    }

    #[test]
    fn gpt2_keeps_one_space_before_words() {
        assert_eq!(
            words(PreKind::Gpt2, "Hello  world's 123!!"),
            ["Hello", " ", " world", "'s", " 123", "!!"]
        );
        assert_eq!(words(PreKind::Gpt2, "a \n\n b"), ["a", " \n\n", " b"]);
        assert_eq!(words(PreKind::Gpt2, "x   "), ["x", "   "]);
    }

    #[test]
    fn llama3_groups_digits_and_newlines() {
        assert_eq!(words(PreKind::Llama3, "1234567"), ["123", "456", "7"]);
        assert_eq!(words(PreKind::Llama3, "I'VE  a\n\n b"), ["I", "'VE", " ", " a", "\n\n", " b"]);
        assert_eq!(words(PreKind::Llama3, "!!\n\nx"), ["!!\n\n", "x"]);
        assert_eq!(words(PreKind::Qwen2, "x123"), ["x", "1", "2", "3"]);
    }

    #[test]
    fn default_isolates_punctuation_and_digit_triples() {
        assert_eq!(words(PreKind::Default, "a+b 12345"), ["a", "+", "b", " ", "123", "45"]);
        assert_eq!(words(PreKind::Starcoder, "ab 12"), ["ab", " ", "1", "2"]);
        assert_eq!(words(PreKind::Falcon, "`x` 1234"), ["`", "x", "`", " ", "123", "4"]);
    }

    #[test]
    fn names_map_or_fail_clearly() {
        assert_eq!(PreSpec::from_name("smollm").unwrap().kind, PreKind::Starcoder);
        assert!(PreSpec::from_name("llama-bpe").unwrap().ignore_merges);
        assert!(matches!(PreSpec::from_name("tekken"), Err(Error::UnsupportedPreTokenizer { .. })));
        assert!(
            matches!(PreSpec::from_name("nonsense"), Err(Error::UnknownPreTokenizer { pre }) if pre == "nonsense")
        );
    }
}
