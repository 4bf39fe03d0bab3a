//! The load-under-attack scenario (issue 12): a real `velferd serve` process on a SQLite file
//! (or a PostgreSQL database), attacked over HTTP and WebSockets on 127.0.0.1 while a case
//! worker's queries and a supplier's ingest go on, with the server's memory read from /proc.
//!
//! Shared by the benchmark (`server/benches/attack.rs`, which prints the figures) and the
//! end-to-end test (`tests/e2e/attack.rs`, which asserts that every answer was right and never
//! a timing), so both run the same attacks. The including crate provides `crate::guests`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use velferd::auth::{Role, TokenSigner};

pub const SECRET: &str = "attack-secret-that-is-at-least-32-bytes-long";
/// The platform operator's organisation, which admin tokens name (`VELFERD_OPERATOR_ORG_NUMBER`
/// once admin belongs to the operator; until then any organisation number serves an admin).
pub const OPERATOR: &str = "800091004";
pub const SUPPLIER: &str = "923609016";
pub const MUNICIPALITY: &str = "974760673";
/// The product whose messages the supplier sends, and whose pending candidate (an adapter
/// that never returns) the replay flood reviews.
pub const PRODUCT: &str = "attack-dispenser";
pub const DEVICES: usize = 20;
/// `VELFERD_MAX_BODY_BYTES` of the server: the cap an oversized WebSocket message passes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The cost throttle raised far above what the run spends, so that what refuses an attack is
/// the guard meant for it, never an empty bucket. A build without the throttle ignores these
/// (unknown `VELFERD_*` variables are not read).
pub const THROTTLE_SETTINGS: &[(&str, &str)] = &[
    ("VELFERD_THROTTLE_CAPACITY", "100000000"),
    ("VELFERD_THROTTLE_RESTORE_RATE", "100000000"),
    ("VELFERD_ANONYMOUS_THROTTLE_CAPACITY", "100000000"),
    ("VELFERD_ANONYMOUS_THROTTLE_RESTORE_RATE", "100000000"),
];

/// Whether this build of the server reads the throttle settings (it refuses nothing for them
/// when it does not).
pub fn throttle_configurable() -> bool {
    THROTTLE_SETTINGS.iter().all(|(name, _)| velferd::config::SETTINGS.iter().any(|(known, _)| known == name))
}

/// A `velferd serve` process of its own, on a fresh database.
pub struct Server {
    child: Child,
    pub base: String,
    pub database_url: String,
    dir: tempfile::TempDir,
}

