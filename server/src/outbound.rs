//! The one way Velferd calls out to addresses others choose (webhook endpoints): HTTPS POSTs that
//! cannot be pointed into the operator's own network (docs/outbound.md).
//!
//! * **Static check** ([`Outbound::check_url`]) when an address is registered: `https` only, a
//!   host, no userinfo or fragment, at most [`MAX_URL_LEN`] bytes, and an IP-literal host must be
//!   an allowed address. The `url` crate reads `2130706433`, `0x7f.1` and `017700000001` as
//!   127.0.0.1 before we judge the host, so those spellings are judged as what they mean.
//! * **At connect time** names are resolved by [`Outbound`] itself (a reqwest resolver that
//!   drops refused addresses), so the addresses judged are the addresses connected to: a name
//!   that answers a public address at registration and 127.0.0.1 later (DNS rebinding) never
//!   reaches 127.0.0.1. IP-literal hosts skip any resolver, so [`Outbound::post`] judges them
//!   itself before sending; after the answer the peer's address is judged once more.
//! * **No redirects, no proxy, bounded**: a 3xx is an answer like any other, `HTTP(S)_PROXY`
//!   is ignored, one timeout covers connect to last byte, and at most [`MAX_BODY_READ`] bytes of
//!   an answer are read.
//! * **TLS**: rustls with ring (never aws-lc, which needs cmake); Mozilla's roots plus the PEM
//!   certificates of `VELFERD_OUTBOUND_TRUST_ROOTS_FILE`. Certificate checks cannot be turned off.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::BoxFuture;
use rustls::crypto::CryptoProvider;

/// Longest endpoint address accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Most bytes of an answer's body read; the rest is never read (the connection is dropped).
pub const MAX_BODY_READ: usize = 64 * 1024;
/// Most bytes of an answer's body kept, as text, in [`Answer::excerpt`].
pub const MAX_EXCERPT: usize = 1024;

/// How outbound calls behave (`VELFERD_OUTBOUND_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSettings {
    /// VELFERD_OUTBOUND_ALLOW_LOOPBACK (default false): also allow 127.0.0.0/8 and ::1 (only
    /// those), for development and tests. Certificates are still checked.
    pub allow_loopback: bool,
    /// VELFERD_OUTBOUND_TRUST_ROOTS_FILE: PEM certificates trusted besides Mozilla's roots.
    pub extra_roots_file: Option<PathBuf>,
    /// VELFERD_OUTBOUND_TIMEOUT (default 10s): the whole request, connect to last byte read.
    pub timeout: Duration,
    /// VELFERD_OUTBOUND_MAX_RETRY_AFTER (default 1h): the most a Retry-After is honoured for.
    pub max_retry_after: Duration,
}

impl Default for OutboundSettings {
    fn default() -> OutboundSettings {
        OutboundSettings {
            allow_loopback: false,
            extra_roots_file: None,
            timeout: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

/// Why the outbound client could not be built; names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum OutboundConfigError {
    #[error("VELFERD_OUTBOUND_TRUST_ROOTS_FILE: {path}: {reason}")]
    TrustRoots { path: PathBuf, reason: String },
    #[error("the outbound HTTP client: {0}")]
    Client(String),
}

/// Resolves a host name to addresses. The port may be 0: the connector puts the URL's port on
/// every address.
pub trait NameResolver: Send + Sync {
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>>;
}

/// The system's resolver (`getaddrinfo`, on a blocking thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl NameResolver for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
        let host = host.to_string();
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), port)).await?.collect()) })
    }
}

/// An endpoint address that passed [`Outbound::check_url`]. Stored as its text; read back it is
/// checked again (statically when deserialised, fully on every [`Outbound::post`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointUrl(url::Url);

impl EndpointUrl {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn as_url(&self) -> &url::Url {
        &self.0
    }

    /// The host as written in the address (a name, or an IP literal).
    pub fn host(&self) -> String {
        self.0.host_str().unwrap_or_default().to_string()
    }
}

impl std::fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl From<EndpointUrl> for String {
    fn from(url: EndpointUrl) -> String {
        url.0.into()
    }
}

