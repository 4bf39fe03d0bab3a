//! The one place where errors become what clients see.
//!
//! Two channels, as in GitHub's and Shopify's APIs:
//! * top-level `errors` with `extensions.code` for faults of the client, its credentials or the
//!   server ([`ApiError`]);
//! * `userErrors { field message code }` in a mutation's payload for business-rule violations
//!   ([`UserError`]), so a form can show them next to the field.

use async_graphql::SimpleObject;

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


/// A business-rule violation, returned in a mutation payload.
#[derive(Debug, Clone, PartialEq, Eq, SimpleObject)]
pub struct UserError {
    /// Path to the input field at fault, e.g. `["input", "orgNumber"]`; empty when the error
    /// concerns the whole input.
    pub field: Vec<String>,
    pub message: String,
    /// Stable, machine-readable code, e.g. `INVALID_ORG_NUMBER`.
    pub code: String,
}

impl UserError {
    pub fn new(field: &[&str], code: &str, message: impl Into<String>) -> UserError {
        UserError {
            field: field.iter().map(|s| s.to_string()).collect(),
            message: message.into(),
            code: code.to_string(),
        }
    }
}

/// A business-rule violation an area reports; mutation payloads turn it into `userErrors`.
pub trait RuleViolation {
    fn to_user_error(&self) -> UserError;
}

/// Declares a mutation payload: the changed object (null when refused) and `userErrors`.
macro_rules! payload {
    ($name:ident, $field:ident: $ty:ty, $doc:literal) => {
        #[doc = $doc]
        #[derive(async_graphql::SimpleObject)]
        pub struct $name {
            /// Null when `userErrors` is not empty.
            pub $field: Option<$ty>,
            pub user_errors: Vec<$crate::graphql::errors::UserError>,
        }

        impl $name {
            fn from_result<T, E: $crate::graphql::errors::RuleViolation>(
                result: std::result::Result<T, E>,
                wrap: impl FnOnce(T) -> $ty,
            ) -> $name {
                match result {
                    Ok(value) => $name { $field: Some(wrap(value)), user_errors: vec![] },
                    Err(e) => $name { $field: None, user_errors: vec![e.to_user_error()] },
                }
            }
        }
    };
}
pub(crate) use payload;
