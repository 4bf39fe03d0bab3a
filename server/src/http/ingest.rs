//! `POST /ingest/{product}` and `POST /ingest/{product}/batch`: device messages from a
//! supplier's platform, authenticated with the supplier's `integration` token.
//!
//! The single form takes one message as the supplier sends it (the request's `Content-Type`
//! is the message's). The batch form takes
//! `{"messages": [{"contentType": "...", "body": "<text>"} | {"contentType": "...", "bodyBase64": "..."}]}`
//! and answers each message on its own. Both answer with counts and one result per message;
//! see `devices::ingest`. A content type is parsed here, once: a malformed or over-long one is
//! refused (`400 INVALID_CONTENT_TYPE`; in a batch, that message is `REFUSED` with reason
//! `invalid-content-type`) and nothing is stored for it.

use std::sync::Arc;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use futures_util::StreamExt;
use serde::Deserialize;

use super::{Shared, authenticate, error_response};
use crate::auth::Role;
use crate::devices::content_type::ContentType;
use crate::devices::identifiers::ProductSlug;
use crate::devices::ingest::{self, IngestProduct, IngestReply, Message, MessageResult, MessageStatus, Reason};
use crate::devices::limits::{self, IngestRefusal};
use crate::devices::model::device_product;
use crate::graphql::errors::ApiError;
use crate::throttle::CallerKey;

/// Reads a body of at most `limit` bytes; `Err` is the response to send.
pub(super) async fn read_body(
    mut payload: web::Payload,
    limit: usize,
    what: &str,
) -> Result<web::BytesMut, HttpResponse> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return Err(error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", "request body could not be read"));
        };
        if body.len() + chunk.len() > limit {
            return Err(error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                &format!("{what} exceeds {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn internal(e: ApiError) -> HttpResponse {
    // Nothing was acknowledged: the sender keeps the message and retries.
    let mut response = error_response(StatusCode::SERVICE_UNAVAILABLE, e.code(), &e.to_string());
    response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

/// The product named in the path, when the caller is its supplier's integration, and who the
/// caller is for the refusal log.
async fn authorised_product(
    shared: &Shared,
    req: &HttpRequest,
    slug: &str,
) -> Result<(Arc<IngestProduct>, CallerKey), HttpResponse> {
    let actor = authenticate(shared, req)?;
    let caller = super::caller_key(shared, req, &actor);
    let product = product_of(shared, &actor, slug).await.inspect_err(|refused| {
        super::log_refusal(shared, &caller, refused);
    })?;
    Ok((product, caller))
}

async fn product_of(
    shared: &Shared,
    actor: &crate::auth::Actor,
    slug: &str,
) -> Result<Arc<IngestProduct>, HttpResponse> {
    if actor.principal().is_none() {
        return Err(error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "send the supplier's integration token",
        ));
    }
    let db = shared.state.db.read();
    let not_found = || error_response(StatusCode::NOT_FOUND, "NOT_FOUND", &format!("no device product {slug:?}"));
    let slug: Option<ProductSlug> = slug.parse().ok();
    let product = match &slug {
        Some(slug) => shared.state.ingest_products.get(db, slug.as_str()).await.map_err(|e| internal(e.into()))?,
        None => None,
    };
    // The caller's effective roles, as every GraphQL request computes them; read with the
    // product when the caller is its supplier (every accepted request), else on their own.
    let named = product.as_ref().and_then(|p| crate::auth::Grant::of_named_organization(actor.clone(), &p.supplier));
    let access = match named {
        Some(access) => access,
        None => crate::auth::Grant::resolve(db, actor.clone()).await.map_err(internal)?,
    };
    let principal = access.require(Role::Integration, "ingest device messages").map_err(|e| {
        error_response(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            &format!("{e}; ingest needs a token with the `integration` role"),
        )
    })?;
    let (Some(slug), Some(product)) = (slug, product) else { return Err(not_found()) };
    let org = access.organization();
    if org.is_none_or(|o| o.id != product.product.supplier_id) {
        return Err(error_response(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            &format!("{} is not the supplier of {slug}; ingest with the supplier's own token", principal.org),
        ));
    }
    Ok(product)
}

async fn run(shared: &Shared, product: &IngestProduct, messages: Vec<Message>) -> Result<IngestReply, HttpResponse> {
    let state = &shared.state;
    let settings = &state.devices;
    let quota = settings.ingest_limits.dead_letter_quota_bytes;
    ingest::ingest(&state.db, &state.adapters, &state.ingest, product, messages, settings.replay_retention, quota)
        .await
        .map_err(internal)
}

/// Admits `messages` messages of `product` under its rate limit; `Err` is the 429 to send.
#[allow(clippy::result_large_err, reason = "the refusal is the response itself, built once per refused request")]
fn admit(
    shared: &Shared,
    caller: &CallerKey,
    product: &device_product::Model,
    messages: usize,
) -> Result<(), HttpResponse> {
    shared.state.ingest_limits.admit(product.id, messages).map_err(|wait| {
        shared.state.refusals.record(caller, IngestRefusal::RateLimited.code());
        let settings = shared.state.devices.ingest_limits;
        let message = format!(
            "{} may send {} messages a second (bursts of {}); send these again after the Retry-After seconds",
            product.slug, settings.rate_per_second, settings.burst
        );
        too_many_requests(IngestRefusal::RateLimited.code(), &message, limits::retry_after_seconds(wait))
    })
}

fn too_many_requests(code: &str, message: &str, retry_after: u64) -> HttpResponse {
    let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, code, message);
    response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after));
    response
}

