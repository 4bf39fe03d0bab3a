//! What holds for one GraphQL operation as the client sent it: one HTTP request (a batch counts
//! as one) or one operation over a WebSocket. The HTTP and WebSocket shells give every operation
//! a fresh [`OperationGuards`]; resolvers of expensive fields claim their share of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::Context;

use super::errors::ApiError;

/// Claims on work that one operation may do at most once, however many aliases or batched
/// operations ask for it.
#[derive(Debug, Default)]
pub struct OperationGuards {
    replay_review: AtomicBool,
}

impl OperationGuards {
    pub fn new() -> Arc<OperationGuards> {
        Arc::new(OperationGuards::default())
    }
}

/// Claims the operation's one replay review (each decodes up to hundreds of messages twice in
/// the adapter sandbox); a second one in the same operation is refused before it runs.
pub fn claim_replay_review(ctx: &Context<'_>) -> Result<(), ApiError> {
    let guards = ctx
        .data_opt::<Arc<OperationGuards>>()
        .ok_or_else(|| ApiError::internal("an operation ran without its guards"))?;
    if guards.replay_review.swap(true, Ordering::Relaxed) {
        return Err(ApiError::BadUserInput(
            "one replayReview per request: ask for the next one in a request of its own".into(),
        ));
    }
    Ok(())
}
