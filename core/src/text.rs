//! The QR text form of a badge: `TB1:` followed by the envelope in base45
//! (RFC 9285), which uses only characters of the QR alphanumeric mode.

/// Prefix of a version-1 badge in text form.
pub const TEXT_PREFIX: &str = "TB1:";

/// The characters trimmed from both ends of badge text, and no others:
/// TAB, LF, CR and SPACE, what a scanner or a copy adds around a code. Not
/// Unicode White_Space (U+3000, U+00A0 …), not a BOM, not other controls:
/// those make the text MALFORMED.
pub const TRIMMED: [char; 4] = ['\t', '\n', '\r', ' '];

/// The base45 alphabet (RFC 9285).
const ALPHABET: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

/// Why badge text did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// Longer than any badge can be.
    #[error("badge text of {len} characters exceeds the limit of {max}")]
    TooLong {
        /// Characters given.
        len: usize,
        /// Largest accepted.
        max: usize,
    },
    /// Another tessera text version, e.g. `TB2:`.
    #[error("badge text version {0:?} is not supported (this verifier reads TB1:)")]
    UnsupportedVersion(String),
    /// Does not start with a badge prefix at all.
    #[error("text is not a tessera badge (it must start with TB1:)")]
    MissingPrefix,
    /// A character outside the base45 alphabet.
    #[error("character {ch:?} at position {position} is not base45")]
    InvalidCharacter {
        /// Position in the whole text, counting from 0.
        position: usize,
        /// The character.
        ch: char,
    },
    /// A length that is 1 modulo 3.
    #[error("base45 text of {0} characters has a dangling character")]
    DanglingCharacter(usize),
    /// A group encodes a value too large for its byte count.
    #[error("base45 group at position {0} encodes a value out of range")]
    ValueOutOfRange(usize),
}

/// Encodes bytes as base45.
pub fn base45_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(2) * 3);
    for chunk in bytes.chunks(2) {
        let (mut n, digits) = match *chunk {
            [a, b] => (usize::from(a) * 256 + usize::from(b), 3),
            [a] => (usize::from(a), 2),
            _ => continue,
        };
        for _ in 0..digits {
            out.push(char::from(ALPHABET[n % 45]));
            n /= 45;
        }
    }
    out
}

fn digit(ch: u8) -> Option<u32> {
    ALPHABET
        .iter()
        .position(|&a| a == ch)
        .and_then(|p| u32::try_from(p).ok())
}

impl TextError {
    /// The stable reason code of this refusal (PROTOCOL.md, outcome table).
    pub fn reason(&self) -> &'static str {
        match self {
            TextError::TooLong { .. } => "text_too_long",
            TextError::UnsupportedVersion(_) => "text_unsupported_version",
            TextError::MissingPrefix => "text_missing_prefix",
            TextError::InvalidCharacter { .. } => "text_invalid_character",
            TextError::DanglingCharacter(_) => "text_dangling_character",
            TextError::ValueOutOfRange(_) => "text_value_out_of_range",
        }
    }
}

/// The longest badge text accepted, in characters after trimming, for
/// envelopes of at most `max_envelope` bytes: `4 + 3 * ceil(max / 2)`.
pub fn max_text_chars(max_envelope: usize) -> usize {
    TEXT_PREFIX.len() + max_envelope.div_ceil(2) * 3
}

/// Decodes base45; `offset` is added to reported positions.
pub fn base45_decode(text: &str, offset: usize) -> Result<Vec<u8>, TextError> {
    let raw = text.as_bytes();
    if let Some((i, ch)) = text
        .char_indices()
        .find(|&(_, c)| !c.is_ascii() || digit(c as u8).is_none())
    {
        return Err(TextError::InvalidCharacter {
            position: offset + i,
            ch,
        });
    }
    if raw.len() % 3 == 1 {
        return Err(TextError::DanglingCharacter(raw.len()));
    }
    let mut out = Vec::with_capacity(raw.len() / 3 * 2 + 1);
    for (group, chunk) in raw.chunks(3).enumerate() {
        let position = offset + group * 3;
        let mut n = 0u32;
        for &c in chunk.iter().rev() {
            n = n * 45 + digit(c).ok_or(TextError::ValueOutOfRange(position))?;
        }
        if chunk.len() == 3 {
            let pair = u16::try_from(n).map_err(|_| TextError::ValueOutOfRange(position))?;
            out.extend_from_slice(&pair.to_be_bytes());
        } else {
            out.push(u8::try_from(n).map_err(|_| TextError::ValueOutOfRange(position))?);
        }
    }
    Ok(out)
}