/// The server's resident memory now and at its peak, from /proc/<pid>/status.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Server {
    /// Starts the binary with SQLite in a temporary directory, or on `database_url`, with
    /// `settings` on top of the run's own; returns once it prints the address it listens on.
    pub async fn start(database_url: Option<String>, settings: &[(String, String)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let database_url =
            database_url.unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.path().join("velferd.db").display()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_velferd"));
        for (name, _) in std::env::vars() {
            if name.starts_with("VELFERD_") {
                command.env_remove(name);
            }
        }
        let max_body = MAX_BODY_BYTES.to_string();
        command
            .current_dir(dir.path())
            .envs([
                ("VELFERD_DATABASE_URL", database_url.as_str()),
                ("VELFERD_BIND", "127.0.0.1:0"),
                ("VELFERD_JWT_SECRET", SECRET),
                ("VELFERD_LOG", "warn"),
                ("VELFERD_LOG_FORMAT", "text"),
                ("VELFERD_DB_MAX_CONNECTIONS", "8"),
                ("VELFERD_MAX_BODY_BYTES", max_body.as_str()),
                ("VELFERD_OPERATOR_ORG_NUMBER", OPERATOR),
                // The supplier's ingest is measured, not its product's rate limit.
                ("VELFERD_INGEST_RATE", "1000000"),
                ("VELFERD_INGEST_BURST", "1000000"),
            ])
            .envs(THROTTLE_SETTINGS.iter().copied())
            .envs(settings.iter().map(|(name, value)| (name, value)))
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap());
        let mut child = command.spawn().expect("start velferd");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        // The first line names the address; it ends there or when the process exits. Then
        // stdout is drained, so the server never writes to a closed pipe.
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
            line
        })
        .await
        .unwrap();
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        let base = match line.trim().strip_prefix("listening on ") {
            Some(base) => base.to_string(),
            None => panic!("velferd did not start: {line:?}\n{log}"),
        };
        Server { child, base, database_url, dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn ws_url(&self) -> String {
        format!("{}/graphql/ws", self.base.replacen("http://", "ws://", 1))
    }

    /// The server's memory, or `None` where /proc is not there to read.
    pub fn memory(&self) -> Option<Memory> {
        memory_of(self.pid())
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// What the server logged (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the server with SIGTERM, as an operator would, and waits for it.
    pub fn stop(mut self) -> ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed assertion must not leave the server running.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The organisations, tokens and adapters the run uses, set up over the API like a
/// deployment's first day (and one confirmed call-off written straight to the database, as
/// the ingest benchmark does).
pub struct World {
    pub server_base: String,
    pub case_worker: String,
    pub integration: String,
    pub supplier: String,
    /// The pending candidate that loops for ever: what the replay flood reviews.
    pub looping_candidate: String,
    next_message: AtomicUsize,
}

fn signer() -> TokenSigner {
    let settings = velferd::config::Settings::from_pairs([("VELFERD_JWT_SECRET", SECRET)]).unwrap();
    TokenSigner::new(&settings.jwt).unwrap()
}

/// A token for `org` with `role`, signed as the server expects.
pub fn token(org: &str, role: Role) -> String {
    signer().mint(
        "attack-run",
        org.parse::<velferd::organizations::OrgNumber>().unwrap(),
        BTreeSet::from([role]),
        Duration::from_secs(3600),
    )
}

/// POSTs `query` and returns the body; a failed request or a body with `errors` panics.
async fn graphql(client: &reqwest::Client, server: &Server, token: &str, query: &str, variables: Value) -> Value {
    let url = server.url("/graphql");
    let (_, body) = post_json(client, &url, token, json!({ "query": query, "variables": variables })).await.unwrap();
    assert!(body.get("errors").is_none(), "{query}: {body}");
    body["data"].clone()
}

/// Uploads guest component `guest` for `PRODUCT`, signed with `key`; the new adapter's id.
async fn upload(client: &reqwest::Client, server: &Server, guest: &str, key: &SigningKey) -> String {
    let bytes = crate::guests::component(guest);
    let operations = json!({
        "query": "mutation($input: AdapterUploadInput!) { adapterUpload(input: $input) { adapter { id } userErrors { code message } } }",
        "variables": { "input": { "product": PRODUCT, "component": null, "signature": STANDARD.encode(key.sign(&bytes).to_bytes()) } },
    });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.input.component"] }).to_string())
        .part("0", reqwest::multipart::Part::bytes(bytes).file_name("adapter.wasm"));
    let request = client.post(server.url("/graphql")).bearer_auth(token(SUPPLIER, Role::Supplier)).multipart(form);
    let body: Value = request.send().await.unwrap().json().await.unwrap();
    let adapter = &body["data"]["adapterUpload"]["adapter"]["id"];
    adapter.as_str().unwrap_or_else(|| panic!("{guest}: {body}")).to_string()
}

const CREATE: &str =
    "mutation($input: OrganizationCreateInput!) { organizationCreate(input: $input) { userErrors { code message } } }";

impl World {
    pub async fn setup(server: &Server) -> World {
        let client = client_builder().build().unwrap();
        let admin = token(OPERATOR, Role::Admin);
        for input in [
            json!({ "kind": "SUPPLIER", "name": "Angrepet Utstyr AS", "orgNumber": SUPPLIER }),
            json!({ "kind": "MUNICIPALITY", "name": "Larvik kommune", "orgNumber": MUNICIPALITY,
                "municipalityNumber": "3805", "county": "Vestfold" }),
        ] {
            let data = graphql(&client, server, &admin, CREATE, json!({ "input": input })).await;
            assert_eq!(data["organizationCreate"]["userErrors"], json!([]), "{data}");
        }
        let supplier = token(SUPPLIER, Role::Supplier);
        let key = SigningKey::from_bytes(&[12; 32]);
        let proof = key.sign(&velferd::devices::identifiers::key_registration_message(SUPPLIER));
        let data = graphql(
            &client,
            server,
            &supplier,
            "mutation($k: String!, $p: String!) { signingKeyRegister(input: { publicKey: $k, proof: $p }) { userErrors { code } } }",
            json!({ "k": STANDARD.encode(key.verifying_key().as_bytes()), "p": STANDARD.encode(proof.to_bytes()) }),
        )
        .await;
        assert_eq!(data["signingKeyRegister"]["userErrors"], json!([]), "{data}");
        let active = upload(&client, server, "velferd_dispenser_json", &key).await;
        let data = graphql(
            &client,
            server,
            &admin,
            "mutation($id: ID!) { adapterActivate(input: { adapterId: $id }) { userErrors { code message } } }",
            json!({ "id": active }),
        )
        .await;
        assert_eq!(data["adapterActivate"]["userErrors"], json!([]), "{data}");
        let looping_candidate = upload(&client, server, "hostile_infinite_loop", &key).await;

        // The supplier delivers the devices under the municipality's call-off, which the
        // municipality registers: the only way a serial enters a municipality.
        let db = sea_orm::Database::connect(&server.database_url).await.unwrap();
        let call_off = velferd::agreements::seed::confirmed_call_off(
            &db,
            org_id(&db, MUNICIPALITY).await,
            org_id(&db, SUPPLIER).await,
        )
        .await
        .unwrap();
        db.close().await.unwrap();
        let serials: Vec<String> = (0..DEVICES).map(serial).collect();
        let data = graphql(
            &client,
            server,
            &supplier,
            "mutation($input: DeviceDeliverInput!) { deviceDeliver(input: $input) { userErrors { code message } } }",
            json!({ "input": { "callOffId": velferd::ids::global_id(velferd::ids::NodeType::CallOff, call_off),
                "product": PRODUCT, "serials": serials } }),
        )
        .await;
        assert_eq!(data["deviceDeliver"]["userErrors"], json!([]), "{data}");
        let case_worker = token(MUNICIPALITY, Role::CaseWorker);
        for serial in &serials {
            let data = graphql(
                &client,
                server,
                &case_worker,
                "mutation($p: String!, $s: String!) { deviceRegister(input: { product: $p, serial: $s }) { userErrors { code message } } }",
                json!({ "p": PRODUCT, "s": serial }),
            )
            .await;
            assert_eq!(data["deviceRegister"]["userErrors"], json!([]), "{data}");
        }
        let world = World {
            server_base: server.base.clone(),
            case_worker,
            integration: token(SUPPLIER, Role::Integration),
            supplier,
            looping_candidate,
            next_message: AtomicUsize::new(0),
        };
        // Messages for the replay flood to review (the server keeps the last 200 per product),
        // and warm connections and caches.
        for _ in 0..60 {
            if let Err(e) = world.ingest(&client).await {
                panic!("warm-up ingest: {e}");
            }
        }
        for _ in 0..20 {
            if let Err(e) = world.query(&client).await {
                panic!("warm-up query: {e}");
            }
        }
        world
    }

    /// One normal query of the case worker: their devices, recent events and procurements.
    /// `Err` says what was wrong with the answer.
    pub async fn query(&self, client: &reqwest::Client) -> Result<(), String> {
        let query = "{ viewer { authenticated } devices(first: 10) { totalCount nodes { serial } }
            deviceEvents(first: 10) { totalCount nodes { kind } } procurements(first: 5) { totalCount } }";
        let (status, body) =
            post_json(client, &format!("{}/graphql", self.server_base), &self.case_worker, json!({ "query": query }))
                .await?;
        let data = &body["data"];
        if status != 200 || body.get("errors").is_some() || data["viewer"]["authenticated"] != true {
            return Err(format!("query answered {status}: {}", cut(&body)));
        }
        if data["devices"]["totalCount"] != DEVICES || !data["deviceEvents"]["totalCount"].is_u64() {
            return Err(format!("query answered without its data: {}", cut(&body)));
        }
        Ok(())
    }

    /// One message of the supplier's integration: a dose made available and taken on one of
    /// the registered dispensers. `Err` unless it was accepted.
    pub async fn ingest(&self, client: &reqwest::Client) -> Result<(), String> {
        let n = self.next_message.fetch_add(1, Ordering::Relaxed);
        let message = json!({ "serial": serial(n % DEVICES), "events": [
            { "id": format!("a-{n}-a"), "type": "dose_available", "at": "2026-11-22T07:00:00Z", "dose": { "id": format!("d-{n}"), "scheduled": "2026-11-22T07:00:00Z" } },
            { "id": format!("a-{n}-t"), "type": "dose_taken", "at": "2026-11-22T07:04:12Z", "dose": { "id": format!("d-{n}"), "scheduled": "2026-11-22T07:00:00Z", "assisted": false } },
        ] });
        let response = client
            .post(format!("{}/ingest/{PRODUCT}", self.server_base))
            .bearer_auth(&self.integration)
            .header("content-type", "application/json")
            .body(message.to_string())
            .send()
            .await
            .map_err(|e| format!("ingest not sent: {e}"))?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.map_err(|e| format!("ingest answered {status}, not JSON: {e}"))?;
        if status != 200 || body["accepted"] != 1 {
            return Err(format!("ingest answered {status}: {}", cut(&body)));
        }
        Ok(())
    }
}

fn serial(i: usize) -> String {
    format!("AT-{i:05}")
}

/// The row id of the organisation with `org_number`.
async fn org_id(db: &sea_orm::DatabaseConnection, org_number: &str) -> i64 {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use velferd::organizations::model::{Column, Entity};
    Entity::find().filter(Column::OrgNumber.eq(org_number)).one(db).await.unwrap().expect("registered").id
}

/// POSTs `body` as JSON (signed in with `token` unless it is empty); the status and JSON reply.
async fn post_json(client: &reqwest::Client, url: &str, token: &str, body: Value) -> Result<(u16, Value), String> {
    let mut request = client.post(url).json(&body);
    if !token.is_empty() {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| format!("not sent: {e}"))?;
    let status = response.status().as_u16();
    let body = response.json().await.map_err(|e| format!("answered {status}, not JSON: {e}"))?;
    Ok((status, body))
}

/// The start of a reply, for a failure message.
fn cut(body: &Value) -> String {
    body.to_string().chars().take(400).collect()
}

/// The attacks of the run, each sent in a loop by attackers of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Attack {
    /// Finding 1: a 40-level fragment bomb (2^40 selections), anonymous, by POST and GET.
    FragmentBomb,
    /// Finding 2: 4,900 aliases of `Procurement.ocds`, anonymous, alone and in a batch of three.
    AliasBomb,
    /// Finding 6: the supplier's reviews of its looping candidate: one review of 200
    /// messages, 150 aliases of it, and two in one request.
    ReplayFlood,
    /// Finding 4: WebSocket messages past `VELFERD_MAX_BODY_BYTES`, in one frame and fragmented.
    WsOversized,
    /// Finding 1 over `/graphql/ws`: the fragment bomb as a subscription.
    WsFragmentBomb,
}

