//! The fuzz targets' code: what each target does with one input, through the entry points the
//! server uses for what strangers send. `fuzz_targets/*.rs` hand afl's inputs to these
//! functions; the server's end-to-end tests include this file (`tests/e2e/fuzz_corpus.rs`) and
//! replay every file of `fuzz/corpus/` through the same functions, so a corpus input that once
//! crashed stays fixed. See docs/fuzzing.md.
//!
//! Each function returns normally for any input; it panics when the code under test does, or
//! when an answer breaks a rule the code promises (an event over the contract's bounds, a token
//! accepted under another algorithm, a GraphQL error without a code).

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::{BatchRequest, Request, Response, Schema};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use velferd::auth::{Actor, TokenVerifier};
use velferd::config::Settings;
use velferd::devices::content_type::ContentType;
use velferd::graphql::limits::QueryLimits;
use velferd::graphql::{MutationRoot, QueryRoot, SubscriptionRoot};
use velferd_plugins::{AdapterHost, DecodeError, Event, ValidatedAdapter};

/// The HS256 secret the JWT target's verifier is configured with (and signs with).
pub const JWT_SECRET: &str = "fuzzing-secret-that-is-at-least-32-bytes-long";

/// The reference adapters, by crate name with underscores (as `cargo` names the `.wasm` files).
pub const REFERENCE_ADAPTERS: [&str; 3] = ["velferd_dispenser_json", "velferd_alarm_scaip", "velferd_sensor_hub_json"];

/// The adapter that returns the events its message spells out (plugins/guests/hostile/output-echo).
pub const OUTPUT_ECHO: &str = "hostile_output_echo";

/// The server's settings as a fresh installation has them, with the JWT target's secret.
pub fn settings() -> Settings {
    Settings::from_pairs([("VELFERD_JWT_SECRET", JWT_SECRET)]).expect("the fuzz settings are valid")
}

/// A fixed receipt time, so that one input always takes the same path.
fn received_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap()
}

/// The adapter host with the server's default limits and the adapters the targets call.
pub struct Adapters {
    host: AdapterHost,
    reference: Vec<ValidatedAdapter>,
    echo: ValidatedAdapter,
    max_batch: usize,
    max_batch_bytes: usize,
}

