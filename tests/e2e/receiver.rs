//! A real HTTPS server on 127.0.0.1 for the tests of outbound calls (webhooks): its own CA and
//! a leaf certificate for `localhost`, 127.0.0.1, ::1 and [`TEST_NAME`], made with rcgen at start;
//! served with tokio-rustls (ring) and hyper. It records every request and answers from a
//! script, then `200 ok`. The CA's PEM is in [`Receiver::ca_file`], for
//! `VELFERD_OUTBOUND_TRUST_ROOTS_FILE`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// A name the receiver's certificate also covers, for tests that resolve names themselves
/// (`Outbound::with_resolver`) and must not depend on the machine's resolver.
pub const TEST_NAME: &str = "receiver.velferd.test";

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Waited before answering (after the request was read and recorded).
    pub delay: Option<Duration>,
}

impl Scripted {
    /// `status` with an empty body, no extra headers and no delay.
    pub fn status(status: u16) -> Scripted {
        Scripted { status, headers: Vec::new(), body: String::new(), delay: None }
    }

    pub fn header(mut self, name: &str, value: &str) -> Scripted {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<String>) -> Scripted {
        self.body = body.into();
        self
    }

    pub fn delay(mut self, delay: Duration) -> Scripted {
        self.delay = Some(delay);
        self
    }
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// Names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub received_at: SystemTime,
}

impl Recorded {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Scripted>>,
    requests: Mutex<Vec<Recorded>>,
    arrived: Notify,
}

pub struct Receiver {
    port: u16,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    /// The accept loop; aborting it drops every connection it serves.
    serving: Mutex<Option<tokio::task::JoinHandle<()>>>,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    /// Listening on 127.0.0.1 (a free port), answering `200 ok` until told otherwise.
    pub async fn start() -> Receiver {
        velferd::outbound::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, acceptor) = certificates();
        let ca_file = dir.path().join("receiver-ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let receiver = Receiver {
            port,
            acceptor,
            shared: Arc::new(Shared::default()),
            serving: Mutex::new(None),
            ca_file,
            _dir: dir,
        };
        receiver.serve(listener);
        receiver
    }

    /// `https://localhost:{port}{path}`.
    pub fn url(&self, path: &str) -> String {
        self.url_for_host("localhost", path)
    }

    /// `https://127.0.0.1:{port}{path}`.
    pub fn url_ip(&self, path: &str) -> String {
        self.url_for_host("127.0.0.1", path)
    }

    /// `https://{host}:{port}{path}`: for [`TEST_NAME`] with a resolver of the test's own.
    pub fn url_for_host(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PEM of the CA that issued the receiver's certificate.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// Answers used in order, one per request; then `200 ok` again.
    pub fn respond_with(&self, responses: Vec<Scripted>) {
        self.shared.script.lock().unwrap().extend(responses);
    }

    /// Stops listening and drops every open connection: the port refuses connections.
    pub async fn stop(&self) {
        let task = self.serving.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port (after [`Receiver::stop`]), with the same certificate.
    pub async fn restart(&self) {
        self.stop().await;
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The requests once there are at least `n`, or those there are when `timeout` has passed.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let requests = self.requests();
            if requests.len() >= n || Instant::now() >= deadline {
                return requests;
            }
            let _ = tokio::time::timeout_at(deadline.into(), arrived).await;
        }
    }

    fn serve(&self, listener: TcpListener) {
        let (acceptor, shared) = (self.acceptor.clone(), self.shared.clone());
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, peer)) = accepted else { continue };
                        connections.spawn(connection(acceptor.clone(), shared.clone(), stream, peer));
                    }
                    // Reap finished connections so the set does not grow.
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        *self.serving.lock().unwrap() = Some(task);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(task) = self.serving.lock().unwrap().take() {
            task.abort();
        }
    }
}

async fn connection(acceptor: TlsAcceptor, shared: Arc<Shared>, stream: tokio::net::TcpStream, _peer: SocketAddr) {
    // A client that does not trust the certificate gives up in the handshake: nothing to record.
    let Ok(tls) = acceptor.accept(stream).await else { return };
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(answer(&shared, request).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
}

async fn answer(shared: &Shared, request: hyper::Request<hyper::body::Incoming>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_string(), |p| p.to_string()),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body,
        received_at: SystemTime::now(),
    };
    shared.requests.lock().unwrap().push(recorded);
    shared.arrived.notify_waiters();
    let scripted = shared.script.lock().unwrap().pop_front().unwrap_or_else(|| Scripted::status(200).body("ok"));
    if let Some(delay) = scripted.delay {
        tokio::time::sleep(delay).await;
    }
    let mut response = hyper::Response::builder().status(scripted.status);
    for (name, value) in &scripted.headers {
        response = response.header(name, value);
    }
    response.body(Full::new(Bytes::from(scripted.body))).unwrap()
}

/// A fresh CA (its PEM) and a TLS acceptor serving a leaf certificate it issued.
fn certificates() -> (String, TlsAcceptor) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    // A name of its own, so another receiver's CA is not even a candidate issuer.
    static CAS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CAS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ca.distinguished_name.push(DnType::CommonName, format!("Velferd test receiver CA {n}"));
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();

    let names = ["localhost", "127.0.0.1", "::1", TEST_NAME].map(String::from).to_vec();
    let mut leaf = CertificateParams::new(names).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "localhost");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf.signed_by(&leaf_key, &ca).unwrap();

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(velferd::outbound::ring_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    (ca.pem(), TlsAcceptor::from(Arc::new(config)))
}
