//! `/graphql/ws` is bounded like the HTTP endpoints: a socket lives no longer than its token,
//! holds a bounded number of operations and messages of bounded size, a subject opens a bounded
//! number of sockets, and browser pages of foreign sites cannot open one. Real sockets on
//! 127.0.0.1.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use velferd::auth::{Role, TokenSigner};

use crate::support::{
    Backend, Options, Socket, TestApp, first_error_code, graphql_socket, on_both_backends, subscribe,
};

const CREATE: &str = "mutation($input: OrganizationCreateInput!) { organizationCreate(input: $input) { organization { id } userErrors { code } } }";

async fn spawn(settings: &[(&'static str, &str)]) -> TestApp {
    let pairs = settings.iter().map(|(name, value)| (*name, value.to_string())).collect();
    TestApp::spawn_with(Backend::Sqlite, Options { pairs, ..Options::default() }).await.expect("SQLite is always there")
}

/// A token of `subject` of the platform operator (whose `admin` counts) valid for `ttl`, and its
/// `exp` as a time.
fn token_for(app: &TestApp, subject: &str, roles: &[Role], ttl: Duration) -> (String, SystemTime) {
    let signer = TokenSigner::new(&app.settings.jwt).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let org: velferd::organizations::OrgNumber = crate::support::OPERATOR_ORG.parse().unwrap();
    let token = signer.mint(subject, org, roles.iter().copied().collect::<BTreeSet<_>>(), ttl);
    (token, UNIX_EPOCH + Duration::from_secs(now + ttl.as_secs()))
}

/// Opens `/graphql/ws` (graphql-transport-ws) with an `Origin` header when given; the server's
/// HTTP status when it refuses the upgrade.
pub(crate) async fn open(app: &TestApp, origin: Option<&str>) -> Result<Socket, u16> {
    let mut request = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    if let Some(origin) = origin {
        request.headers_mut().insert("Origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("connect: {e}"),
    }
}

pub(crate) async fn send_json(ws: &mut Socket, message: Value) {
    ws.send(Message::text(message.to_string())).await.unwrap();
}

/// What the server says next: a JSON message, or the close frame's code and reason.
#[derive(Debug)]
pub(crate) enum Heard {
    Text(Value),
    Close(u16, String),
}

/// Within 10 s in all: the server's pings do not extend the wait.
pub(crate) async fn next_heard(ws: &mut Socket) -> Heard {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let message = tokio::time::timeout_at(deadline, ws.next()).await.expect("a message within 10 s");
        match message {
            Some(Ok(Message::Text(text))) => return Heard::Text(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(Some(frame)))) => return Heard::Close(frame.code.into(), frame.reason.to_string()),
            Some(Ok(Message::Close(None))) => return Heard::Close(1005, String::new()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket failed before a close frame: {e}"),
            None => panic!("socket ended without a close frame"),
        }
    }
}

/// The next JSON message (a close frame fails the test).
async fn next_text(ws: &mut Socket) -> Value {
    match next_heard(ws).await {
        Heard::Text(message) => message,
        Heard::Close(code, reason) => panic!("closed {code}: {reason}"),
    }
}

/// The close frame the server sends next (any other message fails the test).
async fn next_close(ws: &mut Socket) -> (u16, String) {
    match next_heard(ws).await {
        Heard::Close(code, reason) => (code, reason),
        Heard::Text(message) => panic!("expected a close frame, got {message}"),
    }
}

/// Sends `connection_init` with `payload`; what the server answers.
pub(crate) async fn init(ws: &mut Socket, payload: Value) -> Heard {
    send_json(ws, json!({ "type": "connection_init", "payload": payload })).await;
    next_heard(ws).await
}

async fn signed_in(app: &TestApp, token: &str) -> Socket {
    graphql_socket(app, Some(token)).await
}

on_both_backends! {
    /// Identity is fixed at `connection_init`, but a mutation sent once the token has expired
    /// (here with no leeway) must not run: the operation is refused `UNAUTHENTICATED` or the
    /// socket is already closed 4403.
    async fn a_mutation_sent_after_the_token_expired_does_not_run(app) {
        let app = app.respawn_with(&[("VELFERD_JWT_LEEWAY_SECONDS", "0")]).await;
        let (token, expires) = token_for(&app, "test-user", &[Role::Admin], Duration::from_secs(2));
        let mut ws = signed_in(&app, &token).await;
        tokio::time::sleep(expires.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_millis(200)).await;
        let input = json!({ "kind": "SUPPLIER", "name": "Evondos Oy", "orgNumber": crate::support::SUPPLIER_ORG });
        let before = app.fingerprint().await;
        // The socket may be closed already; then the send fails or is ignored.
        let _ = ws
            .send(Message::text(json!({ "id": "1", "type": "subscribe", "payload": { "query": CREATE, "variables": { "input": input } } }).to_string()))
            .await;
        match next_heard(&mut ws).await {
            Heard::Close(code, reason) => assert_eq!((code, reason.as_str()), (4403, "token expired")),
            Heard::Text(reply) => {
                assert_eq!(reply["type"], "next", "{reply}");
                assert_eq!(first_error_code(&reply["payload"]), "UNAUTHENTICATED", "{reply}");
                assert_eq!(reply["payload"]["errors"][0]["message"], "token expired", "{reply}");
                assert!(reply["payload"]["data"].is_null(), "{reply}");
            }
        }
        before.assert_unchanged(&app.fingerprint().await);
        let data = app
            .graphql(Some(&app.admin_token()), "query($n: String!) { organization(orgNumber: $n) { id } }", json!({ "n": crate::support::SUPPLIER_ORG }))
            .await;
        assert_eq!(data["organization"], Value::Null, "the mutation ran after the token expired");
    }
}

/// A live stream ends with the token that opened it: the socket closes 4403 at `exp` plus the
/// leeway (none here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_subscription_is_closed_when_its_token_expires() {
    let app = spawn(&[("VELFERD_JWT_LEEWAY_SECONDS", "0")]).await;
    let (token, _) = token_for(&app, "test-user", &[Role::Admin], Duration::from_secs(2));
    let mut ws = signed_in(&app, &token).await;
    subscribe(&mut ws, "1", "subscription { organizationCreated { name } }", json!({})).await;
    assert_eq!(next_close(&mut ws).await, (4403, "token expired".to_string()));
}

/// One socket runs at most `VELFERD_WS_MAX_SUBSCRIPTIONS` operations; one more is answered
/// with a code and completed, and a completed one frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_past_the_cap_is_refused_with_a_code() {
    let app = spawn(&[("VELFERD_WS_MAX_SUBSCRIPTIONS", "2")]).await;
    let query = "subscription { organizationCreated { name } }";
    let mut ws = graphql_socket(&app, None).await;
    subscribe(&mut ws, "1", query, json!({})).await;
    subscribe(&mut ws, "2", query, json!({})).await;
    subscribe(&mut ws, "3", query, json!({})).await;
    let refused = next_text(&mut ws).await;
    assert_eq!((&refused["type"], &refused["id"]), (&json!("next"), &json!("3")), "{refused}");
    assert_eq!(first_error_code(&refused["payload"]), "TOO_MANY_SUBSCRIPTIONS", "{refused}");
    assert_eq!(next_text(&mut ws).await, json!({ "type": "complete", "id": "3" }));

    send_json(&mut ws, json!({ "type": "complete", "id": "1" })).await;
    subscribe(&mut ws, "4", query, json!({})).await;
    app.create_organization(
        json!({ "kind": "SUPPLIER", "name": "Evondos Oy", "orgNumber": crate::support::SUPPLIER_ORG }),
    )
    .await;
    let mut heard = BTreeSet::new();
    while heard.len() < 2 {
        let next = next_text(&mut ws).await;
        if next == json!({ "type": "complete", "id": "1" }) {
            continue; // async-graphql confirms the client's `complete`
        }
        assert_eq!(next["payload"]["data"]["organizationCreated"]["name"], "Evondos Oy", "{next}");
        heard.insert(next["id"].as_str().unwrap().to_string());
    }
    assert_eq!(heard, BTreeSet::from(["2".to_string(), "4".to_string()]));
}

