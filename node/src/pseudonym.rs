//! Residents are known to the store only by a pseudonym: HMAC-SHA-256 of the
//! national ID number under the node's secret. The ID number itself is never
//! stored; without the secret the pseudonym cannot be linked back to it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A national ID number that passed its checksum (GB 11643), upper-cased.
#[derive(Clone, PartialEq, Eq)]
pub struct NationalId(String);

impl std::fmt::Debug for NationalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NationalId(<redacted>)")
    }
}

/// Why an ID number was refused (never echoing the number itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NationalIdError {
    /// Not 17 digits followed by a digit or X.
    #[error("national ID must be 17 digits followed by a digit or X")]
    Shape,
    /// The check character does not match.
    #[error("national ID check character does not match (mistyped?)")]
    Checksum,
}

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: &[u8; 11] = b"10X98765432";

/// The check character for the first 17 digits.
pub fn check_character(first17: &[u8]) -> Option<char> {
    if first17.len() != 17 || !first17.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK.get((sum % 11) as usize).map(|&c| char::from(c))
}

impl NationalId {
    /// Checks shape and check character.
    pub fn parse(s: &str) -> Result<Self, NationalIdError> {
        let s = s.trim().to_ascii_uppercase();
        let bytes = s.as_bytes();
        if bytes.len() != 18 {
            return Err(NationalIdError::Shape);
        }
        let expected = check_character(&bytes[..17]).ok_or(NationalIdError::Shape)?;
        let last = char::from(bytes[17]);
        if !(last.is_ascii_digit() || last == 'X') {
            return Err(NationalIdError::Shape);
        }
        if last != expected {
            return Err(NationalIdError::Checksum);
        }
        Ok(Self(s))
    }

    /// The number, for masking into a badge's holder hint only.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A resident's pseudonym.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pseudonym([u8; 32]);

impl std::fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Pseudonym({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

impl Pseudonym {
    /// Length in bytes.
    pub const LEN: usize = 32;

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

/// The node's pseudonymisation secret.
#[derive(Clone)]
pub struct PseudonymKey([u8; 32]);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(<redacted>)")
    }
}

impl PseudonymKey {
    /// Wraps 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The secret bytes, for writing the key file.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The pseudonym of an ID number.
    pub fn pseudonym(&self, id: &NationalId) -> Pseudonym {
        // HMAC accepts keys of any length; this cannot fail for 32 bytes.
        let mut out = [0u8; 32];
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) {
            mac.update(b"tessera/pseudonym/v1");
            mac.update(id.0.as_bytes());
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        Pseudonym(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Completes 17 digits with their check character.
    pub fn valid_id(first17: &str) -> String {
        format!("{first17}{}", check_character(first17.as_bytes()).unwrap())
    }

    #[test]
    fn checksums_are_enforced() {
        // A published sample number: 11010519491231002X.
        assert!(NationalId::parse("11010519491231002X").is_ok());
        assert!(NationalId::parse("11010519491231002x").is_ok());
        assert_eq!(
            NationalId::parse("110105194912310021"),
            Err(NationalIdError::Checksum)
        );
        assert_eq!(
            NationalId::parse("1101051949123100"),
            Err(NationalIdError::Shape)
        );
        assert_eq!(
            NationalId::parse("11010519491231002Y"),
            Err(NationalIdError::Shape)
        );
        assert!(NationalId::parse(&valid_id("33010619900101123")).is_ok());
    }

    #[test]
    fn pseudonyms_depend_on_the_key_and_hide_the_number() {
        let id = NationalId::parse("11010519491231002X").unwrap();
        let a = PseudonymKey::from_bytes([1; 32]).pseudonym(&id);
        let b = PseudonymKey::from_bytes([2; 32]).pseudonym(&id);
        assert_ne!(a, b);
        assert_eq!(a, PseudonymKey::from_bytes([1; 32]).pseudonym(&id));
        assert!(!a.as_bytes().windows(4).any(|w| w == b"1101"));
        assert!(!format!("{id:?}").contains("1101"));
    }
}
