//! The demo a newcomer starts with: the 29 municipalities of the Larvik procurement with the
//! data file's figures, a working token for every role of every demo organisation (every token
//! command the READMEs show, and every one `velferd demo tokens` prints), and the demo feed's
//! device messages arriving through ingest — or not, with the feed turned off.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use velferd::auth::{OrgRef, Role, TokenSigner};
use velferd::config::Settings;

use crate::support::{Backend, OPERATOR_ORG, Options, SECRET, TestApp};

fn repo_file(path: &str) -> String {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// `line` split into words as a POSIX shell would for the plain quoting the READMEs use.
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quote, mut started) = (Vec::new(), String::new(), None, false);
    for c in line.chars() {
        match (quote, c) {
            (None, '#') if !started => break,
            (None, '"' | '\'') => (quote, started) = (Some(c), true),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (_, c) => (word, started) = (word + &c.to_string(), true),
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// The arguments after `token` of every `velferd token …` or `cargo run … -- token …` command
/// in the fenced code blocks of `markdown`.
fn token_commands(markdown: &str) -> Vec<Vec<String>> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue;
        }
        let words = shell_words(line.trim().trim_start_matches("$ "));
        let at = (1..words.len()).find(|&i| {
            words[i] == "token" && (words[i - 1] == "velferd" || (words[i - 1] == "--" && words[0] == "cargo"))
        });
        if let Some(at) = at {
            out.push(words[at + 1..].to_vec());
        }
    }
    out
}

/// The value after `flag` in `args`.
fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map(String::as_str)
}

fn velferd(settings_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_velferd"));
    for (name, _) in std::env::vars() {
        if name.starts_with("VELFERD_") {
            command.env_remove(name);
        }
    }
    command
        .env("VELFERD_LOG", "warn")
        .env("VELFERD_JWT_SECRET", SECRET)
        .env("VELFERD_DATABASE_URL", settings_url)
        .env("VELFERD_OPERATOR_ORG_NUMBER", OPERATOR_ORG);
    command
}

