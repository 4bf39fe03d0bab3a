//! GraphQL reads against `velferd serve` run as a process of its own: the procurement overview
//! (20 procurements with lead, participants and their organisations, user stories, awards and
//! suppliers) and the anonymous trivial query `{ __typename }`, each beside a reference run with
//! the same client: PostGraphile 4 on the same database for the overview (when given), and for
//! the trivial query the same actix-web stack answering the same JSON without GraphQL (the
//! ceiling) and a stock async-graphql actix app with a one-field schema.
//!
//!     cargo bench -p velferd --bench queries
//!     VELFERD_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     BENCH_POSTGRAPHILE=/tmp/pg4/node_modules/.bin/postgraphile cargo bench -p velferd --bench queries
//!
//! `BENCH_VELFERD_BIN` runs another build of the server instead of this one's (a before/after).
//! The data: the demo data set (2 procurements, its organisations) and `BENCH_PROCUREMENTS`
//! (default 200) more, each with a lead, 6 participants, 4 user stories, 2 tenders and an award
//! on every story. `BENCH_CONNECTIONS` (default 8) keep-alive connections send requests for
//! `BENCH_SECONDS` (default 10) per run after a second of warm-up. Every request differs from
//! the one before: its alias and its page (a variable) change; every reply is parsed and checked
//! (status 200, no `errors`, the expected number of items).
//!
//! Figures: requests per second, latency percentiles, and the CPU time each server process
//! (and, on PostgreSQL, the database's backends serving it) spent per request, read from
//! `/proc/<pid>/stat` before and after the run — the robust figure on a shared machine.
//! The client is this process; each server is a child process (the references are this
//! executable started again in the role `BENCH_QUERIES_ROLE`). The server's throttle is raised
//! (`VELFERD_THROTTLE_RESTORE_RATE`, `..._CAPACITY`, anonymous too): it still charges every
//! request its cost, but the default buckets would refuse a benchmark's rate.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[allow(dead_code, reason = "shared with the e2e tests, which use other parts")]
#[path = "../../tests/e2e/process.rs"]
pub(crate) mod process;
pub(crate) use process::{Process, velferd_command};

const SECRET: &str = "bench-secret-that-is-at-least-32-bytes-long";
const OPERATOR: &str = "991000003";
pub(crate) const ROLE: &str = "BENCH_QUERIES_ROLE";
const PAGE: usize = 20;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// The reference servers, started as child processes of this executable.

/// `{ __typename }` answered by actix-web alone: the body read, the same JSON written with the
/// same content type.
async fn ceiling(body: actix_web::web::Bytes) -> actix_web::HttpResponse {
    // Reading the request as JSON is part of any GraphQL server's work.
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let ok = request.get("query").is_some();
    actix_web::HttpResponse::Ok().content_type("application/graphql-response+json").body(if ok {
        r#"{"data":{"__typename":"Query"}}"#
    } else {
        r#"{"errors":[]}"#
    })
}

struct StockQuery;

#[async_graphql::Object]
impl StockQuery {
    async fn hello(&self) -> &'static str {
        "world"
    }
}

type StockSchema = async_graphql::Schema<StockQuery, async_graphql::EmptyMutation, async_graphql::EmptySubscription>;

async fn stock(
    schema: actix_web::web::Data<StockSchema>,
    request: async_graphql_actix_web::GraphQLRequest,
) -> async_graphql_actix_web::GraphQLResponse {
    schema.execute(request.into_inner()).await.into()
}

/// Runs the reference server named by `role` until killed; prints where it listens.
pub(crate) fn serve_reference(role: &str) {
    use actix_web::{App, HttpServer, web};
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let listening = |addr: std::net::SocketAddr| {
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "listening on http://{addr}");
        let _ = out.flush();
    };
    runtime.block_on(async {
        // Both reference servers: the same actix stack, as many workers, on a free port.
        macro_rules! serve {
            ($factory:expr) => {{
                let server = HttpServer::new($factory).workers(workers).disable_signals().bind("127.0.0.1:0").unwrap();
                listening(server.addrs()[0]);
                server.run().await.unwrap();
            }};
        }
        match role {
            "ceiling" => serve!(|| App::new().route("/graphql", web::post().to(ceiling))),
            "stock" => {
                let schema = async_graphql::Schema::new(
                    StockQuery,
                    async_graphql::EmptyMutation,
                    async_graphql::EmptySubscription,
                );
                serve!(move || {
                    App::new().app_data(web::Data::new(schema.clone())).route("/graphql", web::post().to(stock))
                })
            }
            other => panic!("unknown {ROLE} {other:?}"),
        }
    });
}

