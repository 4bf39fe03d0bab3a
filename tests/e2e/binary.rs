//! The `velferd` binary as an operator runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::SECRET;

fn velferd() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_velferd"));
    // Start from a clean slate: only what each test sets.
    for (name, _) in std::env::vars() {
        if name.starts_with("VELFERD_") {
            command.env_remove(name);
        }
    }
    command.env("VELFERD_LOG", "warn");
    command
}

/// Runs `velferd serve` with `env` and expects it to refuse to start.
pub(crate) fn refused_start(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = velferd().current_dir(dir.path()).args(["serve"]).envs(env.iter().copied()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(2), "{env:?}: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{env:?}: {stderr}");
    stderr
}

#[test]
fn bad_configuration_stops_the_start_with_a_message_naming_the_setting() {
    let stderr = refused_start(&[("VELFERD_JWT_SECRET", SECRET), ("VELFERD_DATABASE_URL", "postgres//nowhere")]);
    assert!(stderr.contains("VELFERD_DATABASE_URL"), "{stderr}");

    let started = std::time::Instant::now();
    let stderr = refused_start(&[
        ("VELFERD_JWT_SECRET", SECRET),
        ("VELFERD_DATABASE_URL", "postgres://postgres@127.0.0.1:1/velferd"),
    ]);
    assert!(stderr.contains("VELFERD_DATABASE_URL") && stderr.contains("cannot connect"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));

    let stderr = refused_start(&[]);
    assert!(stderr.contains("VELFERD_JWT_SECRET is required"), "{stderr}");

    let stderr = refused_start(&[("VELFERD_JWT_ALGORITHM", "RS256")]);
    assert!(stderr.contains("VELFERD_JWT_PUBLIC_KEY_FILE is required"), "{stderr}");

    let stderr =
        refused_start(&[("VELFERD_JWT_ALGORITHM", "RS256"), ("VELFERD_JWT_PUBLIC_KEY_FILE", "/nonexistent.pem")]);
    assert!(stderr.contains("VELFERD_JWT_PUBLIC_KEY_FILE") && stderr.contains("cannot read"), "{stderr}");

    let stderr = refused_start(&[("VELFERD_JWT_SECRET", SECRET), ("VELFERD_BIND", "everywhere")]);
    assert!(stderr.contains("VELFERD_BIND"), "{stderr}");
}

