//! The test harness: a real server on a random port with a fresh database (a SQLite file in a
//! temporary directory, or a PostgreSQL database of its own), talked to over real HTTP.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use velferd::auth::{Role, TokenSigner};
use velferd::config::Settings;
use velferd::http::RunningServer;
use velferd::organizations::OrgNumber;

pub const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long";

/// The audit key of every test server. The server installs its audit key for the whole process
/// (`velferd::audit::key::install`), and the tests run many servers in one process: one key for
/// all of them keeps each chain's anchors verifiable (tests/e2e/audit.rs).
pub const AUDIT_KEY: &str = "test-audit-key-that-is-at-least-32-bytes-long";

/// Organisation numbers valid under modulus 11, for tokens in tests.
pub const MUNICIPALITY_ORG: &str = "974760673";
pub const SUPPLIER_ORG: &str = "923609016";

/// The platform operator (`VELFERD_OPERATOR_ORG_NUMBER` in every test server): `admin` counts
/// for this organisation alone.
pub const OPERATOR_ORG: &str = "991000003";

/// Larvik kommune in the demo data: lead of the medication-support procurement.
pub const LARVIK: &str = "918082956";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body that starts its own server once per backend, given as `$backend`: SQLite,
/// and PostgreSQL (where the body finds it not configured and returns).
macro_rules! on_each_backend {
    ($(#[doc = $doc:literal])* async fn $name:ident($backend:ident) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($backend: $crate::support::Backend) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run($crate::support::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run($crate::support::Backend::Postgres).await;
            }
        }
    };
}
pub(crate) use on_each_backend;

