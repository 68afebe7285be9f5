//! Splitting special tokens out of text before tokenizing, as llama.cpp's
//! `tokenizer_st_partition`: for each special token, longest text first, every occurrence in the
//! remaining text fragments becomes that token. Control and unknown tokens are split out only when
//! the caller asks (`parse_special`); user-defined tokens always are, as Hugging Face does for
//! non-special added tokens. A token with the `LSTRIP`/`RSTRIP` attribute swallows the ASCII
//! whitespace before/after it.

use std::ops::Range;

use super::vocab::{Vocab, attr};

/// A piece of the input: text still to tokenize (a byte range of it), or a token already chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fragment {
    Text(Range<usize>),
    Token(u32),
}

/// C's `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t'..=b'\r')
}

pub(crate) fn partition(vocab: &Vocab, order: &[u32], text: &str, parse_special: bool) -> Vec<Fragment> {
    let mut frags = if text.is_empty() { Vec::new() } else { vec![Fragment::Text(0..text.len())] };
    let bytes = text.as_bytes();
    for &id in order {
        if !parse_special && vocab.has(id, attr::CONTROL | attr::UNKNOWN) {
            continue;
        }
        let needle = vocab.text(id);
        if !frags.iter().any(|f| matches!(f, Fragment::Text(r) if text[r.clone()].contains(needle))) {
            continue;
        }
        let lstrip = vocab.has(id, attr::LSTRIP);
        let rstrip = vocab.has(id, attr::RSTRIP);
        let mut next = Vec::with_capacity(frags.len() + 2);
        for f in frags {
            let Fragment::Text(r) = f else {
                next.push(f);
                continue;
            };
            let mut start = r.start;
            while let Some(m) = text[start..r.end].find(needle).map(|m| start + m) {
                let mut left_end = m;
                if lstrip {
                    while left_end > start && is_c_space(bytes[left_end - 1]) {
                        left_end -= 1;
                    }
                }
                if left_end > start {
                    next.push(Fragment::Text(start..left_end));
                }
                next.push(Fragment::Token(id));
                start = m + needle.len();
                if rstrip {
                    while start < r.end && is_c_space(bytes[start]) {
                        start += 1;
                    }
                }
            }
            if start < r.end {
                next.push(Fragment::Text(start..r.end));
            }
        }
        frags = next;
    }
    frags
}
