//! Settings: read from an optional TOML file, then from `VELFERD_*` environment variables
//! (which win). Every value is parsed here, once; an error names the setting it concerns so an
//! operator can fix it without reading code.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::Algorithm;

/// Where a development database lives when nothing is configured: a file in the working
/// directory, created on first run.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://velferd.db?mode=rwc";
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_ISSUER: &str = "velferd";
pub const DEFAULT_AUDIENCE: &str = "velferd";
/// Where `npm ci --prefix server/graphiql` installs GraphiQL's packages in the source tree this
/// binary was built from, so `cargo run` and the tests find them from any working directory.
pub const DEFAULT_GRAPHIQL_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/graphiql/node_modules");

/// Every setting the service knows, with the environment variable that sets it and its
/// meaning. The TOML file uses the same names in lower case without the `VELFERD_` prefix.
pub const SETTINGS: &[(&str, &str)] = &[
    ("VELFERD_ENV", "`development` (default) or `production`"),
    ("VELFERD_DATABASE_URL", "`sqlite://FILE?mode=rwc` or `postgres://USER@HOST:PORT/DB`"),
    ("VELFERD_BIND", "address to listen on; port 0 picks a free port"),
    ("VELFERD_DB_MAX_CONNECTIONS", "size of the read pool (default 8)"),
    (
        "VELFERD_SQLITE_SYNCHRONOUS",
        "`normal` (default: a commit survives the process's death, not a power loss) or `full` (survives both)",
    ),
    ("VELFERD_SQLITE_CACHE_MIB", "SQLite page cache of each connection, MiB (default 32)"),
    (
        "VELFERD_SQLITE_MMAP_MIB",
        "how much of the SQLite file is read through a memory map, MiB (default 0: none; at most 2047)",
    ),
    ("VELFERD_JWT_ALGORITHM", "`HS256` (development only), `RS256` or `EdDSA`"),
    ("VELFERD_JWT_SECRET", "HS256 shared secret, at least 32 bytes"),
    ("VELFERD_JWT_PUBLIC_KEY_FILE", "PEM public key that verifies RS256/EdDSA tokens"),
    ("VELFERD_JWT_PRIVATE_KEY_FILE", "PEM private key; only `velferd token` uses it"),
    ("VELFERD_JWT_ISSUER", "required `iss` claim (default `velferd`)"),
    ("VELFERD_JWT_AUDIENCE", "required `aud` claim (default `velferd`)"),
    (
        "VELFERD_JWT_LEEWAY_SECONDS",
        "clock skew allowed on `exp` and `nbf`; a WebSocket closes at `exp` plus this (default 30)",
    ),
    ("VELFERD_GRAPHQL_MAX_DEPTH", "deepest query accepted (default 15)"),
    ("VELFERD_GRAPHQL_MAX_COMPLEXITY", "highest query cost accepted (default 10000)"),
    ("VELFERD_GRAPHQL_MAX_BATCH", "most operations in one batch request (default 10)"),
    ("VELFERD_MAX_BODY_BYTES", "largest GraphQL request body or WebSocket message (default 1048576)"),
    ("VELFERD_GRAPHQL_MAX_TOKENS", "most tokens in one GraphQL document (default 10000)"),
    ("VELFERD_GRAPHQL_MAX_NESTING", "deepest bracket nesting in one GraphQL document (default 64)"),
    (
        "VELFERD_GRAPHQL_MAX_SELECTIONS",
        "most selections in one GraphQL document with its fragments expanded (default 10000)",
    ),
    ("VELFERD_GRAPHQL_MAX_FRAGMENTS", "most fragment definitions in one GraphQL document (default 100)"),
    ("VELFERD_GRAPHQL_MAX_DIRECTIVES", "most directives in one GraphQL document (default 100)"),
    ("VELFERD_GRAPHQL_MAX_RESPONSE_BYTES", "largest GraphQL response, batches included (default 8388608)"),
    ("VELFERD_GRAPHQL_BATCH_WINDOW_MS", "how long DataLoaders collect keys before querying (default 2)"),
    ("VELFERD_WS_MAX_SUBSCRIPTIONS", "operations running at once on one WebSocket (default 100)"),
    ("VELFERD_WS_MAX_CONNECTIONS_PER_SUBJECT", "open WebSockets of one token subject (default 32)"),
    (
        "VELFERD_WS_MAX_ANONYMOUS_CONNECTIONS_PER_ADDRESS",
        "open anonymous WebSockets of one client address (default 16)",
    ),
    (
        "VELFERD_THROTTLE_CAPACITY",
        "cost points a signed-in caller's bucket holds, per instance (default 20000: two of the costliest queries)",
    ),
    ("VELFERD_THROTTLE_RESTORE_RATE", "cost points a signed-in caller's bucket regains per second (default 1000)"),
    (
        "VELFERD_ANONYMOUS_THROTTLE_CAPACITY",
        "cost points an anonymous client address's bucket holds, per instance (default 10000: one costliest query)",
    ),
    (
        "VELFERD_ANONYMOUS_THROTTLE_RESTORE_RATE",
        "cost points an anonymous client address's bucket regains per second (default 500)",
    ),
    (
        "VELFERD_REFUSAL_LOG_FLUSH_SECONDS",
        "how often each instance adds the refused attempts it counted to the refusal log (default 10)",
    ),
    (
        "VELFERD_CARE_RETENTION_DAYS",
        "days a recipient's data is kept after its service ended, then erased by an hourly sweep (default 180)",
    ),
    (
        "VELFERD_EVENT_RETENTION_DAYS",
        "days device events and their ingest receipts are kept (an event an open alert needs stays); 0 keeps them \
         forever (default 800)",
    ),
    (
        "VELFERD_DEAD_LETTER_RETENTION_DAYS",
        "days a dead letter is kept after it was resolved (unresolved ones stay); 0: forever (default 90)",
    ),
    (
        "VELFERD_WEBHOOK_DELIVERY_RETENTION_DAYS",
        "days a webhook delivery and its attempts are kept after it succeeded or failed (pending ones stay); 0: forever (default 30)",
    ),
    ("VELFERD_REFUSAL_RETENTION_DAYS", "days the refusal log's per-minute counts are kept; 0: forever (default 90)"),
    (
        "VELFERD_AUDIT_RETENTION_DAYS",
        "days an audit log entry is kept; older ones are cut from the start of the chain, which still verifies; \
         0: forever (default 3650, ten years)",
    ),
    ("VELFERD_RETENTION_INTERVAL_SECONDS", "how often each instance runs the retention sweep (default 3600)"),
    ("VELFERD_RETENTION_BATCH", "most rows one retention delete statement removes (default 5000)"),
    (
        "VELFERD_BENEFITS_MIN_RECIPIENTS",
        "fewest service recipients a published benefit figure may cover; smaller cells are suppressed (default 5, at least 3)",
    ),
    (
        "VELFERD_TRUSTED_PROXIES",
        "comma-separated addresses or CIDR ranges of proxies whose X-Forwarded-For names the client (default none)",
    ),
    (
        "VELFERD_ALLOWED_ORIGINS",
        "comma-separated browser origins (`https://portal.example.no`) allowed besides the server's own (default none)",
    ),
    ("VELFERD_ADAPTER_DEADLINE_MS", "wall-clock deadline of one adapter call (default 100)"),
    ("VELFERD_ADAPTER_FUEL", "instruction budget of one adapter call; 0 turns fuel metering off (default 10000000)"),
    ("VELFERD_ADAPTER_CONCURRENCY", "adapter calls running at once (default: CPU cores minus one, at least 1)"),
    (
        "VELFERD_ADAPTER_MAX_COMPONENT_BYTES",
        "largest component an adapter version may ask for at upload, approved at activation (default 33554432, 32 MiB)",
    ),
    (
        "VELFERD_ADAPTER_MAX_MEMORY_BYTES",
        "most memory per instance an adapter version may ask for; such versions run in a pool of their own (default 67108864, 64 MiB)",
    ),
    (
        "VELFERD_ADAPTER_MAX_FUEL",
        "largest instruction budget per call an adapter version may ask for; 0 also lets it ask for none (unmetered) (default 1000000000)",
    ),
    ("VELFERD_ADAPTER_MAX_DEADLINE_MS", "longest deadline per call an adapter version may ask for (default 5000)"),
    (
        "VELFERD_MAX_UPLOAD_BYTES",
        "largest multipart body on /graphql from a supplier who may upload adapters, streamed to a temporary file; others keep VELFERD_MAX_BODY_BYTES (default: the component ceiling plus 64 KiB)",
    ),
    (
        "VELFERD_ADAPTER_CACHE_DIR",
        "directory (made owner-only) for compiled adapters; `off` turns the compile cache off (default `$XDG_CACHE_HOME/velferd/adapters`, else `~/.cache/velferd/adapters`)",
    ),
    (
        "VELFERD_ADAPTER_CACHE_KEY",
        "key (at least 32 bytes) of the MACs on compile cache entries (default: a random key file made in the cache directory)",
    ),
    ("VELFERD_INGEST_MAX_BATCH", "most messages in one batch ingest request (default 500)"),
    ("VELFERD_INGEST_MAX_BATCH_BYTES", "largest batch ingest body (default 8388608)"),
    ("VELFERD_REPLAY_RETENTION", "recent message bodies kept per product for replay review (default 200)"),
    (
        "VELFERD_INGEST_PRODUCT_FRESH_MS",
        "how long ingest uses a product's row, active adapter and supplier read before (default 1000; 0: read for every request)",
    ),
    ("VELFERD_INGEST_RATE", "messages per second one product may send, per server instance (default 1000)"),
    ("VELFERD_INGEST_BURST", "messages one product may send at once above its rate (default 5000)"),
    (
        "VELFERD_DEAD_LETTER_QUOTA_BYTES",
        "bytes of unresolved dead letters one product may keep (default 268435456, 256 MiB)",
    ),
    (
        "VELFERD_ALERT_SWEEP_INTERVAL_MS",
        "how often each instance looks for due alert deadlines and silent devices (default 1000)",
    ),
    (
        "VELFERD_LIVE_RETENTION_SECONDS",
        "how long the outbox keeps live updates for subscribers to resume from (`afterSequence`) (default 3600)",
    ),
    (
        "VELFERD_LIVE_POLL_MS",
        "how often each instance reads the outbox when no notification woke it, a safety net (default 5000)",
    ),
    (
        "VELFERD_LIVE_SUBSCRIBER_BUFFER",
        "live updates one subscriber may have waiting before it is disconnected as too slow (default 1024)",
    ),
    (
        "VELFERD_WEBHOOK_RETRY_SCHEDULE",
        "delays before each webhook attempt, comma-separated humantime durations (default 0s,5s,5m,30m,2h,5h,10h,10h)",
    ),
    (
        "VELFERD_WEBHOOK_CONCURRENCY",
        "webhook deliveries one instance sends at once; 0: this instance sends none (default 8)",
    ),
    ("VELFERD_WEBHOOK_ROTATION_GRACE", "how long a rotated webhook secret still signs (default 24h)"),
    ("VELFERD_WEBHOOK_MAX_ENDPOINTS", "most webhook endpoints one organisation may register (default 10)"),
    (
        "VELFERD_WEBHOOK_LEASE",
        "how long a claimed webhook delivery is one instance's; longer than an outbound request may take (default 2m)",
    ),
    ("VELFERD_WEBHOOK_POLL_MS", "how often each instance looks for due webhook deliveries unwoken (default 1000)"),
    (
        "VELFERD_PUBLIC_BASE_URL",
        "this API's public address, for links in webhook payloads (default: http:// and the address listened on)",
    ),
    ("VELFERD_OPERATOR_NAME", "name of the platform operator's organisation (default `Velferd platform operator`)"),
    (
        "VELFERD_OPERATOR_ORG_NUMBER",
        "organisation number of the platform operator, whose `admin` tokens name it (default none: name it by `oid`)",
    ),
    (
        "VELFERD_AUDIT_KEY",
        "HMAC key (at least 32 bytes) that signs the audit log's chain anchors; required in production unless \
         VELFERD_AUDIT_KEY_FILE is set (development: a published key, logged as such)",
    ),
    ("VELFERD_AUDIT_KEY_FILE", "file holding the audit key instead of VELFERD_AUDIT_KEY (trailing whitespace ignored)"),
    (
        "VELFERD_AUDIT_RETIRED_KEY_FILES",
        "comma-separated files of earlier audit keys, so anchors signed before a rotation still verify (default none)",
    ),
    (
        "VELFERD_GRAPHIQL_DIR",
        "directory of GraphiQL's npm packages (default: server/graphiql/node_modules of the source tree built)",
    ),
    ("VELFERD_LOG", "log filter, e.g. `info` or `velferd=debug` (default `info`)"),
    (
        "VELFERD_LOG_FORMAT",
        "`json` (one object a line) or `text` (default `json` in production, `text` in development)",
    ),
    (
        "VELFERD_METRICS_BIND",
        "address of a separate listener serving Prometheus `/metrics`, e.g. 127.0.0.1:9464 (default off)",
    ),
    (
        "VELFERD_OUTBOUND_ALLOW_LOOPBACK",
        "`true` lets outbound calls (webhooks) reach 127.0.0.0/8 and ::1 too, for development and tests; \
         certificates are still checked; refused in production (default `false`)",
    ),
    (
        "VELFERD_OUTBOUND_TRUST_ROOTS_FILE",
        "PEM certificates outbound calls trust besides Mozilla's roots (default none)",
    ),
    ("VELFERD_OUTBOUND_TIMEOUT", "the whole of one outbound call, connect to last byte, e.g. `10s` (default 10s)"),
    (
        "VELFERD_OUTBOUND_MAX_RETRY_AFTER",
        "the longest `Retry-After` an endpoint's answer is honoured for, e.g. `1h` (default 1h)",
    ),
    (
        "VELFERD_FAILPOINT",
        "testing only, refused in production: `POINT:N` aborts `velferd serve` the N-th time it reaches POINT \
         (after_decode, after_commit, before_reply, after_delivery), as a crash would (default none)",
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{setting}: {reason}")]
    Invalid { setting: &'static str, reason: String },
    #[error("{setting} is required: {hint}")]
    Missing { setting: &'static str, hint: &'static str },
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Development,
    Production,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone)]
pub enum JwtKey {
    /// HS256 shared secret.
    Secret(Vec<u8>),
    /// PEM public key for RS256 or EdDSA, with the optional private key for minting tokens.
    Pem { public: Vec<u8>, private: Option<Vec<u8>> },
}

impl std::fmt::Debug for JwtKey {
    // Never print key material, not even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtKey::Secret(_) => f.write_str("JwtKey::Secret(..)"),
            JwtKey::Pem { private, .. } => {
                write!(f, "JwtKey::Pem {{ private: {} }}", private.is_some())
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub algorithm: Algorithm,
    pub key: JwtKey,
    pub issuer: String,
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

#[derive(Debug, Clone)]
pub struct GraphqlLimits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_batch: usize,
    pub max_body_bytes: usize,
    /// Largest response of one HTTP request (all operations of a batch together).
    pub max_response_bytes: usize,
    /// Bounds on a document, checked before it is validated.
    pub document: crate::graphql::guard::DocumentLimits,
    /// How long a DataLoader collects keys before it queries.
    pub batch_window: Duration,
}

/// Bounds of GraphQL over WebSocket (`/graphql/ws`); its message size is
/// [`GraphqlLimits::max_body_bytes`].
#[derive(Debug, Clone)]
pub struct WebSocketLimits {
    /// Operations (subscriptions, and queries or mutations in flight) at once on one socket.
    pub max_subscriptions: usize,
    /// Open sockets of one signed-in subject (per organisation), whatever its tokens.
    pub max_connections_per_subject: usize,
    /// Open anonymous sockets of one client address (an IPv6 address's /64).
    pub max_anonymous_connections_per_address: usize,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub profile: Profile,
    pub database_url: String,
    pub bind: SocketAddr,
    pub db_max_connections: u32,
    /// When SQLite's commit reaches the disk (`VELFERD_SQLITE_SYNCHRONOUS`; PostgreSQL's is its
    /// own setting), its page cache and memory map.
    pub sqlite: crate::db::SqliteSettings,
    pub jwt: JwtSettings,
    pub graphql: GraphqlLimits,
    pub websocket: WebSocketLimits,
    /// Cost-based throttling per caller, and whose `X-Forwarded-For` names the client.
    pub throttle: crate::throttle::ThrottleSettings,
    /// How often the refusal log's counts are written.
    pub refusal_log_flush: Duration,
    /// Days a recipient's data is kept after its service ended (`docs/care.md`).
    pub care_retention_days: u32,
    /// How long events, receipts, dead letters, deliveries, refusals and the audit log are kept
    /// (`VELFERD_*_RETENTION_DAYS`, docs/operations.md).
    pub retention: crate::retention::RetentionSettings,
    /// The fewest recipients a published benefit figure may cover (`docs/benefits.md`).
    pub benefits_min_recipients: u32,
    /// Browser origins other than the server's own that may call it: checked on the WebSocket
    /// upgrade (a page's scripts cannot be kept from opening sockets to any host) and meant for
    /// the CORS allow-list too. Each is `scheme://host[:port]`, lower case.
    pub allowed_origins: Vec<String>,
    pub devices: DeviceSettings,
    /// The outbox of live updates (`VELFERD_LIVE_*`).
    pub live: crate::live::LiveSettings,
    pub log: String,
    pub log_format: LogFormat,
    /// Where `/metrics` is served; never on `bind`.
    pub metrics_bind: Option<SocketAddr>,
    /// The platform operator's organisation, created at start if missing.
    pub operator: OperatorSettings,
    /// The keys that sign (and verify) the audit log's chain anchors.
    pub audit_keys: crate::audit::key::AuditKeys,
    /// The alert sweep: escalation deadlines and silent devices.
    pub alerts: AlertSettings,
    /// GraphiQL's npm packages (development only).
    pub graphiql_dir: PathBuf,
    /// Webhook delivery (`VELFERD_WEBHOOK_*`, `VELFERD_PUBLIC_BASE_URL`).
    pub webhooks: crate::webhooks::WebhookSettings,
    /// Calls to addresses others choose (`VELFERD_OUTBOUND_*`, docs/outbound.md).
    pub outbound: crate::outbound::OutboundSettings,
    /// Where `velferd serve` aborts itself, for the crash test (`VELFERD_FAILPOINT`).
    pub failpoint: Option<crate::failpoint::Failpoint>,
}

/// How the alert sweep runs (`VELFERD_ALERT_SWEEP_INTERVAL_MS`).
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// How often each instance claims due deadlines; a deadline fires at most this late.
    pub sweep_interval: Duration,
}

/// The platform operator's organisation (`VELFERD_OPERATOR_*`): the one organisation whose
/// `admin` role counts.
#[derive(Debug, Clone)]
pub struct OperatorSettings {
    pub name: crate::organizations::OrganizationName,
    pub org_number: Option<crate::organizations::OrgNumber>,
}

/// The operator's name when `VELFERD_OPERATOR_NAME` is not set.
pub const DEFAULT_OPERATOR_NAME: &str = "Velferd platform operator";

/// Limits of adapter calls and ingest.
#[derive(Debug, Clone)]
pub struct DeviceSettings {
    pub adapter_limits: velferd_plugins::Limits,
    /// The most an adapter version may ask for beyond `adapter_limits`.
    pub adapter_ceilings: AdapterCeilings,
    /// Largest multipart `/graphql` body of a supplier who may upload adapters.
    pub max_upload_bytes: usize,
    pub adapter_concurrency: usize,
    pub max_batch: usize,
    pub max_batch_bytes: usize,
    pub replay_retention: u32,
    /// How long ingest uses a product read before (`devices::ingest::IngestProducts`).
    pub product_fresh: Duration,
    pub ingest_limits: crate::devices::limits::IngestLimitSettings,
    /// Where compiled adapters are kept between restarts; `None`: only in memory.
    pub adapter_cache: Option<AdapterCacheSettings>,
}

/// The compile cache's directory and, if set, its MAC key (`Debug` does not show the key).
#[derive(Clone)]
pub struct AdapterCacheSettings {
    pub dir: PathBuf,
    key: Option<Vec<u8>>,
}

impl std::fmt::Debug for AdapterCacheSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = if self.key.is_some() { "VELFERD_ADAPTER_CACHE_KEY" } else { "key file in the directory" };
        f.debug_struct("AdapterCacheSettings").field("dir", &self.dir).field("key", &key).finish()
    }
}

