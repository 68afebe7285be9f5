//! The synthetic models' vocabulary: GPT-2 style byte-level BPE without merges — the 256 byte
//! tokens, two control tokens (BOS, EOS) and user-defined fillers up to the shape's size — so
//! llama.cpp and aether both load and tokenize with it.

/// Token id of `<|begin_of_text|>`.
pub const BOS: u32 = 256;
/// Token id of `<|end_of_text|>`.
pub const EOS: u32 = 257;

/// GPT-2's reversible byte → printable-character map: printable bytes stand for themselves, the
/// others are moved to U+0100 and up in byte order.
fn byte_char(b: u8) -> char {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(b) {
        return b as char;
    }
    let shift = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + shift).unwrap_or('?')
}

/// The token strings and `token_type`s (1 normal, 3 control, 4 user-defined) of an n-token
/// vocabulary.
pub fn tokens(n_vocab: u64) -> (Vec<String>, Vec<i32>) {
    let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_char(b).to_string()).collect();
    let mut types = vec![1i32; 256];
    for special in ["<|begin_of_text|>", "<|end_of_text|>"] {
        tokens.push(special.into());
        types.push(3);
    }
    while (tokens.len() as u64) < n_vocab {
        tokens.push(format!("<|synth_{}|>", tokens.len()));
        types.push(4);
    }
    (tokens, types)
}
