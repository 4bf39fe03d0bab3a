//! HTTP: thin handlers that authenticate, bound and hand over to GraphQL or the database.

mod audit;
mod benefits;
pub(crate) mod export;
pub mod graphiql;
mod ingest;
mod outage;
mod ws;

/// For the fuzz targets (`fuzz/`): the batch parser of `POST /ingest/{product}/batch`.
pub use ingest::parse_batch_for_fuzzing;

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{ServerHandle, Service};
use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, Request};
use futures_util::FutureExt;
use tracing::Instrument;

use crate::app::AppState;
use crate::auth::{Actor, TokenVerifier};
use crate::config::{GraphqlLimits, Profile, Settings};
use crate::graphql::limits::ResponseBudget;
use crate::graphql::session::Session;
use crate::graphql::{VelferdSchema, build_schema};
use crate::telemetry;
use crate::throttle::CallerKey;

/// The response header that carries the request id (also accepted from the client).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Everything the handlers need, shared across workers.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) state: AppState,
    schema: VelferdSchema,
    verifier: TokenVerifier,
    limits: GraphqlLimits,
    ws: Arc<ws::WsPolicy>,
    /// `VELFERD_ALLOWED_ORIGINS`.
    allowed_origins: Arc<[String]>,
    /// GraphiQL's page and files; none in production.
    graphiql: Option<Arc<graphiql::Graphiql>>,
}

/// A server that is accepting connections.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The server's database handles (tests read the statement count).
    pub db: crate::db::Database,
    /// The server's live updates (tests subscribe below GraphQL).
    pub live: crate::live::Live,
    /// Where `/metrics` is served, when `VELFERD_METRICS_BIND` is set.
    pub metrics_addr: Option<SocketAddr>,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    metrics: Option<MetricsServer>,
}

impl RunningServer {
    /// Serves until the server stops (Ctrl-C or SIGTERM stop it gracefully).
    pub async fn wait(self) -> std::io::Result<()> {
        let result = self.task.await.unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if let Some(metrics) = self.metrics {
            metrics.handle.stop(true).await;
        }
        result
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
        if let Some(metrics) = self.metrics {
            metrics.handle.stop(true).await;
        }
    }

    /// The server, with its metrics listener.
    pub fn with_metrics(self, metrics: MetricsServer) -> RunningServer {
        RunningServer { metrics_addr: Some(metrics.addr), metrics: Some(metrics), ..self }
    }
}

/// The listener that serves `GET /metrics`, apart from the public port so that metrics are
/// never open to anonymous callers there.
pub struct MetricsServer {
    addr: SocketAddr,
    handle: ServerHandle,
}

/// Binds `addr` and serves the metrics of `state` on it.
pub fn serve_metrics(addr: SocketAddr, state: AppState) -> std::io::Result<MetricsServer> {
    let server = HttpServer::new(move || {
        App::new().app_data(web::Data::new(state.clone())).route("/metrics", web::get().to(metrics))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)?;
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(MetricsServer { addr, handle })
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // prometheus-client writes the OpenMetrics flavour of the text format, which Prometheus
    // scrapes natively.
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render(&state.db))
}

