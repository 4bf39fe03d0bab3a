//! A device message's content type, parsed once at the ingest edge. It is part of the message's
//! identity (see `velferd_migration::message_key`), so equal types must be equal strings.

use std::fmt;
use std::str::FromStr;

/// A content type normalised as `velferd_migration::normalise_content_type` does: media type
/// and parameter names lower-cased, `charset` lower-cased, parameters sorted, no whitespace, at
/// most [`velferd_migration::MAX_CONTENT_TYPE_BYTES`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentType(String);

/// Why a content type was refused; `Display` is the message for the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the content type {shown:?} is invalid: {reason}")]
pub struct InvalidContentType {
    /// The start of what was sent (a refused value may be long).
    shown: String,
    reason: String,
}

impl ContentType {
    /// What a message without a `Content-Type` header is taken to be.
    pub fn octet_stream() -> ContentType {
        ContentType("application/octet-stream".into())
    }

    /// The content type of a stored message. Rows stored before types were checked may hold
    /// one that does not parse; it is kept as stored, so the message is replayed as it came.
    pub fn from_stored(stored: &str) -> ContentType {
        ContentType(velferd_migration::normalise_content_type(stored).unwrap_or_else(|_| stored.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ContentType {
    type Err = InvalidContentType;

    fn from_str(raw: &str) -> Result<ContentType, InvalidContentType> {
        velferd_migration::normalise_content_type(raw).map(ContentType).map_err(|reason| {
            let shown: String = raw.chars().take(60).collect();
            InvalidContentType { shown: if shown.len() < raw.len() { format!("{shown}…") } else { shown }, reason }
        })
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn normal(raw: &str) -> String {
        raw.parse::<ContentType>().unwrap_or_else(|e| panic!("{raw:?}: {e}")).as_str().to_string()
    }

    #[test]
    fn equal_content_types_normalise_to_one_string() {
        for raw in [
            "application/json;charset=utf-8",
            "Application/JSON; Charset=UTF-8",
            " application/json ;charset=\"utf-8\" ",
            "application/json; charset=utf-8;",
        ] {
            assert_eq!(normal(raw), "application/json;charset=utf-8", "{raw:?}");
        }
        assert_eq!(normal("text/plain"), "text/plain");
        assert_eq!(normal("multipart/mixed; Boundary=AbC; a=\"x y\""), "multipart/mixed;a=\"x y\";boundary=AbC");
        assert_eq!(normal("a/b; q=\"say \\\"hi\\\"\""), "a/b;q=\"say \\\"hi\\\"\"");
    }

    #[test]
    fn malformed_or_long_content_types_are_refused_with_the_reason() {
        for (raw, reason) in [
            ("", "is empty"),
            ("json", "is not type/subtype"),
            ("application/", "is not type/subtype"),
            ("app lication/json", "is not type/subtype"),
            ("application/json; charset", "has no value"),
            ("application/json; charset=", "neither a token nor a quoted string"),
            ("application/json; charset=\"utf-8", "ends inside a quoted string"),
            ("application/json; charset=utf-8 x", "unexpected"),
            ("text/plain; a=1; A=2", "appears twice"),
            ("text/plain; é=1", "only visible ASCII"),
        ] {
            let e = raw.parse::<ContentType>().unwrap_err().to_string();
            assert!(e.contains(reason), "{raw:?}: {e}");
        }
        let long = format!("application/json; x={}", "a".repeat(200));
        let e = long.parse::<ContentType>().unwrap_err().to_string();
        assert!(e.contains("at most 200") && e.contains('…'), "{e}");
    }

    proptest! {
        #[test]
        fn normalising_is_idempotent_and_never_panics(raw in "[ -~\t]{0,80}") {
            if let Ok(once) = raw.parse::<ContentType>() {
                prop_assert_eq!(once.as_str().parse::<ContentType>().unwrap(), once.clone());
                prop_assert!(once.as_str().len() <= raw.len());
            }
        }
    }
}