/// A subject opens at most `VELFERD_WS_MAX_CONNECTIONS_PER_SUBJECT` sockets, whichever of its
/// tokens it uses; one more is closed 1013 (try again later), and a closed one frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_past_its_connection_cap_is_closed() {
    let app = spawn(&[("VELFERD_WS_MAX_CONNECTIONS_PER_SUBJECT", "2")]).await;
    let roles = [Role::CaseWorker];
    let (first_token, _) = token_for(&app, "kari", &roles, Duration::from_secs(600));
    let (refreshed, _) = token_for(&app, "kari", &roles, Duration::from_secs(900));
    let mut first = signed_in(&app, &first_token).await;
    let _second = signed_in(&app, &refreshed).await;

    let mut third = open(&app, None).await.unwrap();
    let heard = init(&mut third, json!({ "authorization": format!("Bearer {refreshed}") })).await;
    assert!(matches!(&heard, Heard::Close(1013, _)), "{heard:?}");

    // Another subject is not affected.
    let (other, _) = token_for(&app, "ola", &roles, Duration::from_secs(600));
    let _other = signed_in(&app, &other).await;

    // The server frees a slot when it has dropped the socket, just after the close handshake.
    first.close(None).await.unwrap();
    let mut attempts = 0;
    loop {
        let mut again = open(&app, None).await.unwrap();
        match init(&mut again, json!({ "authorization": format!("Bearer {first_token}") })).await {
            Heard::Text(ack) if ack["type"] == "connection_ack" => break,
            other if attempts < 50 => {
                assert!(matches!(other, Heard::Close(1013, _)), "{other:?}");
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("the closed socket's slot was never freed: {other:?}"),
        }
    }
}