/// How long a sender waits before it offers a message its product's dead-letter quota refused:
/// the supplier has to fix and replay what is stuck first.
const QUOTA_RETRY_AFTER_SECONDS: u64 = 60;

/// The reply to send: `429` with `Retry-After` when the product's dead-letter quota refused a
/// message (the rest of a batch is answered as usual, message by message), else `status`.
fn reply_with(
    shared: &Shared,
    caller: &CallerKey,
    product: &device_product::Model,
    status: StatusCode,
    reply: &IngestReply,
) -> HttpResponse {
    let over_quota =
        reply.results.iter().any(|r| r.reason.as_ref().is_some_and(|why| why.code == ingest::DEAD_LETTER_QUOTA));
    if !over_quota {
        return HttpResponse::build(status).json(reply);
    }
    shared.state.ingest_limits.record(product.id, IngestRefusal::DeadLetterQuota);
    shared.state.refusals.record(caller, IngestRefusal::DeadLetterQuota.code());
    let mut response = HttpResponse::TooManyRequests().json(reply);
    response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(QUOTA_RETRY_AFTER_SECONDS));
    response
}

/// `POST /ingest/{product}` (one message) and `POST /ingest/{product}/batch` (many, each
/// answered on its own): the caller and the product are checked the same way for both.
pub(super) async fn ingest(
    shared: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let is_batch = req.match_pattern().is_some_and(|pattern| pattern.ends_with("/batch"));
    let answer = async {
        let (product, caller) = authorised_product(&shared, &req, &path).await?;
        if is_batch {
            batch(&shared, &caller, product, payload).await
        } else {
            one(&shared, &req, &caller, product, payload).await
        }
    };
    answer.await.unwrap_or_else(|refused| refused)
}