/// Binds `settings.bind` and starts serving on the current Tokio runtime.
pub fn start(settings: &Settings, state: AppState, workers: usize) -> std::io::Result<RunningServer> {
    let db = state.db.clone();
    let live = state.live.clone();
    let verifier = TokenVerifier::new(&settings.jwt).with_revocations(state.revocations.clone());
    let graphiql = (settings.profile == Profile::Development).then(|| {
        let graphiql = graphiql::Graphiql::load(&settings.graphiql_dir);
        if !graphiql.missing().is_empty() {
            tracing::warn!(
                missing = ?graphiql.missing(),
                "GraphiQL's files are missing, so /graphql shows a page saying so; install them with `{}`",
                graphiql::INSTALL_COMMAND
            );
        }
        Arc::new(graphiql)
    });
    let shared = Shared {
        schema: build_schema(Some(state.clone()), settings.profile, &settings.graphql),
        state,
        verifier,
        limits: settings.graphql.clone(),
        ws: Arc::new(ws::WsPolicy::new(&settings.websocket)),
        allowed_origins: settings.allowed_origins.clone().into(),
        graphiql,
    };
    let server = HttpServer::new(move || {
        App::new()
            // Inside the request-id span below, so a refusal carries a request id too.
            .wrap(actix_web::middleware::from_fn(outage::refuse_while_unreachable))
            .wrap_fn(|req, service| {
                let id = request_id(&req);
                // At error level, so the span (and its request id) exists whenever an error
                // line can be written, whatever VELFERD_LOG filters.
                let span = tracing::error_span!(
                    "http",
                    method = %req.method(),
                    route = tracing::field::Empty,
                    status = tracing::field::Empty,
                    latency_ms = tracing::field::Empty,
                    request_id = %id,
                );
                let started = Instant::now();
                let call = span.in_scope(|| telemetry::in_request(id.clone(), || service.call(req)));
                telemetry::with_request_id(id.clone(), call.instrument(span.clone())).map(move |result| {
                    let mut response: actix_web::dev::ServiceResponse<_> = result?;
                    let route = response.request().match_pattern().unwrap_or_else(|| "unmatched".into());
                    span.record("route", route.as_str());
                    span.record("status", response.status().as_u16());
                    span.record("latency_ms", started.elapsed().as_secs_f64() * 1000.0);
                    span.in_scope(|| tracing::info!("request finished"));
                    let value = header::HeaderValue::from_str(&id).expect("request ids are visible ASCII");
                    response.headers_mut().insert(header::HeaderName::from_static(REQUEST_ID_HEADER), value);
                    Ok::<_, actix_web::Error>(response)
                })
            })
            .app_data(web::Data::new(shared.clone()))
            // What browsers of portals call; `/graphql/ws` checks `Origin` itself (403).
            .service(
                web::resource("/graphql")
                    .wrap(cors(shared.allowed_origins.clone()))
                    .route(web::post().to(graphql_post))
                    .route(web::get().to(graphql_get)),
            )
            .route("/graphql/ws", web::get().to(ws::graphql_ws))
            .route(&format!("{}/{{name}}", graphiql::ASSETS_PATH), web::get().to(graphiql_asset))
            .service(
                web::resource("/ocds/procurements/{id}")
                    .wrap(cors(shared.allowed_origins.clone()))
                    .route(web::get().to(ocds_procurement)),
            )
            .route("/audit/recipients/{id}/export", web::get().to(audit::export))
            .configure(crate::fhir::http::routes)
            .route("/benefits/figures.csv", web::get().to(benefits::figures_csv))
            .route("/ingest/{product}", web::post().to(ingest::ingest))
            .route("/ingest/{product}/batch", web::post().to(ingest::ingest))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
    })
    .workers(workers.max(1))
    .disable_signals()
    .bind(settings.bind)?;
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(RunningServer { addr, db, live, metrics_addr: None, handle, task, metrics: None })
}

/// Cross-origin requests from browsers: portals on the origins of `VELFERD_ALLOWED_ORIGINS` may
/// send GraphQL (`GET`/`POST` with `Authorization` and `Content-Type`) and read the OCDS export,
/// and see `X-Request-Id` and `Retry-After`; a request from any other browser origin is refused
/// (400) before it runs. Tokens go in the `Authorization` header, never in
/// cookies, so no credentials mode is needed.
fn cors(allowed: Arc<[String]>) -> actix_cors::Cors {
    actix_cors::Cors::default()
        .allowed_methods([actix_web::http::Method::GET, actix_web::http::Method::POST])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static(REQUEST_ID_HEADER),
        ])
        .expose_headers([header::HeaderName::from_static(REQUEST_ID_HEADER), header::RETRY_AFTER])
        .max_age(3600)
        // A page of another origin is refused outright (400), not only kept from reading the
        // answer: nothing it sends runs.
        .block_on_origin_mismatch(true)
        .allowed_origin_fn(move |origin, head| origin_allowed(&allowed, origin, head.headers().get(header::HOST)))
}

/// Whether a browser page of `origin` may use this server: the server's own origin (its `Host`)
/// or one of `VELFERD_ALLOWED_ORIGINS`.
fn origin_allowed(allowed: &[String], origin: &header::HeaderValue, host: Option<&header::HeaderValue>) -> bool {
    let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
    let host = host.and_then(|h| h.to_str().ok()).map(str::to_ascii_lowercase);
    let same_origin = match (origin.split_once("://"), host) {
        (Some(("http" | "https", authority)), Some(host)) => authority == host,
        _ => false,
    };
    same_origin || allowed.contains(&origin)
}