fn reference(role: &str) -> Process {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.env(ROLE, role);
    Process::start(command, "listening on ")
}

/// The binary to measure: this build's, or another (`BENCH_VELFERD_BIN`, say main's) for a
/// before/after.
pub(crate) fn velferd_binary() -> String {
    std::env::var("BENCH_VELFERD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_velferd").to_string())
}

fn velferd(database_url: &str) -> Process {
    let mut command = velferd_command(&velferd_binary(), database_url);
    command
        .env("VELFERD_JWT_SECRET", SECRET)
        .env("VELFERD_OPERATOR_ORG_NUMBER", OPERATOR)
        .env("VELFERD_THROTTLE_CAPACITY", "100000000")
        .env("VELFERD_THROTTLE_RESTORE_RATE", "100000000")
        .env("VELFERD_ANONYMOUS_THROTTLE_CAPACITY", "100000000")
        .env("VELFERD_ANONYMOUS_THROTTLE_RESTORE_RATE", "100000000")
        .arg("serve");
    Process::start(command, "listening on ")
}

// ---------------------------------------------------------------------------------------------
// CPU time of processes, from /proc.

fn ticks_per_second() -> f64 {
    // Linux reports utime and stime in clock ticks: USER_HZ, 100 on every common platform.
    100.0
}

/// utime + stime of process `pid`, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis.
    let Some(rest) = stat.rfind(')').map(|at| &stat[at + 2..]) else { return 0.0 };
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11..13).map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    ticks as f64 / ticks_per_second()
}

/// The PostgreSQL backends serving database `name` (by their process ids in `pg_stat_activity`).
pub(crate) async fn backends(admin: &sea_orm::DatabaseConnection, name: &str) -> Vec<u32> {
    use sea_orm::{ConnectionTrait, Statement};
    let rows = admin
        .query_all_raw(Statement::from_string(
            admin.get_database_backend(),
            format!("SELECT pid FROM pg_stat_activity WHERE datname = '{name}'"),
        ))
        .await
        .unwrap();
    rows.iter().filter_map(|row| row.try_get::<i32>("", "pid").ok()).map(|pid| pid as u32).collect()
}

/// What a run watches: the server process and, on PostgreSQL, its database's backends.
struct Watch<'a> {
    pid: u32,
    database: Option<(&'a sea_orm::DatabaseConnection, &'a str)>,
}

impl Watch<'_> {
    async fn sample(&self) -> (f64, HashMap<u32, f64>) {
        let mut db = HashMap::new();
        if let Some((admin, name)) = self.database {
            for pid in backends(admin, name).await {
                db.insert(pid, cpu_seconds(pid));
            }
        }
        (cpu_seconds(self.pid), db)
    }
}

// ---------------------------------------------------------------------------------------------
// The client: plain HTTP/1.1 over keep-alive connections, cheap beside any server.

/// One keep-alive connection that posts JSON to `/graphql`.
struct Connection {
    stream: TcpStream,
    head: String,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(addr: &str, token: Option<&str>) -> Connection {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut head = format!("POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n");
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        Connection { stream, head, buffer: Vec::with_capacity(64 * 1024) }
    }