/// The single form; `Err` is the response that refuses the request.
async fn one(
    shared: &Shared,
    req: &HttpRequest,
    caller: &CallerKey,
    product: Arc<IngestProduct>,
    payload: web::Payload,
) -> Result<HttpResponse, HttpResponse> {
    // Part of the message's identity: parsed before anything is read or stored.
    let content_type = match req.headers().get(header::CONTENT_TYPE).map(|v| v.to_str()) {
        None => Ok(ContentType::octet_stream()),
        Some(Ok(text)) => text.parse::<ContentType>().map_err(|e| e.to_string()),
        Some(Err(_)) => Err("the content type holds bytes that are not visible ASCII".to_string()),
    };
    let content_type =
        content_type.map_err(|message| error_response(StatusCode::BAD_REQUEST, "INVALID_CONTENT_TYPE", &message))?;
    admit(shared, caller, &product.product, 1)?;
    // Refused before it reaches the adapter.
    let limit = shared.state.adapters.limits().input_bytes;
    let body = read_body(payload, limit, "the message").await?;
    let message = Message { content_type, body: Arc::from(&body[..]) };
    let reply = run(shared, &product, vec![message]).await?;
    let product = &product.product;
    shared.state.metrics.ingest_reply(&product.slug, &reply);
    let status = match reply.results[0].status {
        MessageStatus::Accepted | MessageStatus::Duplicate => StatusCode::OK,
        // Kept as a dead letter: acknowledged, to be processed later.
        MessageStatus::Rejected => StatusCode::ACCEPTED,
        MessageStatus::Retry => StatusCode::SERVICE_UNAVAILABLE,
        MessageStatus::Refused => StatusCode::PAYLOAD_TOO_LARGE,
    };
    let mut response = reply_with(shared, caller, product, status, &reply);
    if status == StatusCode::SERVICE_UNAVAILABLE && response.status() == status {
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    crate::failpoint::hit(crate::failpoint::Point::BeforeReply);
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    messages: Vec<BatchMessage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BatchMessage {
    content_type: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_base64: Option<String>,
}

/// A batch message as sent: its content type is parsed later, so that a bad one refuses that
/// message alone.
#[derive(Debug)]
struct Submitted {
    content_type: String,
    body: Arc<[u8]>,
}

#[derive(Debug, PartialEq, Eq)]
enum BatchError {
    Invalid(String),
    TooMany(usize),
}

/// Reads a batch body: untrusted bytes in, messages or the reason they are refused.
fn parse_batch(body: &[u8], max: usize) -> Result<Vec<Submitted>, BatchError> {
    let batch: Batch = serde_json::from_slice(body).map_err(|e| {
        BatchError::Invalid(format!(
            "the batch is not {{\"messages\": [{{\"contentType\", \"body\" or \"bodyBase64\"}}]}}: {e}"
        ))
    })?;
    if batch.messages.is_empty() {
        return Err(BatchError::Invalid("the batch holds no messages".into()));
    }
    if batch.messages.len() > max {
        return Err(BatchError::TooMany(max));
    }
    let mut messages = Vec::with_capacity(batch.messages.len());
    for (index, m) in batch.messages.into_iter().enumerate() {
        let bytes = match (m.body, m.body_base64) {
            (Some(text), None) => text.into_bytes(),
            (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                .decode(encoded.as_bytes())
                .map_err(|e| BatchError::Invalid(format!("messages[{index}].bodyBase64 is not base64: {e}")))?,
            _ => {
                return Err(BatchError::Invalid(format!(
                    "messages[{index}] needs exactly one of `body` and `bodyBase64`"
                )));
            }
        };
        messages.push(Submitted { content_type: m.content_type, body: bytes.into() });
    }
    Ok(messages)
}

/// A batch message as the fuzz targets see it: its content type as sent and its body.
pub type SubmittedParts = (String, Arc<[u8]>);

/// [`parse_batch`] for the fuzz targets and their corpus replay (`fuzz/`, docs/fuzzing.md): each
/// message's content type and body, or why the batch is refused.
pub fn parse_batch_for_fuzzing(body: &[u8], max: usize) -> Result<Vec<SubmittedParts>, String> {
    parse_batch(body, max)
        .map(|m| m.into_iter().map(|s| (s.content_type, s.body)).collect())
        .map_err(|e| format!("{e:?}"))
}

/// The batch form; `Err` is the response that refuses the whole batch.
async fn batch(
    shared: &Shared,
    caller: &CallerKey,
    product: Arc<IngestProduct>,
    payload: web::Payload,
) -> Result<HttpResponse, HttpResponse> {
    let settings = &shared.state.devices;
    let body = read_body(payload, settings.max_batch_bytes, "the batch").await?;
    let messages = parse_batch(&body, settings.max_batch).map_err(|e| match e {
        BatchError::TooMany(max) => error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BATCH_TOO_LARGE",
            &format!("a batch may hold at most {max} messages"),
        ),
        BatchError::Invalid(message) => error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", &message),
    })?;
    admit(shared, caller, &product.product, messages.len())?;
    // Messages over the adapter's input cap or with an invalid content type are refused one by
    // one, before any adapter runs.
    let limit = shared.state.adapters.limits().input_bytes;
    let mut fit = Vec::with_capacity(messages.len());
    let mut refused = Vec::new();
    for (i, m) in messages.into_iter().enumerate() {
        if m.body.len() > limit {
            let why = format!("the message is {} bytes; the limit is {limit}", m.body.len());
            refused.push((i, Reason { code: "input-too-large".into(), message: why }));
            continue;
        }
        match m.content_type.parse::<ContentType>() {
            Ok(content_type) => fit.push((i, Message { content_type, body: m.body })),
            Err(e) => refused.push((i, Reason { code: "invalid-content-type".into(), message: e.to_string() })),
        }
    }
    let reply = run(shared, &product, fit.iter().map(|(_, m)| m.clone()).collect()).await?;
    let product = &product.product;
    if refused.is_empty() {
        shared.state.metrics.ingest_reply(&product.slug, &reply);
        crate::failpoint::hit(crate::failpoint::Point::BeforeReply);
        return Ok(reply_with(shared, caller, product, StatusCode::OK, &reply));
    }
    let mut results: Vec<(usize, MessageResult)> = fit.into_iter().map(|(i, _)| i).zip(reply.results).collect();
    results.extend(refused.into_iter().map(|(i, why)| {
        (
            i,
            MessageResult {
                status: MessageStatus::Refused,
                receipt_id: None,
                events_stored: 0,
                events_duplicate: 0,
                dead_letter_id: None,
                reason: Some(why),
            },
        )
    }));
    results.sort_by_key(|(i, _)| *i);
    let reply = IngestReply::of(results.into_iter().map(|(_, r)| r).collect());
    shared.state.metrics.ingest_reply(&product.slug, &reply);
    crate::failpoint::hit(crate::failpoint::Point::BeforeReply);
    Ok(reply_with(shared, caller, product, StatusCode::OK, &reply))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_batch_reads_text_and_base64_bodies_in_order() {
        let body = br#"{"messages":[{"contentType":"application/json","body":"{}"},{"contentType":"application/xml","bodyBase64":"PG1ycS8+"}]}"#;
        let messages = parse_batch(body, 10).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!((&*messages[0].body, messages[0].content_type.as_str()), (&b"{}"[..], "application/json"));
        assert_eq!(&*messages[1].body, b"<mrq/>");
    }

    #[test]
    fn a_bad_batch_is_refused_with_the_reason() {
        let invalid = |body: &str| matches!(parse_batch(body.as_bytes(), 2), Err(BatchError::Invalid(_)));
        assert!(invalid("not json"));
        assert!(invalid(r#"{"messages":[]}"#));
        assert!(invalid(r#"{"messages":[{"contentType":"a"}]}"#));
        assert!(invalid(r#"{"messages":[{"contentType":"a","body":"x","bodyBase64":"eA=="}]}"#));
        assert!(invalid(r#"{"messages":[{"contentType":"a","bodyBase64":"%%%"}]}"#));
        assert!(invalid(r#"{"messages":[{"contentType":"a","body":"x"}],"extra":1}"#));
        let three = r#"{"messages":[{"contentType":"a","body":"1"},{"contentType":"a","body":"2"},{"contentType":"a","body":"3"}]}"#;
        assert_eq!(parse_batch(three.as_bytes(), 2).err(), Some(BatchError::TooMany(2)));
    }

    proptest! {
        #[test]
        fn untrusted_batch_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_batch(&body, 500);
        }

        #[test]
        fn any_bytes_survive_the_base64_form(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            use base64::Engine;
            let body = serde_json::json!({ "messages": [{ "contentType": "application/octet-stream",
                "bodyBase64": base64::engine::general_purpose::STANDARD.encode(&bytes) }] });
            let messages = parse_batch(body.to_string().as_bytes(), 1).unwrap();
            prop_assert_eq!(&*messages[0].body, &bytes[..]);
        }
    }
}
