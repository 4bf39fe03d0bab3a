//! GraphQL over WebSocket (`GET /graphql/ws`): async-graphql's protocol state machine
//! ([`async_graphql::http::WebSocket`]) behind a socket of our own, so that what one socket may
//! hold and how long it may live are bounded:
//!
//! * a frame and a message (fragmented or not) hold at most `VELFERD_MAX_BODY_BYTES`, like a
//!   POST body; past it the socket closes with 1009 before the rest is read;
//! * the token that signed the socket in is checked on every operation, and the socket closes
//!   when it expires (`exp` plus `VELFERD_JWT_LEEWAY_SECONDS`);
//! * a socket runs at most `VELFERD_WS_MAX_SUBSCRIPTIONS` operations at once, a subject has at
//!   most `VELFERD_WS_MAX_CONNECTIONS_PER_SUBJECT` sockets open and an anonymous client address
//!   at most `VELFERD_WS_MAX_ANONYMOUS_CONNECTIONS_PER_ADDRESS` (on this instance);
//! * its operations are charged to the caller's throttle bucket as over HTTP (`graphql::limits`);
//! * a browser page may open one only from the server's own origin or `VELFERD_ALLOWED_ORIGINS`.
//!
//! Close codes are those of graphql-transport-ws and RFC 6455, chosen for what graphql-ws (the
//! client Apollo's `GraphQLWsLink` uses) does with them: 4403 Forbidden for a refused or expired
//! token — the protocol's code for a rejected `connection_init`, and the one code of its 44xx
//! family that the client retries, calling `connectionParams` again, so a client that refreshes
//! its token reconnects by itself (4401 is the protocol's "subscribe before acknowledgement" and
//! is fatal to the client); 1013 Try Again Later for a subject or an anonymous address over its
//! socket cap (the cap frees when another socket closes); 1009 Message Too Big; 1008 Policy
//! Violation for a client that floods messages faster than they are processed; 4500 when the
//! server fails.

use std::collections::HashMap;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::{ActorContext, AsyncContext, StreamHandler};
use actix_http::ws::{CloseCode, CloseReason, Item, Message, ProtocolError};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_actors::ws::{WebsocketContext, WsResponseBuilder};
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocket, WebSocketProtocols, WsMessage};
use async_graphql::{Data, Request, ServerError};
use futures_util::stream::{BoxStream, LocalBoxStream};
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use super::{Shared, authenticate, error_response};
use crate::auth::Principal;
use crate::graphql::VelferdSchema;
use crate::graphql::session::Session;
use crate::refusals::{RefusalLog, log as refusal};
use crate::telemetry;
use crate::throttle::CallerKey;

/// Close code for a refused or expired token (graphql-transport-ws `Forbidden`).
const CLOSE_FORBIDDEN: u16 = 4403;
/// Close code when the server failed to set the connection up (graphql-transport-ws).
const CLOSE_INTERNAL: u16 = 4500;
/// RFC 6455 "Try Again Later": the subject has as many sockets open as it may.
const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// Client messages waiting for the protocol state machine. It takes them as they come except
/// while `connection_init` or a ping is being answered; a client that sends more than this
/// meanwhile is flooding.
const INCOMING_QUEUE: usize = 32;
/// How often the server pings, and how long a client may stay silent to pings.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// How long a socket may stay open without `connection_init` (graphql-ws waits 3 s by default):
/// an idle upgrade must not hold a connection for ever.
const INIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Close code for a socket that never initialised (graphql-transport-ws).
const CLOSE_INIT_TIMEOUT: u16 = 4408;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// What every socket of this server shares: its bounds and the open sockets per caller.
pub(super) struct WsPolicy {
    max_subscriptions: usize,
    max_connections_per_subject: usize,
    max_anonymous_connections_per_address: usize,
    open: Mutex<HashMap<CallerKey, usize>>,
}

impl WsPolicy {
    pub(super) fn new(limits: &crate::config::WebSocketLimits) -> WsPolicy {
        WsPolicy {
            max_subscriptions: limits.max_subscriptions,
            max_connections_per_subject: limits.max_connections_per_subject,
            max_anonymous_connections_per_address: limits.max_anonymous_connections_per_address,
            open: Mutex::default(),
        }
    }

