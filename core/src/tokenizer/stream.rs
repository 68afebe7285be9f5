//! Streaming detokenization: token ids in, one at a time; complete UTF-8 text out.
//!
//! Byte-level BPE and SentencePiece byte fallback both spell a multi-byte character across
//! several tokens (an emoji is often four `<0xXX>` tokens). The decoder holds the bytes of a
//! character still incomplete and releases it whole once its last byte arrives. A byte sequence
//! that can never become valid UTF-8 is released as U+FFFD at once, so one bad token does not
//! hold back the rest of the stream.
//!
//! Pieces are the tokens' own (llama.cpp `token_to_piece`): the decoder continues a prompt, so
//! unlike [`Tokenizer::decode`] it keeps a SentencePiece vocabulary's leading space.

use super::Tokenizer;
use crate::error::Result;

pub struct StreamDecoder<'t> {
    tok: &'t Tokenizer,
    special: bool,
    /// Bytes of a character not yet complete (at most 3).
    pending: Vec<u8>,
}

impl<'t> StreamDecoder<'t> {
    pub(crate) fn new(tok: &'t Tokenizer, special: bool) -> StreamDecoder<'t> {
        StreamDecoder { tok, special, pending: Vec::new() }
    }

    /// Adds one token; returns the text it completes (possibly empty).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.pending.extend_from_slice(self.tok.token_to_piece(id, self.special)?);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, tail) = rest.split_at(e.valid_up_to());
                    // The prefix was just validated.
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        // An incomplete character at the end: wait for its next bytes.
                        None => {
                            rest = tail;
                            break;
                        }
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &tail[n..];
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        Ok(out)
    }

    /// Bytes held back, waiting for the rest of their character.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// Ends the stream: releases what is held back, an incomplete character as U+FFFD.
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}
