//! What every export read over plain HTTP does before its own work: authenticate the token,
//! charge the export to the caller's throttle bucket, resolve the caller's grant, and answer a
//! failure with its status, recording refusals against the caller.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};

use super::{Shared, authenticate, caller_key, error_response};
use crate::auth::Grant;
use crate::errors::ApiError;
use crate::throttle::CallerKey;

/// What one export takes from the caller's throttle bucket: what `auditExport` costs in GraphQL.
const EXPORT_COST: u64 = 500;

/// An export the caller's throttle bucket could not pay for.
pub(crate) struct Throttled {
    cost: u64,
    retry_after_seconds: u64,
}

impl Throttled {
    /// The 429 answer: `body` builds it from the message (which names `what` was charged), and
    /// it says when to try again in `Retry-After`.
    pub(crate) fn respond(&self, what: &str, body: impl FnOnce(&str) -> HttpResponse) -> HttpResponse {
        let Throttled { cost, retry_after_seconds: seconds } = self;
        let mut response = body(&format!("throttled: {what} costs {cost} points; try again in {seconds} s"));
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(*seconds));
        response
    }
}

/// Charges `cost` to `key`'s bucket, capped at what the bucket can ever hold so that an export
/// stays possible; a refusal is recorded in the refusal log.
pub(crate) fn charge(shared: &Shared, key: &CallerKey, cost: u64) -> Result<(), Throttled> {
    let throttle = &shared.state.throttle;
    let cost = cost.min(u64::from(throttle.status(key).maximum_available));
    match throttle.charge(key, cost) {
        Err(crate::throttle::Refused::Throttled { wait, .. }) => {
            shared.state.refusals.record(key, "THROTTLED");
            Err(Throttled { cost, retry_after_seconds: crate::throttle::retry_after_seconds(wait) })
        }
        _ => Ok(()),
    }
}

/// The caller of an export answered with GraphQL-shaped JSON errors: authenticated, charged,
/// its grant resolved.
pub(super) struct ExportCaller<'a> {
    shared: &'a Shared,
    key: CallerKey,
    pub(super) grant: Grant,
}

impl<'a> ExportCaller<'a> {
    /// The caller of `req`, or the answer that refuses it.
    pub(super) async fn of(shared: &'a Shared, req: &HttpRequest) -> Result<Self, HttpResponse> {
        let actor = authenticate(shared, req)?;
        let key = caller_key(shared, req, &actor);
        if let Err(throttled) = charge(shared, &key, EXPORT_COST) {
            return Err(throttled
                .respond("an export", |message| error_response(StatusCode::TOO_MANY_REQUESTS, "THROTTLED", message)));
        }
        match Grant::resolve(shared.state.db.read(), actor).await {
            Ok(grant) => Ok(ExportCaller { shared, key, grant }),
            Err(e) => Err(fault(shared, &key, e)),
        }
    }

    /// The answer to `error`, with its status; a refused token or role is recorded against the
    /// caller.
    pub(super) fn fault(&self, error: ApiError) -> HttpResponse {
        fault(self.shared, &self.key, error)
    }
}

fn fault(shared: &Shared, key: &CallerKey, error: ApiError) -> HttpResponse {
    let status = match &error {
        ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
        ApiError::BadUserInput(_) => StatusCode::BAD_REQUEST,
        ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        shared.state.refusals.record(key, error.code());
    }
    error_response(status, error.code(), &error.to_string())
}