/// The client's request id when it is acceptable, else a fresh one.
fn request_id(req: &actix_web::dev::ServiceRequest) -> Arc<str> {
    let client = req.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok());
    match client.and_then(telemetry::accept_client_id) {
        Some(id) => Arc::from(id),
        None => Arc::from(telemetry::generate_id()),
    }
}

/// A GraphQL-shaped error body, for failures before GraphQL runs.
fn error_response(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let mut message = message.to_string();
    crate::errors::clip_message(&mut message);
    HttpResponse::build(status).json(serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    }))
}

/// The client's address: the TCP peer, or what `X-Forwarded-For` says when the peer is one of
/// `VELFERD_TRUSTED_PROXIES` (see `throttle::TrustedProxies::client_address`).
fn client_address(shared: &Shared, req: &HttpRequest) -> std::net::IpAddr {
    let peer = req.peer_addr().map_or(std::net::IpAddr::from([0, 0, 0, 0]), |addr| addr.ip());
    let forwarded = req.headers().get_all("x-forwarded-for").filter_map(|value| value.to_str().ok());
    shared.state.throttle.settings().trusted_proxies.client_address(peer, forwarded)
}

/// Who `actor` is for the throttle and the refusal log.
pub(crate) fn caller_key(shared: &Shared, req: &HttpRequest, actor: &Actor) -> CallerKey {
    CallerKey::of(actor, client_address(shared, req))
}

/// Counts a refusal answered before GraphQL runs in the refusal log.
fn log_refusal(shared: &Shared, caller: &CallerKey, response: &HttpResponse) {
    let code = match response.status() {
        StatusCode::UNAUTHORIZED => "UNAUTHENTICATED",
        StatusCode::FORBIDDEN => "FORBIDDEN",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        _ => return,
    };
    shared.state.refusals.record(caller, code);
}

#[allow(clippy::result_large_err, reason = "the refusal is the response itself, built once per refused request")]
pub(crate) fn authenticate(shared: &Shared, req: &HttpRequest) -> Result<Actor, HttpResponse> {
    let refused = |message: &str| {
        // A refused token names nobody: the attempt is the client address's.
        let response = error_response(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message);
        log_refusal(shared, &CallerKey::of_address(client_address(shared, req)), &response);
        response
    };
    let header = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| refused("Authorization header is not text"))?),
    };
    shared.verifier.actor_from_header(header).map_err(|e| refused(&e.0))
}

async fn graphql_post(shared: web::Data<Shared>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let actor = match authenticate(&shared, &req) {
        Ok(actor) => actor,
        Err(response) => return response,
    };
    let caller = caller_key(&shared, &req, &actor);
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    // File uploads (adapter components) come as GraphQL multipart requests.
    let is_multipart = content_type.to_ascii_lowercase().starts_with("multipart/form-data");
    let (parsed, session) = if is_multipart {
        // Who asks decides how much may come: the grant is resolved before the body is read.
        let session = match Session::start(actor, shared.state.db.read().clone(), shared.limits.batch_window).await {
            Ok(session) => session,
            Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, e.code(), &e.to_string()),
        };
        let (limit, uploader) = upload_limit(&shared, &session);
        match receive_multipart(&req, payload, content_type, limit, uploader).await {
            Ok(batch) => (Ok(batch), session),
            Err(response) => {
                log_refusal(&shared, &caller, &response);
                return response;
            }
        }
    } else {
        let body = match ingest::read_body(payload, shared.limits.max_body_bytes, "request body").await {
            Ok(body) => body,
            Err(response) => {
                log_refusal(&shared, &caller, &response);
                return response;
            }
        };
        // Decide single or batch by the first byte: serde would also read `[]` as an empty
        // single request, since derived structs accept sequences.
        let is_batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        let parsed = if is_batch {
            serde_json::from_slice::<Vec<Request>>(&body).map(BatchRequest::Batch)
        } else {
            serde_json::from_slice::<Request>(&body).map(BatchRequest::Single)
        };
        let session = match Session::start(actor, shared.state.db.read().clone(), shared.limits.batch_window).await {
            Ok(session) => session,
            Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, e.code(), &e.to_string()),
        };
        (parsed, session)
    };
    let batch = match parsed {
        Ok(batch) => batch,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                &format!("body is not a GraphQL request (JSON with `query`): {e}"),
            );
        }
    };
    // async-graphql's `max_num_files` only counts together with a file-size limit: count here.
    let files: usize = batch.iter().map(|request| request.uploads.len()).sum();
    if files > 1 {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            &format!("a multipart request may carry one file; this one carries {files}"),
        );
    }
    if let BatchRequest::Batch(requests) = &batch {
        if requests.len() > shared.limits.max_batch {
            shared.state.refusals.record(&caller, "BATCH_TOO_LARGE");
            return error_response(
                StatusCode::BAD_REQUEST,
                "BATCH_TOO_LARGE",
                &format!("a batch may hold at most {} operations", shared.limits.max_batch),
            );
        }
        if requests.is_empty() {
            return error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", "the batch is empty");
        }
    }
    execute(&shared, batch.data(Arc::new(session)).data(caller)).await
}

