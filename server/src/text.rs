//! Bounded free text, parsed once at the GraphQL edge so rules never see a raw string.

use crate::errors::Invalid;

/// Free text of 1 to `MAX` characters with surrounding whitespace trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<const MAX: usize>(String);

/// A name or title: one line.
pub type Title = Text<300>;
/// A lesson or a description: a paragraph or a few.
pub type Paragraph = Text<4000>;
/// A summary or a narrative: a page or more.
pub type LongText = Text<20_000>;

impl<const MAX: usize> Text<MAX> {
    /// `value` trimmed, or `INVALID_TEXT` on `field` when it is empty or longer than `MAX`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, Invalid> {
        let value = value.trim();
        if value.is_empty() || value.chars().count() > MAX {
            Err(Invalid::new(field, "INVALID_TEXT", format!("{field} must be 1 to {MAX} characters")))
        } else {
            Ok(Text(value.to_string()))
        }
    }

    /// An optional text where blank means absent, as the API has always read it.
    pub fn parse_optional(field: &'static str, value: Option<&str>) -> Result<Option<Self>, Invalid> {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            Some(v) => Self::parse(field, v).map(Some),
            None => Ok(None),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Free text about care (a recipient's reference, a note, a reason, an outcome): bounded like
/// [`Text`], and never holding anything shaped like a national identity number.
///
/// Velferd never stores a fødselsnummer, D-number or H-number, so any run that could be one is
/// refused whatever its checksum: a checksum test would let through the typo'd numbers that are
/// still personal data, and would tell a prober which digits are valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CareText<const MAX: usize>(Text<MAX>);

/// A reference or a short reason: one line.
pub type CareLine = CareText<300>;
/// A note or an outcome: a paragraph or a few.
pub type CareNote = CareText<4000>;

impl<const MAX: usize> CareText<MAX> {
    /// `value` as [`Text::parse`] takes it, or `NATIONAL_ID_REFUSED` on `field` when it holds a
    /// run shaped like a national identity number ([`holds_national_id`]).
    pub fn parse(field: &'static str, value: &str) -> Result<Self, Invalid> {
        refuse_national_id(field, value)?;
        Text::parse(field, value).map(CareText)
    }

    /// An optional care text where blank means absent.
    pub fn parse_optional(field: &'static str, value: Option<&str>) -> Result<Option<Self>, Invalid> {
        if let Some(value) = value {
            refuse_national_id(field, value)?;
        }
        Ok(Text::parse_optional(field, value)?.map(CareText))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn into_string(self) -> String {
        self.0.into_string()
    }
}

impl<const MAX: usize> std::fmt::Display for CareText<MAX> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `NATIONAL_ID_REFUSED` on `field` when `value` holds a run shaped like a national identity
/// number; the message never repeats the digits.
pub fn refuse_national_id(field: &'static str, value: &str) -> Result<(), Invalid> {
    if holds_national_id(value) {
        Err(Invalid::new(
            field,
            "NATIONAL_ID_REFUSED",
            format!(
                "{field} holds a run of 11 digits, the shape of a national identity number (fødselsnummer, \
                 D- or H-number); Velferd never stores one: use the municipality's pseudonymous reference"
            ),
        ))
    } else {
        Ok(())
    }
}

/// Whether `value` holds a run shaped like a national identity number: defined beside the
/// migration that quarantines such values already stored, so stored rows and new input are
/// judged alike.
pub use velferd_migration::holds_national_id;

impl<const MAX: usize> std::fmt::Display for Text<MAX> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const MAX: usize> From<Text<MAX>> for String {
    fn from(t: Text<MAX>) -> String {
        t.0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn a_parsed_text_is_trimmed_nonempty_and_within_its_bound(value in "\\PC{0,40}", pad in "[ \t\n]{0,3}") {
            let raw = format!("{pad}{value}{pad}");
            match Text::<20>::parse("f", &raw) {
                Ok(t) => {
                    prop_assert_eq!(t.as_str(), raw.trim());
                    prop_assert!(!t.as_str().is_empty());
                    prop_assert!(t.as_str().chars().count() <= 20);
                }
                Err(e) => {
                    prop_assert_eq!(e.code, "INVALID_TEXT");
                    prop_assert_eq!(e.field, "f");
                    let n = raw.trim().chars().count();
                    prop_assert!(n == 0 || n > 20);
                }
            }
        }
    }

    use velferd_migration::national_id::example as national_id;

    fn written(id: &str, separator: &str) -> String {
        format!("{}{separator}{}", &id[..6], &id[6..])
    }

    proptest! {
        #[test]
        fn every_national_id_shape_is_refused_alone_and_inside_text(
            day in 1u32..=28, month in 1u32..=12, year in 0u32..=99, individual in 0u32..=999,
            kind in 0usize..3,
            separator in prop::sample::select(vec!["", " ", "-", ".", "/", "\u{a0}", "\u{2013}", "_"]),
            before in "[a-zA-Z .,:]{0,20}", after in "[a-zA-Z .,:]{0,20}",
        ) {
            let (dd, mm) = match kind { 0 => (day, month), 1 => (day + 40, month), _ => (day, month + 40) };
            prop_assume!(national_id(dd, mm, year, individual).is_some());
            let id = national_id(dd, mm, year, individual).unwrap();
            let text = format!("{before}{}{after}", written(&id, separator));
            prop_assert!(holds_national_id(&text), "{text:?} got through");
            let refused = CareNote::parse("note", &text).unwrap_err();
            prop_assert_eq!(refused.code, "NATIONAL_ID_REFUSED");
            prop_assert!(!refused.message.contains(&id[6..]), "the message repeats the number");
        }

        #[test]
        fn text_without_a_long_digit_run_passes(value in "[a-zA-Z ]{0,10}[0-9]{0,10}[a-zA-Z ]{1,10}[0-9]{0,4}") {
            prop_assert!(!holds_national_id(&value));
        }
    }

    #[test]
    fn shapes_near_a_national_id_are_told_apart() {
        assert!(holds_national_id("12345678901"));
        assert!(holds_national_id("ref 010203 12345 x"));
        assert!(holds_national_id("ab１２３４５６７８９０１"));
        assert!(holds_national_id("010203-12345"));
        assert!(!holds_national_id("0102031234"), "ten digits are not a national id");
        assert!(!holds_national_id("01020 312345"), "five then six is not the written shape");
        assert!(holds_national_id("010203 - 12345"));
        assert!(!holds_national_id("010203 x 12345"), "a letter parts them");
        assert!(!holds_national_id("case 2024-1234, room 12"));
    }

    #[test]
    fn blank_optional_text_is_absent_and_an_overlong_one_is_refused() {
        assert_eq!(Text::<3>::parse_optional("f", Some("  ")), Ok(None));
        assert_eq!(Text::<3>::parse_optional("f", None), Ok(None));
        assert_eq!(Text::<3>::parse_optional("f", Some(" ab ")).unwrap().unwrap().as_str(), "ab");
        assert_eq!(Text::<3>::parse_optional("f", Some("abcd")).unwrap_err().code, "INVALID_TEXT");
    }
}