impl Adapters {
    /// Validates (compiles) the reference adapters and the output echo; `component` gives a
    /// component's bytes by name.
    pub fn load(component: impl Fn(&str) -> Vec<u8>) -> Adapters {
        let settings = settings();
        let host = AdapterHost::new(settings.devices.adapter_limits.clone()).expect("adapter host");
        let validate = |name: &str| host.validate(&component(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let reference = REFERENCE_ADAPTERS.iter().map(|name| validate(name)).collect();
        let echo = validate(OUTPUT_ECHO);
        Adapters {
            host,
            reference,
            echo,
            max_batch: settings.devices.max_batch,
            max_batch_bytes: settings.devices.max_batch_bytes,
        }
    }

    /// Decodes one message as ingest does: refused over the input cap, else run in a fresh
    /// sandbox under the host's call limits.
    fn decode(&self, adapter: &ValidatedAdapter, content_type: &ContentType, body: &[u8]) {
        let call = self.host.limits().call_limits();
        let report = self.host.decode_with_limits(adapter, &call, "fuzz", content_type.as_str(), body, received_at());
        check_output(&report.result, self.host.limits().output_bytes);
    }

    /// Every reference adapter that accepts `content_type` decodes the message (the dispenser
    /// when none does: it then refuses it, as a product's adapter would).
    fn decode_by_content_type(&self, content_type: &ContentType, body: &[u8]) {
        let essence = content_type.as_str().split(';').next().unwrap_or("").trim();
        let mut accepting =
            self.reference.iter().filter(|a| a.info.content_types.iter().any(|c| c.eq_ignore_ascii_case(essence)));
        let first = accepting.next().unwrap_or(&self.reference[0]);
        for adapter in std::iter::once(first).chain(accepting) {
            self.decode(adapter, content_type, body);
        }
    }
}

/// What the host promises of every decode answer it lets through: events within the contract's
/// bounds and the output cap, and an adapter's own error message cut to size.
fn check_output(result: &Result<Vec<Event>, DecodeError>, output_bytes: usize) {
    match result {
        Ok(events) => {
            for e in events {
                assert!((1..=128).contains(&e.supplier_event_id.len()), "supplier event id out of bounds: {e:?}");
                assert!((1..=64).contains(&e.device_serial.len()), "device serial out of bounds: {e:?}");
                assert!(e.gateway_serial.as_ref().is_none_or(|g| (1..=64).contains(&g.len())), "gateway: {e:?}");
                assert!(e.detail.as_ref().is_none_or(|d| d.len() <= 1024), "detail over 1 024 bytes: {e:?}");
                // Times the databases store and RFC 3339 writes (contract.rs `time_from`).
                assert!((1..=9999).contains(&e.occurred_at.year()), "occurred-at out of range: {e:?}");
                let kind = serde_json::to_value(&e.kind).expect("kinds serialise");
                if let Some(at) = kind.get("scheduled_for").and_then(|at| at.as_str()) {
                    let at = DateTime::parse_from_rfc3339(at).unwrap_or_else(|_| panic!("scheduled-for {at}"));
                    assert!((1..=9999).contains(&at.year()), "scheduled-for out of range: {e:?}");
                }
            }
            let size = serde_json::to_vec(events).expect("events serialise").len();
            assert!(size <= output_bytes, "{size} bytes of events passed the output cap of {output_bytes}");
        }
        Err(DecodeError::Malformed(m) | DecodeError::Unsupported(m)) => {
            assert!(m.chars().count() <= 1000 + " … (cut)".chars().count(), "adapter message not cut");
        }
        Err(_) => {}
    }
}

/// A `Content-Type` value as actix hands it to the handler: text only when every byte is
/// visible ASCII or a tab (`HeaderValue::to_str`).
fn header_text(bytes: &[u8]) -> Option<&str> {
    bytes.iter().all(|&b| b == b'\t' || (32..127).contains(&b)).then(|| std::str::from_utf8(bytes).ok()).flatten()
}

/// `POST /ingest/{product}`: the input is the `Content-Type` value, a newline, and the body
/// (without a newline, all of it is the body and the content type is absent).
pub fn ingest_message(adapters: &Adapters, data: &[u8]) {
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => match header_text(&data[..i]) {
            Some(text) => (text.parse::<ContentType>(), &data[i + 1..]),
            None => return,
        },
        None => (Ok(ContentType::octet_stream()), data),
    };
    let Ok(content_type) = content_type else { return };
    if body.len() > adapters.host.limits().input_bytes {
        return;
    }
    adapters.decode_by_content_type(&content_type, body);
}

/// `POST /ingest/{product}/batch`: the input is the request body. Parsed by the server's batch
/// parser, then each message decoded unless ingest refuses it first (over the input cap, or a
/// content type that does not parse).
pub fn ingest_batch(adapters: &Adapters, data: &[u8]) {
    if data.len() > adapters.max_batch_bytes {
        return;
    }
    let Ok(messages) = velferd::http::parse_batch_for_fuzzing(data, adapters.max_batch) else { return };
    assert!(
        !messages.is_empty() && messages.len() <= adapters.max_batch,
        "the batch parser let {} through",
        messages.len()
    );
    for (content_type, body) in messages {
        if body.len() > adapters.host.limits().input_bytes {
            continue;
        }
        if let Ok(content_type) = content_type.parse::<ContentType>() {
            adapters.decode_by_content_type(&content_type, &body);
        }
    }
}

/// What an adapter returns, checked by the host: the input is the output echo's message, which
/// spells out the events it answers (see plugins/guests/hostile/output-echo).
pub fn adapter_output(adapters: &Adapters, data: &[u8]) {
    if data.len() > adapters.host.limits().input_bytes {
        return;
    }
    adapters.decode(&adapters.echo, &ContentType::octet_stream(), data);
}

/// The server's token verifier, configured as a fresh installation with [`JWT_SECRET`].
pub struct Auth {
    verifier: TokenVerifier,
}

impl Auth {
    pub fn new() -> Auth {
        Auth { verifier: TokenVerifier::new(&settings().jwt) }
    }
}

impl Default for Auth {
    fn default() -> Auth {
        Auth::new()
    }
}

/// Bearer tokens. An input whose first byte is even is an `Authorization` header value as sent;
/// an odd one is a token's header JSON and claims JSON, split at the first NUL byte, which this
/// target signs with the verifier's own key, so that the claims are checked past the signature.
pub fn jwt(auth: &Auth, data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let Some(header) = header_text(rest) else { return };
        if let Ok(Actor::Authenticated(principal)) = auth.verifier.actor_from_header(Some(header)) {
            check_principal(&principal);
        }
        return;
    }
    let (header, claims) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b""[..]),
    };
    let token = sign(header, claims);
    if let Ok(principal) = auth.verifier.verify(&token) {
        // The algorithm is pinned by configuration: a token that names another is never taken.
        let alg =
            serde_json::from_slice::<serde_json::Value>(header).ok().and_then(|h| h["alg"].as_str().map(str::to_owned));
        assert_eq!(alg.as_deref(), Some("HS256"), "a token naming another algorithm was accepted");
        check_principal(&principal);
    }
}