    /// The most sockets `caller` may have open.
    fn most(&self, caller: &CallerKey) -> usize {
        if caller.is_anonymous() {
            self.max_anonymous_connections_per_address
        } else {
            self.max_connections_per_subject
        }
    }

    /// One of the caller's socket slots, or `None` when all are taken. Keyed as the throttle
    /// is: a signed-in caller by subject and organisation, not by token (a refreshed token is
    /// the same caller), an anonymous one by client address.
    fn acquire(self: &Arc<Self>, caller: &CallerKey) -> Option<SubjectSlot> {
        let most = self.most(caller);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(caller.clone()).or_insert(0);
        if *count >= most {
            if *count == 0 {
                open.remove(caller);
            }
            return None;
        }
        *count += 1;
        Some(SubjectSlot { policy: self.clone(), key: caller.clone() })
    }
}

/// A caller's open socket, counted while it exists.
struct SubjectSlot {
    policy: Arc<WsPolicy>,
    key: CallerKey,
}

impl Drop for SubjectSlot {
    fn drop(&mut self) {
        let mut open = self.policy.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// One socket's state, shared by its actor, its executor and its operations.
struct Connection {
    /// The upgrade request's id, named in every operation's span.
    id: Arc<str>,
    max_operations: usize,
    operations: AtomicUsize,
    /// When the token that signed the socket in stops being accepted; set by `connection_init`
    /// for a signed-in caller.
    deadline: OnceLock<SystemTime>,
    /// The close code for a refused `connection_init` (async-graphql would send 1002 for all).
    refusal: OnceLock<u16>,
    /// Who signed the socket in, so that each operation checks the token has not been revoked
    /// since.
    signed_in_as: OnceLock<Principal>,
    revocations: Option<Arc<crate::organizations::revocations::Revocations>>,
    /// Set once `connection_init` has been accepted.
    initialised: std::sync::atomic::AtomicBool,
    /// Who the socket is for the refusal log: its client address until `connection_init` signs
    /// a subject in.
    caller: Mutex<CallerKey>,
    refusals: Option<Arc<RefusalLog>>,
}

impl Connection {
    /// Counts a refusal of this socket's caller in the refusal log.
    fn log_refusal(&self, code: &str) {
        if let Some(refusals) = &self.refusals {
            refusals.record(&self.caller.lock().unwrap_or_else(|e| e.into_inner()), code);
        }
    }

    /// Lets one more operation run, or says why not.
    fn admit(self: &Arc<Self>) -> Result<OperationSlot, ServerError> {
        if self.deadline.get().is_some_and(|deadline| SystemTime::now() >= *deadline) {
            return Err(coded("token expired", "UNAUTHENTICATED"));
        }
        if let (Some(principal), Some(revocations)) = (self.signed_in_as.get(), &self.revocations)
            && revocations.revokes(principal)
        {
            return Err(coded("token revoked", "UNAUTHENTICATED"));
        }
        if self.operations.fetch_add(1, Ordering::SeqCst) >= self.max_operations {
            self.operations.fetch_sub(1, Ordering::SeqCst);
            return Err(coded(
                &format!(
                    "this WebSocket runs {} operations already, the most allowed; complete one first",
                    self.max_operations
                ),
                "TOO_MANY_SUBSCRIPTIONS",
            ));
        }
        Ok(OperationSlot(self.clone()))
    }
}

/// A running operation of a socket, counted while it exists.
struct OperationSlot(Arc<Connection>);

impl Drop for OperationSlot {
    fn drop(&mut self) {
        self.0.operations.fetch_sub(1, Ordering::SeqCst);
    }
}

fn coded(message: &str, code: &str) -> ServerError {
    let mut error = ServerError::new(message, None);
    error.extensions.get_or_insert_with(Default::default).set("code", code);
    error
}

/// Subscriptions over the graphql-transport-ws protocol (the legacy subscriptions-transport-ws
/// is accepted too). The token comes in the `Authorization` header of the upgrade request or,
/// for browsers, which cannot set headers on WebSockets, as `authorization` in the
/// `connection_init` payload.
pub(super) async fn graphql_ws(
    shared: web::Data<Shared>,
    req: HttpRequest,
    payload: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let client = super::client_address(&shared, &req);
    let address = CallerKey::of_address(client);
    if let Err(response) = check_origin(&shared.allowed_origins, &req) {
        shared.state.refusals.record(&address, "FORBIDDEN");
        return Ok(response);
    }
    let Some(protocol) = protocol_of(&req) else {
        return Ok(error_response(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "Sec-WebSocket-Protocol must offer graphql-transport-ws (or the legacy graphql-ws)",
        ));
    };
    let header_actor = match authenticate(&shared, &req) {
        Ok(actor) => actor,
        Err(response) => return Ok(response),
    };
    let policy = shared.ws.clone();
    let connection = Arc::new(Connection {
        id: Arc::from(telemetry::current_request_id()),
        max_operations: policy.max_subscriptions,
        operations: AtomicUsize::new(0),
        deadline: OnceLock::new(),
        refusal: OnceLock::new(),
        signed_in_as: OnceLock::new(),
        revocations: Some(shared.state.revocations.clone()),
        initialised: std::sync::atomic::AtomicBool::new(false),
        caller: Mutex::new(address.clone()),
        refusals: Some(shared.state.refusals.clone()),
    });
    let (incoming_tx, mut incoming_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(INCOMING_QUEUE);
    let incoming = futures_util::stream::poll_fn(move |cx| incoming_rx.poll_recv(cx));

    let verifier = shared.verifier.clone();
    let db = shared.state.db.read().clone();
    let batch_window = shared.limits.batch_window;
    let conn = connection.clone();
    let executor = TracedSchema { schema: shared.schema.clone(), connection: connection.clone() };
    let outgoing = WebSocket::new(executor, incoming, protocol).on_connection_init(move |init: Value| async move {
        // `logged`: the refusal log's code, if the refusal is one.
        let refuse = |code: u16, message: String, logged: Option<&str>| {
            let _ = conn.refusal.set(code);
            if let Some(logged) = logged {
                conn.log_refusal(logged);
            }
            async_graphql::Error::new(message)
        };
        let unauthenticated = Some("UNAUTHENTICATED");
        let actor = match token_in(&init).map_err(|m| refuse(CLOSE_FORBIDDEN, m.into(), unauthenticated))? {
            Some(value) => {
                verifier.actor_from_header(Some(value)).map_err(|e| refuse(CLOSE_FORBIDDEN, e.0, unauthenticated))?
            }
            None => header_actor,
        };
        let caller = CallerKey::of(&actor, client);
        *conn.caller.lock().unwrap_or_else(|e| e.into_inner()) = caller.clone();
        let mut data = Data::default();
        if let Some(principal) = actor.principal() {
            let deadline = UNIX_EPOCH + Duration::from_secs(principal.expires_at) + verifier.leeway();
            if SystemTime::now() >= deadline {
                return Err(refuse(CLOSE_FORBIDDEN, "token has expired".into(), unauthenticated));
            }
            let _ = conn.deadline.set(deadline);
            let _ = conn.signed_in_as.set(principal.clone());
        }
        let slot = policy.acquire(&caller).ok_or_else(|| {
            let most = policy.most(&caller);
            let who = if caller.is_anonymous() { "this client address" } else { "this subject" };
            let message = format!("{who} has {most} WebSockets open, the most allowed");
            refuse(CLOSE_TRY_AGAIN_LATER, message, Some(refusal::WS_TOO_MANY_CONNECTIONS))
        })?;
        // Held in the connection's data, which lives as long as the socket.
        data.insert(slot);
        // Whom `graphql::limits` charges the socket's operations to.
        data.insert(caller);
        let session =
            Session::start(actor, db, batch_window).await.map_err(|e| refuse(CLOSE_INTERNAL, e.to_string(), None))?;
        data.insert(Arc::new(session));
        conn.initialised.store(true, Ordering::SeqCst);
        Ok(data)
    });
    let socket = WsSession {
        connection,
        outgoing: Some(outgoing.boxed_local()),
        incoming: incoming_tx,
        max_message: shared.limits.max_body_bytes,
        continuation: None,
        last_heartbeat: Instant::now(),
        expiry_armed: false,
    };
    WsResponseBuilder::new(socket, &req, payload)
        .protocols(&ALL_WEBSOCKET_PROTOCOLS)
        // The codec refuses a frame whose header declares more, before reading its payload.
        .frame_size(shared.limits.max_body_bytes)
        .start()
}

/// The first protocol offered in `Sec-WebSocket-Protocol` that async-graphql speaks.
fn protocol_of(req: &HttpRequest) -> Option<WebSocketProtocols> {
    let offered = req.headers().get(header::SEC_WEBSOCKET_PROTOCOL)?.to_str().ok()?;
    offered.split(',').find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
}

/// Browsers send `Origin` on every WebSocket upgrade and let any page open a socket to any host,
/// so a page of a foreign site is refused here, before the upgrade. A request without `Origin`
/// is not from a browser page and passes; so does the server's own origin (GraphiQL), judged by
/// the `Host` the browser addressed.
#[allow(clippy::result_large_err, reason = "the refusal is the response itself, built once per refused request")]
fn check_origin(allowed: &[String], req: &HttpRequest) -> Result<(), HttpResponse> {
    let Some(origin) = req.headers().get(header::ORIGIN) else { return Ok(()) };
    if super::origin_allowed(allowed, origin, req.headers().get(header::HOST)) {
        return Ok(());
    }
    Err(error_response(
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
        "pages of this origin may not open WebSockets to this server (VELFERD_ALLOWED_ORIGINS)",
    ))
}

/// The `authorization` value of a `connection_init` payload: `None` when the payload carries
/// none. Anything but a string there is refused, like a bad token, never read as "no token".
fn token_in(payload: &Value) -> Result<Option<&str>, &'static str> {
    let map = match payload {
        Value::Null => return Ok(None),
        Value::Object(map) => map,
        _ => return Err("the connection_init payload must be a JSON object"),
    };
    let mut named = map.iter().filter(|(key, _)| key.eq_ignore_ascii_case("authorization"));
    match (named.next(), named.next()) {
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err("the connection_init payload names `authorization` more than once"),
        (Some((_, Value::String(value))), None) => Ok(Some(value)),
        (Some(_), None) => Err("`authorization` in the connection_init payload must be a string, `Bearer <token>`"),
    }
}

/// The socket: frames in, bounded, to the protocol state machine; its messages out.
struct WsSession {
    connection: Arc<Connection>,
    /// The protocol state machine's output, until `started` takes it.
    outgoing: Option<LocalBoxStream<'static, WsMessage>>,
    incoming: tokio::sync::mpsc::Sender<Vec<u8>>,
    max_message: usize,
    /// A fragmented message being assembled.
    continuation: Option<Vec<u8>>,
    last_heartbeat: Instant,
    expiry_armed: bool,
}

impl WsSession {
    fn close(&mut self, ctx: &mut WebsocketContext<Self>, code: CloseCode, reason: impl Into<String>) {
        ctx.close(Some(CloseReason { code, description: Some(reason.into()) }));
        ctx.stop();
    }

    fn too_big(&mut self, ctx: &mut WebsocketContext<Self>) {
        self.connection.log_refusal(refusal::WS_MESSAGE_TOO_BIG);
        let most = self.max_message;
        self.continuation = None;
        self.close(ctx, CloseCode::Size, format!("a WebSocket message may hold at most {most} bytes"));
    }

    /// Appends a fragment, or closes the socket when the message would grow past the cap.
    fn append(&mut self, ctx: &mut WebsocketContext<Self>, fragment: &[u8]) -> bool {
        let Some(buffer) = self.continuation.as_mut() else { return false };
        if buffer.len() + fragment.len() > self.max_message {
            self.too_big(ctx);
            return false;
        }
        buffer.extend_from_slice(fragment);
        true
    }

    /// Closes the socket when the token that signed it in expires, once `connection_init` has
    /// set that time.
    fn arm_expiry(&mut self, ctx: &mut WebsocketContext<Self>) {
        if self.expiry_armed {
            return;
        }
        let Some(deadline) = self.connection.deadline.get() else { return };
        self.expiry_armed = true;
        let wait = deadline.duration_since(SystemTime::now()).unwrap_or_default();
        ctx.run_later(wait, |socket, ctx| {
            socket.connection.log_refusal(refusal::WS_TOKEN_EXPIRED);
            socket.close(ctx, CloseCode::Other(CLOSE_FORBIDDEN), "token expired");
        });
    }
}

impl actix::Actor for WsSession {
    type Context = WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(HEARTBEAT_INTERVAL, |socket, ctx| {
            if socket.last_heartbeat.elapsed() > CLIENT_TIMEOUT {
                ctx.stop();
                return;
            }
            ctx.ping(b"");
        });
        ctx.run_later(INIT_TIMEOUT, |socket, ctx| {
            if !socket.connection.initialised.load(Ordering::SeqCst) {
                socket.close(ctx, CloseCode::Other(CLOSE_INIT_TIMEOUT), "connection initialisation timeout");
            }
        });
        if let Some(outgoing) = self.outgoing.take() {
            ctx.add_stream(outgoing);
        }
    }
}

/// What the client sends.
impl StreamHandler<Result<Message, ProtocolError>> for WsSession {
    fn handle(&mut self, message: Result<Message, ProtocolError>, ctx: &mut Self::Context) {
        let message = match message {
            Ok(message) => message,
            Err(ProtocolError::Overflow) => return self.too_big(ctx),
            Err(error) => return self.close(ctx, CloseCode::Protocol, error.to_string()),
        };
        let complete = match message {
            Message::Ping(payload) => {
                self.last_heartbeat = Instant::now();
                ctx.pong(&payload);
                None
            }
            Message::Pong(_) => {
                self.last_heartbeat = Instant::now();
                None
            }
            Message::Text(text) => Some(text.into_bytes().to_vec()),
            Message::Binary(bytes) => Some(bytes.to_vec()),
            Message::Continuation(Item::FirstText(bytes) | Item::FirstBinary(bytes)) => {
                // The codec has bounded this frame already.
                self.continuation = Some(bytes.to_vec());
                None
            }
            Message::Continuation(Item::Continue(bytes)) => {
                self.append(ctx, &bytes);
                None
            }
            Message::Continuation(Item::Last(bytes)) => {
                if self.append(ctx, &bytes) {
                    self.continuation.take()
                } else {
                    None
                }
            }
            Message::Close(reason) => {
                ctx.close(reason);
                ctx.stop();
                None
            }
            Message::Nop => None,
        };
        if let Some(message) = complete
            && self.incoming.try_send(message).is_err()
        {
            self.connection.log_refusal(refusal::WS_FLOODED);
            self.close(ctx, CloseCode::Policy, "messages arrive faster than they are processed");
        }
    }
}

/// What the protocol state machine answers.
impl StreamHandler<WsMessage> for WsSession {
    fn handle(&mut self, message: WsMessage, ctx: &mut Self::Context) {
        match message {
            WsMessage::Text(text) => {
                ctx.text(text);
                self.arm_expiry(ctx);
            }
            WsMessage::Close(code, reason) => {
                let code = self.connection.refusal.get().copied().unwrap_or(code);
                self.close(ctx, CloseCode::from(code), reason);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // The client ended the protocol (or was refused under the legacy protocol, which says
        // so in a message).
        let code = self.connection.refusal.get().copied().map_or(CloseCode::Normal, CloseCode::from);
        ctx.close(Some(CloseReason { code, description: None }));
        ctx.stop();
    }
}

/// The schema as WebSocket operations run it: each operation gets a request id of its own (its
/// incident id) and a span with its name, the id and the connection's request id; each is
/// admitted only while the socket's token is valid and its operations under the cap.
#[derive(Clone)]
struct TracedSchema {
    schema: VelferdSchema,
    connection: Arc<Connection>,
}

impl async_graphql::Executor for TracedSchema {
    async fn execute(&self, request: Request) -> async_graphql::Response {
        self.schema.execute(request.data(crate::graphql::operation::OperationGuards::new())).await
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, async_graphql::Response> {
        let id: Arc<str> = Arc::from(telemetry::generate_id());
        // The name as the client sent it, capped: it is logged, not counted.
        let name: String = request.operation_name.as_deref().unwrap_or("anonymous").chars().take(64).collect();
        let span = tracing::error_span!(
            "graphql_ws",
            operation = %name,
            request_id = %id,
            connection = %self.connection.id
        );
        let slot = match self.connection.admit() {
            Ok(slot) => slot,
            Err(error) => {
                span.in_scope(|| tracing::info!(reason = %error.message, "operation refused"));
                if let Some(async_graphql::Value::String(code)) = error.extensions.as_ref().and_then(|e| e.get("code"))
                {
                    self.connection.log_refusal(code);
                }
                return futures_util::stream::once(async move { async_graphql::Response::from_errors(vec![error]) })
                    .boxed();
            }
        };
        // Each WebSocket operation is a request of its own for the per-operation claims.
        let request = request.data(crate::graphql::operation::OperationGuards::new());
        let inner = self.schema.execute_stream_with_session_data(request, session_data.unwrap_or_default());
        TracedStream { inner, span, id, _slot: slot }.boxed()
    }
}

/// A WebSocket operation's responses, each produced inside its span and request id.
struct TracedStream {
    inner: BoxStream<'static, async_graphql::Response>,
    span: tracing::Span,
    id: Arc<str>,
    _slot: OperationSlot,
}

impl Stream for TracedStream {
    type Item = async_graphql::Response;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        telemetry::in_request(this.id.clone(), || this.inner.poll_next_unpin(cx))
    }
}

impl Drop for TracedStream {
    fn drop(&mut self) {
        self.span.in_scope(|| tracing::info!("operation ended"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_string_authorization_is_a_token() {
        assert_eq!(token_in(&Value::Null), Ok(None));
        assert_eq!(token_in(&serde_json::json!({})), Ok(None));
        assert_eq!(token_in(&serde_json::json!({ "Authorization": "Bearer x" })), Ok(Some("Bearer x")));
        for refused in [
            serde_json::json!({ "authorization": 1 }),
            serde_json::json!({ "authorization": null }),
            serde_json::json!({ "authorization": ["Bearer x"] }),
            serde_json::json!({ "authorization": "Bearer x", "AUTHORIZATION": "Bearer y" }),
            serde_json::json!("Bearer x"),
        ] {
            assert!(token_in(&refused).is_err(), "{refused}");
        }
    }

    fn connection(max_operations: usize, deadline: Option<SystemTime>) -> Arc<Connection> {
        let connection = Arc::new(Connection {
            id: Arc::from("test"),
            max_operations,
            operations: AtomicUsize::new(0),
            deadline: OnceLock::new(),
            refusal: OnceLock::new(),
            signed_in_as: OnceLock::new(),
            revocations: None,
            initialised: std::sync::atomic::AtomicBool::new(false),
            caller: Mutex::new(CallerKey::of_address(std::net::IpAddr::from([127, 0, 0, 1]))),
            refusals: None,
        });
        if let Some(deadline) = deadline {
            connection.deadline.set(deadline).unwrap();
        }
        connection
    }

    fn code(error: &ServerError) -> String {
        match error.extensions.as_ref().and_then(|e| e.get("code")) {
            Some(async_graphql::Value::String(code)) => code.clone(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn an_operation_after_the_token_expired_is_refused_unauthenticated() {
        let expired = connection(10, Some(SystemTime::now() - Duration::from_secs(1)));
        let error = expired.admit().err().expect("refused");
        assert_eq!((code(&error), error.message.as_str()), ("UNAUTHENTICATED".into(), "token expired"));
        let valid = connection(10, Some(SystemTime::now() + Duration::from_secs(60)));
        assert!(valid.admit().is_ok());
    }

    #[test]
    fn operations_past_the_cap_are_refused_until_one_ends() {
        let socket = connection(2, None);
        let first = socket.admit().unwrap();
        let _second = socket.admit().unwrap();
        assert_eq!(code(&socket.admit().err().expect("over the cap")), "TOO_MANY_SUBSCRIPTIONS");
        drop(first);
        assert!(socket.admit().is_ok());
    }
}
