//! Identifiers, parsed once and never re-validated.
//!
//! A city is its 6-digit administrative division code (GB/T 2260), such as
//! 330100 for Hangzhou; its province is the first two digits followed by
//! `0000` (330000, Zhejiang).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Why a code did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// Not exactly six ASCII digits.
    #[error("{0:?} is not a 6-digit administrative division code")]
    NotSixDigits(String),
    /// The first two digits name no province (valid: 11 to 82).
    #[error("{0:06} does not start with a province prefix (11 to 82)")]
    NoProvince(u32),
    /// A city code must not end in 0000: that is a province.
    #[error("{0:06} is a province code, not a city code")]
    ProvinceNotCity(u32),
    /// A province code must end in 0000.
    #[error("{0:06} is not a province code (it must end in 0000)")]
    NotProvince(u32),
}

fn parse_six_digits(s: &str) -> Result<u32, CodeError> {
    if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CodeError::NotSixDigits(s.to_owned()));
    }
    s.parse::<u32>()
        .map_err(|_| CodeError::NotSixDigits(s.to_owned()))
}

fn check_province_prefix(code: u32) -> Result<(), CodeError> {
    if (11..=82).contains(&(code / 10_000)) {
        Ok(())
    } else {
        Err(CodeError::NoProvince(code))
    }
}

/// A city's administrative division code, e.g. 330100 (Hangzhou).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CityCode(u32);

impl CityCode {
    /// Checks a numeric code as found in a badge or trust list.
    pub fn new(code: u32) -> Result<Self, CodeError> {
        if code > 999_999 {
            return Err(CodeError::NotSixDigits(code.to_string()));
        }
        check_province_prefix(code)?;
        if code.is_multiple_of(10_000) {
            return Err(CodeError::ProvinceNotCity(code));
        }
        Ok(Self(code))
    }

    /// The numeric code.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The province this city belongs to.
    pub fn province(self) -> ProvinceCode {
        ProvinceCode(self.0 / 10_000 * 10_000)
    }
}

impl FromStr for CityCode {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(parse_six_digits(s)?)
    }
}

impl fmt::Display for CityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

/// A province's code, e.g. 420000 (Hubei).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProvinceCode(u32);

impl ProvinceCode {
    /// Checks a numeric code.
    pub fn new(code: u32) -> Result<Self, CodeError> {
        if code > 999_999 {
            return Err(CodeError::NotSixDigits(code.to_string()));
        }
        check_province_prefix(code)?;
        if !code.is_multiple_of(10_000) {
            return Err(CodeError::NotProvince(code));
        }
        Ok(Self(code))
    }

    /// The numeric code.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl FromStr for ProvinceCode {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(parse_six_digits(s)?)
    }
}

impl fmt::Display for ProvinceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

/// A badge's 16 random bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BadgeId([u8; 16]);

impl BadgeId {
    /// Length in bytes.
    pub const LEN: usize = 16;

    /// Wraps 16 bytes (the caller supplies the randomness).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// Reads exactly 16 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for BadgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BadgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BadgeId({self})")
    }
}

/// Names a signing certificate: the first 8 bytes of SHA-256 over its DER.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

impl KeyId {
    /// Length in bytes.
    pub const LEN: usize = 8;

    /// The key id of a DER-encoded certificate.
    pub fn of_certificate(der: &[u8]) -> Self {
        let digest = Sha256::digest(der);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Self(id)
    }

    /// Reads exactly 8 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn city_codes_parse_and_name_their_province() {
        let hangzhou: CityCode = "330100".parse().unwrap();
        assert_eq!(hangzhou.get(), 330100);
        assert_eq!(hangzhou.province().to_string(), "330000");
        assert_eq!(
            "420100".parse::<CityCode>().unwrap().province().get(),
            420000
        );
    }

    #[test]
    fn malformed_codes_are_refused_with_a_reason() {
        assert!(matches!(
            "33010".parse::<CityCode>(),
            Err(CodeError::NotSixDigits(_))
        ));
        assert!(matches!(
            "3301OO".parse::<CityCode>(),
            Err(CodeError::NotSixDigits(_))
        ));
        assert!(matches!(
            "+33010".parse::<CityCode>(),
            Err(CodeError::NotSixDigits(_))
        ));
        assert!(matches!(
            "990100".parse::<CityCode>(),
            Err(CodeError::NoProvince(_))
        ));
        assert!(matches!(
            "330000".parse::<CityCode>(),
            Err(CodeError::ProvinceNotCity(_))
        ));
        assert!(matches!(
            "420100".parse::<ProvinceCode>(),
            Err(CodeError::NotProvince(_))
        ));
        assert!(CityCode::new(1_330_100).is_err());
        assert_eq!("420000".parse::<ProvinceCode>().unwrap().get(), 420000);
    }

    #[test]
    fn key_id_is_sha256_prefix() {
        let id = KeyId::of_certificate(b"abc");
        assert_eq!(id.to_string(), "ba7816bf8f01cfea");
    }
}
