//! Code-point classes for the pre-tokenizers, and GPT-2's byte ↔ character map.
//!
//! llama.cpp classifies every code point into one general-category group (letter, number, mark,
//! punctuation, symbol, separator, control, or undefined for unassigned code points) plus a
//! `White_Space` bit, and its pre-tokenizers test only those groups (llama.cpp `src/unicode.cpp`,
//! `scripts/gen-unicode-data.py`). We derive the groups from the `unicode-general-category` tables
//! (Unicode 16) and list `White_Space` by hand: it is 25 code points and never changes.
//!
//! Byte-level BPE vocabularies spell bytes as printable characters (GPT-2's `bytes_to_unicode`):
//! the printable Latin-1 bytes stand for themselves, the other 68 bytes map in order onto
//! U+0100.., so `' '` is `Ġ` and `'\n'` is `Ċ`.

use unicode_general_category::{GeneralCategory as G, get_general_category};

/// The classes of one code point; `0` means "past the end of the text" (no code point at all),
/// which every test below answers with false, as llama.cpp's out-of-range flags do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags(u16);

impl Flags {
    const UNDEFINED: u16 = 1 << 0;
    const NUMBER: u16 = 1 << 1;
    const LETTER: u16 = 1 << 2;
    const SEPARATOR: u16 = 1 << 3;
    const MARK: u16 = 1 << 4;
    const PUNCTUATION: u16 = 1 << 5;
    const SYMBOL: u16 = 1 << 6;
    const CONTROL: u16 = 1 << 7;
    const WHITESPACE: u16 = 1 << 8;

    /// No code point (past the end of a piece).
    pub(crate) const NONE: Flags = Flags(0);

    pub(crate) fn of(c: char) -> Flags {
        let group = match get_general_category(c) {
            G::DecimalNumber | G::LetterNumber | G::OtherNumber => Self::NUMBER,
            G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter => Self::LETTER,
            G::SpaceSeparator | G::LineSeparator | G::ParagraphSeparator => Self::SEPARATOR,
            G::NonspacingMark | G::SpacingMark | G::EnclosingMark => Self::MARK,
            G::ConnectorPunctuation
            | G::DashPunctuation
            | G::OpenPunctuation
            | G::ClosePunctuation
            | G::InitialPunctuation
            | G::FinalPunctuation
            | G::OtherPunctuation => Self::PUNCTUATION,
            G::MathSymbol | G::CurrencySymbol | G::ModifierSymbol | G::OtherSymbol => Self::SYMBOL,
            G::Control | G::Format | G::PrivateUse | G::Surrogate => Self::CONTROL,
            // `Unassigned`, and any category a later Unicode adds.
            _ => Self::UNDEFINED,
        };
        let ws = if is_white_space(c) { Self::WHITESPACE } else { 0 };
        Flags(group | ws)
    }

    /// A code point exists here (any class).
    pub(crate) fn exists(self) -> bool {
        self.0 != 0
    }
    pub(crate) fn is_letter(self) -> bool {
        self.0 & Self::LETTER != 0
    }
    pub(crate) fn is_number(self) -> bool {
        self.0 & Self::NUMBER != 0
    }
    pub(crate) fn is_mark(self) -> bool {
        self.0 & Self::MARK != 0
    }
    pub(crate) fn is_punctuation(self) -> bool {
        self.0 & Self::PUNCTUATION != 0
    }
    pub(crate) fn is_whitespace(self) -> bool {
        self.0 & Self::WHITESPACE != 0
    }
}

/// Unicode's `White_Space` property (PropList.txt), the set llama.cpp's `\s` means.
fn is_white_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}'..='\u{D}'
            | ' '
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

/// Bytes GPT-2 leaves as themselves: printable ASCII and printable Latin-1 (minus the soft hyphen).
const fn byte_is_printable(b: u8) -> bool {
    matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// `BYTE_CHAR[b]`: the code point that spells byte `b` in a byte-level vocabulary.
const BYTE_CHAR: [u32; 256] = {
    let mut map = [0u32; 256];
    let mut next = 256u32;
    let mut b = 0usize;
    while b < 256 {
        if byte_is_printable(b as u8) {
            map[b] = b as u32;
        } else {
            map[b] = next;
            next += 1;
        }
        b += 1;
    }
    map
};

/// The character that spells byte `b` in a byte-level vocabulary.
pub(crate) fn byte_to_char(b: u8) -> char {
    // Every entry is below U+0144, a valid scalar value.
    char::from_u32(BYTE_CHAR[b as usize]).unwrap_or('\u{FFFD}')
}

/// `SHIFTED_BYTE[k]`: the byte spelled by U+0100 + k, the inverse of [`BYTE_CHAR`] above U+00FF.
const SHIFTED_BYTE: [u8; 68] = {
    let mut inv = [0u8; 68];
    let mut b = 0usize;
    while b < 256 {
        if BYTE_CHAR[b] >= 256 {
            inv[(BYTE_CHAR[b] - 256) as usize] = b as u8;
        }
        b += 1;
    }
    inv
};

/// The byte a byte-level character spells, if it spells one.
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    let cp = c as u32;
    match cp {
        0..=0xFF if byte_is_printable(cp as u8) => Some(cp as u8),
        0x100..=0x143 => Some(SHIFTED_BYTE[(cp - 0x100) as usize]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_is_a_bijection_onto_gpt2_characters() {
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'A'), 'A');
        assert_eq!(byte_to_char(0xAD), 'Ń');
        for b in 0..=255u8 {
            let c = byte_to_char(b);
            assert_eq!(char_to_byte(c), Some(b), "byte {b:#04x} -> {c:?} does not map back");
        }
        assert_eq!(char_to_byte('Ŕ'), None);
        assert_eq!(char_to_byte(' '), None);
    }

    #[test]
    fn classes_follow_general_categories() {
        assert!(Flags::of('a').is_letter() && Flags::of('ß').is_letter() && Flags::of('我').is_letter());
        assert!(Flags::of('3').is_number() && Flags::of('½').is_number());
        assert!(Flags::of('\u{301}').is_mark());
        assert!(Flags::of('!').is_punctuation() && !Flags::of('$').is_punctuation());
        assert!(Flags::of('\u{3000}').is_whitespace() && Flags::of('\n').is_whitespace());
        assert!(!Flags::of('\u{200B}').is_whitespace());
        assert!(Flags::of('\u{E000}').exists() && !Flags::NONE.exists());
    }
}