impl serde::Serialize for EndpointUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for EndpointUrl {
    /// The checks that do not depend on settings, with loopback allowed: whether loopback is
    /// allowed now is judged again by [`Outbound::post`], which re-checks every address.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<EndpointUrl, D::Error> {
        let text = String::deserialize(deserializer)?;
        check_url(&text, true).map_err(serde::de::Error::custom)
    }
}

/// Why an endpoint address is refused at registration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UrlRefused {
    /// `URL_INVALID`, `URL_NOT_HTTPS` or `URL_ADDRESS_REFUSED`.
    pub code: &'static str,
    pub message: String,
}

impl UrlRefused {
    fn new(code: &'static str, message: impl Into<String>) -> UrlRefused {
        UrlRefused { code, message: message.into() }
    }
}

/// What the endpoint answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// `Retry-After` (seconds or an HTTP date), at most `max_retry_after`; `None` when absent or
    /// unreadable.
    pub retry_after: Option<Duration>,
    /// The start of the body as text (lossy UTF-8), at most [`MAX_EXCERPT`] bytes.
    pub excerpt: String,
    /// The address connected to, when known.
    pub remote: Option<SocketAddr>,
    /// From the start of the call to the last byte read.
    pub latency: Duration,
    /// Bytes of the body read: at most [`MAX_BODY_READ`], the rest is not read.
    pub body_read: usize,
}

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No allowed address: the message names the host, not the addresses it resolved to.
    #[error("{0}")]
    Refused(String),
    #[error("no answer within the timeout")]
    Timeout,
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("TLS failed: {0}")]
    Tls(String),
    #[error("request failed: {0}")]
    Other(String),
}

impl Failure {
    /// A stable code for the delivery log.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::Refused(_) => "ADDRESS_REFUSED",
            Failure::Timeout => "TIMEOUT",
            Failure::Connect(_) => "CONNECT_FAILED",
            Failure::Tls(_) => "TLS_FAILED",
            Failure::Other(_) => "REQUEST_FAILED",
        }
    }
}

/// Makes ring the process's default rustls provider, if none is. The outbound client carries
/// its own configuration and does not need this; other reqwest clients of the process (the
/// tests', the benchmarks') do, because reqwest is built without a provider of its own.
pub fn install_crypto_provider() {
    // An error means a default is already installed: that one stays.
    let _ = CryptoProvider::clone(&ring_provider()).install_default();
}

/// rustls's ring provider. rustls 0.23.48 deprecated it for lacking post-quantum key exchange
/// (only its aws-lc provider has it); ring is chosen all the same, because aws-lc needs cmake
/// and minutes of every cold CI build. X25519 and the NIST curves remain.
#[allow(deprecated, reason = "ring on purpose: see above")]
pub fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The outbound HTTP client. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    allow_loopback: bool,
    timeout: Duration,
    max_retry_after: Duration,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("allow_loopback", &self.allow_loopback)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    pub fn new(settings: &OutboundSettings) -> Result<Outbound, OutboundConfigError> {
        Outbound::with_resolver(settings, Arc::new(SystemResolver))
    }

    /// For tests and tools: resolve names with `resolver` instead of the system's.
    pub fn with_resolver(
        settings: &OutboundSettings,
        resolver: Arc<dyn NameResolver>,
    ) -> Result<Outbound, OutboundConfigError> {
        let tls = tls_config(settings.extra_roots_file.as_deref())?;
        let guard = GuardedResolver { resolver, allow_loopback: settings.allow_loopback };
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .dns_resolver(Arc::new(guard))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .referer(false)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("Velferd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OutboundConfigError::Client(chain(&e)))?;
        Ok(Outbound {
            client,
            allow_loopback: settings.allow_loopback,
            timeout: settings.timeout,
            max_retry_after: settings.max_retry_after,
        })
    }

    /// Whether loopback addresses are allowed (development and tests).
    pub fn allows_loopback(&self) -> bool {
        self.allow_loopback
    }

    /// The static check at registration: https only (http only when loopback is allowed and the
    /// host is loopback), no userinfo, no fragment, a host, at most [`MAX_URL_LEN`] bytes, and
    /// an IP-literal host must be an allowed address.
    pub fn check_url(&self, url: &str) -> Result<EndpointUrl, UrlRefused> {
        check_url(url, self.allow_loopback)
    }

    /// POSTs `body` to `url` with `headers`: no redirects followed, no proxy, only to allowed
    /// addresses, at most [`MAX_BODY_READ`] bytes of the answer read.
    pub async fn post(
        &self,
        url: &EndpointUrl,
        headers: &[(&str, String)],
        body: bytes::Bytes,
    ) -> Result<Answer, Failure> {
        // Settings may have changed since the address was stored.
        let url = self.check_url(url.as_str()).map_err(|e| Failure::Refused(e.message))?;
        let host = url.host();
        let started = Instant::now();
        let mut request = self.client.post(url.as_url().clone()).body(body);
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let call = async {
            let mut response = request.send().await.map_err(|e| failure(&e))?;
            let remote = response.remote_addr();
            // Belt and braces: the resolver and the literal check decided where to connect.
            if let Some(peer) = remote
                && (!allowed(peer.ip(), self.allow_loopback)
                    || (url.as_url().scheme() == "http" && !peer.ip().to_canonical().is_loopback()))
            {
                return Err(refused_host(&host));
            }
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()))
                .map(|d| d.min(self.max_retry_after));
            let mut read = Vec::new();
            while read.len() < MAX_BODY_READ {
                match response.chunk().await.map_err(|e| failure(&e))? {
                    Some(chunk) => {
                        let room = MAX_BODY_READ - read.len();
                        read.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    }
                    None => break,
                }
            }
            Ok(Answer {
                status,
                retry_after,
                excerpt: excerpt(&read),
                remote,
                latency: started.elapsed(),
                body_read: read.len(),
            })
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(answer) => answer,
            Err(_) => Err(Failure::Timeout),
        }
    }
}