/// Runs `velferd token <args>` against the app's database; the token.
fn mint(app: &TestApp, args: &[String]) -> String {
    let output = velferd(&app.settings.database_url).arg("token").args(args).output().unwrap();
    assert!(output.status.success(), "velferd token {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Mints a token with `args` and asks `viewer` who it is; asserts the organisation the command
/// names and exactly the roles it asked for.
async fn assert_token_acts_as_named(app: &TestApp, args: &[String]) {
    let token = mint(app, args);
    let viewer = app
        .graphql(Some(&token), "{ viewer { authenticated orgNumber roles organization { name } } }", json!({}))
        .await["viewer"]
        .clone();
    let asked: BTreeSet<String> = flag(args, "--role")
        .unwrap_or_else(|| panic!("{args:?} names no role"))
        .split(',')
        .map(|r| r.trim().to_uppercase())
        .collect();
    let roles: BTreeSet<String> = viewer["roles"]
        .as_array()
        .unwrap_or_else(|| panic!("{args:?}: {viewer}"))
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    assert!(!roles.is_empty(), "{args:?}: the token holds no role: {viewer}");
    assert_eq!(roles, asked, "{args:?}: {viewer}");
    if let Some(name) = flag(args, "--org-name") {
        assert_eq!(viewer["organization"]["name"], name, "{args:?}: {viewer}");
    }
    if let Some(number) = flag(args, "--org") {
        assert_eq!(viewer["orgNumber"], number, "{args:?}: {viewer}");
    }
}

fn with_demo() -> Options {
    Options { demo: true, ..Options::default() }
}

async fn every_readme_token_command_and_every_demo_tokens_line_acts_as_the_organisation_it_names(app: TestApp) {
    let mut shown = Vec::new();
    for readme in ["README.md", "server/demo/README.md"] {
        shown.extend(token_commands(&repo_file(readme)));
    }
    assert!(shown.len() >= 8, "the READMEs show token commands for several organisations: {shown:?}");
    for args in &shown {
        assert!(!args.iter().any(|a| a.contains('<')), "a README token command with a placeholder: {args:?}");
        assert_token_acts_as_named(&app, args).await;
    }

    // The table `velferd demo tokens` prints: every role of every organisation in the database.
    let output = velferd(&app.settings.database_url).args(["demo", "tokens"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let table = format!("```\n{}\n```", String::from_utf8(output.stdout).unwrap());
    let listed = token_commands(&table);
    let orgs = app.graphql(None, "{ organizations(first: 100) { totalCount } }", json!({})).await;
    let kinds: BTreeMap<String, usize> = listed.iter().fold(BTreeMap::new(), |mut m, args| {
        *m.entry(flag(args, "--org-name").unwrap().to_string()).or_default() += 1;
        m
    });
    assert_eq!(
        kinds.len() as i64,
        orgs["organizations"]["totalCount"].as_i64().unwrap(),
        "every organisation: {kinds:?}"
    );
    for name in [
        "Velferd platform operator",
        "Dignio AS",
        "Evondos Oy",
        "Demo responssenter (fiktivt)",
        "Leverandørutviklingsprogrammet (LUP)",
    ] {
        assert!(kinds.contains_key(name), "{name} in {kinds:?}");
    }
    for args in &listed {
        assert_token_acts_as_named(&app, args).await;
    }
}

/// On both back ends, with the demo data loaded.
mod every_readme_token_command_acts_as_the_organisation_it_names {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = TestApp::spawn_with(Backend::Sqlite, with_demo()).await.unwrap();
        every_readme_token_command_and_every_demo_tokens_line_acts_as_the_organisation_it_names(app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = TestApp::spawn_with(Backend::Postgres, with_demo()).await {
            every_readme_token_command_and_every_demo_tokens_line_acts_as_the_organisation_it_names(app).await;
        }
    }
}

/// The article's list (../shared/seeds/000_815ea9948daaeb0f.txt), as the demo names them.
const ARTICLE: [&str; 29] = [
    "Larvik",
    "Bergen",
    "Trondheim",
    "Voss",
    "Skedsmo",
    "Lørenskog",
    "Fet",
    "Melhus",
    "Malvik",
    "Skaun",
    "Midtre Gauldal",
    "Tønsberg",
    "Færder",
    "Holmestrand",
    "Sande",
    "Skien",
    "Bamble",
    "Bø",
    "Nome",
    "Sauherad",
    "Seljord",
    "Ørland",
    "Høylandet",
    "Bindal",
    "Grong",
    "Bodø",
    "Røst",
    "Rødøy",
    "Røyrvik",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_larvik_procurement_has_the_articles_29_municipalities_in_7_counties_with_the_data_files_population() {
    let app = TestApp::spawn_with(Backend::Sqlite, with_demo()).await.unwrap();
    let file: Value = serde_json::from_str(&repo_file("server/demo/organizations.json")).unwrap();
    let members: Vec<&Value> = file["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["larvik_medication_procurement"].is_string())
        .collect();
    let file_sum: u64 = members.iter().filter_map(|o| o["population"].as_u64()).sum();
    let file_unknown = members.iter().filter(|o| o["population"].is_null()).count();
    let file_counties: BTreeSet<&str> = members.iter().map(|o| o["county"].as_str().unwrap()).collect();

    let token = app.token(crate::support::LARVIK, &[Role::ProcurementOfficer]);
    let data = app
        .graphql(
            Some(&token),
            "{ procurements(filter: { category: MEDICATION_SUPPORT }) { nodes { lead { name }
                 totals { municipalities counties inhabitants municipalitiesWithUnknownPopulation }
                 participants(first: 50) { nodes { role organization { name } } } } } }",
            json!({}),
        )
        .await;
    let larvik = &data["procurements"]["nodes"][0];
    assert_eq!(larvik["lead"]["name"], "Larvik kommune", "{data}");
    assert_eq!(larvik["totals"]["municipalities"], 29, "{data}");
    assert_eq!(larvik["totals"]["counties"], 7, "{data}");
    assert_eq!(file_counties.len(), 7, "{file_counties:?}");
    assert_eq!(larvik["totals"]["inhabitants"], file_sum, "the population sum is the data file's");
    assert_eq!(larvik["totals"]["municipalitiesWithUnknownPopulation"], file_unknown as u64);

    let mut names: BTreeSet<String> = larvik["participants"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        // A follower (Sørum, in the learning demo) learns from the procurement; it does not buy.
        .filter(|p| p["role"] != "FOLLOWER")
        .map(|p| p["organization"]["name"].as_str().unwrap().to_string())
        .collect();
    names.insert("Larvik kommune".into());
    for municipality in ARTICLE {
        assert!(names.iter().any(|n| n.starts_with(&format!("{municipality} "))), "{municipality} missing: {names:?}");
    }
    assert_eq!(names.len(), 29);
}

/// A server started as `velferd serve --demo` starts it (in-process), on a fresh SQLite file.
struct DemoServer {
    server: Option<velferd::http::RunningServer>,
    feed: Option<velferd::demo::feed::DemoFeed>,
    client: reqwest::Client,
    signer: TokenSigner,
    postgres: Option<crate::support::PostgresDatabase>,
    _dir: tempfile::TempDir,
}

impl DemoServer {
    /// On SQLite, or on a PostgreSQL database of its own (`None` when none is configured).
    async fn start_on(backend: Backend, mode: velferd::DemoMode) -> Option<DemoServer> {
        let dir = tempfile::tempdir().unwrap();
        let (url, postgres) = match backend {
            Backend::Sqlite => (format!("sqlite://{}?mode=rwc", dir.path().join("velferd.db").display()), None),
            Backend::Postgres => {
                let pg = crate::support::PostgresDatabase::create().await?;
                (pg.url.clone(), Some(pg))
            }
        };
        let pairs = [
            ("VELFERD_DATABASE_URL", url.as_str()),
            ("VELFERD_BIND", "127.0.0.1:0"),
            ("VELFERD_JWT_SECRET", SECRET),
            ("VELFERD_OPERATOR_ORG_NUMBER", OPERATOR_ORG),
            ("VELFERD_LOG", "warn"),
        ];
        let settings = Settings::from_pairs(pairs).unwrap();
        let (server, feed) = velferd::start_with_demo(&settings, mode, 1).await.expect("the demo starts");
        Some(DemoServer {
            server: Some(server),
            feed,
            client: crate::support::http_client().build().unwrap(),
            signer: TokenSigner::new(&settings.jwt).unwrap(),
            postgres,
            _dir: dir,
        })
    }

    async fn start(mode: velferd::DemoMode) -> DemoServer {
        DemoServer::start_on(Backend::Sqlite, mode).await.expect("SQLite is always there")
    }

    async fn stop(mut self) {
        drop(self.feed.take());
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        if let Some(pg) = self.postgres.take() {
            pg.drop_database();
        }
    }

    async fn events(&self, municipality: &str) -> Vec<(String, String)> {
        let token = self.signer.mint(
            "test",
            OrgRef::Number(municipality.parse().unwrap()),
            BTreeSet::from([Role::CaseWorker]),
            Duration::from_secs(600),
        );
        let base = format!("http://{}", self.server.as_ref().unwrap().addr);
        let query = "{ deviceEvents(first: 100) { nodes { kind device { serial product { slug } } } } }";
        let body = crate::wire::graphql(&self.client, &base, Some(&token), query, json!({})).await;
        body["data"]["deviceEvents"]["nodes"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"))
            .iter()
            .map(|n| (n["kind"].as_str().unwrap().to_string(), n["device"]["serial"].as_str().unwrap().to_string()))
            .collect()
    }
}

/// A test that panics still drops its PostgreSQL database.
impl Drop for DemoServer {
    fn drop(&mut self) {
        drop(self.feed.take());
        drop(self.server.take());
        if let Some(pg) = self.postgres.take() {
            pg.drop_database();
        }
    }
}

const BERGEN: &str = "964338531";

/// On both back ends: the feed's messages go through ingest into each one's storage.
mod the_demo_feed_delivers_dispenses_missed_doses_and_alarm_presses_through_ingest {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::the_feed_delivers(DemoServer::start(velferd::DemoMode::Feed).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(demo) = DemoServer::start_on(Backend::Postgres, velferd::DemoMode::Feed).await {
            super::the_feed_delivers(demo).await;
        }
    }
}

async fn the_feed_delivers(demo: DemoServer) {
    // The start returns once the feed's first message is answered.
    assert!(demo.feed.as_ref().unwrap().accepted() >= 1);
    assert!(!demo.events(crate::support::LARVIK).await.is_empty(), "the first dispense is stored at start");
    let deadline = Instant::now() + Duration::from_secs(120);
    let wanted = ["dose-dispensed", "dose-missed", "alarm-button"];
    loop {
        let seen: BTreeSet<String> = demo.events(crate::support::LARVIK).await.into_iter().map(|(k, _)| k).collect();
        if wanted.iter().all(|k| seen.contains(*k)) {
            break;
        }
        assert!(Instant::now() < deadline, "within two minutes, Larvik's devices report {wanted:?}; seen {seen:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let bergen: BTreeSet<String> = demo.events(BERGEN).await.into_iter().map(|(_, serial)| serial).collect();
    let larvik: BTreeSet<String> = demo.events(crate::support::LARVIK).await.into_iter().map(|(_, s)| s).collect();
    assert!(bergen.is_disjoint(&larvik), "each municipality sees its own devices only");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_feed_the_demo_devices_are_ready_and_only_messages_sent_to_them_arrive() {
    let demo = DemoServer::start(velferd::DemoMode::Devices).await;
    assert!(demo.feed.is_none());
    // With the feed, its first message is stored before the start returns; without it, nothing.
    assert_eq!(demo.events(crate::support::LARVIK).await, vec![]);
    // The devices are registered and the adapters active: one message of our own arrives.
    let base = format!("http://{}", demo.server.as_ref().unwrap().addr);
    let supplier = {
        let query = "{ organizations(first: 100, filter: { kind: SUPPLIER }) { nodes { id name } } }";
        let orgs = crate::wire::graphql(&demo.client, &base, None, query, json!({})).await;
        let nodes = orgs["data"]["organizations"]["nodes"].as_array().unwrap().clone();
        let dignio = nodes.iter().find(|n| n["name"] == "Dignio AS").unwrap_or_else(|| panic!("{orgs}"));
        velferd::ids::row_id(dignio["id"].as_str().unwrap(), velferd::ids::NodeType::Organization).unwrap()
    };
    let token =
        demo.signer.mint("test", OrgRef::Id(supplier), BTreeSet::from([Role::Integration]), Duration::from_secs(600));
    let alarm = "<mrq><ref>own-1</ref><cid>SA-7734001</cid><mty>ME</mty><stc>001</stc></mrq>";
    let reply = crate::wire::ingest(&demo.client, &base, &token, "reference-alarm", "application/xml", alarm).await;
    assert_eq!(reply.status(), 200, "{}", reply.text().await.unwrap());
    assert_eq!(demo.events(crate::support::LARVIK).await, vec![("alarm-button".to_string(), "SA-7734001".to_string())]);
    demo.stop().await;
}

#[test]
fn shell_words_keep_quoted_names_whole_and_drop_comments() {
    assert_eq!(
        shell_words(r#"cargo run -q -- token --org-name "Bø kommune (Telemark)" --role case_worker   # Bø"#),
        ["cargo", "run", "-q", "--", "token", "--org-name", "Bø kommune (Telemark)", "--role", "case_worker"]
    );
    let block = "```sh\ncargo run -q -- token --org 918082956 --role case_worker\nvelferd token --org-name X --role admin\nvelferd schema\n```\nvelferd token --org 1 --role admin\n";
    assert_eq!(
        token_commands(block),
        [vec!["--org", "918082956", "--role", "case_worker"], vec!["--org-name", "X", "--role", "admin"]]
    );
}

/// `velferd serve --demo` with and without `--no-demo-feed`, as the README runs it: the feed's
/// first message is stored before the address is printed, so the events a case worker sees at
/// that moment tell whether the feed runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_demo_says_whether_the_feed_runs_and_no_demo_feed_keeps_it_off() {
    use std::io::{BufRead, BufReader};
    for (flags, expected) in
        [(&["serve", "--demo", "--no-demo-feed"][..], "demo feed: off"), (&["serve", "--demo"][..], "demo feed: on")]
    {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("velferd.db").display());
        let mut child = velferd(&url)
            .env("VELFERD_BIND", "127.0.0.1:0")
            .args(flags)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines_rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
            let mut head = Vec::new();
            for line in lines.by_ref() {
                let done = line.starts_with("demo feed:");
                head.push(line);
                if done {
                    break;
                }
            }
            let _ = lines_tx.send(head);
            // Keep draining, so the server never writes to a closed pipe.
            for _ in lines {}
        });
        let head = lines_rx.await.unwrap();
        let base = head[0].strip_prefix("listening on ").unwrap_or_else(|| panic!("{head:?}")).to_string();
        assert!(head.last().is_some_and(|l| l.starts_with(expected)), "{flags:?}: {head:?}");
        let printed = {
            let settings = Settings::from_pairs([("VELFERD_JWT_SECRET", SECRET)]).unwrap();
            let signer = TokenSigner::new(&settings.jwt).unwrap();
            let token = signer.mint(
                "test",
                OrgRef::Number(crate::support::LARVIK.parse().unwrap()),
                BTreeSet::from([Role::CaseWorker]),
                Duration::from_secs(600),
            );
            let client = crate::support::http_client().build().unwrap();
            let query = "{ deviceEvents(first: 1) { totalCount } }";
            let body = crate::wire::graphql(&client, &base, Some(&token), query, json!({})).await;
            body["data"]["deviceEvents"]["totalCount"].as_i64().unwrap_or_else(|| panic!("{body}"))
        };
        if expected.ends_with("off") {
            assert_eq!(printed, 0, "{flags:?}: no feed, no events");
        } else {
            assert!(printed > 0, "{flags:?}: the feed's first message is stored before the address is printed");
        }
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
        assert!(status.success(), "{flags:?}: {status:?}");
    }
}
