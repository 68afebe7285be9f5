//! SentencePiece-style BPE over scores (`tokenizer.ggml.model = llama`), as llama.cpp's SPM
//! tokenizer: the text (spaces already escaped to U+2581) is cut into characters, and the adjacent
//! pair whose concatenation is the highest-scoring token (leftmost on ties) is merged until no
//! pair forms a token. A symbol left that is not a token becomes its bytes' `<0xXX>` tokens.
//!
//! GGUF SentencePiece vocabularies carry scores, not merges, which is why this is not the Hugging
//! Face BPE model: the merge order is the score order.
//!
//! Reference: llama.cpp `src/llama-vocab.cpp` (`llm_tokenizer_spm_session`).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::vocab::Vocab;
use crate::error::{Error, Result};

/// Appends the tokens of `text`. Fails only when a byte has no token and there is no unknown
/// token to stand for it (llama.cpp aborts there).
pub(crate) fn encode(vocab: &Vocab, unk: Option<u32>, text: &str, out: &mut Vec<u32>) -> Result<()> {
    // One symbol per character; `len == 0` marks a symbol merged into its left neighbour.
    let mut syms: Vec<Sym> = Vec::with_capacity(text.len());
    for (i, (start, c)) in text.char_indices().enumerate() {
        syms.push(Sym { start, len: c.len_utf8(), prev: i.checked_sub(1), next: None });
        if i > 0 {
            syms[i - 1].next = Some(i);
        }
    }
    let mut heap = BinaryHeap::new();
    let push = |heap: &mut BinaryHeap<Bigram>, syms: &[Sym], l: Option<usize>, r: Option<usize>| {
        let (Some(l), Some(r)) = (l, r) else { return };
        let size = syms[l].len + syms[r].len;
        // Adjacent symbols are adjacent in the text.
        if let Some(id) = vocab.id(&text[syms[l].start..syms[l].start + size]) {
            heap.push(Bigram { score: vocab.scores[id as usize], left: l, right: r, size });
        }
    };
    for i in 1..syms.len() {
        push(&mut heap, &syms, Some(i - 1), Some(i));
    }
    while let Some(b) = heap.pop() {
        let (l, r) = (b.left, b.right);
        if syms[l].len == 0 || syms[r].len == 0 || syms[l].len + syms[r].len != b.size {
            continue;
        }
        syms[l].len = b.size;
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
        let piece = &text[s.start..s.start + s.len];
        match vocab.id(piece) {
            Some(id) => out.push(id),
            None => {
                for &b in piece.as_bytes() {
                    let id = vocab.spm_byte_token(b).or(unk).ok_or_else(|| {
                        Error::Tokenizer(format!("no token for byte {b:#04x} and no unknown token"))
                    })?;
                    out.push(id);
                }
            }
        }
        i = s.next;
    }
    Ok(())
}

struct Sym {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge; the heap yields the highest score first, then the leftmost.
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        // As llama.cpp's `<` on floats: NaN and ±0 compare equal to anything / each other.
        self.score.partial_cmp(&other.score).unwrap_or(Ordering::Equal).then(other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}
