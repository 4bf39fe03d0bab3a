//! `GET /benefits/figures.csv?municipality=ID&from=YYYY-MM&to=YYYY-MM`: a municipality's
//! measured benefit figures as CSV (`crate::benefits::csv`), the same report as GraphQL's
//! `benefitFigures`, with the same token and read rule: a caller who may not read them gets
//! 404, as for an organisation that is not a municipality.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};

use super::{Shared, authenticate, caller_key, error_response};
use crate::errors::ApiError;

/// What one export takes from the caller's throttle bucket.
const EXPORT_COST: u64 = 500;

#[derive(serde::Deserialize)]
pub(super) struct Query {
    municipality: String,
    from: String,
    to: String,
}

pub(super) async fn figures_csv(shared: web::Data<Shared>, req: HttpRequest, query: web::Query<Query>) -> HttpResponse {
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
    let fault = |error: ApiError| {
        let status = match &error {
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadUserInput(_) => StatusCode::BAD_REQUEST,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            shared.state.refusals.record(&caller_key, error.code());
        }
        error_response(status, error.code(), &error.to_string())
    };
    let not_found = || error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such municipality");
    let db = &shared.state.db;
    let grant = match crate::auth::Grant::resolve(db.read(), actor).await {
        Ok(grant) => grant,
        Err(e) => return fault(e),
    };
    if let Err(e) = grant.require_registered("benefit figures") {
        return fault(e);
    }
    let range = match crate::benefits::graphql::month_range(&query.from, &query.to) {
        Ok(range) => range,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e.code, &e.message),
    };
    let Some(municipality) = crate::ids::row_id(&query.municipality, crate::ids::NodeType::Organization) else {
        return not_found();
    };
    let report = match crate::benefits::graphql::figures(&shared.state, &grant, municipality, range).await {
        Ok(Some(report)) => report,
        Ok(None) => return not_found(),
        Err(e) => return fault(e),
    };
    match crate::benefits::csv::render(db.read(), &report).await {
        Ok(text) => HttpResponse::Ok().content_type("text/csv; charset=utf-8; header=present").body(text),
        Err(e) => fault(e.into()),
    }
}