/// A fragmented message is bounded by `VELFERD_MAX_BODY_BYTES` as a whole: the server closes
/// the socket with 1009 once the fragments pass it, without waiting for the last one (so it
/// never holds the whole message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_fragmented_message_closes_the_socket_with_1009_before_it_ends() {
    let cap = 4096;
    let app = spawn(&[("VELFERD_MAX_BODY_BYTES", "4096")]).await;
    let mut ws = graphql_socket(&app, None).await;
    let fragment = vec![b' '; 1024];
    let mut sent = 0;
    let mut first = true;
    // Twice the cap, and never the final fragment.
    while sent < 2 * cap {
        let opcode = if first { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Continue) };
        first = false;
        if ws.send(Message::Frame(Frame::message(fragment.clone(), opcode, false))).await.is_err() {
            break; // closed by the server already
        }
        sent += fragment.len();
    }
    let (code, reason) = next_close(&mut ws).await;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("4096"), "{reason}");
}

/// One frame larger than the cap is refused from its header, 1009 too; fragments within the cap
/// are put together and run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_past_the_cap_closes_with_1009_and_fragments_within_it_run() {
    let app = spawn(&[("VELFERD_MAX_BODY_BYTES", "4096")]).await;

    let mut ws = graphql_socket(&app, None).await;
    let padded = format!("{{ viewer {{ authenticated }} }}{}", " ".repeat(3000));
    let message = json!({ "id": "1", "type": "subscribe", "payload": { "query": padded } }).to_string().into_bytes();
    let parts: Vec<&[u8]> = message.chunks(1000).collect();
    for (i, part) in parts.iter().enumerate() {
        let opcode = if i == 0 { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Continue) };
        ws.send(Message::Frame(Frame::message(part.to_vec(), opcode, i + 1 == parts.len()))).await.unwrap();
    }
    let reply = next_text(&mut ws).await;
    assert_eq!(reply["payload"]["data"]["viewer"]["authenticated"], false, "{reply}");
    assert_eq!(next_text(&mut ws).await, json!({ "type": "complete", "id": "1" }));

    let big = json!({ "id": "2", "type": "subscribe", "payload": { "query": format!("{{ viewer {{ authenticated }} }}{}", " ".repeat(5000)) } });
    ws.send(Message::text(big.to_string())).await.unwrap();
    let (code, reason) = next_close(&mut ws).await;
    assert_eq!(code, 1009, "{reason}");
}

