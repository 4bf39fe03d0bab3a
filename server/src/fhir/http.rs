//! `GET /fhir/…`: the CapabilityStatement, Velferd's derived profiles, and the searches, as
//! `application/fhir+json`. Every error is an `OperationOutcome` with its HTTP status: 400 for a
//! bad parameter, 401 for a refused token, 403 for a caller that may not read the export, 404
//! for what is not here, 405 for another method, 429 when throttled.

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde_json::{Value, json};

use super::export::{self, FhirResource, Reader, Search};
use super::profiles;
use crate::errors::ApiError;
use crate::http::{Shared, authenticate, caller_key};

/// The media type of every answer.
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// What one search takes from the caller's throttle bucket: as much as an OCDS export, a page
/// of up to a hundred resources.
const SEARCH_COST: u64 = 100;

/// The routes under `/fhir`, registered by `crate::http`.
pub fn routes(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/fhir")
            // Each with the same default, so another method answers 405 as an OperationOutcome.
            .service(web::resource("/metadata").route(web::get().to(metadata)).default_service(web::to(unsupported)))
            .service(
                web::resource("/StructureDefinition/{id}")
                    .route(web::get().to(structure_definition))
                    .default_service(web::to(unsupported)),
            )
            .service(web::resource("/{type}").route(web::get().to(search)).default_service(web::to(unsupported)))
            .default_service(web::to(unsupported)),
    );
}

fn fhir_json(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status).content_type(FHIR_JSON).body(body.to_string())
}

/// An `OperationOutcome` of one error issue: FHIR's issue type `code`, Velferd's code in
/// `details.text`, the message in `diagnostics`.
pub fn outcome(status: StatusCode, code: &str, velferd_code: &str, message: &str) -> HttpResponse {
    let mut message = message.to_string();
    crate::errors::clip_message(&mut message);
    let body = json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": code, "details": { "text": velferd_code }, "diagnostics": message }],
    });
    let mut response = fhir_json(status, &body);
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    }
    response
}

fn api_error(error: &ApiError) -> HttpResponse {
    match error {
        ApiError::Unauthenticated(m) => outcome(StatusCode::UNAUTHORIZED, "login", error.code(), m),
        ApiError::Forbidden(m) => outcome(StatusCode::FORBIDDEN, "forbidden", error.code(), m),
        ApiError::BadUserInput(m) => outcome(StatusCode::BAD_REQUEST, "invalid", error.code(), m),
        ApiError::Internal { .. } => {
            outcome(StatusCode::INTERNAL_SERVER_ERROR, "exception", error.code(), &error.to_string())
        }
    }
}

async fn unsupported(req: HttpRequest) -> HttpResponse {
    if req.method() != Method::GET {
        let mut response = outcome(
            StatusCode::METHOD_NOT_ALLOWED,
            "not-supported",
            "METHOD_NOT_ALLOWED",
            "the export is read with GET",
        );
        response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET"));
        return response;
    }
    outcome(
        StatusCode::NOT_FOUND,
        "not-supported",
        "NOT_FOUND",
        "not offered here: see GET /fhir/metadata for what is (searches of MedicationDispense, Bundle and DetectedIssue)",
    )
}

/// `GET /fhir/metadata`: what this server offers. Public, like every CapabilityStatement.
async fn metadata() -> HttpResponse {
    fhir_json(StatusCode::OK, &capability_statement())
}

/// `GET /fhir/StructureDefinition/{id}`: one of Velferd's derived profiles. Public.
async fn structure_definition(id: web::Path<String>) -> HttpResponse {
    match profiles::by_id(&id) {
        Some(text) => HttpResponse::Ok().content_type(FHIR_JSON).body(text),
        None => outcome(StatusCode::NOT_FOUND, "not-found", "NOT_FOUND", "no such StructureDefinition"),
    }
}