/// Whether Velferd may connect to `ip`: public unicast only; loopback (127.0.0.0/8, ::1) too when
/// `allow_loopback`. IPv6 addresses that embed an IPv4 one (mapped, compatible) are judged by it;
/// the translation prefixes (6to4, Teredo, NAT64) are refused whole.
pub fn allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => allowed_v4(v4, allow_loopback),
        IpAddr::V6(v6) => allowed_v6(v6, allow_loopback),
    }
}

fn allowed_v4(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0 // "this network", 0.0.0.0 included
        || a == 10 // private
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || a == 127 && !allow_loopback
        || (a == 169 && b == 254) // link-local, cloud metadata (169.254.169.254)
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation (TEST-NET-1)
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168) // private
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation (TEST-NET-2)
        || (a == 203 && b == 0 && c == 113) // documentation (TEST-NET-3)
        || a >= 224; // multicast (224/4), reserved (240/4), broadcast
    !refused
}

fn allowed_v6(ip: Ipv6Addr, allow_loopback: bool) -> bool {
    if ip == Ipv6Addr::LOCALHOST {
        return allow_loopback;
    }
    if ip.is_unspecified() {
        return false;
    }
    let s = ip.segments();
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated) reach the IPv4 address.
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        let [_, _, _, _, _, _, hi, lo] = s;
        return allowed_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)), allow_loopback);
    }
    // Only global unicast (2000::/3) is reachable; that drops unique-local fc00::/7, link-local
    // fe80::/10, multicast ff00::/8, discard 100::/64, NAT64 64:ff9b::/96 and the rest of ::/3.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    let refused = (s[0] == 0x2001 && s[1] < 0x0200) // 2001::/23: Teredo 2001::/32, ORCHID, benchmarking
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || s[0] == 0x2002 // 6to4: embeds any IPv4 address
        || (s[0] & 0xfff0) == 0x3ff0 // documentation 3fff::/20
        || s[0] == 0x5f00; // SRv6 SIDs
    !refused
}

