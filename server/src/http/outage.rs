//! Turning requests away at once while the database is gone.
//!
//! Without this a request waits for a pooled connection until the pool's acquire timeout, and
//! a sender that retries piles up more waiting requests. The database's watchdog
//! ([`crate::db::Database::reachable`]) notices within a second; from then until it answers
//! again every route that needs the database answers 503 `DATABASE_UNAVAILABLE` with
//! `Retry-After`, having done nothing. Liveness (`/healthz`), readiness (`/readyz`, which says
//! 503 itself) and GraphiQL's static files still answer.

use actix_web::Error;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::web;

use super::{Shared, error_response};

/// Seconds a refused sender is asked to wait: the watchdog probes four times a second, so a
/// database back in that time takes requests again by then.
const RETRY_AFTER_SECONDS: u32 = 1;

/// Middleware (`actix_web::middleware::from_fn`): answers 503 while the database is unreachable.
pub(super) async fn refuse_while_unreachable(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let unreachable = req.app_data::<web::Data<Shared>>().is_some_and(|shared| !shared.state.db.reachable());
    if unreachable && needs_database(req.path()) {
        let mut response = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "DATABASE_UNAVAILABLE",
            "the database does not answer; nothing was done; retry shortly",
        );
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(RETRY_AFTER_SECONDS));
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

fn needs_database(path: &str) -> bool {
    !(path == "/healthz" || path == "/readyz" || path.starts_with(super::graphiql::ASSETS_PATH))
}