/// The largest multipart body `session`'s caller may send: `VELFERD_MAX_UPLOAD_BYTES` for a
/// signed-in supplier of a registered supplier organisation (who may upload adapters), else
/// `VELFERD_MAX_BODY_BYTES` like any other request — raising that for everyone would let
/// anyone make the server read large bodies.
fn upload_limit(shared: &Shared, session: &Session) -> (usize, bool) {
    if session.grant.has_role(crate::auth::Role::Supplier) {
        (shared.state.devices.max_upload_bytes.max(shared.limits.max_body_bytes), true)
    } else {
        (shared.limits.max_body_bytes, false)
    }
}

/// The body over the limit: 413, naming the limit and the setting that sets it.
fn upload_too_large(limit: usize, uploader: bool) -> HttpResponse {
    let setting = if uploader { "VELFERD_MAX_UPLOAD_BYTES" } else { "VELFERD_MAX_BODY_BYTES" };
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        &format!("request body exceeds {limit} bytes ({setting})"),
    )
}

/// Parses a GraphQL multipart request while it streams in, at most `limit` bytes: the file
/// part goes to an anonymous temporary file (owner-only, gone when closed; async-graphql's
/// `tempfile`), the rest is small. A body declared larger than the limit is refused before any
/// of it is read; one that turns out larger stops being read at the limit.
async fn receive_multipart(
    req: &HttpRequest,
    mut payload: web::Payload,
    content_type: &str,
    limit: usize,
    uploader: bool,
) -> Result<BatchRequest, HttpResponse> {
    use futures_util::{StreamExt, TryStreamExt};
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(upload_too_large(limit, uploader));
    }
    // actix's payload is not `Send`; async-graphql's reader must be: chunks cross a small
    // channel, so at most a few are in memory at once.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<web::Bytes>>(4);
    let exceeded = std::cell::Cell::new(false);
    let pump = async {
        let mut read = 0usize;
        while let Some(chunk) = payload.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            read += chunk.len();
            if read > limit {
                exceeded.set(true);
                let _ = tx.send(Err(std::io::Error::other("request body over the limit"))).await;
                return;
            }
            if tx.send(Ok(chunk)).await.is_err() {
                return;
            }
        }
    };
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let body = Box::pin(chunks).into_async_read();
    let options = async_graphql::http::MultipartOptions::default().max_num_files(1);
    let parse = async_graphql::http::receive_batch_body(Some(content_type), body, options);
    let ((), parsed) = futures_util::join!(pump, parse);
    if exceeded.get() {
        return Err(upload_too_large(limit, uploader));
    }
    parsed.map_err(|e| error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", &format!("multipart request: {e}")))
}

async fn graphql_get(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    if req.query_string().is_empty() {
        return match &shared.graphiql {
            Some(graphiql) => graphiql.page_response(),
            None => error_response(StatusCode::NOT_FOUND, "NOT_FOUND", GRAPHIQL_OFF),
        };
    }
    let actor = match authenticate(&shared, &req) {
        Ok(actor) => actor,
        Err(response) => return response,
    };
    let caller = caller_key(&shared, &req, &actor);
    let request = match request_from_query_string(req.query_string()) {
        Ok(request) => request,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", &message),
    };
    // GET must be safe: a link or an image tag must never change data.
    if let Some(kind) = operation_type(&request, &shared.limits.document)
        && kind != OperationType::Query
    {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "only queries may be sent with GET; send mutations with POST and subscriptions over /graphql/ws",
        );
        response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return response;
    }
    let session = match Session::start(actor, shared.state.db.read().clone(), shared.limits.batch_window).await {
        Ok(session) => Arc::new(session),
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, e.code(), &e.to_string()),
    };
    execute(&shared, BatchRequest::Single(request.data(session).data(caller))).await
}