/// `authorization` in `connection_init` that is not a string is refused like a bad token
/// (4403), never read as "no token".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_string_authorization_is_refused_like_a_bad_token() {
    let app = spawn(&[]).await;
    for payload in [
        json!({ "authorization": 12345 }),
        json!({ "authorization": { "token": app.admin_token() } }),
        json!({ "authorization": [format!("Bearer {}", app.admin_token())] }),
        json!({ "authorization": null }),
        json!(format!("Bearer {}", app.admin_token())),
    ] {
        let mut ws = open(&app, None).await.unwrap();
        let heard = init(&mut ws, payload.clone()).await;
        assert!(matches!(&heard, Heard::Close(4403, _)), "{payload}: {heard:?}");
    }
    // A forged string token is refused the same way.
    let mut ws = open(&app, None).await.unwrap();
    let heard = init(&mut ws, json!({ "authorization": "Bearer forged" })).await;
    assert!(matches!(&heard, Heard::Close(4403, reason) if reason.contains("malformed")), "{heard:?}");
}

/// A page of a foreign site gets 403 before the upgrade; the server's own origin, the
/// configured ones and clients that send no `Origin` (not browsers) connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_page_of_a_foreign_origin_may_not_open_a_socket() {
    let app = spawn(&[("VELFERD_ALLOWED_ORIGINS", "https://portal.example.no")]).await;
    for foreign in
        ["https://evil.example", "https://portal.example.no.evil.example", "null", "http://portal.example.no"]
    {
        assert_eq!(open(&app, Some(foreign)).await.err(), Some(403), "{foreign}");
    }
    let own = format!("http://{}", app.addr);
    for allowed in [Some("https://portal.example.no"), Some("https://PORTAL.example.no"), Some(own.as_str()), None] {
        let mut ws = open(&app, allowed).await.unwrap_or_else(|status| panic!("{allowed:?}: {status}"));
        let heard = init(&mut ws, json!({})).await;
        assert!(matches!(&heard, Heard::Text(ack) if ack["type"] == "connection_ack"), "{allowed:?}: {heard:?}");
    }
}

/// A token revoked while its socket is open runs no further operation on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_on_a_socket_whose_token_was_revoked_is_refused() {
    let app = spawn(&[]).await;
    let (token, _) = token_for(&app, "leaky-robot", &[Role::Admin], Duration::from_secs(600));
    let mut ws = signed_in(&app, &token).await;
    let query = json!({ "id": "1", "type": "subscribe", "payload": { "query": "{ __typename }" } });
    send_json(&mut ws, query.clone()).await;
    assert_eq!(next_text(&mut ws).await["payload"]["data"]["__typename"], "Query");
    let revoke = "mutation($input: TokenRevokeInput!) { tokenRevoke(input: $input) { userErrors { code } } }";
    let input = json!({ "orgNumber": crate::support::OPERATOR_ORG, "subject": "leaky-robot" });
    let data = app.graphql(Some(&app.admin_token()), revoke, json!({ "input": input })).await;
    assert_eq!(data["tokenRevoke"]["userErrors"], json!([]));
    let before = app.fingerprint().await;
    let mut again = query;
    again["id"] = json!("2");
    send_json(&mut ws, again).await;
    let reply = loop {
        let reply = next_text(&mut ws).await;
        if reply["id"] == "2" && reply["type"] == "next" {
            break reply;
        }
    };
    assert_eq!(first_error_code(&reply["payload"]), "UNAUTHENTICATED", "{reply}");
    assert_eq!(reply["payload"]["errors"][0]["message"], "token revoked", "{reply}");
    before.assert_unchanged(&app.fingerprint().await);
}

/// A socket that never sends `connection_init` is closed with 4408 (graphql-transport-ws), so
/// idle upgrades cannot pile up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_never_initialises_is_closed_with_4408() {
    let app = spawn(&[]).await;
    let mut ws = open(&app, None).await.expect("upgraded");
    let started = std::time::Instant::now();
    let (code, reason) = next_close(&mut ws).await;
    assert_eq!((code, reason.as_str()), (4408, "connection initialisation timeout"));
    assert!(started.elapsed() >= Duration::from_secs(4), "closed before the client had time to initialise");
}