/// `GET /fhir/{MedicationDispense|Bundle|DetectedIssue}?…`: a `searchset` Bundle.
async fn search(shared: web::Data<Shared>, req: HttpRequest, kind: web::Path<String>) -> HttpResponse {
    let actor = match authenticate(&shared, &req) {
        Ok(actor) => actor,
        Err(refused) => {
            // The refusal is logged; answer it as FHIR, with the reason.
            let body = actix_web::body::to_bytes(refused.into_body()).await.unwrap_or_default();
            let reason: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let message = reason["errors"][0]["message"].as_str().unwrap_or("the token was refused");
            return outcome(StatusCode::UNAUTHORIZED, "login", "UNAUTHENTICATED", message);
        }
    };
    let Some(resource) = FhirResource::from_type(&kind) else {
        return unsupported(req).await;
    };
    let key = caller_key(&shared, &req, &actor);
    if let Err(throttled) = crate::http::export::charge(&shared, &key, SEARCH_COST) {
        return throttled
            .respond("a search", |message| outcome(StatusCode::TOO_MANY_REQUESTS, "throttled", "THROTTLED", message));
    }
    let db = &shared.state.db;
    let grant = match crate::auth::Grant::resolve(db.read(), actor).await {
        Ok(grant) => grant,
        Err(e) => return api_error(&e),
    };
    let reader = match Reader::of(&grant) {
        Ok(reader) => reader,
        Err(e) => {
            shared.state.refusals.record(&key, e.code());
            return api_error(&e);
        }
    };
    let params = match web::Query::<Vec<(String, String)>>::from_query(req.query_string()) {
        Ok(params) => params.into_inner(),
        Err(e) => return outcome(StatusCode::BAD_REQUEST, "invalid", "BAD_REQUEST", &format!("query string: {e}")),
    };
    let search = match Search::from_params(resource, &params, Utc::now()) {
        Ok(search) => search,
        Err(e) => return outcome(StatusCode::BAD_REQUEST, "invalid", "BAD_REQUEST", &e.0),
    };
    let base = {
        let info = req.connection_info();
        format!("{}://{}", info.scheme(), info.host())
    };
    match export::search(db, &reader, &search, &base).await {
        Ok(bundle) => fhir_json(StatusCode::OK, &bundle),
        Err(e) => api_error(&e),
    }
}

/// The CapabilityStatement: the three searches with their profiles and parameters, the
/// profiles' reads, bearer tokens.
pub fn capability_statement() -> Value {
    let window = json!([
        { "name": "_lastUpdated", "type": "date", "documentation": "ge, gt, le or lt and a date or a time with its zone; twice at most. Without an upper bound the window ends 2 s before the request." },
        { "name": "_since", "type": "date", "documentation": "The same as _lastUpdated=ge…" },
    ]);
    let search = |ty: &str, profile: Option<&str>, doc: &str| {
        let mut resource = json!({
            "type": ty,
            "documentation": doc,
            "interaction": [{ "code": "search-type" }],
            "searchParam": window,
        });
        if let Some(profile) = profile {
            resource["supportedProfile"] = json!([format!("{}{profile}", super::resources::PROFILE_BASE)]);
        }
        resource
    };
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-08",
        "publisher": "Velferd",
        "kind": "instance",
        "software": { "name": "velferd", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": "Velferd's FHIR R4 export for municipalities' journal systems (docs/fhir.md)" },
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "documentation": "Searches page with _count (1 to 100, default 50) and the opaque _cursor of a `next` link. Read by a municipality's integration token or case workers; every resource served that names a recipient is written to the audit log.",
            "security": {
                "service": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "OAuth" }] }],
                "description": "Authorization: Bearer <Velferd JWT> of the municipality (roles integration or case_worker).",
            },
            "resource": [
                search("MedicationDispense", Some(super::resources::MEDICATION_DISPENSE_PROFILE), "Dispensed doses and acknowledged messages."),
                search("Bundle", None, "One collection Bundle per alarm: DetectedIssue, Encounter and Composition."),
                search("DetectedIssue", Some(super::resources::DETECTED_ISSUE_PROFILE), "Medication and device alerts (not alarms)."),
                { "type": "StructureDefinition", "interaction": [{ "code": "read" }], "documentation": "Velferd's derived profiles." },
            ],
        }],
    })
}