const GRAPHIQL_OFF: &str = "GraphiQL is off in production; POST queries to /graphql";

/// One of GraphiQL's files (`/graphiql/assets/{name}`).
async fn graphiql_asset(shared: web::Data<Shared>, req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    match &shared.graphiql {
        Some(graphiql) => graphiql.asset_response(&req, &name),
        None => error_response(StatusCode::NOT_FOUND, "NOT_FOUND", GRAPHIQL_OFF),
    }
}

/// Reads a GET request per GraphQL over HTTP: `query`, `operationName`, and `variables` and
/// `extensions` as JSON. (async-graphql's own parser expects `operation_name`.)
fn request_from_query_string(query_string: &str) -> Result<Request, String> {
    let params = web::Query::<std::collections::HashMap<String, String>>::from_query(query_string)
        .map_err(|e| format!("query string: {e}"))?
        .into_inner();
    let query = params.get("query").ok_or("GET requests need a `query` parameter")?;
    let mut request = Request::new(query.as_str());
    if let Some(name) = params.get("operationName").filter(|n| !n.is_empty()) {
        request = request.operation_name(name.as_str());
    }
    if let Some(variables) = params.get("variables").filter(|v| !v.is_empty()) {
        let json: serde_json::Value =
            serde_json::from_str(variables).map_err(|e| format!("`variables` is not JSON: {e}"))?;
        request = request.variables(async_graphql::Variables::from_json(json));
    }
    Ok(request)
}

/// The type of the operation a request would run, when the query parses (a query that does
/// not parse, or is too large to parse safely, is left to GraphQL to report).
fn operation_type(request: &Request, limits: &crate::graphql::guard::DocumentLimits) -> Option<OperationType> {
    crate::graphql::guard::scan(&request.query, limits).ok()?;
    let document = async_graphql::parser::parse_query(&request.query).ok()?;
    let name = request.operation_name.as_deref();
    document
        .operations
        .iter()
        .find(|(op_name, _)| name.is_none() || op_name.map(|n| n.as_str()) == name)
        .map(|(_, op)| op.node.ty)
}

async fn execute(shared: &Shared, batch: BatchRequest) -> HttpResponse {
    let budget = ResponseBudget::new(shared.limits.max_response_bytes);
    let operations = match &batch {
        BatchRequest::Single(_) => None,
        BatchRequest::Batch(requests) => Some(requests.len()),
    };
    // One set of guards and one response budget for the whole request: a batch is one request.
    let batch = batch.data(budget.clone()).data(crate::graphql::operation::OperationGuards::new());
    let run = AssertUnwindSafe(shared.schema.execute_batch(batch)).catch_unwind();
    match run.await {
        Ok(response) => respond(response, &budget, operations),
        Err(_) => {
            // The panic is printed by the hook; the client gets no trace.
            tracing::error!("a GraphQL request panicked");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR", "internal error")
        }
    }
}

/// Writes the response as async-graphql-actix-web would, but stops writing at the budget's
/// limit: a response over it is never held whole, and answers `RESPONSE_TOO_LARGE` instead
/// (once per operation of a batch).
fn respond(response: async_graphql::BatchResponse, budget: &ResponseBudget, operations: Option<usize>) -> HttpResponse {
    // Sized once from what the budget charged, instead of growing (and copying) by doubling;
    // an answer over the budget is a short refusal.
    let capacity = match budget.used() {
        used if used > budget.limit() => 0,
        used => used.saturating_add(512).min(budget.limit()),
    };
    let mut body = LimitedWriter { bytes: Vec::with_capacity(capacity), limit: budget.limit() };
    let body = match serde_json::to_writer(&mut body, &response) {
        Ok(()) => body.bytes,
        Err(_) => {
            drop(body);
            let refusal = async_graphql::Response::from_errors(vec![budget.error()]);
            let refusal = match operations {
                None => serde_json::to_vec(&refusal),
                Some(n) => serde_json::to_vec(&(0..n).map(|_| &refusal).collect::<Vec<_>>()),
            };
            refusal.expect("a refusal serialises")
        }
    };
    let mut builder = HttpResponse::Ok();
    if response.is_ok()
        && let Some(cache_control) = response.cache_control().value()
    {
        builder.insert_header((header::CACHE_CONTROL, cache_control));
    }
    if let Some(seconds) = retry_after(&response) {
        builder.insert_header((header::RETRY_AFTER, seconds));
    }
    let mut http = builder.content_type("application/graphql-response+json").body(body);
    for (name, value) in response.http_headers_iter() {
        if let (Ok(name), Ok(value)) =
            (header::HeaderName::from_str(name.as_str()), header::HeaderValue::from_bytes(value.as_bytes()))
        {
            http.headers_mut().append(name, value);
        }
    }
    http
}

