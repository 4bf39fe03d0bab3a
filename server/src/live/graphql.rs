//! Live updates over GraphQL: the `Sequence` scalar every delivery carries and takes back as
//! `afterSequence`, and [`subscribe`], which turns the outbox into a subscription's stream.

use std::borrow::Cow;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::{
    Context, ContextSelectionSet, ErrorExtensions, InputValueError, InputValueResult, OutputType, Positioned, Scalar,
    ScalarType, ServerResult, Value,
};
use futures_util::{Stream, StreamExt};
use tokio::sync::OnceCell;

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
/// the stream completes. Each delivery is [`Shared`]: resolved once for all the subscribers that
/// asked the same with the same rights.
pub async fn subscribe<T, F, Fut>(
    ctx: &Context<'_>,
    filter: Filter,
    after: Option<Sequence>,
    mut deliver: F,
) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Shared<T>>> + Send + 'static + use<T, F, Fut>>
where
    T: Send + 'static,
    F: FnMut(Arc<Item>) -> Fut + Send + 'static,
    Fut: Future<Output = Option<T>> + Send + 'static,
{
    let live = state(ctx).live.clone();
    let asked = asked(ctx);
    let items = live.subscribe(filter, after.map(|s| s.0)).await.map_err(|e| error(&e))?;
    Ok(items.filter_map(move |next| {
        let delivered = next.map(|item| (deliver(item.clone()), item));
        let asked = asked.clone();
        async move {
            match delivered {
                Ok((delivery, item)) => delivery.await.map(|delivery| Ok(Shared { delivery, item, asked })),
                Err(e) => Some(Err(error(&e))),
            }
        }
    }))
}

/// What a subscription asks of each item, written out: its operation (variable defaults
/// included), the field with its arguments and selection, the fragments and variables of its
/// document, and the caller's rights ([`crate::auth::Grant::rights`]) — everything its
/// resolution depends on but the item. Written once per subscription. Two documents that differ only in white space ask the same
/// but are written differently: they simply share less.
fn asked(ctx: &Context<'_>) -> Arc<str> {
    use std::fmt::Write;
    let env = &ctx.query_env;
    let mut fragments: Vec<_> = env.fragments.iter().collect();
    fragments.sort_by_key(|(name, _)| *name);
    let mut asked = format!("{:?}\n{:?}\n{:?}\n{:?}\n", env.operation, ctx.item, fragments, env.variables);
    let rights = ctx.data_opt::<Arc<crate::graphql::session::Session>>().map(|s| s.grant.rights());
    let _ = write!(asked, "{}", rights.as_deref().unwrap_or("no session"));
    interned(asked)
}

/// The one copy of `asked` that every subscription asking the same holds: ten thousand consoles
/// with one subscription keep one string, and find their shared place by pointer. Copies no
/// subscription holds any more are swept out as the set grows.
fn interned(asked: String) -> Arc<str> {
    static ASKS: std::sync::LazyLock<std::sync::Mutex<(HashSet<Arc<str>>, usize)>> =
        std::sync::LazyLock::new(|| std::sync::Mutex::new((HashSet::new(), 1024)));
    let mut guard = ASKS.lock().unwrap_or_else(|e| e.into_inner());
    let (asks, sweep_at) = &mut *guard;
    if let Some(held) = asks.get(asked.as_str()) {
        return held.clone();
    }
    if asks.len() >= *sweep_at {
        asks.retain(|ask| Arc::strong_count(ask) > 1);
        *sweep_at = (asks.len() * 2).max(1024);
    }
    let ask: Arc<str> = Arc::from(asked);
    asks.insert(ask.clone());
    ask
}

/// A subscription's delivery, resolved once for every subscriber that asked the same of the
/// same item with the same rights: the first to resolve it keeps the value on the item
/// ([`Item::shared`]) and the others wait for it and are given a copy, so ten thousand consoles
/// with the same subscription resolve an alarm's fields once, not ten thousand times. What the caller
/// must make for itself is never shared: a value whose resolution recorded an audit entry (a
/// recipient's data, [`crate::audit::noting_records`]) or reported an error. The GraphQL type
/// is `T`'s.
pub struct Shared<T> {
    delivery: T,
    item: Arc<Item>,
    asked: Arc<str>,
}

impl<T: OutputType> OutputType for Shared<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        let Some(shared) = self.item.shared::<OnceCell<Option<Value>>>(&self.asked) else {
            return self.delivery.resolve(ctx, field).await;
        };
        // The first subscriber resolves; the others wait for it rather than resolve alongside.
        // Its own answer is its own, errors and all; the others get it only when it may be
        // shared, and otherwise make their own.
        let mut own = None;
        let made = shared
            .get_or_init(|| async {
                let errors = || ctx.query_env.errors.lock().map_or(usize::MAX, |errors| errors.len());
                let errors_before = errors();
                let (value, recorded) = crate::audit::noting_records(self.delivery.resolve(ctx, field)).await;
                let shareable = value.is_ok() && !recorded && errors() == errors_before;
                let kept = if shareable { value.as_ref().ok().cloned() } else { None };
                own = Some(value);
                kept
            })
            .await;
        match (own, made) {
            (Some(own), _) => own,
            (None, Some(value)) => Ok(value.clone()),
            (None, None) => self.delivery.resolve(ctx, field).await,
        }
    }
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