#[test]
fn a_config_file_is_read_and_the_environment_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("velferd.toml");
    std::fs::write(&file, format!("jwt_secret = \"{SECRET}\"\njwt_issuer = \"from-file\"\n")).unwrap();
    let output = velferd()
        .args(["--config", file.to_str().unwrap(), "token", "--org", "974760673", "--role", "admin"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout).unwrap();
    let claims: Value = jsonwebtoken::dangerous::insecure_decode(token.trim()).map(|d| d.claims).unwrap();
    assert_eq!(claims["iss"], "from-file");
    assert_eq!(claims["org"], "974760673");
    assert!(claims["jti"].as_str().is_some_and(|id| !id.is_empty()), "every token gets an id: {claims}");

    std::fs::write(&file, "jwt_secrett = \"typo\"\n").unwrap();
    let output = velferd().args(["--config", file.to_str().unwrap(), "serve"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown setting `jwt_secrett`"));
}

#[test]
fn token_command_refuses_bad_arguments() {
    for (args, fragment) in [
        (vec!["--org", "123", "--role", "admin"], "--org"),
        (vec!["--org", "974760673", "--role", "root"], "unknown role"),
        (vec!["--org", "974760673", "--role", "admin", "--ttl", "0s"], "--ttl"),
        (vec!["--oid", "bm9wZQ", "--role", "admin"], "--oid"),
        (vec!["--org", "974760673", "--oid", "T3JnYW5pemF0aW9uOjE", "--role", "admin"], "cannot be used with"),
        (vec!["--role", "admin"], "--org"),
    ] {
        let output = velferd().env("VELFERD_JWT_SECRET", SECRET).arg("token").args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains(fragment), "{args:?}");
    }
}

#[test]
fn token_command_names_an_organisation_by_id() {
    // `Organization:1`, as the API returns its id.
    let output = velferd()
        .env("VELFERD_JWT_SECRET", SECRET)
        .args(["token", "--oid", "T3JnYW5pemF0aW9uOjE", "--role", "advisor"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout).unwrap();
    let claims: Value = jsonwebtoken::dangerous::insecure_decode(token.trim()).map(|d| d.claims).unwrap();
    assert_eq!((&claims["oid"], claims.get("org")), (&json!("T3JnYW5pemF0aW9uOjE"), None), "{claims}");
}

#[test]
fn schema_command_prints_the_live_sdl() {
    let output = velferd().arg("schema").output().unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8(output.stdout).unwrap(), velferd::graphql::sdl());
}

/// The README's run command, in miniature: `velferd serve --demo` on a fresh SQLite file prints
/// its address, serves GraphiQL and the demo organisations, and answers a minted token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_demo_data_prints_its_address_and_serves_graphiql() {
    let dir = tempfile::tempdir().unwrap();
    let migrate = velferd().current_dir(dir.path()).env("VELFERD_JWT_SECRET", SECRET).arg("migrate").output().unwrap();
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));

    let mut child = velferd()
        .current_dir(dir.path())
        .env("VELFERD_JWT_SECRET", SECRET)
        .env("VELFERD_BIND", "127.0.0.1:0")
        .args(["serve", "--demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Read the first line, then keep draining stdout so the server never writes to a closed pipe.
    let (first_line, line_received) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = first_line.send(lines.next().and_then(Result::ok).unwrap_or_default());
        for _ in lines {}
    });
    let line = line_received.await.unwrap();
    let base = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {line:?}")).to_string();
    assert!(!base.ends_with(":0"), "the real port is printed: {base}");
    assert!(dir.path().join("velferd.db").exists(), "the default database is a file in the working directory");

    let client = crate::support::http_client().build().unwrap();
    let page = client.get(format!("{base}/graphql")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().to_lowercase().contains("graphiql"));

    let body = graphql(&client, &base, None, "{ organizations(filter: { kind: MUNICIPALITY }) { totalCount } suppliers: organizations(filter: { kind: SUPPLIER }) { nodes { name } } }").await;
    assert_eq!(
        body["data"]["organizations"]["totalCount"],
        velferd::demo::KNOWN_LARVIK_MEMBERS + 2 + 6,
        "the Larvik municipalities, Asker, Bærum and six from the learning demo: {body}"
    );
    let suppliers = body["data"]["suppliers"]["nodes"].to_string();
    assert!(suppliers.contains("Dignio") && suppliers.contains("Evondos"), "{suppliers}");

    let token = velferd()
        .env("VELFERD_JWT_SECRET", SECRET)
        .args(["token", "--org", "918082956", "--role", "procurement_officer,case_worker", "--ttl", "10m"])
        .output()
        .unwrap();
    let token = String::from_utf8(token.stdout).unwrap();
    let body = graphql(&client, &base, Some(token.trim()), "{ viewer { roles orgNumber } }").await;
    assert_eq!(
        body["data"]["viewer"],
        json!({ "roles": ["PROCUREMENT_OFFICER", "CASE_WORKER"], "orgNumber": "918082956" })
    );

    // The demo procurements: Larvik's in implementation with awards 2 and 2, Asker and Bærum's
    // in dialogue, and the one the Lillestrøm municipalities started from Larvik's.
    let query = "{ procurements(orderBy: { field: CREATED_AT }) { nodes { phase
            totals { municipalities counties municipalitiesWithUnknownPopulation }
            awards { nodes { supplier { name } } } solutionSketches { totalCount }
            frameworkAgreements { nodes { remainingVolume } } } } }";
    let body = graphql(&client, &base, Some(token.trim()), query).await;
    let procurements = body["data"]["procurements"]["nodes"].as_array().unwrap_or_else(|| panic!("{body}"));
    assert_eq!(procurements.len(), 3, "Larvik's, Asker and Bærum's, and the Lillestrøm reuse: {body}");
    let larvik = &procurements[0];
    assert_eq!(larvik["phase"], "IMPLEMENTATION");
    assert_eq!(larvik["totals"]["municipalities"], velferd::demo::KNOWN_LARVIK_MEMBERS);
    assert_eq!(larvik["totals"]["counties"], 7);
    let winners: Vec<&str> =
        larvik["awards"]["nodes"].as_array().unwrap().iter().map(|a| a["supplier"]["name"].as_str().unwrap()).collect();
    assert_eq!(winners, ["Dignio AS", "Dignio AS", "Evondos Oy", "Evondos Oy"]);
    assert_eq!(larvik["frameworkAgreements"]["nodes"][0]["remainingVolume"], 2000 - 325);
    assert_eq!(procurements[1]["phase"], "DIALOGUE");
    assert_eq!(
        procurements[1]["solutionSketches"]["totalCount"], 0,
        "an organisation outside the procurement sees no sketches"
    );

    // SIGTERM stops it cleanly.
    send_sigterm(child.id());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "{status:?}");
}

/// Posts `query` to the running binary's GraphQL endpoint, signed in with `token` when given.
async fn graphql(client: &reqwest::Client, base: &str, token: Option<&str>, query: &str) -> Value {
    let mut request = client.post(format!("{base}/graphql")).json(&json!({ "query": query }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().json().await.unwrap()
}

fn send_sigterm(pid: u32) {
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success());
}