impl AdapterCacheSettings {
    /// Opens the cache, creating the directory and key file as needed.
    pub fn open(&self) -> std::io::Result<velferd_plugins::CompileCache> {
        velferd_plugins::CompileCache::open(&self.dir, self.key.as_deref())
    }

    /// [`AdapterCacheSettings::open`], or `None` with a warning: without the cache adapters are
    /// compiled at every start, which is slower but correct.
    pub fn open_or_warn(&self) -> Option<velferd_plugins::CompileCache> {
        self.open()
            .inspect_err(|error| {
                tracing::warn!(dir = %self.dir.display(), %error, "the adapter compile cache is off: cannot use its directory");
            })
            .ok()
    }
}

/// The platform's ceilings on what one adapter version may ask for at upload (an admin approves
/// a request above the defaults at activation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdapterCeilings {
    pub component_bytes: usize,
    pub memory_bytes: usize,
    /// Largest instruction budget; `None`: any, and a version may also run unmetered.
    pub fuel: Option<u64>,
    pub deadline: Duration,
}

/// Raw setting values by environment-variable name, before parsing.
type RawSettings = BTreeMap<&'static str, String>;

impl Settings {
    /// Loads settings from `file` (if any) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Settings::from_raw(&load_raw(file)?)
    }

    /// Parses settings from name/value pairs, as if they were environment variables.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Settings, ConfigError> {
        let mut raw = RawSettings::new();
        for (name, value) in pairs {
            let known = SETTINGS
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or(ConfigError::Invalid { setting: "settings", reason: format!("unknown setting {name}") })?;
            raw.insert(known.0, value.to_string());
        }
        Settings::from_raw(&raw)
    }

    fn from_raw(raw: &RawSettings) -> Result<Settings, ConfigError> {
        let get = |name: &str| raw.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());

        let profile = match get("VELFERD_ENV").unwrap_or("development") {
            "development" | "dev" => Profile::Development,
            "production" | "prod" => Profile::Production,
            other => {
                return Err(invalid(
                    "VELFERD_ENV",
                    format!("unknown profile {other:?}; use `development` or `production`"),
                ));
            }
        };

        let database_url = get("VELFERD_DATABASE_URL").unwrap_or(DEFAULT_DATABASE_URL).to_string();
        crate::db::Backend::of_url(&database_url).map_err(|reason| invalid("VELFERD_DATABASE_URL", reason))?;

        let bind_text = get("VELFERD_BIND").unwrap_or(DEFAULT_BIND);
        let bind: SocketAddr = bind_text.parse().map_err(|e| {
            invalid("VELFERD_BIND", format!("{bind_text:?} is not an address like 127.0.0.1:8080 ({e})"))
        })?;

        let db_max_connections = parse_number(get, "VELFERD_DB_MAX_CONNECTIONS", 8, 1..=1000)? as u32;
        let mib = |setting, default: u32, range| parse_number(get, setting, default as usize, range).map(|n| n as u32);
        let sqlite = crate::db::SqliteSettings {
            durability: match get("VELFERD_SQLITE_SYNCHRONOUS").unwrap_or("normal") {
                "normal" => crate::db::SqliteDurability::Normal,
                "full" => crate::db::SqliteDurability::Full,
                other => {
                    return Err(invalid("VELFERD_SQLITE_SYNCHRONOUS", format!("{other:?} is not `normal` or `full`")));
                }
            },
            cache_mib: mib("VELFERD_SQLITE_CACHE_MIB", crate::db::DEFAULT_SQLITE_CACHE_MIB, 1..=65_536)?,
            mmap_mib: mib("VELFERD_SQLITE_MMAP_MIB", crate::db::DEFAULT_SQLITE_MMAP_MIB, 0..=2047)?,
        };

        let jwt = jwt_settings(get, profile)?;

        let graphql = GraphqlLimits {
            max_depth: parse_number(get, "VELFERD_GRAPHQL_MAX_DEPTH", 15, 2..=100)?,
            max_complexity: parse_number(get, "VELFERD_GRAPHQL_MAX_COMPLEXITY", 10_000, 10..=10_000_000)?,
            max_batch: parse_number(get, "VELFERD_GRAPHQL_MAX_BATCH", 10, 1..=1000)?,
            max_body_bytes: parse_number(get, "VELFERD_MAX_BODY_BYTES", 1 << 20, 1024..=(64 << 20))?,
            max_response_bytes: parse_number(get, "VELFERD_GRAPHQL_MAX_RESPONSE_BYTES", 8 << 20, 1024..=(1 << 30))?,
            document: crate::graphql::guard::DocumentLimits {
                max_tokens: parse_number(get, "VELFERD_GRAPHQL_MAX_TOKENS", 10_000, 100..=1_000_000)?,
                max_nesting: parse_number(get, "VELFERD_GRAPHQL_MAX_NESTING", 64, 4..=256)?,
                max_selections: parse_number(get, "VELFERD_GRAPHQL_MAX_SELECTIONS", 10_000, 100..=10_000_000)?,
                max_fragments: parse_number(get, "VELFERD_GRAPHQL_MAX_FRAGMENTS", 100, 1..=10_000)?,
                max_directives: parse_number(get, "VELFERD_GRAPHQL_MAX_DIRECTIVES", 100, 1..=10_000)?,
            },
            batch_window: Duration::from_millis(
                parse_number(get, "VELFERD_GRAPHQL_BATCH_WINDOW_MS", 2, 0..=1000)? as u64
            ),
        };

        let websocket = WebSocketLimits {
            max_subscriptions: parse_number(get, "VELFERD_WS_MAX_SUBSCRIPTIONS", 100, 1..=10_000)?,
            max_connections_per_subject: parse_number(
                get,
                "VELFERD_WS_MAX_CONNECTIONS_PER_SUBJECT",
                32,
                1..=1_000_000,
            )?,
            max_anonymous_connections_per_address: parse_number(
                get,
                "VELFERD_WS_MAX_ANONYMOUS_CONNECTIONS_PER_ADDRESS",
                16,
                1..=1_000_000,
            )?,
        };
        let throttle = throttle_settings(get)?;
        let allowed_origins = match get("VELFERD_ALLOWED_ORIGINS") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(|o| parse_origin(o).map_err(|reason| invalid("VELFERD_ALLOWED_ORIGINS", reason)))
                .collect::<Result<Vec<_>, _>>()?,
        };

        let adapter_limits = adapter_limits(get)?;
        let adapter_ceilings = adapter_ceilings(get, &adapter_limits)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let devices = DeviceSettings {
            adapter_concurrency: parse_number(
                get,
                "VELFERD_ADAPTER_CONCURRENCY",
                cores.saturating_sub(1).max(1),
                1..=64,
            )?,
            max_batch: parse_number(get, "VELFERD_INGEST_MAX_BATCH", 500, 1..=10_000)?,
            max_batch_bytes: parse_number(get, "VELFERD_INGEST_MAX_BATCH_BYTES", 8 << 20, 1024..=(256 << 20))?,
            replay_retention: parse_number(get, "VELFERD_REPLAY_RETENTION", 200, 1..=100_000)? as u32,
            product_fresh: Duration::from_millis(
                parse_number(get, "VELFERD_INGEST_PRODUCT_FRESH_MS", 1000, 0..=60_000)? as u64,
            ),
            ingest_limits: crate::devices::limits::IngestLimitSettings {
                rate_per_second: parse_number(get, "VELFERD_INGEST_RATE", 1000, 1..=10_000_000)? as u32,
                burst: parse_number(get, "VELFERD_INGEST_BURST", 5000, 1..=10_000_000)? as u32,
                dead_letter_quota_bytes: parse_number(get, "VELFERD_DEAD_LETTER_QUOTA_BYTES", 256 << 20, 0..=(1 << 40))?
                    as u64,
            },
            adapter_limits,
            adapter_ceilings,
            max_upload_bytes: parse_number(
                get,
                "VELFERD_MAX_UPLOAD_BYTES",
                adapter_ceilings.component_bytes + (64 << 10),
                1024..=(1 << 30),
            )?,
            adapter_cache: adapter_cache(get)?,
        };

        let live = crate::live::LiveSettings {
            retention: Duration::from_secs(
                parse_number(get, "VELFERD_LIVE_RETENTION_SECONDS", 3600, 1..=30 * 86_400)? as u64
            ),
            poll_interval: Duration::from_millis(parse_number(get, "VELFERD_LIVE_POLL_MS", 5000, 10..=600_000)? as u64),
            subscriber_buffer: parse_number(get, "VELFERD_LIVE_SUBSCRIBER_BUFFER", 1024, 1..=1_000_000)?,
        };

        let log_format = match get("VELFERD_LOG_FORMAT") {
            None if profile == Profile::Production => LogFormat::Json,
            None => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => return Err(invalid("VELFERD_LOG_FORMAT", format!("{other:?} is not `json` or `text`"))),
        };
        let metrics_bind = match get("VELFERD_METRICS_BIND") {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|e| {
                invalid("VELFERD_METRICS_BIND", format!("{text:?} is not an address like 127.0.0.1:9464 ({e})"))
            })?),
        };
        if metrics_bind.is_some_and(|m| m == bind && m.port() != 0) {
            return Err(invalid(
                "VELFERD_METRICS_BIND",
                "must differ from VELFERD_BIND: metrics are not for the public port".into(),
            ));
        }

        let operator = OperatorSettings {
            name: get("VELFERD_OPERATOR_NAME")
                .unwrap_or(DEFAULT_OPERATOR_NAME)
                .parse()
                .map_err(|e| invalid("VELFERD_OPERATOR_NAME", format!("{e}")))?,
            org_number: get("VELFERD_OPERATOR_ORG_NUMBER")
                .map(|n| n.parse().map_err(|e| invalid("VELFERD_OPERATOR_ORG_NUMBER", format!("{e}"))))
                .transpose()?,
        };

        let audit_keys = audit_keys(get, profile)?;
        let webhooks = webhook_settings(get)?;
        let outbound = outbound_settings(get, profile)?;
        if webhooks.lease <= outbound.timeout {
            // A lease that ran out mid-request would let a second instance send the same
            // delivery while the first still waits for its answer.
            return Err(invalid(
                "VELFERD_WEBHOOK_LEASE",
                format!("{:?} must be longer than VELFERD_OUTBOUND_TIMEOUT ({:?})", webhooks.lease, outbound.timeout),
            ));
        }

        let failpoint = failpoint_setting(get, profile)?;

        Ok(Settings {
            profile,
            database_url,
            bind,
            db_max_connections,
            sqlite,
            jwt,
            graphql,
            websocket,
            throttle,
            refusal_log_flush: Duration::from_secs(parse_number(
                get,
                "VELFERD_REFUSAL_LOG_FLUSH_SECONDS",
                10,
                1..=86_400,
            )? as u64),
            care_retention_days: parse_number(get, "VELFERD_CARE_RETENTION_DAYS", 180, 0..=36_500)? as u32,
            retention: retention_settings(get)?,
            benefits_min_recipients: parse_number(get, "VELFERD_BENEFITS_MIN_RECIPIENTS", 5, 3..=1_000)? as u32,
            allowed_origins,
            devices,
            live,
            log: get("VELFERD_LOG").unwrap_or("info").to_string(),
            log_format,
            metrics_bind,
            operator,
            audit_keys,
            alerts: AlertSettings {
                sweep_interval: Duration::from_millis(parse_number(
                    get,
                    "VELFERD_ALERT_SWEEP_INTERVAL_MS",
                    1000,
                    10..=3_600_000,
                )? as u64),
            },
            graphiql_dir: PathBuf::from(get("VELFERD_GRAPHIQL_DIR").unwrap_or(DEFAULT_GRAPHIQL_DIR)),
            webhooks,
            outbound,
            failpoint,
        })
    }

    /// How long `velferd serve` waits for the database at start before giving up.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }
}