    /// Posts `body`; answers the status and the response body.
    async fn post(&mut self, body: &str) -> (u16, Vec<u8>) {
        let request = format!("{}Content-Length: {}\r\n\r\n{body}", self.head, body.len());
        self.stream.write_all(request.as_bytes()).await.unwrap();
        self.buffer.clear();
        let head_end = loop {
            if let Some(at) = find(&self.buffer, b"\r\n\r\n") {
                break at + 4;
            }
            self.read_more().await;
        };
        let head = std::str::from_utf8(&self.buffer[..head_end]).unwrap().to_ascii_lowercase();
        let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map(|v| v.trim().parse::<usize>().unwrap());
        let body = match length {
            Some(length) => {
                while self.buffer.len() < head_end + length {
                    self.read_more().await;
                }
                self.buffer[head_end..head_end + length].to_vec()
            }
            None => {
                assert!(head.contains("transfer-encoding: chunked"), "neither a length nor chunks: {head}");
                self.chunked(head_end).await
            }
        };
        (status, body)
    }

    async fn chunked(&mut self, mut at: usize) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(end) = find(&self.buffer[at..], b"\r\n") {
                    break at + end;
                }
                self.read_more().await;
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&self.buffer[at..line_end]).unwrap().trim(), 16).unwrap();
            let start = line_end + 2;
            while self.buffer.len() < start + size + 2 {
                self.read_more().await;
            }
            body.extend_from_slice(&self.buffer[start..start + size]);
            at = start + size + 2;
            if size == 0 {
                return body;
            }
        }
    }

    async fn read_more(&mut self) {
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the server closed the connection");
        self.buffer.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A reply as the client checks it: no errors, and data.
#[derive(Deserialize)]
struct Reply {
    data: Option<HashMap<String, Field>>,
    errors: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Field {
    Connection { nodes: Vec<IgnoredAny> },
    Other(IgnoredAny),
}

/// What a workload sends as its `n`-th request, and what the reply must hold.
trait Workload: Send + Sync {
    fn body(&self, n: usize) -> String;
    /// Checks a reply to request `n`; panics, naming what is wrong.
    fn check(&self, n: usize, reply: &[u8]);
}

fn parse(reply: &[u8]) -> HashMap<String, Field> {
    let parsed: Reply = serde_json::from_slice(reply)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&reply[..reply.len().min(500)])));
    assert!(parsed.errors.is_none(), "errors: {}", String::from_utf8_lossy(&reply[..reply.len().min(2000)]));
    parsed.data.expect("data")
}

/// `{ __typename }`, its alias varying (the reference servers answer the plain document).
struct Trivial {
    aliased: bool,
}

impl Workload for Trivial {
    fn body(&self, n: usize) -> String {
        if self.aliased && n % 2 == 1 {
            format!(r#"{{"query":"{{ t{}: __typename }}"}}"#, n % 1000)
        } else {
            r#"{"query":"{ __typename }"}"#.to_string()
        }
    }

    fn check(&self, n: usize, reply: &[u8]) {
        let data = parse(reply);
        let key = if self.aliased && n % 2 == 1 { format!("t{}", n % 1000) } else { "__typename".to_string() };
        assert!(data.contains_key(&key), "no {key}: {}", String::from_utf8_lossy(reply));
    }
}

/// A page of the procurement overview: aliases and the page vary from request to request.
struct Overview {
    document: &'static str,
    /// The variables of page `p` (of `pages`).
    variables: fn(usize) -> Value,
    pages: usize,
}

impl Workload for Overview {
    fn body(&self, n: usize) -> String {
        let alias = format!("p{}", n % 997);
        let query = self.document.replace("ALIAS", &alias);
        json!({ "query": query, "variables": (self.variables)(n % self.pages) }).to_string()
    }

    fn check(&self, n: usize, reply: &[u8]) {
        let data = parse(reply);
        let alias = format!("p{}", n % 997);
        match data.get(&alias) {
            Some(Field::Connection { nodes }) => assert_eq!(nodes.len(), PAGE, "page size"),
            _ => panic!("no {alias} connection: {}", String::from_utf8_lossy(&reply[..reply.len().min(2000)])),
        }
    }
}

const VELFERD_OVERVIEW: &str = "query Overview($first: Int!, $after: String, $stories: Int!) {
  ALIAS: procurements(first: $first, after: $after) {
    totalCount
    nodes {
      id title category phase createdAt
      lead { id name orgNumber county }
      participants(first: 10) { totalCount nodes { role joinedOn organization { id name orgNumber county } } }
      userStories(first: $stories) { nodes { id code title award { awardedOn supplier { id name orgNumber } } } }
    }
  }
}";

