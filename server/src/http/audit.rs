//! `GET /audit/recipients/{id}/export`: a recipient's audit log as a JSON document (the same as
//! GraphQL's `auditExport`), for the privacy officer of the recipient's municipality, with the
//! same token, rules and logging.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};

use super::{Shared, authenticate, caller_key, error_response};
use crate::auth::Role;

/// What one export takes from the caller's throttle bucket: what `auditExport` costs in GraphQL.
const EXPORT_COST: u64 = 500;

pub(super) async fn export(shared: web::Data<Shared>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let actor = match authenticate(&shared, &req) {
        Ok(actor) => actor,
        Err(response) => return response,
    };
    let caller_key = caller_key(&shared, &req, &actor);
    let throttle = &shared.state.throttle;
    let cost = EXPORT_COST.min(u64::from(throttle.status(&caller_key).maximum_available));
    if let Err(crate::throttle::Refused::Throttled { wait, .. }) = throttle.charge(&caller_key, cost) {
        shared.state.refusals.record(&caller_key, "THROTTLED");
        let seconds = crate::throttle::retry_after_seconds(wait);
        let message = format!("throttled: an export costs {cost} points; try again in {seconds} s");
        let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, "THROTTLED", &message);
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        return response;
    }
    let fault = |error: crate::errors::ApiError| {
        let status = match &error {
            crate::errors::ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            crate::errors::ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            crate::errors::ApiError::BadUserInput(_) => StatusCode::BAD_REQUEST,
            crate::errors::ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            shared.state.refusals.record(&caller_key, error.code());
        }
        error_response(status, error.code(), &error.to_string())
    };
    let db = &shared.state.db;
    let grant = match crate::auth::Grant::resolve(db.read(), actor).await {
        Ok(grant) => grant,
        Err(e) => return fault(e),
    };
    let caller = match grant.caller(Role::PrivacyOfficer, "export the audit log") {
        Ok(caller) => caller,
        Err(e) => return fault(e),
    };
    match crate::audit::graphql::export(db, &caller, &path).await {
        Ok(Some(document)) => HttpResponse::Ok().json(document),
        Ok(None) => error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such service recipient"),
        Err(e) => fault(e),
    }
}
