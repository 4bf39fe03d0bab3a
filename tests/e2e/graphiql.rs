//! GraphiQL served whole by Velferd: the page links only the server's own files, they answer
//! with their types and caching, a missing install gives a plain page saying what to run, and
//! in headless Chromium (Debian's `chromium`) the page renders, runs its starting query and a
//! signed-in subscription, with no request leaving the server.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use velferd::auth::Role;
use velferd::http::graphiql;

use crate::devices::{ALARM, Fleet, ingest, live_reference_adapters};
use crate::support::{Backend, Options, TestApp, first_error_code};

/// Whether GraphiQL's packages are installed where the test servers look (the default
/// `VELFERD_GRAPHIQL_DIR`). Outside CI a test that needs them is skipped, saying so; in CI
/// (`CI` set) their absence fails it: `.ci/run` installs them.
fn packages_installed(test: &str) -> bool {
    let probe = std::path::Path::new(velferd::config::DEFAULT_GRAPHIQL_DIR).join("graphiql/graphiql.min.js");
    if probe.exists() {
        return true;
    }
    let why = format!(
        "{test}: GraphiQL's packages are not installed ({} missing); run `{}`",
        probe.display(),
        graphiql::INSTALL_COMMAND
    );
    assert!(std::env::var_os("CI").is_none(), "{why} (CI must run them: .ci/run installs them)");
    eprintln!("skipped {why}");
    false
}

/// The `src` and `href` values of `html`.
fn links(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (start, _) in html.match_indices(attribute) {
            let rest = &html[start + attribute.len()..];
            found.push(rest[..rest.find('"').expect("a closed attribute")].to_string());
        }
    }
    found
}