/// `header.claims.signature`, signed with HS256 under [`JWT_SECRET`].
pub fn sign(header: &[u8], claims: &[u8]) -> String {
    use base64::Engine;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signed = format!("{}.{}", b64.encode(header), b64.encode(claims));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(JWT_SECRET.as_bytes()).expect("any key length");
    mac.update(signed.as_bytes());
    format!("{signed}.{}", b64.encode(mac.finalize().into_bytes()))
}

/// What `verify` promises of a caller it lets in (auth.rs).
fn check_principal(principal: &velferd::auth::Principal) {
    assert!(!principal.subject.trim().is_empty(), "a token with a blank subject was accepted");
    let jti = principal.token_id.as_ref().map(|id| id.chars().count());
    assert!(jti.is_none_or(|n| (1..=velferd::auth::MAX_TOKEN_ID_CHARS).contains(&n)), "jti out of bounds");
}

/// Stops every operation after validation: the fuzzed documents are parsed, bounded, validated
/// and costed by the server's own extension, but nothing resolves (resolvers need a database).
struct StopBeforeExecution;

impl ExtensionFactory for StopBeforeExecution {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(StopBeforeExecution)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for StopBeforeExecution {
    async fn execute(&self, _: &ExtensionContext<'_>, _: Option<&str>, _: NextExecute<'_>) -> Response {
        Response::default()
    }
}

/// The server's schema (its roots and its limits extension, with production's settings: no
/// introspection, no suggestions) with [`StopBeforeExecution`] innermost, and a runtime to run it.
pub struct Graphql {
    schema: Schema<QueryRoot, MutationRoot, SubscriptionRoot>,
    runtime: tokio::runtime::Runtime,
    max_batch: usize,
    max_body_bytes: usize,
}

impl Graphql {
    pub fn new() -> Graphql {
        let limits = settings().graphql;
        let schema = Schema::build(QueryRoot::default(), MutationRoot::default(), SubscriptionRoot::default())
            .extension(QueryLimits {
                max_depth: limits.max_depth,
                max_complexity: limits.max_complexity,
                document: limits.document,
                max_response_bytes: limits.max_response_bytes,
            })
            .extension(StopBeforeExecution)
            .disable_introspection()
            .disable_suggestions()
            .finish();
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        Graphql { schema, runtime, max_batch: limits.max_batch, max_body_bytes: limits.max_body_bytes }
    }

    /// The schema's SDL, to compare with the server's.
    pub fn sdl(&self) -> String {
        self.schema.sdl()
    }
}

impl Default for Graphql {
    fn default() -> Graphql {
        Graphql::new()
    }
}

/// `POST /graphql` with a JSON body: the input is the body, read as the handler reads it (a
/// batch when it starts with `[`), then executed up to validation.
pub fn graphql(graphql: &Graphql, data: &[u8]) {
    if data.len() > graphql.max_body_bytes {
        return;
    }
    let is_batch = data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let batch = if is_batch {
        match serde_json::from_slice::<Vec<Request>>(data) {
            Ok(requests) if !requests.is_empty() && requests.len() <= graphql.max_batch => {
                BatchRequest::Batch(requests)
            }
            _ => return,
        }
    } else {
        match serde_json::from_slice::<Request>(data) {
            Ok(request) => BatchRequest::Single(request),
            Err(_) => return,
        }
    };
    let response = graphql.runtime.block_on(graphql.schema.execute_batch(batch));
    let responses = match &response {
        async_graphql::BatchResponse::Single(r) => std::slice::from_ref(r),
        async_graphql::BatchResponse::Batch(rs) => rs.as_slice(),
    };
    for error in responses.iter().flat_map(|r| &r.errors) {
        let code = error.extensions.as_ref().and_then(|e| e.get("code"));
        assert!(code.is_some(), "a GraphQL error without a code: {error:?}");
    }
    // What the handler writes: the response serialises.
    serde_json::to_vec(&response).expect("responses serialise");
}

/// Reads a guest component for the afl binaries: from `$VELFERD_FUZZ_GUESTS`, else where
/// docs/fuzzing.md builds them (`fuzz/target/wasm-guests/wasm32-wasip2/release`).
pub fn guest_component(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("VELFERD_FUZZ_GUESTS").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wasm-guests/wasm32-wasip2/release")
    });
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("read {} (build the guests first, docs/fuzzing.md): {e}", path.display()))
}
