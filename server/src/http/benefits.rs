//! `GET /benefits/figures.csv?municipality=ID&from=YYYY-MM&to=YYYY-MM`: a municipality's
//! measured benefit figures as CSV (`crate::benefits::csv`), the same report as GraphQL's
//! `benefitFigures`, with the same token and read rule: a caller who may not read them gets
//! 404, as for an organisation that is not a municipality.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::export::ExportCaller;
use super::{Shared, error_response};

#[derive(serde::Deserialize)]
pub(super) struct Query {
    municipality: String,
    from: String,
    to: String,
}

pub(super) async fn figures_csv(shared: web::Data<Shared>, req: HttpRequest, query: web::Query<Query>) -> HttpResponse {
    let export = match ExportCaller::of(&shared, &req).await {
        Ok(export) => export,
        Err(refused) => return refused,
    };
    let not_found = || error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such municipality");
    if let Err(e) = export.grant.require_registered("benefit figures") {
        return export.fault(e);
    }
    let range = match crate::benefits::graphql::month_range(&query.from, &query.to) {
        Ok(range) => range,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e.code, &e.message),
    };
    let Some(municipality) = crate::ids::row_id(&query.municipality, crate::ids::NodeType::Organization) else {
        return not_found();
    };
    let report = match crate::benefits::graphql::figures(&shared.state, &export.grant, municipality, range).await {
        Ok(Some(report)) => report,
        Ok(None) => return not_found(),
        Err(e) => return export.fault(e),
    };
    match crate::benefits::csv::render(shared.state.db.read(), &report).await {
        Ok(text) => HttpResponse::Ok().content_type("text/csv; charset=utf-8; header=present").body(text),
        Err(e) => export.fault(e.into()),
    }
}
