//! Telemetry: the request id that ties a client's answer to the server's log line, the log
//! format, and the Prometheus metrics of one server.
//!
//! Every HTTP request and WebSocket operation runs with a request id in a task-local (set by
//! `http`); an internal error's incident id is that id, so what a client saw finds the log line.
//! Work outside a request (background tasks) gets a fresh id per incident.
//!
//! Metrics belong to one server (an [`AppState`](crate::app::AppState)), not to the process, so
//! servers side by side (the tests) never mix their counts. Label values are bounded: operation
//! names only of documents that validated (at most [`MAX_OPERATION_NAMES`], then `other`),
//! products that exist, codes from a fixed set; everything else is `other`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::config::LogFormat;
use crate::db::{Backend, Database};
use crate::devices::ingest::IngestReply;

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// Longest client-supplied request id accepted.
pub const MAX_CLIENT_REQUEST_ID: usize = 64;

/// A fresh request id: 16 hex digits, unique within the process and unlikely across processes.
pub fn generate_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    // RandomState is seeded from the OS once per thread; the sequence and the clock make each
    // hash input unique.
    format!("{:016x}", RandomState::new().hash_one((sequence, std::time::SystemTime::now())))
}

/// A client's `X-Request-Id`, when it is short and of safe characters (it goes into logs and
/// headers verbatim); otherwise the server makes its own.
pub fn accept_client_id(value: &str) -> Option<&str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    (!value.is_empty() && value.len() <= MAX_CLIENT_REQUEST_ID && value.chars().all(safe)).then_some(value)
}

/// Runs `future` as the work of request `id`.
pub async fn with_request_id<F: Future>(id: Arc<str>, future: F) -> F::Output {
    REQUEST_ID.scope(id, future).await
}

/// Runs `f` (one poll of a stream, say) as the work of request `id`.
pub fn in_request<R>(id: Arc<str>, f: impl FnOnce() -> R) -> R {
    REQUEST_ID.sync_scope(id, f)
}

/// The current request's id, or a fresh one outside any request.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(|id| id.to_string()).unwrap_or_else(|_| generate_id())
}

/// The id an incident is logged and answered under: the request's, so the client's answer
/// finds the log line.
pub fn incident_id() -> String {
    current_request_id()
}

/// Installs the process's log subscriber: `filter` as in `RUST_LOG`, lines to stderr, as JSON
/// objects (with the request's span fields) or as text.
pub fn init_logging(filter: &str, format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
    };
}

/// Most distinct operation names kept as label values; later ones count as `other`.
pub const MAX_OPERATION_NAMES: usize = 100;

/// The `extensions.code` values counted by name; any other counts as `other`.
pub const ERROR_CODES: &[&str] = &[
    "BAD_REQUEST",
    "BAD_USER_INPUT",
    "BATCH_TOO_LARGE",
    "FORBIDDEN",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "INTERNAL_SERVER_ERROR",
    "MAX_COST_EXCEEDED",
    "MAX_DEPTH_EXCEEDED",
    "METHOD_NOT_ALLOWED",
    "NOT_FOUND",
    "PAYLOAD_TOO_LARGE",
    "THROTTLED",
    "UNAUTHENTICATED",
];

const OTHER: &str = "other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IngestLabels {
    product: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdapterLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The metrics of one server, served as Prometheus text on the metrics listener.
