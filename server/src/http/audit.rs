//! `GET /audit/recipients/{id}/export`: a recipient's audit log as a JSON document (the same as
//! GraphQL's `auditExport`), for the privacy officer of the recipient's municipality, with the
//! same token, rules and logging.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::export::ExportCaller;
use super::{Shared, error_response};
use crate::auth::Role;

pub(super) async fn export(shared: web::Data<Shared>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let export = match ExportCaller::of(&shared, &req).await {
        Ok(export) => export,
        Err(refused) => return refused,
    };
    let caller = match export.grant.caller(Role::PrivacyOfficer, "export the audit log") {
        Ok(caller) => caller,
        Err(e) => return export.fault(e),
    };
    match crate::audit::graphql::export(&shared.state.db, &caller, &path).await {
        Ok(Some(document)) => HttpResponse::Ok().json(document),
        Ok(None) => error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such service recipient"),
        Err(e) => export.fault(e),
    }
}
