//! The one place where errors become what clients see.
//!
//! Two channels, as in GitHub's and Shopify's APIs:
//! * top-level `errors` with `extensions.code` for faults of the client, its credentials or the
//!   server ([`ApiError`], defined in `crate::errors`);
//! * `userErrors { field message code }` in a mutation's payload for business-rule violations
//!   ([`UserError`]), so a form can show them next to the field.

use async_graphql::SimpleObject;

pub use crate::errors::ApiError;
use crate::errors::{Refusal, RuleResult, RuleViolation};

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

/// A mutation's payload: the changed object (null when refused) and `userErrors`.
pub trait Payload: Sized {
    /// What the mutation changed, as clients see it.
    type Object;

    fn new(object: Option<Self::Object>, user_errors: Vec<UserError>) -> Self;

    /// The payload of a rule's outcome: the object `wrap` makes of its value, or the violation
    /// as a user error. A fault is no payload but a top-level error.
    fn from_rule<T, E: RuleViolation>(
        result: RuleResult<T, E>,
        wrap: impl FnOnce(T) -> Self::Object,
    ) -> Result<Self, ApiError> {
        match result {
            Ok(value) => Ok(Self::new(Some(wrap(value)), vec![])),
            Err(refusal) => Self::refused(refusal),
        }
    }

    /// The payload of a broken rule: its violation as a user error. A fault is a top-level error.
    fn refused<E: RuleViolation>(refusal: Refusal<E>) -> Result<Self, ApiError> {
        match refusal {
            Refusal::Rule(e) => Ok(Self::new(None, vec![UserError::from_violation(&e)])),
            Refusal::Fault(fault) => Err(fault),
        }
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

        impl $crate::graphql::errors::Payload for $name {
            type Object = $ty;

            fn new(object: Option<$ty>, user_errors: Vec<$crate::graphql::errors::UserError>) -> $name {
                $name { $field: object, user_errors }
            }
        }

        impl $name {
            /// [`Payload::from_rule`](crate::graphql::errors::Payload::from_rule), callable
            /// without the trait in scope.
            #[allow(dead_code)]
            fn from_rule<T, E: $crate::errors::RuleViolation>(
                result: $crate::errors::RuleResult<T, E>,
                wrap: impl FnOnce(T) -> $ty,
            ) -> std::result::Result<$name, $crate::errors::ApiError> {
                <$name as $crate::graphql::errors::Payload>::from_rule(result, wrap)
            }
        }
    };
}
pub(crate) use payload;