/// Runs a test body on SQLite, and on PostgreSQL as `postgres` when
/// `VELFERD_TEST_POSTGRES_URL` is set.
macro_rules! on_both_backends {
    ($(#[doc = $doc:literal])* async fn $name:ident($app:ident) $body:block) => {
        $crate::support::on_each_backend! {
            $(#[doc = $doc])*
            async fn $name(backend) {
                let options = $crate::support::Options::default();
                let Some($app) = $crate::support::TestApp::spawn_with(backend, options).await else { return };
                $body
            }
        }
    };
}
pub(crate) use on_both_backends;

/// The test servers' compile cache: shared by every test of a run (the reference adapters are
/// compiled once), inside the target directory rather than the user's home.
const ADAPTER_CACHE_DIR: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/adapter-cache");

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub settings: Settings,
    server: Option<RunningServer>,
    _sqlite_dir: Option<tempfile::TempDir>,
    postgres: Option<PostgresDatabase>,
}

/// Extra settings for one test's server.
#[derive(Default, Clone)]
pub struct Options {
    pub pairs: Vec<(&'static str, String)>,
    pub demo: bool,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(backend, Options::default()).await.expect("backend available")
    }

    /// A server on PostgreSQL, or `None` (the test is skipped) when no PostgreSQL is
    /// configured outside CI. In CI a missing PostgreSQL is a failure, never a silent pass.
    pub async fn spawn_postgres() -> Option<TestApp> {
        TestApp::spawn_with(Backend::Postgres, Options::default()).await
    }

    pub async fn spawn_with(backend: Backend, options: Options) -> Option<TestApp> {
        let (url, sqlite_dir, postgres) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("velferd.db").display());
                (url, Some(dir), None)
            }
            Backend::Postgres => {
                let pg = PostgresDatabase::create().await?;
                (pg.url.clone(), None, Some(pg))
            }
        };
        let mut pairs: Vec<(&str, String)> = vec![
            ("VELFERD_DATABASE_URL", url),
            ("VELFERD_BIND", "127.0.0.1:0".into()),
            ("VELFERD_JWT_SECRET", SECRET.into()),
            ("VELFERD_AUDIT_KEY", AUDIT_KEY.into()),
            ("VELFERD_OPERATOR_ORG_NUMBER", OPERATOR_ORG.into()),
            ("VELFERD_DB_MAX_CONNECTIONS", "4".into()),
            ("VELFERD_LOG", "warn".into()),
            ("VELFERD_ADAPTER_CACHE_DIR", ADAPTER_CACHE_DIR.into()),
        ];
        for (name, value) in options.pairs {
            pairs.retain(|(n, _)| *n != name);
            pairs.push((name, value));
        }
        let settings =
            Settings::from_pairs(pairs.iter().map(|(n, v)| (*n, v.as_str()))).expect("test settings are valid");
        let server = velferd::start(&settings, options.demo, 1).await.expect("server starts");
        Some(TestApp {
            addr: server.addr,
            client: crate::support::http_client().timeout(Duration::from_secs(30)).build().unwrap(),
            settings,
            server: Some(server),
            _sqlite_dir: sqlite_dir,
            postgres,
        })
    }

    /// A new server on the same database, with some settings changed.
    pub async fn respawn_with(mut self, changes: &[(&'static str, &str)]) -> TestApp {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        let mut pairs: Vec<(&str, String)> = vec![
            ("VELFERD_DATABASE_URL", self.settings.database_url.clone()),
            ("VELFERD_BIND", "127.0.0.1:0".into()),
            ("VELFERD_JWT_SECRET", SECRET.into()),
            ("VELFERD_AUDIT_KEY", AUDIT_KEY.into()),
            ("VELFERD_OPERATOR_ORG_NUMBER", OPERATOR_ORG.into()),
            ("VELFERD_LOG", "warn".into()),
            ("VELFERD_ADAPTER_CACHE_DIR", ADAPTER_CACHE_DIR.into()),
        ];
        pairs.retain(|(n, _)| !changes.iter().any(|(c, _)| c == n));
        pairs.extend(changes.iter().map(|(n, v)| (*n, v.to_string())));
        self.settings = Settings::from_pairs(pairs.iter().map(|(n, v)| (*n, v.as_str()))).expect("valid settings");
        let server = velferd::start(&self.settings, false, 1).await.expect("server restarts");
        self.addr = server.addr;
        self.server = Some(server);
        self
    }

    /// The server's database (tests count statements and check that nothing was written).
    pub fn db(&self) -> &velferd::db::Database {
        &self.server.as_ref().expect("server running").db
    }

    /// The server's live updates, to subscribe below GraphQL.
    pub fn live(&self) -> &velferd::live::Live {
        &self.server.as_ref().expect("server running").live
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A valid token for an organisation and roles, signed with the server's key.
    pub fn token(&self, org: &str, roles: &[Role]) -> String {
        self.token_as("test-user", org, roles)
    }

    /// A valid token of `subject`, for an organisation and roles.
    pub fn token_as(&self, subject: &str, org: &str, roles: &[Role]) -> String {
        let signer = TokenSigner::new(&self.settings.jwt).unwrap();
        let org: OrgNumber = org.parse().unwrap();
        signer.mint(subject, org, roles.iter().copied().collect::<BTreeSet<_>>(), Duration::from_secs(600))
    }

    /// A token naming its organisation by Velferd id (`oid`), for one without a number.
    pub fn token_for_id(&self, organization_id: &str, roles: &[Role]) -> String {
        let signer = TokenSigner::new(&self.settings.jwt).unwrap();
        let row =
            velferd::ids::row_id(organization_id, velferd::ids::NodeType::Organization).expect("an organisation id");
        signer.mint(
            "test-user",
            velferd::auth::OrgRef::Id(row),
            roles.iter().copied().collect::<BTreeSet<_>>(),
            Duration::from_secs(600),
        )
    }

    /// An `admin` of the platform operator.
    pub fn admin_token(&self) -> String {
        self.token(OPERATOR_ORG, &[Role::Admin])
    }

    /// POSTs a GraphQL operation and returns the HTTP status and the JSON body.
    pub async fn graphql_raw(&self, token: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
        let response = self.post_graphql(token, query, variables).await;
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.expect("JSON body");
        (status, body)
    }

    /// POSTs a GraphQL operation, with `token` as bearer when given.
    async fn post_graphql(&self, token: Option<&str>, query: &str, variables: Value) -> reqwest::Response {
        let mut request =
            self.client.post(self.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request sent")
    }

    /// POSTs a GraphQL operation that must succeed without errors; returns `data`.
    pub async fn graphql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let (status, body) = self.graphql_raw(token, query, variables).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Registers an organisation as admin and returns its global id.
    pub async fn create_organization(&self, input: Value) -> String {
        let data = self
            .graphql(
                Some(&self.admin_token()),
                "mutation($input: OrganizationCreateInput!) { organizationCreate(input: $input) { organization { id } userErrors { code message } } }",
                json!({ "input": input }),
            )
            .await;
        let payload = &data["organizationCreate"];
        assert_eq!(payload["userErrors"], json!([]), "{payload}");
        payload["organization"]["id"].as_str().unwrap().to_string()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop accepting before the database goes away.
        if let Some(server) = self.server.take() {
            drop(server);
        }
        if let Some(pg) = self.postgres.take() {
            pg.drop_database();
        }
    }
}

/// A PostgreSQL database made for one test and dropped after it.
pub struct PostgresDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl PostgresDatabase {
    pub async fn create() -> Option<PostgresDatabase> {
        let Ok(admin_url) = std::env::var("VELFERD_TEST_POSTGRES_URL") else {
            assert!(std::env::var("CI").is_err(), "CI must run the PostgreSQL pass: set VELFERD_TEST_POSTGRES_URL");
            eprintln!("skipped: VELFERD_TEST_POSTGRES_URL is not set");
            return None;
        };
        let name = format!(
            "velferd_test_{}_{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() % 1_000_000_000_000
        );
        let admin = sea_orm::Database::connect(&admin_url).await.expect("connect to VELFERD_TEST_POSTGRES_URL");
        use sea_orm::ConnectionTrait;
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        admin.close().await.ok();
        let url = match admin_url.rfind('/') {
            Some(slash) if slash > "postgres://".len() => format!("{}/{name}", &admin_url[..slash]),
            _ => format!("{admin_url}/{name}"),
        };
        Some(PostgresDatabase { url, admin_url, name })
    }

    pub fn drop_database(self) {
        let PostgresDatabase { admin_url, name, .. } = self;
        // Drop runs outside any async context we may block; use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                use sea_orm::ConnectionTrait;
                if let Ok(admin) = sea_orm::Database::connect(&admin_url).await {
                    let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                    admin.close().await.ok();
                }
            });
        })
        .join();
    }
}