/// The longest `retryAfterSeconds` of the `THROTTLED` operations of a response, for its
/// `Retry-After` header.
fn retry_after(response: &async_graphql::BatchResponse) -> Option<u64> {
    let responses = match response {
        async_graphql::BatchResponse::Single(response) => std::slice::from_ref(response),
        async_graphql::BatchResponse::Batch(responses) => responses.as_slice(),
    };
    responses
        .iter()
        .flat_map(|response| &response.errors)
        .filter_map(|error| error.extensions.as_ref())
        .filter(|extensions| matches!(extensions.get("code"), Some(async_graphql::Value::String(code)) if code == "THROTTLED"))
        .filter_map(|extensions| match extensions.get("retryAfterSeconds") {
            Some(async_graphql::Value::Number(n)) => n.as_u64(),
            _ => None,
        })
        .max()
}

/// A byte buffer that refuses to grow past `limit`.
struct LimitedWriter {
    bytes: Vec<u8>,
    limit: usize,
}

impl std::io::Write for LimitedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            return Err(std::io::Error::other("response too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What one OCDS export takes from the caller's throttle bucket: what the `ocds` field costs in
/// GraphQL, so the export is no way around the throttle.
const OCDS_EXPORT_COST: u64 = 100;

/// A procurement as an OCDS 1.1 release package, by its global id. Anonymous callers get
/// procurements with a published notice and no call-offs; signed-in callers any procurement,
/// with the call-offs they may read (see `docs/authorization.md`).
async fn ocds_procurement(shared: web::Data<Shared>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let actor = match authenticate(&shared, &req) {
        Ok(actor) => actor,
        Err(response) => return response,
    };
    let caller = caller_key(&shared, &req, &actor);
    let throttle = &shared.state.throttle;
    // A bucket set smaller than an export still lets one through when full.
    let cost = OCDS_EXPORT_COST.min(u64::from(throttle.status(&caller).maximum_available));
    if let Err(crate::throttle::Refused::Throttled { status, wait }) = throttle.charge(&caller, cost) {
        shared.state.refusals.record(&caller, "THROTTLED");
        let seconds = crate::throttle::retry_after_seconds(wait);
        let message = format!(
            "throttled: an export costs {cost} and {} of {} points are available, restoring {} a second; try again in {seconds} s",
            status.currently_available, status.maximum_available, status.restore_rate
        );
        let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, "THROTTLED", &message);
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        return response;
    }
    let not_found = || error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such procurement");
    let Some(id) = crate::graphql::relay::row_id_of(&path, crate::graphql::relay::NodeType::Procurement) else {
        return not_found();
    };
    let db = shared.state.db.read();
    let internal = |error: crate::graphql::errors::ApiError| {
        error_response(StatusCode::INTERNAL_SERVER_ERROR, error.code(), &error.to_string())
    };
    // The same caller, viewer and read rules as the GraphQL `procurements` list, `node` and `ocds`.
    let access = match crate::auth::Grant::resolve(db, actor).await {
        Ok(access) => access,
        Err(e) => return internal(e),
    };
    let viewer = crate::procurement::access::Viewer::new(&access);
    match crate::procurement::ocds::release_package(db, id, &viewer, &crate::procurement::ocds::public_options()).await
    {
        Ok(Some(package)) => HttpResponse::Ok().json(package),
        Ok(None) => not_found(),
        Err(e) => internal(e),
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(shared: web::Data<Shared>) -> HttpResponse {
    match shared.state.db.readiness().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })),
        Err(reason) => {
            HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "not ready", "reason": reason }))
        }
    }
}