/// `VELFERD_FAILPOINT`: a known point and a count, and never in production, where a stray
/// variable would make the service abort itself.
fn failpoint_setting<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    profile: Profile,
) -> Result<Option<crate::failpoint::Failpoint>, ConfigError> {
    let Some(text) = get("VELFERD_FAILPOINT") else { return Ok(None) };
    if profile == Profile::Production {
        return Err(invalid(
            "VELFERD_FAILPOINT",
            "aborts the process on purpose, for crash tests; not in production".into(),
        ));
    }
    text.parse().map(Some).map_err(|reason| invalid("VELFERD_FAILPOINT", reason))
}

/// The retention of each growing table: days (0 keeps forever) and how the sweep runs.
fn retention_settings<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
) -> Result<crate::retention::RetentionSettings, ConfigError> {
    let days = |name: &'static str, default: usize| -> Result<Option<u32>, ConfigError> {
        let days = parse_number(&get, name, default, 0..=36_500)? as u32;
        Ok((days > 0).then_some(days))
    };
    Ok(crate::retention::RetentionSettings {
        events_days: days("VELFERD_EVENT_RETENTION_DAYS", 800)?,
        dead_letters_days: days("VELFERD_DEAD_LETTER_RETENTION_DAYS", 90)?,
        webhook_deliveries_days: days("VELFERD_WEBHOOK_DELIVERY_RETENTION_DAYS", 30)?,
        refusals_days: days("VELFERD_REFUSAL_RETENTION_DAYS", 90)?,
        audit_days: days("VELFERD_AUDIT_RETENTION_DAYS", 3650)?,
        interval: Duration::from_secs(
            parse_number(&get, "VELFERD_RETENTION_INTERVAL_SECONDS", 3600, 1..=30 * 86_400)? as u64
        ),
        batch: parse_number(&get, "VELFERD_RETENTION_BATCH", 5000, 1..=1_000_000)? as u64,
    })
}