pub struct Metrics {
    registry: Registry,
    graphql_requests: Family<OperationLabels, Counter>,
    graphql_seconds: Histograms<OperationLabels>,
    graphql_errors: Family<CodeLabels, Counter>,
    ingest_messages: Family<IngestLabels, Counter>,
    adapter_seconds: Histograms<AdapterLabels>,
    adapter_instructions: Family<AdapterLabels, Counter>,
    db_in_use: Family<PoolLabels, Gauge>,
    subscribers: Gauge,
    refused_attempts: Family<CodeLabels, Counter>,
    refusal_log_overflow: Counter,
    retention_deleted: Family<TableLabels, Counter>,
    operation_names: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn request_histogram() -> Histogram {
    // 1 ms to about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

fn adapter_histogram() -> Histogram {
    // 50 µs to about 1.6 s: adapter calls have deadlines of milliseconds.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("velferd");
        let metrics = Metrics {
            graphql_requests: Family::default(),
            graphql_seconds: Family::new_with_constructor(request_histogram as fn() -> Histogram),
            graphql_errors: Family::default(),
            ingest_messages: Family::default(),
            adapter_seconds: Family::new_with_constructor(adapter_histogram as fn() -> Histogram),
            adapter_instructions: Family::default(),
            db_in_use: Family::default(),
            subscribers: Gauge::default(),
            refused_attempts: Family::default(),
            refusal_log_overflow: Counter::default(),
            retention_deleted: Family::default(),
            operation_names: Mutex::new(HashSet::new()),
            registry: Registry::default(),
        };
        // Each metric: its name (after the prefix), its help, and the field that holds it.
        macro_rules! register {
            ($($name:literal, $help:literal, $field:ident;)*) => {
                $(registry.register($name, $help, metrics.$field.clone());)*
            };
        }
        register! {
            "graphql_requests", "GraphQL operations run, by operation name (`anonymous`, or `other` past the cap or when the document did not validate)", graphql_requests;
            "graphql_request_duration_seconds", "Time from receiving a GraphQL operation to its response, by operation name", graphql_seconds;
            "graphql_errors", "Errors in GraphQL responses, by extensions.code", graphql_errors;
            "ingest_messages", "Device messages answered, by product and outcome (accepted, duplicate, rejected, retry, refused)", ingest_messages;
            "adapter_call_duration_seconds", "Wall time of adapter calls, by result (`ok` or the decode error code)", adapter_seconds;
            "adapter_instructions", "Wasm instructions (fuel) adapter calls used, by result", adapter_instructions;
            "db_connections_in_use", "Database connections checked out of the pool, by pool (read and write on SQLite, shared on PostgreSQL)", db_in_use;
            "graphql_subscribers", "Live GraphQL subscriptions", subscribers;
            "refused_attempts", "Refused and throttled attempts, by code (those of the refusal log, `refusedAttempts`)", refused_attempts;
            "refusal_log_overflow", "Refused attempts the refusal log counted under the caller `(others)`, its table of callers being full", refusal_log_overflow;
            "retention_deleted_rows", "Rows the retention sweep deleted as older than their retention, by table (docs/operations.md)", retention_deleted;
        }
        Metrics { registry, ..metrics }
    }

    /// The label for an operation name of a validated document.
    fn operation_label(&self, name: Option<&str>) -> String {
        let Some(name) = name else { return "anonymous".into() };
        let mut names = self.operation_names.lock().expect("not poisoned");
        if names.contains(name) {
            return name.to_string();
        }
        if names.len() < MAX_OPERATION_NAMES && name != OTHER && name != "anonymous" {
            names.insert(name.to_string());
            return name.to_string();
        }
        OTHER.into()
    }

    /// One GraphQL operation answered. `validated_name` is `None` when the document never
    /// validated (counted as `other`), `Some(None)` for an anonymous operation. `elapsed` is
    /// `None` for a subscription, whose lifetime is no latency.
    pub fn graphql_operation(&self, validated_name: Option<Option<&str>>, elapsed: Option<Duration>) {
        let operation = match validated_name {
            Some(name) => self.operation_label(name),
            None => OTHER.into(),
        };
        let labels = OperationLabels { operation };
        self.graphql_requests.get_or_create(&labels).inc();
        if let Some(elapsed) = elapsed {
            self.graphql_seconds.get_or_create(&labels).observe(elapsed.as_secs_f64());
        }
    }

    /// One error in a GraphQL response, by its `extensions.code`.
    pub fn graphql_error(&self, code: Option<&str>) {
        let code = code.and_then(|code| ERROR_CODES.iter().find(|known| **known == code)).copied().unwrap_or(OTHER);
        self.graphql_errors.get_or_create(&CodeLabels { code }).inc();
    }

    /// The messages of one ingest reply for `product` (an existing product's slug), by outcome.
    pub fn ingest_reply(&self, product: &str, reply: &IngestReply) {
        let outcomes = [
            ("accepted", reply.accepted),
            ("duplicate", reply.duplicate),
            ("rejected", reply.rejected),
            ("retry", reply.retry),
            ("refused", reply.refused),
        ];
        for (outcome, count) in outcomes.into_iter().filter(|(_, count)| *count > 0) {
            let labels = IngestLabels { product: product.to_string(), outcome };
            self.ingest_messages.get_or_create(&labels).inc_by(u64::from(count));
        }
    }

    /// Rows the retention sweep deleted from `table` (one of `crate::retention::TABLES`).
    pub fn retention_deleted(&self, table: &'static str, rows: u64) {
        self.retention_deleted.get_or_create(&TableLabels { table }).inc_by(rows);
    }

    /// One adapter call: `result` is `ok` or the decode error's (fixed) code.
    pub fn adapter_call(&self, result: &'static str, elapsed: Duration, instructions: Option<u64>) {
        let labels = AdapterLabels { result };
        self.adapter_seconds.get_or_create(&labels).observe(elapsed.as_secs_f64());
        if let Some(instructions) = instructions {
            self.adapter_instructions.get_or_create(&labels).inc_by(instructions);
        }
    }

    /// One refused or throttled attempt, by its code (one of the refusal log's fixed codes).
    pub fn refused_attempt(&self, code: &'static str) {
        self.refused_attempts.get_or_create(&CodeLabels { code }).inc();
    }

    /// One refused attempt the refusal log could not keep apart from others.
    pub fn refusal_log_overflow(&self) {
        self.refusal_log_overflow.inc();
    }

    /// Counts a live subscription until the guard is dropped.
    pub fn subscriber(self: &Arc<Self>) -> SubscriberGuard {
        self.subscribers.inc();
        SubscriberGuard(self.clone())
    }

    /// The metrics in the Prometheus text format, with the pool gauges read now.
    pub fn render(&self, db: &Database) -> String {
        let in_use = |size: u32, idle: usize| i64::from(size) - idle as i64;
        match db.backend() {
            Backend::Sqlite => {
                for (pool, connection) in [("read", db.read()), ("write", db.write())] {
                    let p = connection.get_sqlite_connection_pool();
                    self.db_in_use.get_or_create(&PoolLabels { pool }).set(in_use(p.size(), p.num_idle()));
                }
            }
            Backend::Postgres => {
                let p = db.read().get_postgres_connection_pool();
                self.db_in_use.get_or_create(&PoolLabels { pool: "shared" }).set(in_use(p.size(), p.num_idle()));
            }
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// A live subscription, counted in `velferd_graphql_subscribers` while it exists.
pub struct SubscriberGuard(Arc<Metrics>);

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.subscribers.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_safe_client_request_ids_are_accepted() {
        assert_eq!(accept_client_id("abc-123_X.y"), Some("abc-123_X.y"));
        assert_eq!(accept_client_id(&"a".repeat(64)).map(str::len), Some(64));
        for bad in ["", "a b", "a\nb", "ä", "x\"y", &"a".repeat(65)] {
            assert_eq!(accept_client_id(bad), None, "{bad:?}");
        }
        assert_ne!(generate_id(), generate_id());
    }

    #[test]
    fn operation_names_past_the_cap_count_as_other() {
        let metrics = Metrics::new();
        for i in 0..MAX_OPERATION_NAMES {
            assert_eq!(metrics.operation_label(Some(&format!("Op{i}"))), format!("Op{i}"));
        }
        assert_eq!(metrics.operation_label(Some("OneTooMany")), "other");
        assert_eq!(metrics.operation_label(Some("Op7")), "Op7");
        assert_eq!(metrics.operation_label(None), "anonymous");
    }

    #[tokio::test]
    async fn the_incident_id_is_the_request_id_inside_a_request() {
        let id: Arc<str> = Arc::from("req-1");
        assert_eq!(with_request_id(id.clone(), async { incident_id() }).await, "req-1");
        assert_eq!(in_request(id, incident_id), "req-1");
        assert_ne!(incident_id(), "req-1");
    }
}