impl Attack {
    pub const ALL: [Attack; 5] =
        [Attack::FragmentBomb, Attack::AliasBomb, Attack::ReplayFlood, Attack::WsOversized, Attack::WsFragmentBomb];

    pub fn name(self) -> &'static str {
        match self {
            Attack::FragmentBomb => "fragment bomb (POST, GET)",
            Attack::AliasBomb => "alias bomb, 4,900 × ocds (alone, batch of 3)",
            Attack::ReplayFlood => "replay flood on a looping candidate",
            Attack::WsOversized => "oversized WebSocket messages",
            Attack::WsFragmentBomb => "fragment bomb subscription over /graphql/ws",
        }
    }

    /// Whether `outcome` (a refusal's code, a close code, or `contained: <adapter codes>`) is
    /// how this attack must be answered.
    pub fn expects(self, outcome: &str) -> bool {
        match self {
            Attack::FragmentBomb | Attack::WsFragmentBomb => outcome == "MAX_SELECTIONS_EXCEEDED",
            // By its cost; or, with `VELFERD_GRAPHQL_MAX_TOKENS` or `_MAX_SELECTIONS` set below
            // its 14,700 tokens or 4,900 selections, by that document guard. Before it runs.
            Attack::AliasBomb => {
                ["MAX_COST_EXCEEDED", "MAX_TOKENS_EXCEEDED", "MAX_SELECTIONS_EXCEEDED"].contains(&outcome)
            }
            // Reviews run, on their own slot, and the candidate's calls are stopped by the
            // sandbox; more than one review a request, or its aliases, are refused.
            Attack::ReplayFlood => {
                ["MAX_COST_EXCEEDED", "BAD_USER_INPUT"].contains(&outcome)
                    || outcome.strip_prefix("contained: ").is_some_and(|codes| {
                        codes.split('/').all(|code| ["fuel-exhausted", "deadline-exceeded"].contains(&code))
                    })
            }
            Attack::WsOversized => outcome == "close 1009",
        }
    }

    /// How many attackers send this attack at once.
    fn attackers(self) -> usize {
        match self {
            Attack::FragmentBomb | Attack::AliasBomb | Attack::ReplayFlood => 2,
            Attack::WsOversized | Attack::WsFragmentBomb => 1,
        }
    }
}