/// Addresses of the CDNs GraphiQL's own examples load it from, and of web fonts.
const CDN_ADDRESSES: &[&str] = &[
    "://unpkg.com",
    "://cdn.jsdelivr.net",
    "://cdnjs.cloudflare.com",
    "://esm.sh",
    "://fonts.googleapis.com",
    "://fonts.gstatic.com",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_links_only_the_servers_own_files_which_answer_with_their_types_and_caching() {
    if !packages_installed("the_page_links_only_the_servers_own_files") {
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await;
    let page = app.client.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert_eq!(policy, graphiql::CONTENT_SECURITY_POLICY);
    assert!(!policy.contains("http") && !policy.contains('*') && policy.contains("script-src 'self';"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(!html.contains("://"), "the page names no other origin: {html}");
    assert!(html.contains("<title>Velferd GraphiQL</title>"), "{html}");
    assert!(!html.contains("Loading...") && !html.contains("<script>"), "no inline script: {html}");

    let links = links(&html);
    assert_eq!(links.len(), 1 + 2 + 4, "the icon, two stylesheets, four scripts: {links:?}");
    for link in links {
        if link == "data:," {
            continue;
        }
        assert!(link.starts_with(&format!("{}/", graphiql::ASSETS_PATH)), "{link}");
        let response = app.client.get(app.url(&link)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{link}");
        let kind = if link.contains(".css?") { "text/css; charset=utf-8" } else { "text/javascript; charset=utf-8" };
        assert_eq!(response.headers()["content-type"], kind, "{link}");
        assert_eq!(response.headers()["cache-control"], "public, max-age=31536000, immutable", "{link}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff", "{link}");
        let etag = response.headers()["etag"].clone();
        let body = response.text().await.unwrap();
        for cdn in CDN_ADDRESSES {
            assert!(!body.contains(cdn), "{link} loads from {cdn}");
        }
        if kind.starts_with("text/css") {
            for (at, _) in body.match_indices("url(") {
                let target = body[at + 4..].trim_start_matches(['"', '\'']);
                assert!(target.starts_with("data:"), "{link} fetches {}", &target[..target.len().min(60)]);
            }
        }
        if link.contains("/react") {
            assert!(body.contains(".production.min.js") && !body.contains(".development.js"), "{link}");
        }

        // Asked again by its ETag: not sent again. Without the page's version: revalidated.
        let unversioned = link.split('?').next().unwrap();
        let again = app.client.get(app.url(unversioned)).header("if-none-match", etag).send().await.unwrap();
        assert_eq!(again.status(), 304, "{link}");
        assert_eq!(again.headers()["cache-control"], "no-cache", "{link}");
    }
    let unknown =
        app.client.get(app.url(&format!("{}/graphiql.min.js.map", graphiql::ASSETS_PATH))).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let outside =
        app.client.get(app.url(&format!("{}/..%2Fpackage.json", graphiql::ASSETS_PATH))).send().await.unwrap();
    assert_eq!(outside.status(), 404, "only the listed files are served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_packages_the_page_names_what_is_missing_and_the_command_that_installs_it() {
    let empty = tempfile::tempdir().unwrap();
    let options =
        Options { pairs: vec![("VELFERD_GRAPHIQL_DIR", empty.path().display().to_string())], ..Options::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let page = app.client.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(policy.starts_with("default-src 'none';") && !policy.contains("script-src"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(html.contains(graphiql::INSTALL_COMMAND), "{html}");
    for file in [
        "graphiql/graphiql.min.js",
        "graphiql/graphiql.min.css",
        "react/umd/react.production.min.js",
        "react-dom/umd/react-dom.production.min.js",
    ] {
        assert!(html.contains(&empty.path().join(file).display().to_string()), "names {file}: {html}");
    }
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("://"), "{html}");
    let script =
        app.client.get(app.url(&format!("{}/velferd-graphiql.js", graphiql::ASSETS_PATH))).send().await.unwrap();
    assert_eq!(script.status(), 404, "no file of a page that is not served");
    // The API itself does not need GraphiQL.
    let (status, body) = app.graphql_raw(None, "{ viewer { authenticated } }", json!({})).await;
    assert_eq!((status, &body["data"]["viewer"]["authenticated"]), (200, &json!(false)), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_serves_no_graphiql_file() {
    let fixture = format!("{}/../tests/e2e/fixtures/rs256-public.pem", env!("CARGO_MANIFEST_DIR"));
    let production = Options {
        pairs: vec![
            ("VELFERD_ENV", "production".into()),
            ("VELFERD_JWT_ALGORITHM", "RS256".into()),
            ("VELFERD_JWT_PUBLIC_KEY_FILE", fixture),
            ("VELFERD_AUDIT_KEY", "an-audit-key-of-at-least-32-bytes-for-tests".into()),
        ],
        demo: false,
    };
    let app = TestApp::spawn_with(Backend::Sqlite, production).await.unwrap();
    for path in ["/graphql".to_string(), format!("{}/velferd-graphiql.js", graphiql::ASSETS_PATH)] {
        let response = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
}

/// The starting tabs are queries of this schema: the overview runs; the alert subscription
/// validates once the schema has `alertRaised` (a subscription sent over POST is refused after
/// validation, so any refusal but a validation failure means it is valid).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_starting_tabs_are_valid_queries_of_the_schema() {
    let app = TestApp::spawn_with(Backend::Sqlite, Options { demo: true, ..Options::default() }).await.unwrap();
    let token = app.token(crate::support::LARVIK, &[Role::ProcurementOfficer]);
    let data = app.graphql(Some(&token), graphiql::OVERVIEW_TAB, json!({})).await;
    assert!(data["procurements"]["totalCount"].as_u64().unwrap() > 0, "{data}");
    assert!(graphiql::ALERTS_TAB.contains("subscription Alerts") && graphiql::OVERVIEW_TAB.contains("query Overview"));
    if velferd::graphql::sdl().contains("alertRaised") {
        let (_, body) = app.graphql_raw(Some(&token), graphiql::ALERTS_TAB, json!({})).await;
        assert_ne!(first_error_code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
    } else {
        eprintln!("the schema has no alertRaised yet: the Alerts tab is not validated");
    }
}

/// Headless Chromium, stopped when dropped, with its DevTools socket.
struct Chromium {
    child: Child,
    _profile: tempfile::TempDir,
    devtools: String,
}

impl Chromium {
    /// Starts `chromium` (`None` outside CI when it is not installed; in CI its absence fails).
    /// Every host name but 127.0.0.1 resolves to nothing, so a request meant for anywhere else
    /// could not succeed, and fewer of Chromium's own background requests run.
    fn start(test: &str) -> Option<Chromium> {
        let available = Command::new("chromium").arg("--version").output().is_ok_and(|o| o.status.success());
        if !available {
            let why = format!("{test}: Debian's `chromium` is not installed (apt-get install -y chromium)");
            assert!(std::env::var_os("CI").is_none(), "{why} (CI must run it: .ci/run installs it)");
            eprintln!("skipped {why}");
            return None;
        }
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--disable-gpu",
                "--no-sandbox",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        // It says where DevTools listen on stderr; keep draining it so it never blocks.
        let stderr = child.stderr.take().unwrap();
        let (found, devtools) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = found.send(url.trim().to_string());
                }
            }
        });
        let devtools = devtools.recv_timeout(Duration::from_secs(60)).expect("chromium names its DevTools address");
        Some(Chromium { child, _profile: profile, devtools })
    }

    /// The DevTools socket of the page Chromium opened.
    async fn page(&self) -> Cdp {
        let base = self.devtools.strip_prefix("ws://").unwrap().split('/').next().unwrap().to_string();
        let client = crate::support::http_client().build().unwrap();
        let targets: Value = client.get(format!("http://{base}/json/list")).send().await.unwrap().json().await.unwrap();
        let page = targets.as_array().unwrap().iter().find(|t| t["type"] == "page").expect("a page target");
        let url = page["webSocketDebuggerUrl"].as_str().unwrap();
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("DevTools socket");
        Cdp { ws, next_id: 0, events: Vec::new() }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DevTools-protocol session with one page; events are kept as they arrive.
struct Cdp {
    ws: crate::support::Socket,
    next_id: u64,
    events: Vec<Value>,
}

impl Cdp {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "id": id, "method": method, "params": params });
        self.ws.send(Message::text(message.to_string())).await.unwrap();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(60), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no answer within 60 s"))
                .expect("DevTools socket open")
                .unwrap();
            let Message::Text(text) = frame else { continue };
            let message: Value = serde_json::from_str(&text).unwrap();
            if message["id"] == id {
                assert!(message["error"].is_null(), "{method}: {message}");
                return message["result"].clone();
            }
            self.events.push(message);
        }
    }

    /// The value of a JavaScript expression in the page (awaited when a promise).
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }))
            .await;
        assert!(result["exceptionDetails"].is_null(), "{expression}: {result}");
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` until it is a non-empty string; gives up after 60 s.
    async fn wait_for(&mut self, what: &str, expression: &str) -> String {
        for _ in 0..600 {
            if let Value::String(value) = self.eval(expression).await
                && !value.is_empty()
            {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let page = self.eval("document.body.innerText").await;
        panic!("{what}: not within 60 s; the page shows {page}");
    }

    /// Events of `method` received so far.
    fn events_of(&self, method: &str) -> impl Iterator<Item = &Value> {
        self.events.iter().filter(move |event| event["method"] == method).map(|event| &event["params"])
    }
}

/// Sets the CodeMirror editor found by `selector` to `text`.
fn set_editor(selector: &str, text: &str) -> String {
    format!("document.querySelector({}).CodeMirror.setValue({}); ''", json!(selector), json!(text))
}

/// The text of the response pane when it contains `needle`, else the empty string.
fn response_containing(needle: &str) -> String {
    format!(
        "(() => {{ const text = document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue(); return text.includes({}) ? text : ''; }})()",
        json!(needle)
    )
}

/// "yes" when the run button would run, not stop, an operation.
const IDLE: &str =
    "document.querySelector('.graphiql-execute-button').getAttribute('aria-label').startsWith('Execute') ? 'yes' : ''";
/// "yes" when the active tab is titled `name`.
fn active_tab_named(name: &str) -> String {
    format!(
        "document.querySelector('.graphiql-tab-active .graphiql-tab-button').textContent === {} ? 'yes' : ''",
        json!(name)
    )
}

const RUN: &str = "document.querySelector('.graphiql-execute-button').click(); ''";
const QUERY_EDITOR: &str = ".graphiql-query-editor .CodeMirror";
const HEADERS_EDITOR: &str =
    "section.graphiql-editor-tool[aria-label='Headers'] .graphiql-editor:not(.hidden) .CodeMirror";

/// Must show 6: in headless Chromium the page renders GraphiQL (not "Loading…") on Velferd's
/// tabs, runs the overview, and runs a subscription over graphql-transport-ws that is refused
/// anonymously and hears a device event once the token is in the Headers editor — and every
/// request the page made, the WebSocket included, went to the server itself, with no error
/// (a Content-Security-Policy violation included) in the console.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_works_in_headless_chromium_with_no_request_leaving_the_server() {
    let test = "graphiql_works_in_headless_chromium";
    if !packages_installed(test) {
        return;
    }
    let Some(chromium) = Chromium::start(test) else { return };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let fleet = Fleet::new(&app).await;
    live_reference_adapters(&app, &fleet).await;

    let mut page = chromium.page().await;
    for domain in ["Network.enable", "Log.enable", "Runtime.enable", "Page.enable"] {
        page.call(domain, json!({})).await;
    }
    let origin = format!("http://{}", app.addr);
    page.call("Page.navigate", json!({ "url": format!("{origin}/graphql") })).await;

    let title = page
        .wait_for(
            "GraphiQL renders",
            "document.querySelector('.graphiql-container .graphiql-query-editor .CodeMirror') ? document.title : ''",
        )
        .await;
    assert_eq!(title, "Velferd GraphiQL");
    let shown = page.eval("document.getElementById('graphiql').innerText").await;
    assert!(!shown.as_str().unwrap().contains("Loading"), "{shown}");
    let tabs = page.eval("[...document.querySelectorAll('.graphiql-tab-button')].map(tab => tab.textContent)").await;
    assert_eq!(tabs, json!(["Overview", "Alerts"]));
    let logo = page.eval("document.querySelector('.graphiql-logo').innerText").await;
    assert_eq!(logo, "Velferd GraphiQL");
    let query = page.eval(&format!("document.querySelector({}).CodeMirror.getValue()", json!(QUERY_EDITOR))).await;
    assert_eq!(query, graphiql::OVERVIEW_TAB, "the first tab is the overview, with the note on the header");
    let headers_shown = page.eval(&format!("document.querySelector({}) !== null", json!(HEADERS_EDITOR))).await;
    assert_eq!(headers_shown, true, "the Headers editor is open");

    // The overview runs over HTTP.
    page.eval(RUN).await;
    page.wait_for("the overview answers", &response_containing("\"totalCount\"")).await;

    // The settings dialog opens (and may style itself) within the page's policy.
    page.eval("document.querySelector('[aria-label=\"Open settings dialog\"]').click(); ''").await;
    page.wait_for("the settings dialog opens", "document.querySelector('[role=dialog]') ? 'yes' : ''").await;
    page.eval("document.querySelector('[role=dialog] .graphiql-dialog-close').click(); ''").await;
    page.wait_for("the settings dialog closes", "document.querySelector('[role=dialog]') ? '' : 'yes'").await;

    // A subscription over the page's WebSocket: anonymous, refused with its code...
    let live =
        "subscription Live { deviceEventReceived { sequence event { kind supplierEventId device { serial } } } }";
    page.eval(&set_editor(QUERY_EDITOR, live)).await;
    // GraphiQL reads the operation's name from the editor a moment later; run it after that.
    page.wait_for("the tab is named after the subscription", &active_tab_named("Live")).await;
    page.eval(RUN).await;
    page.wait_for("the anonymous subscription is refused", &response_containing("UNAUTHENTICATED")).await;
    // ...and with the case worker's token in the Headers editor, it hears their device's alarm.
    let header = json!({ "Authorization": format!("Bearer {}", fleet.case_worker_token(&app)) }).to_string();
    page.eval(&set_editor(HEADERS_EDITOR, &header)).await;
    // Run again once the refused subscription has ended (while one runs, the button stops it).
    page.wait_for("the refused subscription ends", IDLE).await;
    page.eval(RUN).await;
    // The socket opens while alarms arrive: one new alarm at a time, until the page shows one.
    let integration = fleet.integration_token(&app);
    let mut heard = String::new();
    for n in 0..100 {
        let alarm = format!(
            "<mrq><ver>01.00</ver><ref>A-95{n:04}</ref><cid>SA-7734001</cid><dty>005</dty><mty>ME</mty><stc>001</stc><lco>010</lco></mrq>"
        );
        let (status, reply) = ingest(&app, &integration, ALARM, "application/xml", alarm.into_bytes()).await;
        assert_eq!((status, reply["accepted"].as_u64()), (200, Some(1)), "{reply}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        if let Value::String(text) = page.eval(&response_containing("\"deviceEventReceived\"")).await {
            heard = text;
        }
        if !heard.is_empty() {
            break;
        }
    }
    let heard: Value = serde_json::from_str(&heard).unwrap_or_else(|e| panic!("{e}: {heard}"));
    let event = &heard["data"]["deviceEventReceived"]["event"];
    assert_eq!(
        (event["kind"].as_str(), event["device"]["serial"].as_str()),
        (Some("alarm-button"), Some("SA-7734001")),
        "{heard}"
    );
    assert!(event["supplierEventId"].as_str().unwrap().starts_with("A-95"), "{heard}");

    // Everything the page asked for came from the server.
    let mut requests: Vec<String> = page
        .events_of("Network.requestWillBeSent")
        .map(|params| params["request"]["url"].as_str().unwrap().to_string())
        .collect();
    requests
        .extend(page.events_of("Network.webSocketCreated").map(|params| params["url"].as_str().unwrap().to_string()));
    assert!(
        requests.iter().any(|url| url.starts_with(&format!("{origin}{}/graphiql.min.js?v=", graphiql::ASSETS_PATH))),
        "{requests:#?}"
    );
    let socket = format!("ws://{}/graphql/ws", app.addr);
    assert!(requests.contains(&socket), "the subscription went over {socket}: {requests:#?}");
    let elsewhere: Vec<_> = requests
        .iter()
        .filter(|url| !url.starts_with(&format!("{origin}/")) && **url != socket && !url.starts_with("data:"))
        .collect();
    assert!(elsewhere.is_empty(), "requests left the server: {elsewhere:#?}");
    let failed: Vec<_> = page.events_of("Network.loadingFailed").collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let errors: Vec<_> = page
        .events_of("Log.entryAdded")
        .filter(|params| params["entry"]["level"] == "error")
        .chain(page.events_of("Runtime.exceptionThrown"))
        .chain(page.events_of("Runtime.consoleAPICalled").filter(|params| params["type"] == "error"))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}