/// The same shape in PostGraphile 4's default schema (relations from the foreign keys; the
/// award is a list there, as the migration makes the one-award-per-story rule a unique index).
const POSTGRAPHILE_OVERVIEW: &str = "query Overview($first: Int!, $offset: Int!, $stories: Int!) {
  ALIAS: allProcurements(first: $first, offset: $offset, orderBy: PRIMARY_KEY_ASC) {
    totalCount
    nodes {
      id title category phase createdAt
      lead: organizationByLeadId { id name orgNumber county }
      participants: participantsByProcurementId(first: 10, orderBy: PRIMARY_KEY_ASC) { totalCount nodes { role joinedOn organization: organizationByOrganizationId { id name orgNumber county } } }
      userStories: userStoriesByProcurementId(first: $stories, orderBy: PRIMARY_KEY_ASC) { nodes { id code title award: awardsByUserStoryId { nodes { awardedOn tenderResponse: tenderResponseByTenderResponseId { tender: tenderByTenderId { supplier: organizationBySupplierId { id name orgNumber } } } } } } }
    }
  }
}";

#[derive(Clone)]
pub(crate) struct Figures {
    pub(crate) requests: usize,
    pub(crate) rate: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) server_cpu: Duration,
    pub(crate) database_cpu: Option<Duration>,
    pub(crate) reply_bytes: usize,
}

/// Sends `workload` from `connections` connections to `addr` for `seconds` (after a second of
/// warm-up), checking every reply.
async fn run(
    addr: &str,
    token: Option<&str>,
    workload: Arc<dyn Workload>,
    connections: usize,
    seconds: f64,
    watch: &Watch<'_>,
) -> Figures {
    let warm_until = Instant::now() + Duration::from_secs(1);
    let stop = warm_until + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let mut connection = Connection::open(addr, token).await;
        let workload = workload.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut bytes = 0;
            let mut n = c * 7919;
            loop {
                let now = Instant::now();
                if now >= stop {
                    break;
                }
                let body = workload.body(n);
                let started = Instant::now();
                let (status, reply) = connection.post(&body).await;
                let latency = started.elapsed();
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
                workload.check(n, &reply);
                if started >= warm_until && Instant::now() < stop {
                    latencies.push(latency);
                    bytes = reply.len();
                }
                n += 1;
            }
            (latencies, bytes)
        }));
    }
    tokio::time::sleep_until(warm_until.into()).await;
    let before = watch.sample().await;
    let measured = Instant::now();
    tokio::time::sleep_until(stop.into()).await;
    let after = watch.sample().await;
    let elapsed = measured.elapsed();
    let mut latencies = Vec::new();
    let mut reply_bytes = 0;
    for task in tasks {
        let (mut l, bytes) = task.await.unwrap();
        latencies.append(&mut l);
        reply_bytes = reply_bytes.max(bytes);
    }
    latencies.sort();
    let requests = latencies.len();
    let at = |p: f64| latencies[((requests - 1) as f64 * p).round() as usize];
    let per_request = |seconds: f64| Duration::from_secs_f64(seconds / requests as f64);
    let database_cpu = watch.database.map(|_| {
        let spent: f64 = after.1.iter().map(|(pid, cpu)| cpu - before.1.get(pid).copied().unwrap_or(0.0)).sum();
        per_request(spent)
    });
    Figures {
        requests,
        rate: requests as f64 / elapsed.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
        server_cpu: per_request(after.0 - before.0),
        database_cpu,
        reply_bytes,
    }
}

fn print(label: &str, f: &Figures) {
    let db = f.database_cpu.map_or("-".to_string(), |d| format!("{:.0} µs", d.as_secs_f64() * 1e6));
    println!(
        "{label:<44} {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  server CPU {:>6.0} µs/req  database CPU {db:>8}/req  reply {:>6} B  ({} requests)",
        f.rate,
        f.p50.as_secs_f64() * 1000.0,
        f.p99.as_secs_f64() * 1000.0,
        f.server_cpu.as_secs_f64() * 1e6,
        f.reply_bytes,
        f.requests,
    );
}