/// The `extensions.code` of the first error in a response body.
/// A GraphQL subscription socket (graphql-transport-ws).
pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/graphql/ws` with the graphql-transport-ws protocol, signs in with `token` (if any) in
/// `connection_init` as a browser would, and waits for the acknowledgement.
pub async fn graphql_socket(app: &TestApp, token: Option<&str>) -> Socket {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let mut request = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "graphql-transport-ws");
    let payload = token.map_or(json!({}), |token| json!({ "authorization": format!("Bearer {token}") }));
    let init = json!({ "type": "connection_init", "payload": payload });
    ws.send(Message::text(init.to_string())).await.unwrap();
    assert_eq!(next_text(&mut ws).await["type"], "connection_ack");
    ws
}

/// Starts subscription `id` with `query` and `variables` on `ws`, and gives the server a moment
/// to register it (it does so asynchronously) before the caller writes what it should hear.
pub async fn subscribe(ws: &mut Socket, id: &str, query: &str, variables: Value) {
    use futures_util::SinkExt;
    let subscribe = json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } });
    ws.send(tokio_tungstenite::tungstenite::Message::text(subscribe.to_string())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// The next text frame on `ws`, as JSON, within 10 s.
pub async fn next_text(ws: &mut Socket) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    // One deadline for the text message, not one per frame: the server's pings every 5 s would
    // otherwise keep a missing message waiting for ever.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let message = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a text message within 10 s")
            .expect("stream open")
            .expect("valid frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => continue,
        }
    }
}

/// The string at `pointer` (a JSON pointer; `""` for the item itself) in each item of the
/// array `list`, collected; panics, showing what it found, on anything else.
pub fn strings<C: FromIterator<String>>(list: &Value, pointer: &str) -> C {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|item| {
            let text = item.pointer(pointer).and_then(Value::as_str);
            text.unwrap_or_else(|| panic!("no string at {pointer:?} in {item}")).to_string()
        })
        .collect()
}

pub fn first_error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"].as_str().unwrap_or("<none>")
}

// Telemetry: the metrics listener of a server started with `VELFERD_METRICS_BIND`.
impl TestApp {
    /// The `/metrics` URL of the server's metrics listener.
    pub fn metrics_url(&self) -> String {
        let server = self.server.as_ref().expect("server running");
        let addr = server.metrics_addr.expect("started with VELFERD_METRICS_BIND");
        format!("http://{addr}/metrics")
    }
}

// Fingerprints: what a refusal must leave unchanged is the whole database, every row of every
// table, not only the row counts (a refused request that updates a row keeps the count).

/// Tables a refusal may legitimately write, left out of [`DbFingerprint`]: the log of refused
/// and throttled attempts (`refused_attempt`, issue 12) counts exactly the requests the tests
/// refuse, and a background task flushes it at its own time. The outbox consumers' positions
/// (`outbox_consumer`) move when the webhook fan-out passes rows written before the refusal.
const FINGERPRINT_IGNORES: &[&str] = &["refused_attempt", "outbox_consumer"];

/// One table's state: its row count and a SHA-256 of its rows, each rendered as text by the
/// database and sorted (so neither the scan order nor the rows' physical order matters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFingerprint {
    pub rows: usize,
    pub checksum: String,
    /// Each row's SHA-256 with the row's first characters, to name what changed.
    row_digests: Vec<(String, String)>,
}

/// Row count and checksum of every table of the database (but [`FINGERPRINT_IGNORES`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbFingerprint {
    pub tables: std::collections::BTreeMap<String, TableFingerprint>,
}

impl TestApp {
    /// The database's fingerprint: take one before a refused request and compare it with one
    /// taken after ([`DbFingerprint::assert_unchanged`]).
    pub async fn fingerprint(&self) -> DbFingerprint {
        use sea_orm::{ConnectionTrait, DbBackend, Statement};
        use sha2::{Digest, Sha256};
        // The primary, where writes go: a replica could lag behind them.
        let db = self.db().write();
        let backend = db.get_database_backend();
        let query = async |sql: String| db.query_all_raw(Statement::from_string(backend, sql)).await.unwrap();
        let list = match backend {
            DbBackend::Sqlite => {
                "SELECT name AS t FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            }
            _ => {
                "SELECT CAST(table_name AS TEXT) AS t FROM information_schema.tables \
                  WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            }
        };
        let mut tables = std::collections::BTreeMap::new();
        for row in query(list.to_string()).await {
            let table: String = row.try_get("", "t").unwrap();
            if FINGERPRINT_IGNORES.contains(&table.as_str()) {
                continue;
            }
            // Each row as one text: PostgreSQL renders a whole row itself; SQLite quotes each
            // column (blobs as X'…', text with its quotes, NULL as NULL) in the table's order.
            let render = match backend {
                DbBackend::Sqlite => {
                    let columns =
                        query(format!("SELECT name AS c FROM pragma_table_info('{table}') ORDER BY cid")).await;
                    let quoted: Vec<String> = columns
                        .iter()
                        .map(|c| format!("quote(\"{}\")", c.try_get::<String>("", "c").unwrap()))
                        .collect();
                    assert!(!quoted.is_empty(), "no columns in {table}");
                    format!("SELECT {} AS r FROM \"{table}\"", quoted.join(" || ',' || "))
                }
                _ => format!("SELECT CAST(x AS TEXT) AS r FROM \"{table}\" AS x"),
            };
            let mut rows: Vec<String> =
                query(render).await.iter().map(|r| r.try_get::<String>("", "r").unwrap()).collect();
            rows.sort();
            let mut whole = Sha256::new();
            let mut row_digests = Vec::with_capacity(rows.len());
            for row in &rows {
                whole.update((row.len() as u64).to_le_bytes());
                whole.update(row.as_bytes());
                let preview: String = row.chars().take(160).collect();
                row_digests.push((format!("{:x}", Sha256::digest(row.as_bytes())), preview));
            }
            let checksum = format!("{:x}", whole.finalize());
            tables.insert(table, TableFingerprint { rows: rows.len(), checksum, row_digests });
        }
        assert!(tables.len() > 10, "tables found: {:?}", tables.keys().collect::<Vec<_>>());
        DbFingerprint { tables }
    }
}

impl DbFingerprint {
    /// The row count of `table`.
    pub fn rows(&self, table: &str) -> usize {
        self.tables.get(table).unwrap_or_else(|| panic!("no table {table}")).rows
    }

    /// The tables whose rows differ between `self` (before) and `after`, each with what changed:
    /// the counts, and the rows gone and come (their first characters).
    pub fn changes(&self, after: &DbFingerprint) -> Vec<String> {
        let names: BTreeSet<&String> = self.tables.keys().chain(after.tables.keys()).collect();
        let mut changes = Vec::new();
        for name in names {
            let (before, now) = (self.tables.get(name), after.tables.get(name));
            if before == now {
                continue;
            }
            let (Some(before), Some(now)) = (before, now) else {
                changes.push(format!("{name}: table {}", if before.is_none() { "created" } else { "dropped" }));
                continue;
            };
            let old: BTreeSet<&(String, String)> = before.row_digests.iter().collect();
            let new: BTreeSet<&(String, String)> = now.row_digests.iter().collect();
            let show = |rows: Vec<&&(String, String)>| {
                rows.iter().take(3).map(|(_, preview)| preview.as_str()).collect::<Vec<_>>().join(" | ")
            };
            changes.push(format!(
                "{name}: {} rows -> {} rows, checksum {} -> {}; gone: [{}]; new: [{}]",
                before.rows,
                now.rows,
                &before.checksum[..12],
                &now.checksum[..12],
                show(old.difference(&new).collect()),
                show(new.difference(&old).collect()),
            ));
        }
        changes
    }

    /// Asserts that no table's row count or checksum changed since `self` was taken.
    #[track_caller]
    pub fn assert_unchanged(&self, after: &DbFingerprint) {
        let changes = self.changes(after);
        assert!(changes.is_empty(), "the database changed:\n  {}", changes.join("\n  "));
    }
}

impl TestApp {
    /// POSTs a GraphQL operation and returns the HTTP status and the body exactly as sent, for
    /// tests that two answers are byte-identical (a hidden row answers like a missing one).
    pub async fn graphql_bytes(&self, token: Option<&str>, query: &str, variables: Value) -> (u16, String) {
        let response = self.post_graphql(token, query, variables).await;
        let status = response.status().as_u16();
        (status, response.text().await.expect("a UTF-8 body"))
    }
}

/// Asserts that the answer about a row the caller may not see (`hidden`, asked with id
/// `hidden_id`) is byte for byte the answer about a missing one (`missing`, `missing_id`),
/// message text included: only an echo of the id itself may differ. The one field that
/// differs between any two requests, the caller's throttle balance
/// (`extensions.cost.throttleStatus.currentlyAvailable`), is left out.
#[track_caller]
pub fn assert_byte_identical(hidden: &(u16, String), missing: &(u16, String), hidden_id: &str, missing_id: &str) {
    let normalise = |body: &str| {
        let mut out = String::with_capacity(body.len());
        let mut rest = body;
        const KEY: &str = "\"currentlyAvailable\":";
        while let Some(at) = rest.find(KEY) {
            out.push_str(&rest[..at + KEY.len()]);
            rest = rest[at + KEY.len()..].trim_start_matches(|c: char| c.is_ascii_digit() || "-+.eE".contains(c));
            out.push('_');
        }
        out + rest
    };
    let hidden_body = normalise(&hidden.1.replace(hidden_id, missing_id));
    let missing_body = normalise(&missing.1);
    assert!(
        hidden.0 == missing.0 && hidden_body == missing_body,
        "a hidden row answers unlike a missing one:\n  hidden:  {} {}\n  missing: {} {}",
        hidden.0,
        hidden.1,
        missing.0,
        missing.1
    );
}

impl TestApp {
    /// Adapter calls this server has made, of any result, from its `/metrics` (start it with
    /// `VELFERD_METRICS_BIND`): the work counter of refusals that must come before any adapter
    /// runs.
    pub async fn adapter_calls(&self) -> f64 {
        let text = self.client.get(self.metrics_url()).send().await.unwrap().text().await.unwrap();
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_string()))).unwrap();
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == "velferd_adapter_call_duration_seconds_count")
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("a histogram count is a number: {other:?}"),
            })
            .sum()
    }
}

/// A reqwest client builder for the tests. reqwest is built with rustls but no crypto provider
/// of its own (the server's outbound calls use ring, never aws-lc), so ring is made the
/// process's default first; without it building a client panics.
pub fn http_client() -> reqwest::ClientBuilder {
    velferd::outbound::install_crypto_provider();
    reqwest::Client::builder()
}
