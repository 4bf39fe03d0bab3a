//! Identifiers from the public registers, parsed once at the edge so the rest of the code can
//! rely on them being well formed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Norwegian organisation number (organisasjonsnummer) from the Central Coordinating Register
/// for Legal Entities: nine digits, the last a modulus-11 check digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrgNumber([u8; 9]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrgNumberError {
    #[error("an organisation number has 9 digits, {0:?} has not")]
    Shape(String),
    #[error("{0} fails the modulus-11 check: its last digit should be {1}")]
    CheckDigit(String, u8),
    #[error("{0} fails the modulus-11 check: no number with these first eight digits is valid")]
    NoCheckDigit(String),
}

impl OrgNumber {
    const WEIGHTS: [u32; 8] = [3, 2, 7, 6, 5, 4, 3, 2];

    /// The check digit the first eight digits call for, or `None` when no digit fits
    /// (remainder 1), which means those eight digits are never issued.
    pub fn check_digit(first_eight: &[u8; 8]) -> Option<u8> {
        let sum: u32 = first_eight.iter().zip(Self::WEIGHTS).map(|(d, w)| u32::from(*d) * w).sum();
        match 11 - sum % 11 {
            11 => Some(0),
            10 => None,
            digit => Some(digit as u8),
        }
    }

    pub fn as_string(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }
}

impl FromStr for OrgNumber {
    type Err = OrgNumberError;

    /// Accepts the digits with the usual grouping spaces ("974 760 673"), nothing else.
    fn from_str(s: &str) -> Result<OrgNumber, OrgNumberError> {
        let compact: String = s.chars().filter(|c| *c != ' ').collect();
        if compact.len() != 9 || !compact.bytes().all(|b| b.is_ascii_digit()) {
            return Err(OrgNumberError::Shape(s.to_string()));
        }
        let mut digits = [0u8; 9];
        for (slot, b) in digits.iter_mut().zip(compact.bytes()) {
            *slot = b - b'0';
        }
        let first_eight: [u8; 8] = digits[..8].try_into().expect("nine digits");
        match OrgNumber::check_digit(&first_eight) {
            Some(check) if check == digits[8] => Ok(OrgNumber(digits)),
            Some(check) => Err(OrgNumberError::CheckDigit(compact, check)),
            None => Err(OrgNumberError::NoCheckDigit(compact)),
        }
    }
}

impl fmt::Display for OrgNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

impl Serialize for OrgNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_string())
    }
}

impl<'de> Deserialize<'de> for OrgNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OrgNumber, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A municipality number (kommunenummer): four digits, the first two the county's number at
/// the time. Numbers change with mergers, so a number is only meaningful with its period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MunicipalityNumber([u8; 4]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a municipality number has 4 digits and starts with a county number (01–99), {0:?} does not")]
pub struct MunicipalityNumberError(pub String);

impl FromStr for MunicipalityNumber {
    type Err = MunicipalityNumberError;
    fn from_str(s: &str) -> Result<MunicipalityNumber, MunicipalityNumberError> {
        let bytes = s.as_bytes();
        if bytes.len() != 4 || !bytes.iter().all(u8::is_ascii_digit) || &bytes[..2] == b"00" {
            return Err(MunicipalityNumberError(s.to_string()));
        }
        Ok(MunicipalityNumber(bytes.try_into().expect("four bytes")))
    }
}

impl fmt::Display for MunicipalityNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.0).expect("ASCII digits"))
    }
}

/// A county (fylke) name as it stood when the fact was recorded. Counties have been merged and
/// split (2018, 2020, 2024), so this is a checked name rather than a closed list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CountyName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a county name is 2 to 64 letters, spaces or hyphens, {0:?} is not")]
pub struct CountyNameError(pub String);

impl FromStr for CountyName {
    type Err = CountyNameError;
    fn from_str(s: &str) -> Result<CountyName, CountyNameError> {
        let name = s.trim();
        let ok =
            (2..=64).contains(&name.chars().count()) && name.chars().all(|c| c.is_alphabetic() || c == ' ' || c == '-');
        if ok { Ok(CountyName(name.to_string())) } else { Err(CountyNameError(s.to_string())) }
    }
}

impl CountyName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name of an organisation: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a name is 1 to 200 characters without control characters")]
pub struct OrganizationNameError;

impl FromStr for OrganizationName {
    type Err = OrganizationNameError;
    fn from_str(s: &str) -> Result<OrganizationName, OrganizationNameError> {
        let name = s.trim();
        let ok = (1..=200).contains(&name.chars().count()) && !name.chars().any(char::is_control);
        if ok { Ok(OrganizationName(name.to_string())) } else { Err(OrganizationNameError) }
    }
}

impl OrganizationName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_numbers_parse() {
        // Brønnøysundregistrene's own organisation number.
        assert_eq!("974 760 673".parse::<OrgNumber>().unwrap().to_string(), "974760673");
    }

    #[test]
    fn malformed_numbers_say_why() {
        assert!(matches!("97476067".parse::<OrgNumber>(), Err(OrgNumberError::Shape(_))));
        assert!(matches!("97476067x".parse::<OrgNumber>(), Err(OrgNumberError::Shape(_))));
        assert!(matches!("974760674".parse::<OrgNumber>(), Err(OrgNumberError::CheckDigit(_, 3))));
        assert!("0712".parse::<MunicipalityNumber>().is_ok());
        assert!("0012".parse::<MunicipalityNumber>().is_err());
        assert!("712".parse::<MunicipalityNumber>().is_err());
        assert!("Nord-Trøndelag".parse::<CountyName>().is_ok());
        assert!("X".parse::<CountyName>().is_err());
        assert!("  ".parse::<OrganizationName>().is_err());
    }

    proptest! {
        /// Every eight-digit prefix either has exactly one valid completion or none.
        #[test]
        fn exactly_one_check_digit_fits(prefix in prop::array::uniform8(0u8..10)) {
            let text: String = prefix.iter().map(|d| char::from(b'0' + d)).collect();
            let valid: Vec<u8> = (0..10u8)
                .filter(|d| format!("{text}{d}").parse::<OrgNumber>().is_ok())
                .collect();
            match OrgNumber::check_digit(&prefix) {
                Some(d) => prop_assert_eq!(valid, vec![d]),
                None => prop_assert!(valid.is_empty()),
            }
        }

        /// Changing any single digit of a valid number makes it invalid (mod 11 catches it).
        #[test]
        fn single_digit_errors_are_caught(prefix in prop::array::uniform8(0u8..10), pos in 0usize..9, delta in 1u8..10) {
            if let Some(check) = OrgNumber::check_digit(&prefix) {
                let mut digits: Vec<u8> = prefix.to_vec();
                digits.push(check);
                digits[pos] = (digits[pos] + delta) % 10;
                let text: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
                prop_assert!(text.parse::<OrgNumber>().is_err());
            }
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".{0,20}") {
            let _ = s.parse::<OrgNumber>();
            let _ = s.parse::<MunicipalityNumber>();
            let _ = s.parse::<CountyName>();
        }
    }
}