// ---------------------------------------------------------------------------------------------
// The data.

/// Inserts `row`; answers the stored row.
async fn insert<A>(txn: &sea_orm::DatabaseTransaction, row: A) -> <A::Entity as sea_orm::EntityTrait>::Model
where
    A: sea_orm::ActiveModelTrait + sea_orm::ActiveModelBehavior + Send,
    <A::Entity as sea_orm::EntityTrait>::Model: sea_orm::IntoActiveModel<A>,
{
    row.insert(txn).await.unwrap()
}

/// The demo data set and `count` more procurements, straight into the database.
async fn seed(url: &str, count: usize) {
    use chrono::NaiveDate;
    use sea_orm::{EntityTrait, Set};
    use velferd::organizations::model::{Entity as Organization, OrganizationKind};
    use velferd::procurement::model::*;
    let db = velferd::db::Database::connect(url, 2, Duration::from_secs(30)).await.unwrap();
    db.migrate().await.unwrap();
    velferd::demo::load(&db).await.unwrap();
    let organizations = Organization::find().all(db.read()).await.unwrap();
    let municipalities: Vec<i64> =
        organizations.iter().filter(|o| o.kind == OrganizationKind::Municipality).map(|o| o.id).collect();
    let suppliers: Vec<i64> =
        organizations.iter().filter(|o| o.kind == OrganizationKind::Supplier).map(|o| o.id).collect();
    assert!(municipalities.len() >= 7 && suppliers.len() >= 2, "the demo's organisations");
    let now = chrono::Utc::now().fixed_offset();
    let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    let categories = [Category::SafetyAlarm, Category::MedicationSupport, Category::DigitalHomeFollowUp];
    let txn = {
        use sea_orm::TransactionTrait;
        db.write().begin().await.unwrap()
    };
    for i in 0..count {
        let lead = municipalities[i % municipalities.len()];
        let p = insert(
            &txn,
            procurement::ActiveModel {
                title: Set(format!("Felles anskaffelse {i}: trygghetsteknologi for hjemmeboende")),
                category: Set(categories[i % categories.len()]),
                lead_id: Set(lead),
                phase: Set(velferd::procurement::phase::Phase::Competition),
                notice_reference: Set(Some(format!("DOFFIN-2024-{i:05}"))),
                notice_published_on: Set(Some(day)),
                tender_deadline: Set(Some(now)),
                created_at: Set(now),
                ..Default::default()
            },
        )
        .await;
        let mut members = vec![(lead, ParticipantRole::Lead)];
        for k in 1..=6 {
            let org = municipalities[(i + k * 3) % municipalities.len()];
            if members.iter().all(|(member, _)| *member != org) {
                members.push((org, ParticipantRole::Participant));
            }
        }
        for (org, role) in members {
            insert(
                &txn,
                participant::ActiveModel {
                    procurement_id: Set(p.id),
                    organization_id: Set(org),
                    role: Set(role),
                    joined_on: Set(day),
                    ..Default::default()
                },
            )
            .await;
        }
        let tenders = [suppliers[i % suppliers.len()], suppliers[(i + 1) % suppliers.len()]];
        let mut tender_ids = Vec::new();
        for supplier in tenders {
            let t = insert(
                &txn,
                tender::ActiveModel {
                    procurement_id: Set(p.id),
                    supplier_id: Set(supplier),
                    submitted_at: Set(now),
                    ..Default::default()
                },
            )
            .await;
            tender_ids.push(t.id);
        }
        for s in 1..=4 {
            let story = insert(
                &txn,
                user_story::ActiveModel {
                    procurement_id: Set(p.id),
                    code: Set(format!("BH{s}")),
                    title: Set(format!("Brukerhistorie {s}: varsling ved fall og uro om natten")),
                    narrative: Set("Som pårørende vil jeg bli varslet når noe skjer.".into()),
                    acceptance_criteria: Set("[]".into()),
                    ..Default::default()
                },
            )
            .await;
            let mut responses = Vec::new();
            for tender in &tender_ids {
                let r = insert(
                    &txn,
                    tender_response::ActiveModel {
                        tender_id: Set(*tender),
                        user_story_id: Set(story.id),
                        solution: Set("Løsningsbeskrivelse".into()),
                        purchase_price_ore: Set(Some(900_000)),
                        lease_price_ore_per_month: Set(Some(60_000)),
                        ..Default::default()
                    },
                )
                .await;
                responses.push(r.id);
            }
            insert(
                &txn,
                award::ActiveModel {
                    procurement_id: Set(p.id),
                    user_story_id: Set(story.id),
                    tender_response_id: Set(responses[s % 2]),
                    awarded_on: Set(day),
                    ..Default::default()
                },
            )
            .await;
        }
    }
    txn.commit().await.unwrap();
}