/// The limits adapter calls run under, from `file` (if any) and the environment, as `serve`
/// would apply them. Only the adapter settings are parsed — `velferd adapter check` uses this,
/// and a supplier running it has no JWT secret or database — but the file's keys are checked
/// as `serve` checks them.
pub fn load_adapter_limits(file: Option<&Path>) -> Result<velferd_plugins::Limits, ConfigError> {
    let raw = load_raw(file)?;
    adapter_limits(|name: &str| raw.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()))
}

/// The compile cache settings from `file` (if any) and the environment, as `serve` reads them
/// (`velferd adapter check` uses the same cache).
pub fn load_adapter_cache(file: Option<&Path>) -> Result<Option<AdapterCacheSettings>, ConfigError> {
    let raw = load_raw(file)?;
    adapter_cache(|name: &str| raw.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()))
}

/// What `velferd audit verify` needs: the database and the audit keys, from `file` (if any) and
/// the environment, as `serve` reads them, without asking for the token secrets.
pub fn load_audit_settings(
    file: Option<&Path>,
) -> Result<(Profile, String, crate::audit::key::AuditKeys), ConfigError> {
    let raw = load_raw(file)?;
    let get = |name: &str| raw.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let profile = match get("VELFERD_ENV").unwrap_or("development") {
        "production" | "prod" => Profile::Production,
        "development" | "dev" => Profile::Development,
        other => return Err(invalid("VELFERD_ENV", format!("unknown profile {other:?}"))),
    };
    let database_url = get("VELFERD_DATABASE_URL").unwrap_or(DEFAULT_DATABASE_URL).to_string();
    crate::db::Backend::of_url(&database_url).map_err(|reason| invalid("VELFERD_DATABASE_URL", reason))?;
    Ok((profile, database_url, audit_keys(get, profile)?))
}

