//! The one shape of a refusal, for every area, knowing nothing of GraphQL or HTTP.
//!
//! A rule either holds, is broken ([`Refusal::Rule`]: a typed violation the caller can fix, with
//! the input field it concerns and a stable code), or cannot be judged ([`Refusal::Fault`]: the
//! database or the server failed). The GraphQL edge maps a violation to `userErrors` and a fault
//! to a top-level error, once, in `graphql::errors`.

/// Derives [`RuleViolation`] from `#[violation(field = "…", code = "…")]` on each variant.
pub use velferd_macros::RuleViolation;

/// A broken business rule. Its message is its `Display`.
pub trait RuleViolation: std::fmt::Display {
    /// The input field at fault, in the API's spelling (`orgNumber`); empty for the whole input.
    fn field(&self) -> &'static str;
    /// Stable, machine-readable code, e.g. `INVALID_TEXT`.
    fn code(&self) -> &'static str;
}

/// A one-field check that failed: an input that is malformed, out of range or names nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub field: &'static str,
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &'static str, code: &'static str, message: impl Into<String>) -> Invalid {
        Invalid { field, code, message: message.into() }
    }

    /// An id that names no row of the expected kind (or one the caller may not touch).
    pub fn not_found(field: &'static str, message: impl Into<String>) -> Invalid {
        Invalid::new(field, "NOT_FOUND", message)
    }
}

impl RuleViolation for Invalid {
    fn field(&self) -> &'static str {
        self.field
    }

    fn code(&self) -> &'static str {
        self.code
    }
}

/// Most characters of an error message a client sees. Messages quote what the client sent (an
/// enum value, a parse error's line, an id): a 100 kB argument must not come back as a 100 kB
/// error, once per field that names it.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// `message` cut to [`MAX_MESSAGE_CHARS`] characters, marked as cut.
pub fn clip_message(message: &mut String) {
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push_str("… (cut)");
    }
}

/// Most entries a list in one mutation input may have: longer lists are refused at the edge,
/// before any rule runs, so one request cannot make a transaction arbitrarily long.
pub const MAX_ENTRIES: usize = 100;

/// A list input of at most [`MAX_ENTRIES`] entries.
pub fn bounded<T>(field: &'static str, entries: &[T]) -> Result<(), Invalid> {
    if entries.len() <= MAX_ENTRIES {
        Ok(())
    } else {
        let message = format!("{field} has {} entries; at most {MAX_ENTRIES} are allowed", entries.len());
        Err(Invalid::new(field, "TOO_MANY_ENTRIES", message))
    }
}

/// Why a rule did not let a change through.
#[derive(Debug)]
pub enum Refusal<E> {
    /// A broken rule: the change is rolled back and the violation reported to the caller.
    Rule(E),
    /// The rule could not be judged; the caller sees only an incident id.
    Fault(ApiError),
}

/// What every rule returns: its value, or why not.
pub type RuleResult<T, E> = Result<T, Refusal<E>>;

impl<E> Refusal<E> {
    /// The same refusal as a wider area's error (a rule that calls another area's rule).
    pub fn widen<F: From<E>>(self) -> Refusal<F> {
        match self {
            Refusal::Rule(e) => Refusal::Rule(e.into()),
            Refusal::Fault(f) => Refusal::Fault(f),
        }
    }
}

impl<E> From<sea_orm::DbErr> for Refusal<E> {
    fn from(e: sea_orm::DbErr) -> Refusal<E> {
        Refusal::Fault(e.into())
    }
}

impl<E> From<ApiError> for Refusal<E> {
    fn from(e: ApiError) -> Refusal<E> {
        Refusal::Fault(e)
    }
}

/// A one-field check fails as any area's violation that can hold it.
impl<E: From<Invalid>> From<Invalid> for Refusal<E> {
    fn from(e: Invalid) -> Refusal<E> {
        Refusal::Rule(e.into())
    }
}

/// Refuses with `violation` unless `condition` holds: `ensure(ok, Error::X)?`.
pub fn ensure<E, V: Into<E>>(condition: bool, violation: V) -> Result<(), Refusal<E>> {
    if condition { Ok(()) } else { Err(Refusal::Rule(violation.into())) }
}

/// Refuses with `violation`: `return refuse(Error::X)`.
pub fn refuse<T, E, V: Into<E>>(violation: V) -> RuleResult<T, E> {
    Err(Refusal::Rule(violation.into()))
}

/// Faults reported as top-level GraphQL errors. Resolvers return them with `?`; the request
/// policy (`limits.rs`) reads them back from the error's source to set `extensions.code`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadUserInput(String),
    /// Details are logged with an incident id; the client sees only the id.
    #[error("internal error (incident {incident})")]
    Internal { incident: String },
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::BadUserInput(_) => "BAD_USER_INPUT",
            ApiError::Internal { .. } => "INTERNAL_SERVER_ERROR",
        }
    }

    /// Logs an unexpected failure and returns the error the client sees, which never carries
    /// the cause (no SQL, no stack trace).
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        let incident = crate::telemetry::incident_id();
        tracing::error!(%incident, %cause, "internal error");
        ApiError::Internal { incident }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> ApiError {
        ApiError::internal(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error, RuleViolation)]
    enum Sample {
        #[error(transparent)]
        #[violation(transparent)]
        Invalid(#[from] Invalid),
        #[error("taken")]
        #[violation(field = "name", code = "NAME_TAKEN")]
        Taken,
        #[error("{count} is too many")]
        #[violation(field = "", code = "TOO_MANY")]
        TooMany { count: u32 },
    }

    #[test]
    fn a_derived_violation_reports_its_variants_field_and_code() {
        assert_eq!((Sample::Taken.field(), Sample::Taken.code()), ("name", "NAME_TAKEN"));
        let too_many = Sample::TooMany { count: 3 };
        assert_eq!(
            (too_many.field(), too_many.code(), too_many.to_string().as_str()),
            ("", "TOO_MANY", "3 is too many")
        );
        let wrapped = Sample::from(Invalid::new("title", "INVALID_TEXT", "blank"));
        assert_eq!((wrapped.field(), wrapped.code(), wrapped.to_string().as_str()), ("title", "INVALID_TEXT", "blank"));
    }
}
