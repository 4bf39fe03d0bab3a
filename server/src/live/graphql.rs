//! Live updates over GraphQL: the `Sequence` scalar every delivery carries and takes back as
//! `afterSequence`, and [`subscribe`], which turns the outbox into a subscription's stream.

use std::future::Future;
use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, InputValueError, InputValueResult, Scalar, ScalarType, Value};
use futures_util::{Stream, StreamExt};

use super::{Filter, Item, LiveError};
use crate::graphql::context::state;

/// A position in the outbox: every item a subscription delivers carries one, increasing in the
/// order the changes committed. Written as a decimal string, since sequences outgrow GraphQL's
/// 32-bit `Int`; an `Int` is accepted as input too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sequence(pub i64);

/// A position in the outbox of live updates: every item a subscription delivers carries one,
/// increasing in the order the changes committed. A decimal string (sequences outgrow the 32-bit
/// `Int`); `afterSequence` accepts an `Int` too.
#[Scalar(name = "Sequence")]
impl ScalarType for Sequence {
    fn parse(value: Value) -> InputValueResult<Self> {
        let parsed = match &value {
            Value::String(text) => text.parse::<i64>().ok(),
            Value::Number(number) => number.as_i64(),
            _ => None,
        };
        match parsed {
            Some(n) if n >= 0 => Ok(Sequence(n)),
            _ => Err(InputValueError::custom("a sequence is a whole number from 0, written as a string: \"42\"")),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

/// The GraphQL error for `error`: its code in `extensions.code`, with `lastSequence` (where to
/// resume) for a subscriber dropped as too slow and `prunedThrough` for an expired sequence.
pub fn error(error: &LiveError) -> async_graphql::Error {
    if let LiveError::Database(cause) = error {
        return async_graphql::Error::from(crate::errors::ApiError::internal(cause));
    }
    async_graphql::Error::new(error.to_string()).extend_with(|_, e| {
        e.set("code", error.code());
        match error {
            LiveError::TooSlow { last } => e.set("lastSequence", last.to_string()),
            LiveError::Expired { pruned_through, .. } => e.set("prunedThrough", pruned_through.to_string()),
            LiveError::Unknown { latest, .. } => e.set("latestSequence", latest.to_string()),
            LiveError::Database(_) => {}
        }
    })
}

/// A subscription field's stream of what `filter` admits after `after` (or from now): the
/// filter decides whose changes the caller hears, like the field's query counterpart, before the
/// subscriber is woken; `deliver` turns each item into what the field yields — `None` skips it
/// (a rule that needs the database). A sequence that cannot be resumed from is the field's
/// error; a subscriber dropped as too slow gets a last error item naming its last sequence, then
/// the stream completes.
pub async fn subscribe<T, F, Fut>(
    ctx: &Context<'_>,
    filter: Filter,
    after: Option<Sequence>,
    mut deliver: F,
) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<T>> + Send + 'static + use<T, F, Fut>>
where
    T: Send + 'static,
    F: FnMut(Arc<Item>) -> Fut + Send + 'static,
    Fut: Future<Output = Option<T>> + Send + 'static,
{
    let live = state(ctx).live.clone();
    let items = live.subscribe(filter, after.map(|s| s.0)).await.map_err(|e| error(&e))?;
    Ok(items.filter_map(move |next| {
        let delivered = next.map(&mut deliver);
        async move {
            match delivered {
                Ok(delivery) => delivery.await.map(Ok),
                Err(e) => Some(Err(error(&e))),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sequence_is_a_whole_number_from_zero_as_a_string_or_an_int() {
        assert_eq!(Sequence::parse(Value::String("42".into())).ok(), Some(Sequence(42)));
        assert_eq!(Sequence::parse(Value::from(7)).ok(), Some(Sequence(7)));
        for refused in [Value::String("-1".into()), Value::from(-1), Value::String("4x".into()), Value::Null] {
            assert!(Sequence::parse(refused.clone()).is_err(), "{refused}");
        }
        assert_eq!(Sequence(9_007_199_254_740_993).to_value(), Value::String("9007199254740993".into()));
    }
}