/// The `after` cursors of the overview's pages, asked of the server once.
async fn velferd_cursors(addr: &str, token: &str, pages: usize) -> Vec<Value> {
    let mut connection = Connection::open(addr, Some(token)).await;
    let mut cursors = vec![Value::Null];
    while cursors.len() < pages {
        let body = json!({
            "query": "query($after: String) { procurements(first: 20, after: $after) { pageInfo { endCursor hasNextPage } } }",
            "variables": { "after": cursors.last().unwrap() },
        });
        let (_, reply) = connection.post(&body.to_string()).await;
        let reply: Value = serde_json::from_slice(&reply).unwrap();
        let info = &reply["data"]["procurements"]["pageInfo"];
        assert_eq!(info["hasNextPage"], true, "{reply}");
        cursors.push(info["endCursor"].clone());
    }
    cursors
}

static CURSORS: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();

fn velferd_page(p: usize) -> Value {
    json!({ "first": PAGE, "after": CURSORS.get().unwrap()[p], "stories": 4 })
}

fn postgraphile_page(p: usize) -> Value {
    json!({ "first": PAGE, "offset": p * PAGE, "stories": 4 })
}

fn main() {
    // Cargo passes `--bench` to every bench target; this one takes no arguments.
    if let Ok(role) = std::env::var(ROLE) {
        return serve_reference(&role);
    }
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(bench());
}

/// What one run of this benchmark measured, for the combined table (`benches/national.rs`).
#[allow(dead_code, reason = "read by benches/national.rs, which includes this file; this bench prints instead")]
pub(crate) struct Results {
    pub(crate) postgres: bool,
    pub(crate) overview: Figures,
    pub(crate) trivial: Figures,
    pub(crate) ceiling: Figures,
    pub(crate) stock: Figures,
    /// PostGraphile 4 on the same database, when `BENCH_POSTGRAPHILE` names it.
    pub(crate) postgraphile: Option<Figures>,
}