/// The database `velferd backup` copies, from `file` (if any) and the environment, as `serve`
/// reads it, without asking for the token or audit secrets.
pub fn load_database_url(file: Option<&Path>) -> Result<String, ConfigError> {
    let raw = load_raw(file)?;
    let url = raw.get("VELFERD_DATABASE_URL").map(|v| v.trim()).filter(|v| !v.is_empty());
    let url = url.unwrap_or(DEFAULT_DATABASE_URL).to_string();
    crate::db::Backend::of_url(&url).map_err(|reason| invalid("VELFERD_DATABASE_URL", reason))?;
    Ok(url)
}

/// The audit key (from the value or the file, not both), the retired keys, and in development
/// the published development key when none is set. Production refuses to start without a key
/// of its own.
fn audit_keys<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    profile: Profile,
) -> Result<crate::audit::key::AuditKeys, ConfigError> {
    use crate::audit::key::{AuditKey, AuditKeys, MIN_KEY_BYTES};
    let key_of = |setting: &'static str, bytes: &[u8], origin: &str| {
        AuditKey::new(bytes).ok_or_else(|| {
            invalid(setting, format!("{origin} is {} bytes; the audit key needs at least {MIN_KEY_BYTES}", bytes.len()))
        })
    };
    let read = |setting: &'static str, path: &str| -> Result<Vec<u8>, ConfigError> {
        let bytes = read_key(setting, path)?;
        Ok(bytes.trim_ascii_end().to_vec())
    };
    let current = match (get("VELFERD_AUDIT_KEY"), get("VELFERD_AUDIT_KEY_FILE")) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "VELFERD_AUDIT_KEY",
                "set VELFERD_AUDIT_KEY or VELFERD_AUDIT_KEY_FILE, not both".into(),
            ));
        }
        (Some(value), None) => key_of("VELFERD_AUDIT_KEY", value.as_bytes(), "the key")?,
        (None, Some(path)) => key_of("VELFERD_AUDIT_KEY_FILE", &read("VELFERD_AUDIT_KEY_FILE", path)?, path)?,
        (None, None) if profile == Profile::Production => {
            return Err(ConfigError::Missing {
                setting: "VELFERD_AUDIT_KEY_FILE",
                hint: "production signs the audit log with a key of its own (at least 32 bytes, kept outside the \
                       database); or set VELFERD_AUDIT_KEY",
            });
        }
        (None, None) => AuditKey::development(),
    };
    if profile == Profile::Production && current.is_development() {
        return Err(invalid("VELFERD_AUDIT_KEY", "the development key is published; production needs its own".into()));
    }
    let mut retired = Vec::new();
    for path in get("VELFERD_AUDIT_RETIRED_KEY_FILES").unwrap_or("").split(',').map(str::trim).filter(|p| !p.is_empty())
    {
        retired.push(key_of("VELFERD_AUDIT_RETIRED_KEY_FILES", &read("VELFERD_AUDIT_RETIRED_KEY_FILES", path)?, path)?);
    }
    Ok(AuditKeys { current, retired })
}

/// Raw values from `file` (unknown keys refused) overridden by `VELFERD_*` variables.
fn load_raw(file: Option<&Path>) -> Result<RawSettings, ConfigError> {
    let mut raw = match file {
        Some(path) => read_file(path)?,
        None => RawSettings::new(),
    };
    for (name, _) in SETTINGS {
        if let Ok(value) = std::env::var(name) {
            raw.insert(name, value);
        }
    }
    Ok(raw)
}

fn adapter_limits<'a>(get: impl Fn(&str) -> Option<&'a str> + Copy) -> Result<velferd_plugins::Limits, ConfigError> {
    let deadline = Duration::from_millis(parse_number(get, "VELFERD_ADAPTER_DEADLINE_MS", 100, 1..=60_000)? as u64);
    let fuel = match parse_number(get, "VELFERD_ADAPTER_FUEL", 10_000_000, 0..=10_000_000_000)? {
        0 => None,
        n => Some(n as u64),
    };
    Ok(velferd_plugins::Limits { deadline, fuel, ..velferd_plugins::Limits::default() })
}

fn adapter_ceilings<'a>(
    get: impl Fn(&str) -> Option<&'a str> + Copy,
    defaults: &velferd_plugins::Limits,
) -> Result<AdapterCeilings, ConfigError> {
    // A ceiling below the default would refuse what every version gets without asking.
    let component_bytes =
        parse_number(get, "VELFERD_ADAPTER_MAX_COMPONENT_BYTES", 32 << 20, defaults.component_bytes..=(256 << 20))?;
    let memory_bytes =
        parse_number(get, "VELFERD_ADAPTER_MAX_MEMORY_BYTES", 64 << 20, defaults.memory_bytes..=(1 << 30))?;
    let fuel = match parse_number(get, "VELFERD_ADAPTER_MAX_FUEL", 1_000_000_000, 0..=1_000_000_000_000)? {
        0 => None,
        n if defaults.fuel.is_some_and(|d| (n as u64) < d) => {
            return Err(invalid("VELFERD_ADAPTER_MAX_FUEL", format!("{n} is below VELFERD_ADAPTER_FUEL")));
        }
        n => Some(n as u64),
    };
    let deadline_ms = defaults.deadline.as_millis() as usize;
    let deadline = Duration::from_millis(parse_number(
        get,
        "VELFERD_ADAPTER_MAX_DEADLINE_MS",
        5000.max(deadline_ms),
        deadline_ms..=600_000,
    )? as u64);
    Ok(AdapterCeilings { component_bytes, memory_bytes, fuel, deadline })
}

