//! Byte-level BPE (`tokenizer.ggml.model = gpt2`): the merge table and the merge loop.
//!
//! Each pre-tokenized word is spelled in GPT-2's byte characters, cut into characters, and the
//! adjacent pair with the lowest merge rank (leftmost on ties) is merged until no pair has a rank.
//! A symbol left that is not a token falls back to single-byte tokens where the vocabulary has
//! them and is dropped otherwise, as in llama.cpp.
//!
//! llama.cpp looks merges up by string pair; we intern both strings of every merge to an id once,
//! at load (vocabulary ids first, then ids past the vocabulary for strings only merges name), so
//! the loop looks up integer pairs: `ranks[(left, right)]`. A merged symbol gets the id of its
//! string (none if neither the vocabulary nor a merge names it: it can merge no further). The
//! first rank of a duplicated merge wins. Merge lines split at the first space after their first
//! byte.
//!
//! Reference: llama.cpp `src/llama-vocab.cpp` (`llm_tokenizer_bpe_session::tokenize`, the merges
//! loop in `load`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::fxhash::FxHashMap;
use super::vocab::Vocab;
use crate::error::{Error, Result};

/// Symbol id for a string that neither the vocabulary nor any merge names.
const NONE: u32 = u32::MAX;

pub(crate) struct Merges {
    n_vocab: u32,
    /// `(left id << 32) | right id` → rank.
    ranks: FxHashMap<u64, u32>,
    /// Strings merges name that are not tokens, with ids from `n_vocab` up.
    extra: FxHashMap<Box<str>, u32>,
}

impl Merges {
    pub fn new(vocab: &Vocab, merges: &[&str]) -> Result<Merges> {
        let mut m = Merges {
            n_vocab: vocab.len() as u32,
            ranks: FxHashMap::with_capacity_and_hasher(merges.len(), Default::default()),
            extra: FxHashMap::default(),
        };
        for (rank, line) in merges.iter().enumerate() {
            let (a, b) = split_merge(line);
            let left = m.intern(vocab, a)?;
            let right = m.intern(vocab, b)?;
            m.ranks.entry(key(left, right)).or_insert(rank as u32);
        }
        Ok(m)
    }

    pub fn len(&self) -> usize {
        self.ranks.len()
    }

    fn intern(&mut self, vocab: &Vocab, s: &str) -> Result<u32> {
        if let Some(id) = vocab.id(s).or_else(|| self.extra.get(s).copied()) {
            return Ok(id);
        }
        let id = u32::try_from(self.n_vocab as usize + self.extra.len())
            .ok()
            .filter(|&id| id != NONE)
            .ok_or_else(|| Error::Tokenizer("tokenizer.ggml.merges names too many strings".into()))?;
        self.extra.insert(s.into(), id);
        Ok(id)
    }

    fn lookup(&self, vocab: &Vocab, s: &str) -> u32 {
        vocab.id(s).or_else(|| self.extra.get(s).copied()).unwrap_or(NONE)
    }

    /// Appends the tokens of one byte-encoded `word`.
    pub fn encode_word(&self, vocab: &Vocab, word: &str, ignore_merges: bool, out: &mut Vec<u32>) {
        if ignore_merges && let Some(id) = vocab.id(word) {
            out.push(id);
            return;
        }
        // One symbol per character; `len == 0` marks a symbol merged into its left neighbour.
        let mut syms: Vec<Sym> = Vec::with_capacity(word.len());
        for (i, (start, c)) in word.char_indices().enumerate() {
            let len = c.len_utf8();
            let id = self.lookup(vocab, &word[start..start + len]);
            syms.push(Sym { start, len, id, prev: i.checked_sub(1), next: None });
            if i > 0 {
                syms[i - 1].next = Some(i);
            }
        }
        // Min-heap on (rank, left index); entries made stale by earlier merges are skipped.
        let mut heap = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<_>, syms: &[Sym], l: Option<usize>, r: Option<usize>| {
            let (Some(l), Some(r)) = (l, r) else { return };
            if let Some(&rank) = self.ranks.get(&key(syms[l].id, syms[r].id)) {
                heap.push(Reverse((rank, l, r, syms[l].len + syms[r].len)));
            }
        };
        for i in 1..syms.len() {
            push(&mut heap, &syms, Some(i - 1), Some(i));
        }
        while let Some(Reverse((_, l, r, size))) = heap.pop() {
            if syms[l].len == 0
                || syms[r].len == 0
                || syms[l].len + syms[r].len != size
                || syms[l].next != Some(r)
            {
                continue;
            }
            syms[l].len = size;
            syms[l].id = self.lookup(vocab, &word[syms[l].start..syms[l].start + size]);
            syms[r].len = 0;
            syms[l].next = syms[r].next;
            if let Some(n) = syms[r].next {
                syms[n].prev = Some(l);
            }
            let (prev, next) = (syms[l].prev, syms[l].next);
            push(&mut heap, &syms, prev, Some(l));
            push(&mut heap, &syms, Some(l), next);
        }
        let mut i = if syms.is_empty() { None } else { Some(0) };
        while let Some(s) = i.map(|i| &syms[i]) {
            if s.id < self.n_vocab {
                out.push(s.id);
            } else {
                // Not a token: its bytes one by one, where a byte alone is a token.
                let text = &word.as_bytes()[s.start..s.start + s.len];
                for &b in text.iter().filter(|b| b.is_ascii()) {
                    out.extend(vocab.id(char::from(b).encode_utf8(&mut [0; 4])));
                }
            }
            i = s.next;
        }
    }
}

struct Sym {
    start: usize,
    len: usize,
    id: u32,
    prev: Option<usize>,
    next: Option<usize>,
}

fn key(left: u32, right: u32) -> u64 {
    (u64::from(left) << 32) | u64::from(right)
}

/// `"a b"` → `("a", "b")`, splitting at the first space after the first byte (so a merge of a
/// literal space token still splits); a line without one names the empty pair, as in llama.cpp.
fn split_merge(line: &str) -> (&str, &str) {
    match line.as_bytes().iter().skip(1).position(|&b| b == b' ') {
        // A space byte is always a char boundary.
        Some(p) => (&line[..p + 1], &line[p + 2..]),
        None => ("", ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_lines_split_after_the_first_byte() {
        assert_eq!(split_merge("Ġ t"), ("Ġ", "t"));
        assert_eq!(split_merge("  x"), (" ", "x"));
        assert_eq!(split_merge("ab"), ("", ""));
    }
}