/// The static checks of [`Outbound::check_url`].
fn check_url(text: &str, allow_loopback: bool) -> Result<EndpointUrl, UrlRefused> {
    if text.len() > MAX_URL_LEN {
        return Err(UrlRefused::new(
            "URL_INVALID",
            format!("the address is {} bytes; at most {MAX_URL_LEN} are allowed", text.len()),
        ));
    }
    let url = url::Url::parse(text.trim())
        .map_err(|e| UrlRefused::new("URL_INVALID", format!("not an absolute http(s) address ({e})")))?;
    if url.as_str().len() > MAX_URL_LEN {
        return Err(UrlRefused::new("URL_INVALID", format!("the address is longer than {MAX_URL_LEN} bytes")));
    }
    if !matches!(url.scheme(), "https" | "http") {
        return Err(UrlRefused::new("URL_NOT_HTTPS", format!("the address must use https, not {}", url.scheme())));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefused::new("URL_INVALID", "the address must not carry a user name or password"));
    }
    if url.fragment().is_some() {
        return Err(UrlRefused::new("URL_INVALID", "the address must not have a fragment (#…)"));
    }
    let host = match url.host() {
        Some(url::Host::Domain(name)) if !name.is_empty() => {
            Host::Name(name.trim_end_matches('.').to_ascii_lowercase())
        }
        Some(url::Host::Ipv4(ip)) => Host::Ip(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Host::Ip(IpAddr::V6(ip)),
        _ => return Err(UrlRefused::new("URL_INVALID", "the address has no host")),
    };
    let loopback_host = match &host {
        Host::Ip(ip) => ip.to_canonical().is_loopback(),
        Host::Name(name) => is_localhost(name),
    };
    match url.scheme() {
        "https" => {}
        "http" if allow_loopback && loopback_host => {}
        _ => return Err(UrlRefused::new("URL_NOT_HTTPS", "the address must use https")),
    }
    let refused = match &host {
        Host::Ip(ip) => !allowed(*ip, allow_loopback),
        // `localhost` is loopback by definition (RFC 6761); other names are judged when resolved.
        Host::Name(name) => is_localhost(name) && !allow_loopback,
    };
    if refused {
        return Err(UrlRefused::new(
            "URL_ADDRESS_REFUSED",
            format!("{} is not a public address", url.host_str().unwrap_or_default()),
        ));
    }
    Ok(EndpointUrl(url))
}

enum Host {
    Name(String),
    Ip(IpAddr),
}