fn adapter_cache<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Option<AdapterCacheSettings>, ConfigError> {
    let key = get("VELFERD_ADAPTER_CACHE_KEY").map(|key| key.as_bytes().to_vec());
    if let Some(key) = &key
        && key.len() < velferd_plugins::MIN_CACHE_KEY_BYTES
    {
        return Err(invalid(
            "VELFERD_ADAPTER_CACHE_KEY",
            format!("the key is {} bytes; it needs at least {}", key.len(), velferd_plugins::MIN_CACHE_KEY_BYTES),
        ));
    }
    let dir = match get("VELFERD_ADAPTER_CACHE_DIR") {
        Some("off") => return Ok(None),
        Some(dir) => PathBuf::from(dir),
        // Without a home there is no default place; the server compiles at every start.
        None => match velferd_plugins::CompileCache::default_dir() {
            Some(dir) => dir,
            None => return Ok(None),
        },
    };
    Ok(Some(AdapterCacheSettings { dir, key }))
}

fn jwt_settings<'a>(get: impl Fn(&str) -> Option<&'a str>, profile: Profile) -> Result<JwtSettings, ConfigError> {
    let algorithm = match get("VELFERD_JWT_ALGORITHM").unwrap_or("HS256") {
        "HS256" => Algorithm::HS256,
        "RS256" => Algorithm::RS256,
        "EdDSA" => Algorithm::EdDSA,
        other => {
            return Err(invalid(
                "VELFERD_JWT_ALGORITHM",
                format!("unsupported algorithm {other:?}; use HS256, RS256 or EdDSA"),
            ));
        }
    };
    let key = match algorithm {
        Algorithm::HS256 => {
            if profile == Profile::Production {
                return Err(invalid(
                    "VELFERD_JWT_ALGORITHM",
                    "HS256 is for development only; use RS256 or EdDSA in production".into(),
                ));
            }
            let secret = get("VELFERD_JWT_SECRET").ok_or(ConfigError::Missing {
                setting: "VELFERD_JWT_SECRET",
                hint: "HS256 needs a shared secret of at least 32 bytes",
            })?;
            if secret.len() < 32 {
                return Err(invalid(
                    "VELFERD_JWT_SECRET",
                    format!("is {} bytes; HS256 needs at least 32", secret.len()),
                ));
            }
            JwtKey::Secret(secret.as_bytes().to_vec())
        }
        _ => {
            let path = get("VELFERD_JWT_PUBLIC_KEY_FILE").ok_or(ConfigError::Missing {
                setting: "VELFERD_JWT_PUBLIC_KEY_FILE",
                hint: "RS256 and EdDSA need the PEM public key that verifies tokens",
            })?;
            let public = read_key("VELFERD_JWT_PUBLIC_KEY_FILE", path)?;
            let parsed = match algorithm {
                Algorithm::RS256 => jsonwebtoken::DecodingKey::from_rsa_pem(&public).map(drop),
                _ => jsonwebtoken::DecodingKey::from_ed_pem(&public).map(drop),
            };
            parsed.map_err(|e| {
                invalid("VELFERD_JWT_PUBLIC_KEY_FILE", format!("{path}: not a {algorithm:?} public key ({e})"))
            })?;
            let private = match get("VELFERD_JWT_PRIVATE_KEY_FILE") {
                Some(path) => Some(read_key("VELFERD_JWT_PRIVATE_KEY_FILE", path)?),
                None => None,
            };
            JwtKey::Pem { public, private }
        }
    };
    Ok(JwtSettings {
        algorithm,
        key,
        issuer: get("VELFERD_JWT_ISSUER").unwrap_or(DEFAULT_ISSUER).to_string(),
        audience: get("VELFERD_JWT_AUDIENCE").unwrap_or(DEFAULT_AUDIENCE).to_string(),
        leeway: Duration::from_secs(parse_number(get, "VELFERD_JWT_LEEWAY_SECONDS", 30, 0..=300)? as u64),
    })
}

/// The throttle's buckets and trusted proxies. The defaults let the costliest query a server
/// accepts (`VELFERD_GRAPHQL_MAX_COMPLEXITY`, 10000 by default) through on a full bucket: twice
/// for a signed-in caller, once for an anonymous address. A capacity below the largest cost
/// refuses the queries between with `MAX_COST_EXCEEDED`.
fn throttle_settings<'a>(
    get: impl Fn(&str) -> Option<&'a str> + Copy,
) -> Result<crate::throttle::ThrottleSettings, ConfigError> {
    use crate::throttle::BucketLimits;
    let points =
        |name: &'static str, default: usize| parse_number(get, name, default, 1..=100_000_000).map(|n| n as u32);
    let trusted_proxies = get("VELFERD_TRUSTED_PROXIES")
        .unwrap_or("")
        .parse()
        .map_err(|reason| invalid("VELFERD_TRUSTED_PROXIES", reason))?;
    Ok(crate::throttle::ThrottleSettings {
        signed_in: BucketLimits {
            capacity: points("VELFERD_THROTTLE_CAPACITY", 20_000)?,
            restore_rate: points("VELFERD_THROTTLE_RESTORE_RATE", 1_000)?,
        },
        anonymous: BucketLimits {
            capacity: points("VELFERD_ANONYMOUS_THROTTLE_CAPACITY", 10_000)?,
            restore_rate: points("VELFERD_ANONYMOUS_THROTTLE_RESTORE_RATE", 500)?,
        },
        trusted_proxies,
    })
}

/// The webhook settings; without a public base URL, links name the address the server listens on.
fn webhook_settings<'a>(
    get: impl Fn(&str) -> Option<&'a str> + Copy,
) -> Result<crate::webhooks::WebhookSettings, ConfigError> {
    let duration = |name: &'static str, default: &str, range: std::ops::RangeInclusive<Duration>| {
        let text = get(name).unwrap_or(default);
        match humantime::parse_duration(text) {
            Ok(d) if range.contains(&d) => Ok(d),
            _ => Err(invalid(
                name,
                format!("{text:?} is not a duration from {:?} to {:?} (e.g. 24h)", range.start(), range.end()),
            )),
        }
    };
    let schedule = get("VELFERD_WEBHOOK_RETRY_SCHEDULE").unwrap_or(crate::webhooks::schedule::DEFAULT_SCHEDULE);
    let public_base_url = match get("VELFERD_PUBLIC_BASE_URL") {
        None => None,
        Some(url) => {
            let url = url.trim_end_matches('/');
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && url.split_once("://").is_some_and(|(_, rest)| !rest.is_empty())
                && !url.chars().any(|c| c.is_whitespace() || c == '?' || c == '#');
            if !ok {
                return Err(invalid(
                    "VELFERD_PUBLIC_BASE_URL",
                    format!("{url:?} is not a base URL like https://velferd.example.no"),
                ));
            }
            Some(url.to_string())
        }
    };
    Ok(crate::webhooks::WebhookSettings {
        retry_schedule: crate::webhooks::schedule::parse(schedule)
            .map_err(|reason| invalid("VELFERD_WEBHOOK_RETRY_SCHEDULE", reason))?,
        concurrency: parse_number(get, "VELFERD_WEBHOOK_CONCURRENCY", 8, 0..=256)?,
        rotation_grace: duration(
            "VELFERD_WEBHOOK_ROTATION_GRACE",
            "24h",
            Duration::from_secs(1)..=Duration::from_secs(30 * 86_400),
        )?,
        max_endpoints: parse_number(get, "VELFERD_WEBHOOK_MAX_ENDPOINTS", 10, 1..=1000)?,
        lease: duration("VELFERD_WEBHOOK_LEASE", "2m", Duration::from_secs(1)..=Duration::from_secs(3600))?,
        poll_interval: Duration::from_millis(parse_number(get, "VELFERD_WEBHOOK_POLL_MS", 1000, 10..=600_000)? as u64),
        public_base_url,
    })
}

