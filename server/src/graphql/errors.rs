//! The one place where errors become what clients see.
//!
//! Two channels, as in GitHub's and Shopify's APIs:
//! * top-level `errors` with `extensions.code` for faults of the client, its credentials or the
//!   server ([`ApiError`], defined in `crate::errors`);
//! * `userErrors { field message code }` in a mutation's payload for business-rule violations
//!   ([`UserError`]), so a form can show them next to the field.

use async_graphql::SimpleObject;

pub use crate::errors::ApiError;
use crate::errors::RuleViolation;

/// A business-rule violation, returned in a mutation payload.
#[derive(Debug, Clone, PartialEq, Eq, SimpleObject)]
pub struct UserError {
    /// Path to the input field at fault, e.g. `["input", "orgNumber"]`; `["input"]` when the
    /// error concerns the whole input.
    pub field: Vec<String>,
    pub message: String,
    /// Stable, machine-readable code, e.g. `INVALID_ORG_NUMBER`.
    pub code: String,
}

impl UserError {
    /// The one mapping from a rule violation of any area to what a client sees.
    pub fn from_violation(violation: &impl RuleViolation) -> UserError {
        let field = violation.field();
        let mut path = vec!["input".to_string()];
        if !field.is_empty() {
            path.push(field.to_string());
        }
        let mut message = violation.to_string();
        crate::errors::clip_message(&mut message);
        UserError { field: path, message, code: violation.code().to_string() }
    }
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
            /// The payload of a rule's outcome: the object, or the violation as a user error. A
            /// fault is no payload but a top-level error.
            #[allow(dead_code)]
            fn from_rule<T, E: $crate::errors::RuleViolation>(
                result: $crate::errors::RuleResult<T, E>,
                wrap: impl FnOnce(T) -> $ty,
            ) -> std::result::Result<$name, $crate::errors::ApiError> {
                match result {
                    Ok(value) => Ok($name { $field: Some(wrap(value)), user_errors: vec![] }),
                    Err($crate::errors::Refusal::Rule(e)) => Ok($name {
                        $field: None,
                        user_errors: vec![$crate::graphql::errors::UserError::from_violation(&e)],
                    }),
                    Err($crate::errors::Refusal::Fault(fault)) => Err(fault),
                }
            }
        }
    };
}
pub(crate) use payload;