fn is_localhost(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

/// Resolves with the configured resolver and keeps only allowed addresses: this runs when a
/// connection is made, so what it lets through is what is connected to.
struct GuardedResolver {
    resolver: Arc<dyn NameResolver>,
    allow_loopback: bool,
}

/// A name that resolved to no allowed address; found again in reqwest's error chain.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to no public address")]
struct RefusedName {
    host: String,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let lookup = self.resolver.resolve(&host, 0);
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let found = lookup.await?;
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| allowed(a.ip(), allow_loopback))
                // The URL's port, never one a resolver suggests.
                .map(|a| SocketAddr::new(a.ip(), 0))
                .collect();
            if kept.is_empty() {
                return Err(Box::new(RefusedName { host }) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn refused_host(host: &str) -> Failure {
    Failure::Refused(RefusedName { host: host.to_string() }.to_string())
}

fn tls_config(extra_roots: Option<&std::path::Path>) -> Result<rustls::ClientConfig, OutboundConfigError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_roots {
        let trust_error = |reason: String| OutboundConfigError::TrustRoots { path: path.to_path_buf(), reason };
        let certificates = CertificateDer::pem_file_iter(path)
            .map_err(|e| trust_error(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| trust_error(e.to_string()))?;
        if certificates.is_empty() {
            return Err(trust_error("holds no PEM certificate".into()));
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|e| trust_error(format!("a certificate is not usable as a root: {e}")))?;
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| OutboundConfigError::Client(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The failure a reqwest error stands for, found among its causes.
fn failure(error: &reqwest::Error) -> Failure {
    let mut found = Causes::default();
    found.visit(error);
    if let Some(host) = found.refused {
        Failure::Refused(host)
    } else if error.is_timeout() {
        Failure::Timeout
    } else if let Some(message) = found.tls {
        Failure::Tls(message)
    } else if error.is_connect() {
        Failure::Connect(chain(error))
    } else {
        Failure::Other(chain(error))
    }
}

/// What an error's causes say: a refused name, a TLS error.
#[derive(Default)]
struct Causes {
    refused: Option<String>,
    tls: Option<String>,
}

impl Causes {
    /// Walks `error` and its causes. `source()` skips the error a box or an `io::Error` wraps
    /// (it answers the wrapped error's own source), so those are opened here.
    fn visit(&mut self, error: &(dyn std::error::Error + 'static)) {
        if let Some(refused) = error.downcast_ref::<RefusedName>() {
            self.refused.get_or_insert(refused.to_string());
        }
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            self.tls.get_or_insert(tls.to_string());
        }
        if let Some(inner) = error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            self.visit(inner);
        }
        if let Some(next) = error.source() {
            self.visit(next);
        }
    }
}

/// An error and its causes on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = e.source();
    }
    text
}

/// The start of `body` as text, at most [`MAX_EXCERPT`] bytes, cut at a character boundary.
fn excerpt(body: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(&body[..body.len().min(MAX_EXCERPT)]).into_owned();
    if text.len() > MAX_EXCERPT {
        let mut cut = MAX_EXCERPT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// `Retry-After` as a wait from `now`: delay-seconds or an HTTP date (a date past is no wait).
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Longer than u64 seconds is longer than any cap.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn refused_and_allowed_addresses() {
        let refused = [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::808:808",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2002:808:808::1",
            "3fff::1",
            "fc00::1",
            "fd00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ];
        for text in refused {
            assert!(!allowed(ip(text), false), "{text} must be refused");
        }
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "::ffff:8.8.8.8",
            "2606:4700:4700::1111",
            "2a00:1450:4010:c05::65",
            "2001:4860:4860::8888",
        ];
        for text in public {
            assert!(allowed(ip(text), false), "{text} must be allowed");
        }
    }

    #[test]
    fn allowing_loopback_allows_loopback_only() {
        for text in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(!allowed(ip(text), false) && allowed(ip(text), true), "{text}");
        }
        for text in ["0.0.0.0", "::", "10.0.0.1", "169.254.169.254", "fd00::1", "fe80::1", "192.168.0.1"] {
            assert!(!allowed(ip(text), true), "{text} stays refused with loopback allowed");
        }
    }

    fn in_v4(net: [u8; 4], prefix: u32) -> impl Strategy<Value = Ipv4Addr> {
        any::<u32>().prop_map(move |r| {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
            Ipv4Addr::from((u32::from(Ipv4Addr::from(net)) & mask) | (r & !mask))
        })
    }

    fn in_v6(net: u128, prefix: u32) -> impl Strategy<Value = Ipv6Addr> {
        any::<u128>().prop_map(move |r| {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
            Ipv6Addr::from((net & mask) | (r & !mask))
        })
    }

    fn v6(text: &str) -> u128 {
        u128::from(text.parse::<Ipv6Addr>().unwrap())
    }

    proptest! {
        #[test]
        fn a_mapped_or_compatible_address_is_judged_as_its_ipv4(raw in any::<u32>(), loopback in any::<bool>()) {
            let v4 = Ipv4Addr::from(raw);
            let mapped = IpAddr::V6(v4.to_ipv6_mapped());
            prop_assert_eq!(allowed(mapped, loopback), allowed(IpAddr::V4(v4), loopback));
            let compatible = v4.to_ipv6_compatible();
            if compatible != Ipv6Addr::LOCALHOST && !compatible.is_unspecified() {
                prop_assert_eq!(allowed(IpAddr::V6(compatible), loopback), allowed(IpAddr::V4(v4), loopback));
            }
        }

        #[test]
        fn loopback_is_the_only_difference_the_setting_makes(raw in any::<u128>()) {
            let addr = IpAddr::V6(Ipv6Addr::from(raw));
            if !addr.to_canonical().is_loopback() && addr != IpAddr::V6(Ipv6Addr::from(1u128)) {
                prop_assert_eq!(allowed(addr, true), allowed(addr, false));
            }
            let v4 = IpAddr::V4(Ipv4Addr::from(raw as u32));
            if !v4.is_loopback() {
                prop_assert_eq!(allowed(v4, true), allowed(v4, false));
            }
        }

        #[test]
        fn private_and_special_ipv4_ranges_are_refused(
            a in prop_oneof![
                in_v4([10, 0, 0, 0], 8), in_v4([172, 16, 0, 0], 12), in_v4([192, 168, 0, 0], 16),
                in_v4([169, 254, 0, 0], 16), in_v4([100, 64, 0, 0], 10), in_v4([0, 0, 0, 0], 8),
                in_v4([192, 0, 0, 0], 24), in_v4([192, 0, 2, 0], 24), in_v4([198, 18, 0, 0], 15),
                in_v4([198, 51, 100, 0], 24), in_v4([203, 0, 113, 0], 24), in_v4([224, 0, 0, 0], 4),
                in_v4([240, 0, 0, 0], 4),
            ],
            loopback in any::<bool>(),
        ) {
            prop_assert!(!allowed(IpAddr::V4(a), loopback));
            prop_assert!(!allowed(IpAddr::V6(a.to_ipv6_mapped()), loopback));
        }

        #[test]
        fn special_ipv6_ranges_are_refused(
            a in prop_oneof![
                in_v6(v6("fc00::"), 7), in_v6(v6("fe80::"), 10), in_v6(v6("ff00::"), 8),
                in_v6(v6("2001:db8::"), 32), in_v6(v6("2001::"), 32), in_v6(v6("2002::"), 16),
                in_v6(v6("64:ff9b::"), 96), in_v6(v6("100::"), 64),
            ],
            loopback in any::<bool>(),
        ) {
            prop_assert!(!allowed(IpAddr::V6(a), loopback));
        }

        #[test]
        fn loopback_is_refused_unless_allowed(a in in_v4([127, 0, 0, 0], 8)) {
            prop_assert!(!allowed(IpAddr::V4(a), false));
            prop_assert!(allowed(IpAddr::V4(a), true));
        }
    }

    fn code(url: &str, allow_loopback: bool) -> &'static str {
        check_url(url, allow_loopback).map(|_| "OK").unwrap_or_else(|e| e.code)
    }

    #[test]
    fn check_url_refuses_each_bad_shape_with_its_code() {
        let long = format!("https://example.no/{}", "a".repeat(MAX_URL_LEN));
        for (url, expected) in [
            ("https://hooks.example.no/velferd", "OK"),
            ("https://hooks.example.no:8443/v?x=1", "OK"),
            ("https://93.184.216.34/hook", "OK"),
            ("https://[2606:4700:4700::1111]/hook", "OK"),
            ("not a url", "URL_INVALID"),
            ("/relative", "URL_INVALID"),
            (long.as_str(), "URL_INVALID"),
            ("https://user:pw@hooks.example.no/", "URL_INVALID"),
            ("https://user@hooks.example.no/", "URL_INVALID"),
            ("https://hooks.example.no/#frag", "URL_INVALID"),
            ("https://hooks.example.no/#", "URL_INVALID"),
            ("http://hooks.example.no/", "URL_NOT_HTTPS"),
            ("ftp://hooks.example.no/", "URL_NOT_HTTPS"),
            ("file:///etc/passwd", "URL_NOT_HTTPS"),
            ("http://127.0.0.1/", "URL_NOT_HTTPS"),
            ("https://127.0.0.1/", "URL_ADDRESS_REFUSED"),
            ("https://localhost/", "URL_ADDRESS_REFUSED"),
            ("https://LOCALHOST./", "URL_ADDRESS_REFUSED"),
            ("https://api.localhost/", "URL_ADDRESS_REFUSED"),
            ("https://[::1]/", "URL_ADDRESS_REFUSED"),
            ("https://[::ffff:127.0.0.1]/", "URL_ADDRESS_REFUSED"),
            ("https://[::ffff:7f00:1]/", "URL_ADDRESS_REFUSED"),
            ("https://0.0.0.0/", "URL_ADDRESS_REFUSED"),
            ("https://0/", "URL_ADDRESS_REFUSED"),
            ("https://2130706433/", "URL_ADDRESS_REFUSED"),
            ("https://0x7f.0.0.1/", "URL_ADDRESS_REFUSED"),
            ("https://0x7f.1/", "URL_ADDRESS_REFUSED"),
            ("https://017700000001/", "URL_ADDRESS_REFUSED"),
            ("https://127.1/", "URL_ADDRESS_REFUSED"),
            ("https://10.0.0.1/", "URL_ADDRESS_REFUSED"),
            ("https://169.254.169.254/latest/meta-data/", "URL_ADDRESS_REFUSED"),
            ("https://[fd00::1]/", "URL_ADDRESS_REFUSED"),
            ("https://[fe80::1]/", "URL_ADDRESS_REFUSED"),
        ] {
            assert_eq!(code(url, false), expected, "{url}");
        }
    }

    #[test]
    fn loopback_allowed_admits_loopback_and_http_to_it_only() {
        for url in ["https://127.0.0.1:8443/", "http://127.0.0.1:8080/", "http://localhost:8080/", "https://[::1]/"] {
            assert_eq!(code(url, true), "OK", "{url}");
        }
        assert_eq!(code("http://hooks.example.no/", true), "URL_NOT_HTTPS");
        assert_eq!(code("http://10.0.0.1/", true), "URL_NOT_HTTPS");
        assert_eq!(code("https://10.0.0.1/", true), "URL_ADDRESS_REFUSED");
    }

    #[test]
    fn an_endpoint_url_round_trips_as_text_and_is_checked_when_read() {
        let url = check_url("https://Hooks.Example.NO/a/../b", false).unwrap();
        assert_eq!(url.as_str(), "https://hooks.example.no/b");
        assert_eq!(url.to_string(), url.as_str());
        let json = serde_json::to_string(&url).unwrap();
        assert_eq!(json, "\"https://hooks.example.no/b\"");
        assert_eq!(serde_json::from_str::<EndpointUrl>(&json).unwrap(), url);
        assert!(serde_json::from_str::<EndpointUrl>("\"http://hooks.example.no/\"").is_err());
        assert!(serde_json::from_str::<EndpointUrl>("\"https://10.0.0.1/\"").is_err());
        assert_eq!(String::from(url), "https://hooks.example.no/b");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("99999999999999999999999", now), Some(Duration::from_secs(u64::MAX)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(90)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        for bad in ["", "-5", "1.5", "soon", "Mon, 99 Foo 2020"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn the_excerpt_is_at_most_a_kibibyte_on_a_character_boundary() {
        assert_eq!(excerpt(b"ok"), "ok");
        let body = "ø".repeat(2000);
        let cut = excerpt(body.as_bytes());
        assert!(cut.len() <= MAX_EXCERPT && cut.chars().all(|c| c == 'ø'), "{}", cut.len());
        assert_eq!(cut.len(), MAX_EXCERPT);
        let mut odd = vec![b'a'];
        odd.extend(body.as_bytes());
        let cut = excerpt(&odd);
        assert!(cut.len() <= MAX_EXCERPT && cut.is_char_boundary(cut.len()));
    }

    struct Fixed(Vec<SocketAddr>);

    impl NameResolver for Fixed {
        fn resolve(&self, _host: &str, _port: u16) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
            let answer = self.0.clone();
            Box::pin(async move { Ok(answer) })
        }
    }

    async fn guarded(answer: &[&str], allow_loopback: bool) -> Result<Vec<String>, String> {
        use reqwest::dns::Resolve;
        let answer = answer.iter().map(|a| a.parse().unwrap()).collect();
        let guard = GuardedResolver { resolver: Arc::new(Fixed(answer)), allow_loopback };
        match guard.resolve("hooks.example.no".parse().unwrap()).await {
            Ok(addrs) => Ok(addrs.map(|a| a.to_string()).collect()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[tokio::test]
    async fn the_resolver_keeps_only_allowed_addresses_and_no_port_of_its_own() {
        let mixed = ["10.0.0.1:443", "93.184.216.34:8443", "127.0.0.1:80", "[fd00::1]:443", "[2606:4700::1]:1"];
        assert_eq!(guarded(&mixed, false).await.unwrap(), ["93.184.216.34:0", "[2606:4700::1]:0"]);
        assert_eq!(guarded(&mixed, true).await.unwrap(), ["93.184.216.34:0", "127.0.0.1:0", "[2606:4700::1]:0"]);
        let refused = guarded(&["127.0.0.1:443", "169.254.169.254:80", "[::ffff:10.1.2.3]:443"], false).await;
        assert_eq!(refused.unwrap_err(), "hooks.example.no resolves to no public address");
        assert!(guarded(&[], true).await.is_err(), "no address is no allowed address");
    }

    #[test]
    fn a_trust_roots_file_without_certificates_is_refused_naming_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        for path in [empty, dir.path().join("missing.pem")] {
            let settings = OutboundSettings { extra_roots_file: Some(path), ..OutboundSettings::default() };
            let e = Outbound::new(&settings).unwrap_err().to_string();
            assert!(e.starts_with("VELFERD_OUTBOUND_TRUST_ROOTS_FILE"), "{e}");
        }
        assert!(Outbound::new(&OutboundSettings::default()).is_ok());
    }
}