pub(crate) async fn bench() -> Results {
    let connections = env_number("BENCH_CONNECTIONS", 8);
    let seconds = env_number("BENCH_SECONDS", 10) as f64;
    let count = env_number("BENCH_PROCUREMENTS", 200);
    println!(
        "{} connections, {seconds} s a run; load before: {}",
        connections,
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );

    let dir = tempfile::tempdir().unwrap();
    let (url, admin, name) = match std::env::var("VELFERD_BENCH_POSTGRES_URL") {
        Ok(admin_url) => {
            use sea_orm::ConnectionTrait;
            let name = format!("velferd_queries_bench_{}", std::process::id());
            let admin = sea_orm::Database::connect(&admin_url).await.unwrap();
            admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
            admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
            let url = format!("{}/{name}", &admin_url[..admin_url.rfind('/').unwrap()]);
            (url, Some(admin), name)
        }
        Err(_) => (format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display()), None, String::new()),
    };
    println!("database: {}", if admin.is_some() { "PostgreSQL" } else { "SQLite" });
    let seeded = Instant::now();
    seed(&url, count).await;
    println!("seeded the demo data and {count} procurements in {:.1} s", seeded.elapsed().as_secs_f64());

    let signer = velferd::auth::TokenSigner::new(
        &velferd::config::Settings::from_pairs([
            ("VELFERD_DATABASE_URL", "sqlite://unused.db"),
            ("VELFERD_JWT_SECRET", SECRET),
            ("VELFERD_OPERATOR_ORG_NUMBER", OPERATOR),
        ])
        .unwrap()
        .jwt,
    )
    .unwrap();
    // A procurement officer of Larvik (the demo's), as a portal's signed-in user.
    let larvik: velferd::organizations::OrgNumber = "918082956".parse().unwrap();
    let token = signer.mint(
        "bench",
        larvik,
        std::collections::BTreeSet::from([velferd::auth::Role::ProcurementOfficer]),
        Duration::from_secs(3600),
    );

    let database = admin.as_ref().map(|a| (a, name.as_str()));
    let server = velferd(&url);
    let pages = (count / PAGE).clamp(1, 10);
    CURSORS.set(velferd_cursors(&server.addr, &token, pages).await).unwrap();
    let watch = Watch { pid: server.pid(), database };
    let overview =
        Arc::new(Overview { document: VELFERD_OVERVIEW, variables: velferd_page, pages }) as Arc<dyn Workload>;
    let velferd_overview = run(&server.addr, Some(&token), overview, connections, seconds, &watch).await;
    print("overview, velferd", &velferd_overview);
    let trivial = Arc::new(Trivial { aliased: true }) as Arc<dyn Workload>;
    let velferd_trivial = run(&server.addr, None, trivial, connections, seconds, &watch).await;
    print("{ __typename }, velferd (anonymous)", &velferd_trivial);
    drop(server);

    let plain = Arc::new(Trivial { aliased: false }) as Arc<dyn Workload>;
    let mut references = Vec::new();
    for role in ["ceiling", "stock"] {
        let process = reference(role);
        let watch = Watch { pid: process.pid(), database: None };
        let figures = run(&process.addr, None, plain.clone(), connections, seconds, &watch).await;
        print(&format!("{{ __typename }}, {role}"), &figures);
        references.push(figures);
    }
    let (stock, ceiling) = (references.pop().unwrap(), references.pop().unwrap());
    let (ceiling, stock) = (&ceiling, &stock);
    let cpu = |f: &Figures| f.server_cpu.as_secs_f64();
    println!(
        "{{ __typename }} rate: velferd/ceiling {:.2}, stock/ceiling {:.2} (target velferd ≥ 0.90); server CPU per request: ceiling/velferd {:.2}, ceiling/stock {:.2}",
        velferd_trivial.rate / ceiling.rate,
        stock.rate / ceiling.rate,
        cpu(ceiling) / cpu(&velferd_trivial),
        cpu(ceiling) / cpu(stock),
    );

    let mut postgraphile_figures = None;
    if let (Some(admin), Ok(postgraphile)) = (&admin, std::env::var("BENCH_POSTGRAPHILE")) {
        // PostGraphile prints the port it was given, so give it a free one.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
        let mut command = Command::new(postgraphile);
        command.args(["-c", &url, "-n", "127.0.0.1", "-p", &port]);
        let process = Process::start(command, "GraphQL API:");
        let watch = Watch { pid: process.pid(), database: Some((admin, name.as_str())) };
        let overview = Arc::new(Overview { document: POSTGRAPHILE_OVERVIEW, variables: postgraphile_page, pages })
            as Arc<dyn Workload>;
        let figures = run(&process.addr, None, overview, connections, seconds, &watch).await;
        print("overview, PostGraphile 4 (default flags)", &figures);
        let total = |f: &Figures| f.server_cpu + f.database_cpu.unwrap_or_default();
        println!(
            "overview: velferd/PostGraphile rate {:.2} (target ≥ 2.00); CPU per request (server + database) velferd {:.0} µs, PostGraphile {:.0} µs",
            velferd_overview.rate / figures.rate,
            total(&velferd_overview).as_secs_f64() * 1e6,
            total(&figures).as_secs_f64() * 1e6,
        );
        postgraphile_figures = Some(figures);
    }
    println!("load after: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());

    if let Some(admin) = admin {
        use sea_orm::ConnectionTrait;
        admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
    }
    Results {
        postgres: !name.is_empty(),
        overview: velferd_overview,
        trivial: velferd_trivial,
        ceiling: ceiling.clone(),
        stock: stock.clone(),
        postgraphile: postgraphile_figures,
    }
}