/// An origin as browsers send it in `Origin`: `scheme://host[:port]`, without path or trailing
/// slash, compared in lower case. A wildcard is refused: it would switch the check off.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let origin = text.to_ascii_lowercase();
    let Some((scheme, authority)) = origin.split_once("://") else {
        return Err(format!("{text:?} is not an origin like https://portal.example.no"));
    };
    let host_ok = !authority.is_empty()
        && authority.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !matches!(scheme, "http" | "https") || !host_ok {
        return Err(format!(
            "{text:?} is not an origin like https://portal.example.no (scheme, host and port only; no path, no wildcard)"
        ));
    }
    Ok(origin)
}

/// Outbound calls: loopback only outside production; the trust roots file is read when the
/// client is built at start (`crate::outbound::Outbound::new`), which names the setting.
fn outbound_settings<'a>(
    get: impl Fn(&str) -> Option<&'a str> + Copy,
    profile: Profile,
) -> Result<crate::outbound::OutboundSettings, ConfigError> {
    let defaults = crate::outbound::OutboundSettings::default();
    let allow_loopback = match get("VELFERD_OUTBOUND_ALLOW_LOOPBACK") {
        None | Some("false") => false,
        Some("true") if profile == Profile::Production => {
            return Err(invalid(
                "VELFERD_OUTBOUND_ALLOW_LOOPBACK",
                "production calls public addresses only; loopback is for development and tests".into(),
            ));
        }
        Some("true") => true,
        Some(other) => {
            return Err(invalid("VELFERD_OUTBOUND_ALLOW_LOOPBACK", format!("{other:?} is not `true` or `false`")));
        }
    };
    Ok(crate::outbound::OutboundSettings {
        allow_loopback,
        extra_roots_file: get("VELFERD_OUTBOUND_TRUST_ROOTS_FILE").map(PathBuf::from),
        timeout: parse_duration(
            get,
            "VELFERD_OUTBOUND_TIMEOUT",
            defaults.timeout,
            Duration::from_millis(100)..=Duration::from_secs(300),
        )?,
        max_retry_after: parse_duration(
            get,
            "VELFERD_OUTBOUND_MAX_RETRY_AFTER",
            defaults.max_retry_after,
            Duration::from_secs(1)..=Duration::from_secs(86_400),
        )?,
    })
}

/// A duration written as `humantime` reads it (`500ms`, `10s`, `1h 30m`), within `range`.
fn parse_duration<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    setting: &'static str,
    default: Duration,
    range: std::ops::RangeInclusive<Duration>,
) -> Result<Duration, ConfigError> {
    let Some(text) = get(setting) else { return Ok(default) };
    match humantime::parse_duration(text) {
        Ok(d) if range.contains(&d) => Ok(d),
        _ => Err(invalid(
            setting,
            format!(
                "{text:?} is not a duration from {} to {} (e.g. `10s`, `1h`)",
                humantime::format_duration(*range.start()),
                humantime::format_duration(*range.end())
            ),
        )),
    }
}

fn read_key(setting: &'static str, path: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| invalid(setting, format!("cannot read {path}: {e}")))
}

fn parse_number<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    setting: &'static str,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, ConfigError> {
    let Some(text) = get(setting) else { return Ok(default) };
    match text.parse::<usize>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(invalid(setting, format!("{text:?} is not a whole number from {} to {}", range.start(), range.end()))),
    }
}

fn invalid(setting: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { setting, reason }
}