/// The text form of an envelope.
pub fn to_text(envelope: &[u8]) -> String {
    format!("{TEXT_PREFIX}{}", base45_encode(envelope))
}

/// Reads the text form back into envelope bytes. Trims [`TRIMMED`] from both
/// ends (a scanner's trailing newline) and nothing else; the length limit
/// counts the characters (Unicode scalar values) left after trimming.
pub fn from_text(text: &str, max_envelope: usize) -> Result<Vec<u8>, TextError> {
    let text = text.trim_matches(TRIMMED);
    let max = max_text_chars(max_envelope);
    let len = text.chars().count();
    if len > max {
        return Err(TextError::TooLong { len, max });
    }
    let Some(body) = text.strip_prefix(TEXT_PREFIX) else {
        if let Some((version, _)) = text.split_once(':')
            && version.starts_with("TB")
            && version.chars().count() <= 6
        {
            return Err(TextError::UnsupportedVersion(format!("{version}:")));
        }
        return Err(TextError::MissingPrefix);
    };
    base45_decode(body, TEXT_PREFIX.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9285_vectors() {
        assert_eq!(base45_encode(b"AB"), "BB8");
        assert_eq!(base45_encode(b"Hello!!"), "%69 VD92EX0");
        assert_eq!(base45_encode(b"base-45"), "UJCLQE7W581");
        assert_eq!(base45_decode("QED8WEX0", 0).unwrap(), b"ietf!");
        assert_eq!(base45_decode("", 0).unwrap(), b"");
    }

    #[test]
    fn bad_text_is_named() {
        assert!(matches!(
            from_text("TB1:AB", 512),
            Err(TextError::ValueOutOfRange(4))
        ));
        assert!(matches!(
            base45_decode("GGW", 0),
            Err(TextError::ValueOutOfRange(0))
        ));
        assert!(matches!(
            base45_decode("abc", 0),
            Err(TextError::InvalidCharacter {
                position: 0,
                ch: 'a'
            })
        ));
        assert!(matches!(
            base45_decode("ABCD", 0),
            Err(TextError::DanglingCharacter(4))
        ));
        assert!(matches!(
            from_text("HC1:BB8", 512),
            Err(TextError::MissingPrefix)
        ));
        assert!(matches!(
            from_text("TB2:BB8", 512),
            Err(TextError::UnsupportedVersion(_))
        ));
        assert!(matches!(
            from_text("TB1:BB8€", 512),
            Err(TextError::InvalidCharacter { position: 7, .. })
        ));
        assert!(matches!(
            from_text(&"0".repeat(10_000), 512),
            Err(TextError::TooLong { .. })
        ));
        assert_eq!(from_text(" TB1:BB8\n", 512).unwrap(), b"AB");
        assert_eq!(from_text("\t\r\nTB1:BB8 \r\n", 512).unwrap(), b"AB");
    }

    #[test]
    fn only_tab_lf_cr_and_space_are_trimmed() {
        // Unicode White_Space that Rust's trim() would remove is refused.
        assert!(matches!(
            from_text("TB1:BB8\u{3000}", 512),
            Err(TextError::InvalidCharacter { ch: '\u{3000}', .. })
        ));
        assert!(matches!(
            from_text("\u{feff}TB1:BB8", 512),
            Err(TextError::MissingPrefix)
        ));
        assert!(matches!(
            from_text("TB1:BB8\u{0b}", 512),
            Err(TextError::InvalidCharacter { .. })
        ));
    }

    #[test]
    fn the_length_limit_counts_characters_after_trimming() {
        let longest = format!("TB1:{}", "0".repeat(768));
        assert_eq!(longest.chars().count(), max_text_chars(512));
        // A valid-length text with a scanner's newline is not too long.
        assert!(!matches!(
            from_text(&format!("{longest}\r\n"), 512),
            Err(TextError::TooLong { .. })
        ));
        assert!(matches!(
            from_text(&format!("{longest}0"), 512),
            Err(TextError::TooLong { len: 773, max: 772 })
        ));
        // Characters, not bytes: 772 characters of which some are not ASCII
        // are not too long, they are not base45.
        let wide = format!("TB1:{}\u{e9}", "0".repeat(767));
        assert!(matches!(
            from_text(&wide, 512),
            Err(TextError::InvalidCharacter { position: 771, .. })
        ));
    }
}
