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

    #[test]
    fn blank_optional_text_is_absent_and_an_overlong_one_is_refused() {
        assert_eq!(Text::<3>::parse_optional("f", Some("  ")), Ok(None));
        assert_eq!(Text::<3>::parse_optional("f", None), Ok(None));
        assert_eq!(Text::<3>::parse_optional("f", Some(" ab ")).unwrap().unwrap().as_str(), "ab");
        assert_eq!(Text::<3>::parse_optional("f", Some("abcd")).unwrap_err().code, "INVALID_TEXT");
    }
}