fn read_file(path: &Path) -> Result<RawSettings, ConfigError> {
    let file_error = |reason: String| ConfigError::File { path: path.to_path_buf(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| file_error(e.to_string()))?;
    let mut raw = RawSettings::new();
    for (key, value) in table {
        let env_name = format!("VELFERD_{}", key.to_ascii_uppercase());
        let (name, _) = SETTINGS
            .iter()
            .find(|(n, _)| *n == env_name)
            .ok_or_else(|| file_error(format!("unknown setting `{key}`")))?;
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            other => return Err(file_error(format!("`{key}` must be a string or a number, not {}", other.type_str()))),
        };
        raw.insert(name, text);
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn the_adapter_compile_cache_can_be_placed_turned_off_and_keyed_without_showing_the_key() {
        let with = |pairs: &[(&'static str, &'static str)]| {
            Settings::from_pairs([("VELFERD_JWT_SECRET", SECRET)].iter().chain(pairs).copied())
        };
        let key = "a cache key of forty bytes, kept secret";
        let s =
            with(&[("VELFERD_ADAPTER_CACHE_DIR", "/var/cache/velferd"), ("VELFERD_ADAPTER_CACHE_KEY", key)]).unwrap();
        let cache = s.devices.adapter_cache.unwrap();
        assert_eq!(cache.dir, PathBuf::from("/var/cache/velferd"));
        assert!(!format!("{cache:?}").contains(key), "{cache:?}");
        assert!(with(&[("VELFERD_ADAPTER_CACHE_DIR", "off")]).unwrap().devices.adapter_cache.is_none());
        let err = with(&[("VELFERD_ADAPTER_CACHE_KEY", "short")]).unwrap_err().to_string();
        assert!(err.contains("VELFERD_ADAPTER_CACHE_KEY") && err.contains("at least 32"), "{err}");
    }

    #[test]
    fn defaults_need_only_a_secret() {
        let s = Settings::from_pairs([("VELFERD_JWT_SECRET", SECRET)]).unwrap();
        assert_eq!(s.profile, Profile::Development);
        assert_eq!(s.bind.to_string(), DEFAULT_BIND);
        assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
        assert_eq!((s.log_format, s.metrics_bind), (LogFormat::Text, None));
    }

    #[test]
    fn retention_defaults_to_days_per_table_and_zero_keeps_forever() {
        let s = Settings::from_pairs([("VELFERD_JWT_SECRET", SECRET)]).unwrap();
        let r = &s.retention;
        assert_eq!(
            (r.events_days, r.dead_letters_days, r.webhook_deliveries_days, r.refusals_days, r.audit_days),
            (Some(800), Some(90), Some(30), Some(90), Some(3650))
        );
        assert_eq!((r.interval, r.batch), (Duration::from_secs(3600), 5000));
        let s = Settings::from_pairs([
            ("VELFERD_JWT_SECRET", SECRET),
            ("VELFERD_EVENT_RETENTION_DAYS", "0"),
            ("VELFERD_AUDIT_RETENTION_DAYS", "730"),
        ])
        .unwrap();
        assert_eq!((s.retention.events_days, s.retention.audit_days), (None, Some(730)));
        for (name, value) in [("VELFERD_AUDIT_RETENTION_DAYS", "-1"), ("VELFERD_RETENTION_BATCH", "0")] {
            let e = Settings::from_pairs([("VELFERD_JWT_SECRET", SECRET), (name, value)]).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
    }

    #[test]
    fn missing_secret_names_the_setting() {
        let e = Settings::from_pairs([]).unwrap_err().to_string();
        assert!(e.contains("VELFERD_JWT_SECRET"), "{e}");
    }

    #[test]
    fn bad_values_name_their_setting() {
        for (name, value) in [
            ("VELFERD_BIND", "localhost"),
            ("VELFERD_DATABASE_URL", "mysql://x"),
            ("VELFERD_ENV", "staging"),
            ("VELFERD_JWT_ALGORITHM", "none"),
            ("VELFERD_JWT_SECRET", "short"),
            ("VELFERD_GRAPHQL_MAX_DEPTH", "-1"),
            ("VELFERD_LOG_FORMAT", "xml"),
            ("VELFERD_SQLITE_SYNCHRONOUS", "off"),
            ("VELFERD_SQLITE_CACHE_MIB", "0"),
            ("VELFERD_SQLITE_MMAP_MIB", "4096"),
            ("VELFERD_METRICS_BIND", "9464"),
            ("VELFERD_METRICS_BIND", "127.0.0.1:8080"),
            ("VELFERD_JWT_LEEWAY_SECONDS", "3600"),
            ("VELFERD_WS_MAX_SUBSCRIPTIONS", "0"),
            ("VELFERD_WS_MAX_CONNECTIONS_PER_SUBJECT", "0"),
            ("VELFERD_WS_MAX_ANONYMOUS_CONNECTIONS_PER_ADDRESS", "0"),
            ("VELFERD_THROTTLE_CAPACITY", "0"),
            ("VELFERD_ANONYMOUS_THROTTLE_RESTORE_RATE", "0"),
            ("VELFERD_TRUSTED_PROXIES", "10.0.0.0/40"),
            ("VELFERD_TRUSTED_PROXIES", "proxy.example.no"),
            ("VELFERD_ALLOWED_ORIGINS", "*"),
            ("VELFERD_ALLOWED_ORIGINS", "https://portal.example.no/"),
            ("VELFERD_ALLOWED_ORIGINS", "portal.example.no"),
            ("VELFERD_LIVE_RETENTION_SECONDS", "0"),
            ("VELFERD_LIVE_POLL_MS", "1"),
            ("VELFERD_LIVE_SUBSCRIBER_BUFFER", "0"),
            ("VELFERD_WEBHOOK_RETRY_SCHEDULE", "5s,soon"),
            ("VELFERD_WEBHOOK_ROTATION_GRACE", "90d"),
            ("VELFERD_WEBHOOK_LEASE", "0s"),
            ("VELFERD_WEBHOOK_LEASE", "5s"),
            ("VELFERD_WEBHOOK_CONCURRENCY", "1000"),
            ("VELFERD_PUBLIC_BASE_URL", "velferd.example.no"),
            ("VELFERD_OUTBOUND_ALLOW_LOOPBACK", "yes"),
            ("VELFERD_OUTBOUND_TIMEOUT", "10"),
            ("VELFERD_OUTBOUND_TIMEOUT", "1h"),
            ("VELFERD_OUTBOUND_MAX_RETRY_AFTER", "0s"),
            ("VELFERD_OUTBOUND_MAX_RETRY_AFTER", "forever"),
        ] {
            let pairs = [("VELFERD_JWT_SECRET", SECRET), (name, value)];
            let e = Settings::from_pairs(pairs).unwrap_err().to_string();
            assert!(e.starts_with(name), "{name}={value}: {e}");
        }
    }

    #[test]
    fn allowed_origins_are_lower_case_origins() {
        let s = Settings::from_pairs([
            ("VELFERD_JWT_SECRET", SECRET),
            ("VELFERD_ALLOWED_ORIGINS", " https://Portal.Example.no, http://127.0.0.1:3000 ,"),
        ])
        .unwrap();
        assert_eq!(s.allowed_origins, ["https://portal.example.no", "http://127.0.0.1:3000"]);
        let defaults = Settings::from_pairs([("VELFERD_JWT_SECRET", SECRET)]).unwrap();
        assert!(defaults.allowed_origins.is_empty());
        assert_eq!(defaults.jwt.leeway, Duration::from_secs(30));
    }

    #[test]
    fn the_audit_key_defaults_to_the_development_key_in_development_only() {
        let s = Settings::from_pairs([("VELFERD_JWT_SECRET", SECRET)]).unwrap();
        assert!(s.audit_keys.current.is_development());
        let (profile, _, keys) = load_audit_settings(None).unwrap();
        assert_eq!(profile, Profile::Development);
        assert!(keys.current.is_development() || std::env::var("VELFERD_AUDIT_KEY").is_ok());
        let e = audit_keys(|_: &str| None, Profile::Production).unwrap_err().to_string();
        assert!(e.contains("VELFERD_AUDIT_KEY_FILE"), "{e}");
        let dev = std::str::from_utf8(crate::audit::key::DEVELOPMENT_KEY).unwrap();
        let e = audit_keys(|n: &str| (n == "VELFERD_AUDIT_KEY").then_some(dev), Profile::Production).unwrap_err();
        assert!(e.to_string().contains("published"), "{e}");
    }

    #[test]
    fn audit_keys_come_from_a_value_or_files_and_must_be_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let current = dir.path().join("current.key");
        let old = dir.path().join("old.key");
        std::fs::write(&current, format!("{}\n", "k".repeat(40))).unwrap();
        std::fs::write(&old, "o".repeat(32)).unwrap();
        let (current, old) = (current.display().to_string(), old.display().to_string());
        let s = Settings::from_pairs([
            ("VELFERD_JWT_SECRET", SECRET),
            ("VELFERD_AUDIT_KEY_FILE", current.as_str()),
            ("VELFERD_AUDIT_RETIRED_KEY_FILES", old.as_str()),
        ])
        .unwrap();
        let expected = crate::audit::key::AuditKey::new("k".repeat(40).as_bytes()).unwrap();
        assert_eq!(s.audit_keys.current.id(), expected.id(), "the file's trailing newline is not part of the key");
        assert_eq!(s.audit_keys.retired.len(), 1);
        for pairs in [
            vec![("VELFERD_AUDIT_KEY", "short")],
            vec![("VELFERD_AUDIT_KEY", "x".repeat(32).leak() as &str), ("VELFERD_AUDIT_KEY_FILE", current.as_str())],
            vec![("VELFERD_AUDIT_KEY_FILE", "/nonexistent/audit.key")],
        ] {
            let mut all = vec![("VELFERD_JWT_SECRET", SECRET)];
            all.extend(pairs);
            let e = Settings::from_pairs(all).unwrap_err().to_string();
            assert!(e.starts_with("VELFERD_AUDIT_KEY"), "{e}");
        }
    }

    #[test]
    fn outbound_settings_default_to_public_addresses_only_and_read_durations() {
        let s = Settings::from_pairs([("VELFERD_JWT_SECRET", SECRET)]).unwrap();
        assert_eq!(s.outbound, crate::outbound::OutboundSettings::default());
        assert!(!s.outbound.allow_loopback);
        assert_eq!(
            (s.outbound.timeout, s.outbound.max_retry_after),
            (Duration::from_secs(10), Duration::from_secs(3600))
        );
        let s = Settings::from_pairs([
            ("VELFERD_JWT_SECRET", SECRET),
            ("VELFERD_OUTBOUND_ALLOW_LOOPBACK", "true"),
            ("VELFERD_OUTBOUND_TRUST_ROOTS_FILE", "/etc/velferd/roots.pem"),
            ("VELFERD_OUTBOUND_TIMEOUT", "750ms"),
            ("VELFERD_OUTBOUND_MAX_RETRY_AFTER", "2h 30m"),
        ])
        .unwrap();
        assert!(s.outbound.allow_loopback);
        assert_eq!(s.outbound.extra_roots_file.as_deref(), Some(Path::new("/etc/velferd/roots.pem")));
        assert_eq!(s.outbound.timeout, Duration::from_millis(750));
        assert_eq!(s.outbound.max_retry_after, Duration::from_secs(9000));
        let e = outbound_settings(
            |n: &str| (n == "VELFERD_OUTBOUND_ALLOW_LOOPBACK").then_some("true"),
            Profile::Production,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("VELFERD_OUTBOUND_ALLOW_LOOPBACK") && e.contains("production"), "{e}");
    }

    #[test]
    fn a_failpoint_must_name_a_known_point_and_is_refused_in_production() {
        let with = |value: &str| Settings::from_pairs([("VELFERD_JWT_SECRET", SECRET), ("VELFERD_FAILPOINT", value)]);
        let set = with("after_commit:5").unwrap().failpoint.unwrap();
        assert_eq!(set.to_string(), "after_commit:5");
        assert_eq!(Settings::from_pairs([("VELFERD_JWT_SECRET", SECRET)]).unwrap().failpoint, None);
        let e = with("after_comit:5").unwrap_err().to_string();
        assert!(e.starts_with("VELFERD_FAILPOINT: unknown failpoint \"after_comit\""), "{e}");
        let get = |n: &str| (n == "VELFERD_FAILPOINT").then_some("after_decode:1");
        let e = failpoint_setting(get, Profile::Production).unwrap_err().to_string();
        assert!(e.starts_with("VELFERD_FAILPOINT") && e.contains("not in production"), "{e}");
    }

    #[test]
    fn production_refuses_hs256() {
        let e = Settings::from_pairs([("VELFERD_ENV", "production"), ("VELFERD_JWT_SECRET", SECRET)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("HS256 is for development only"), "{e}");
    }

    #[test]
    fn toml_file_uses_lower_case_names_and_refuses_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.toml");
        std::fs::write(&good, format!("jwt_secret = \"{SECRET}\"\nbind = \"127.0.0.1:0\"\n")).unwrap();
        let raw = read_file(&good).unwrap();
        assert_eq!(raw["VELFERD_BIND"], "127.0.0.1:0");
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "jwt_secrett = \"x\"\n").unwrap();
        let e = read_file(&bad).unwrap_err().to_string();
        assert!(e.contains("unknown setting `jwt_secrett`"), "{e}");
    }
}