/// How each attack was answered: requests (or messages) sent and outcomes counted.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub sent: usize,
    pub outcomes: BTreeMap<String, usize>,
    /// How long each round took the attacker (a request, a batch, or a socket's message).
    pub rounds: Vec<Duration>,
}

impl Tally {
    fn add(&mut self, outcome: String) {
        *self.outcomes.entry(outcome).or_default() += 1;
    }
}

/// What one phase of the run saw.
#[derive(Debug, Default)]
pub struct Figures {
    pub elapsed: Duration,
    pub queries: Vec<Duration>,
    pub ingests: Vec<Duration>,
    /// Normal requests answered wrongly (the first few, and how many in all).
    pub errors: Vec<String>,
    pub error_count: usize,
    pub attacks: BTreeMap<Attack, Tally>,
    /// The highest VmRSS sampled during the phase.
    pub peak_rss_kib: u64,
}

impl Figures {
    fn failed(&mut self, error: String) {
        self.error_count += 1;
        if self.errors.len() < 10 {
            self.errors.push(error);
        }
    }
}

/// Runs the normal traffic for `length`, and `attacks` with it.
pub async fn run(server: &Server, world: &Arc<World>, length: Duration, attacks: &[Attack]) -> Figures {
    let until = Instant::now() + length;
    let started = Instant::now();
    let normal = client_builder().timeout(Duration::from_secs(60)).build().unwrap();
    let mut users = Vec::new();
    for ingest in [false, false, true, true] {
        let (world, client) = (world.clone(), normal.clone());
        users.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), Vec::new());
            while Instant::now() < until {
                let t = Instant::now();
                let result = if ingest { world.ingest(&client).await } else { world.query(&client).await };
                latencies.push(t.elapsed());
                if let Err(e) = result {
                    errors.push(e);
                }
            }
            (ingest, latencies, errors)
        }));
    }
    let mut attackers = Vec::new();
    if !attacks.is_empty() {
        let hostile = client_builder().timeout(Duration::from_secs(120)).build().unwrap();
        let shared = Arc::new(Payloads::new(server, world));
        for &attack in attacks {
            for _ in 0..attack.attackers() {
                let (shared, client) = (shared.clone(), hostile.clone());
                attackers.push(tokio::spawn(async move { (attack, shared.send(attack, &client, until).await) }));
            }
        }
    }
    let sampler = {
        let pid = server.pid();
        tokio::spawn(async move {
            let mut peak = 0;
            loop {
                if let Some(memory) = memory_of(pid) {
                    peak = peak.max(memory.rss_kib);
                }
                if Instant::now() >= until {
                    return peak;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut figures = Figures::default();
    for user in users {
        let (ingest, latencies, errors) = user.await.unwrap();
        let measured = if ingest { &mut figures.ingests } else { &mut figures.queries };
        measured.extend(latencies);
        for error in errors {
            figures.failed(error);
        }
    }
    figures.elapsed = started.elapsed();
    for attacker in attackers {
        let (attack, tally) = attacker.await.unwrap();
        let total = figures.attacks.entry(attack).or_default();
        total.sent += tally.sent;
        total.rounds.extend(tally.rounds);
        for (outcome, n) in tally.outcomes {
            *total.outcomes.entry(outcome).or_default() += n;
        }
    }
    figures.peak_rss_kib = sampler.await.unwrap().max(server.memory().map_or(0, |m| m.rss_kib));
    figures
}

fn memory_of(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find_map(|line| line.strip_prefix(name))?.trim().trim_end_matches("kB").trim().parse().ok()
    };
    Some(Memory { rss_kib: field("VmRSS:")?, hwm_kib: field("VmHWM:")? })
}

/// The attacks' requests, built once.
struct Payloads {
    graphql: String,
    ws: String,
    supplier: String,
    fragment_bomb: String,
    subscription_bomb: String,
    alias_bomb: String,
    review: Value,
    review_aliases: Value,
    review_twice: Value,
}

/// `F(k)` spreads `F(k-1)` twice: about 40 bytes a level, 2^levels selections expanded.
pub fn fragment_bomb(operation: &str, root_type: &str, levels: usize) -> String {
    let mut query = format!("{operation} {{ ...F{levels} }}\nfragment F0 on {root_type} {{ __typename }}\n");
    for k in 1..=levels {
        query.push_str(&format!("fragment F{k} on {root_type} {{ ...F{} ...F{} }}\n", k - 1, k - 1));
    }
    query
}

impl Payloads {
    fn new(server: &Server, world: &World) -> Payloads {
        let aliases: String = (0..4900).map(|i| format!("p{i}: ocds ")).collect();
        let review = |fields: &str| {
            json!({ "query": format!("query($id: ID!) {{ node(id: $id) {{ ... on Adapter {{ {fields} }} }} }}"),
                "variables": { "id": world.looping_candidate } })
        };
        let one = "replayReview(last: 200) { messagesCompared messages { candidate { errorCode } } }";
        Payloads {
            graphql: server.url("/graphql"),
            ws: server.ws_url(),
            supplier: world.supplier.clone(),
            fragment_bomb: fragment_bomb("query", "Query", 40),
            subscription_bomb: fragment_bomb("subscription", "Subscription", 40),
            alias_bomb: format!("{{ procurements(first: 1) {{ nodes {{ {aliases} }} }} }}"),
            review: review(one),
            review_aliases: review(
                &(0..150).map(|i| format!("r{i}: replayReview(last: 200) {{ messagesCompared }} ")).collect::<String>(),
            ),
            review_twice: review(&format!("a: {one} b: {one}")),
        }
    }

    /// Sends `attack` until `until`; how it was answered.
    async fn send(&self, attack: Attack, client: &reqwest::Client, until: Instant) -> Tally {
        let mut tally = Tally::default();
        let mut socket = None;
        let mut round_started: Option<Instant> = None;
        while Instant::now() < until {
            if let Some(started) = round_started.replace(Instant::now()) {
                tally.rounds.push(started.elapsed());
            }
            let round = tally.sent;
            match attack {
                Attack::FragmentBomb => {
                    let answer = if round.is_multiple_of(2) {
                        post_json(client, &self.graphql, "", json!({ "query": self.fragment_bomb })).await
                    } else {
                        get_json(client, &self.graphql, &self.fragment_bomb).await
                    };
                    tally.sent += 1;
                    tally.add(refusal(answer));
                }
                Attack::AliasBomb => {
                    if round.is_multiple_of(2) {
                        tally.sent += 1;
                        tally.add(refusal(
                            post_json(client, &self.graphql, "", json!({ "query": self.alias_bomb })).await,
                        ));
                    } else {
                        let one = json!({ "query": self.alias_bomb });
                        let answer = post_json(client, &self.graphql, "", json!([one, one, one])).await;
                        tally.sent += 3;
                        match answer {
                            Ok((status, Value::Array(answers))) => {
                                answers.into_iter().for_each(|a| tally.add(refusal(Ok((status, a)))))
                            }
                            other => tally.add(refusal(other)),
                        }
                    }
                }
                Attack::ReplayFlood => {
                    let body = [&self.review_aliases, &self.review_twice, &self.review][round % 3];
                    let answer = post_json(client, &self.graphql, &self.supplier, body.clone()).await;
                    tally.sent += 1;
                    match answer {
                        Ok((200, body)) => {
                            let node = &body["data"]["node"];
                            let reviews: Vec<&Value> = [&node["replayReview"], &node["a"], &node["b"]]
                                .into_iter()
                                .filter(|r| r.is_object())
                                .collect();
                            for review in &reviews {
                                tally.add(contained(review));
                            }
                            if body.get("errors").is_some() || reviews.is_empty() {
                                tally.add(refusal(Ok((200, body))));
                            }
                        }
                        other => tally.add(refusal(other)),
                    }
                }
                Attack::WsOversized => {
                    tally.sent += 1;
                    tally.add(oversized_message(&self.ws, !round.is_multiple_of(2)).await);
                }
                Attack::WsFragmentBomb => {
                    if socket.is_none() {
                        socket = match open_socket(&self.ws).await {
                            Ok(s) => Some(s),
                            Err(e) => {
                                tally.sent += 1;
                                tally.add(e);
                                continue;
                            }
                        };
                    }
                    let ws = socket.as_mut().unwrap();
                    let subscribe = json!({ "id": round.to_string(), "type": "subscribe", "payload": { "query": self.subscription_bomb } });
                    tally.sent += 1;
                    if let Err(e) = ws.send(Message::text(subscribe.to_string())).await {
                        tally.add(format!("socket failed: {e}"));
                        socket = None;
                        continue;
                    }
                    // An operation refused while it runs ends with `complete` after its errors.
                    let mut answer = heard(ws).await;
                    while matches!(&answer, Heard::Text(message) if message["type"] == "complete") {
                        answer = heard(ws).await;
                    }
                    match answer {
                        Heard::Text(message) => {
                            // graphql-transport-ws answers an operation refused before it
                            // starts with `error`.
                            let errors = if message["type"] == "error" {
                                &message["payload"]
                            } else {
                                &message["payload"]["errors"]
                            };
                            tally.add(
                                errors[0]["extensions"]["code"]
                                    .as_str()
                                    .map_or_else(|| format!("answered {}", cut(&message)), str::to_string),
                            );
                        }
                        Heard::Closed(outcome) => {
                            tally.add(outcome);
                            socket = None;
                        }
                    }
                }
            }
        }
        if let Some(started) = round_started {
            tally.rounds.push(started.elapsed());
        }
        tally
    }
}

async fn get_json(client: &reqwest::Client, url: &str, query: &str) -> Result<(u16, Value), String> {
    let response = client.get(url).query(&[("query", query)]).send().await.map_err(|e| format!("not sent: {e}"))?;
    let status = response.status().as_u16();
    let body = response.json().await.map_err(|e| format!("answered {status}, not JSON: {e}"))?;
    Ok((status, body))
}

/// The code of the first error of an answer (a refusal), or what else it was.
fn refusal(answer: Result<(u16, Value), String>) -> String {
    match answer {
        Ok((_, body)) => match body["errors"][0]["extensions"]["code"].as_str() {
            Some(code) => code.to_string(),
            None => format!("answered {}", cut(&body)),
        },
        Err(e) => e,
    }
}

/// A review that ran: `contained: ` and the candidate's error codes, or what else it was.
fn contained(review: &Value) -> String {
    let messages = review["messages"].as_array().map(Vec::as_slice).unwrap_or_default();
    let codes: BTreeSet<&str> =
        messages.iter().map(|m| m["candidate"]["errorCode"].as_str().unwrap_or("decoded")).collect();
    if messages.is_empty() {
        return format!("review of nothing: {}", cut(review));
    }
    format!("contained: {}", codes.into_iter().collect::<Vec<_>>().join("/"))
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/graphql/ws` anonymously (graphql-transport-ws) and waits for `connection_ack`.
async fn open_socket(url: &str) -> Result<Socket, String> {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.map_err(|e| format!("connect failed: {e}"))?;
    let init = json!({ "type": "connection_init", "payload": {} });
    ws.send(Message::text(init.to_string())).await.map_err(|e| format!("init not sent: {e}"))?;
    match heard(&mut ws).await {
        Heard::Text(ack) if ack["type"] == "connection_ack" => Ok(ws),
        Heard::Text(other) => Err(format!("not acknowledged: {}", cut(&other))),
        Heard::Closed(outcome) => Err(outcome),
    }
}

enum Heard {
    Text(Value),
    /// `close <code>`, or how the socket ended without a close frame.
    Closed(String),
}

/// The next JSON message or the close, within 30 s (the server's pings are skipped).
async fn heard(ws: &mut Socket) -> Heard {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let Ok(message) = tokio::time::timeout_at(deadline, ws.next()).await else {
            return Heard::Closed("no answer in 30 s".into());
        };
        match message {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text)
                    .map_or_else(|e| Heard::Closed(format!("not JSON: {e}")), Heard::Text);
            }
            Some(Ok(Message::Close(frame))) => {
                return Heard::Closed(format!("close {}", frame.map_or(1005, |f| u16::from(f.code))));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Heard::Closed(format!("socket failed: {e}")),
            None => return Heard::Closed("socket ended without a close frame".into()),
        }
    }
}

/// Sends one message past the cap on a fresh socket — in one frame, or (`fragmented`) as
/// 64 KiB fragments that never end — and returns how the server closed it.
async fn oversized_message(url: &str, fragmented: bool) -> String {
    let mut ws = match open_socket(url).await {
        Ok(ws) => ws,
        Err(e) => return e,
    };
    if fragmented {
        let fragment = vec![b' '; 64 << 10];
        let mut sent = 0;
        while sent <= 2 * MAX_BODY_BYTES {
            let opcode = if sent == 0 { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Continue) };
            if ws.send(Message::Frame(Frame::message(fragment.clone(), opcode, false))).await.is_err() {
                break; // closed by the server already
            }
            sent += fragment.len();
        }
    } else {
        let padding = " ".repeat(MAX_BODY_BYTES);
        let message =
            json!({ "id": "1", "type": "subscribe", "payload": { "query": format!("{{ __typename }}{padding}") } });
        // The server may close before it has read it all.
        let _ = ws.send(Message::text(message.to_string())).await;
    }
    match heard(&mut ws).await {
        Heard::Closed(outcome) => outcome,
        Heard::Text(message) => format!("answered {}", cut(&message)),
    }
}

/// Percentiles of `latencies` in milliseconds: p50, p95, p99, max.
pub fn percentiles(latencies: &[Duration]) -> [f64; 4] {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return [f64::NAN; 4];
    }
    let at = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0;
    [at(0.5), at(0.95), at(0.99), at(1.0)]
}

/// Whether `/healthz` answers 200.
pub async fn healthy(server: &Server) -> bool {
    let client = client_builder().timeout(Duration::from_secs(30)).build().unwrap();
    client.get(server.url("/healthz")).send().await.is_ok_and(|r| r.status() == 200)
}

/// A reqwest client builder: ring made the process's rustls provider first, as reqwest is built
/// without one of its own (this file is shared with the attack bench, so not `support`'s).
fn client_builder() -> reqwest::ClientBuilder {
    velferd::outbound::install_crypto_provider();
    reqwest::Client::builder()
}
