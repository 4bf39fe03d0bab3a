//! The outbound client (`velferd::outbound`) through real HTTPS against the test receiver on
//! 127.0.0.1: what arrives, what is refused before a byte is sent, and how answers are read.
//! No Velferd server or database is needed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::BoxFuture;
use velferd::outbound::{EndpointUrl, Failure, NameResolver, Outbound, OutboundSettings};

use crate::receiver::{Receiver, Scripted, TEST_NAME};

/// Loopback allowed, the receiver's CA trusted.
fn settings_for(receiver: &Receiver) -> OutboundSettings {
    OutboundSettings {
        allow_loopback: true,
        extra_roots_file: Some(receiver.ca_file().to_path_buf()),
        timeout: Duration::from_secs(5),
        max_retry_after: Duration::from_secs(3600),
    }
}

fn client_for(receiver: &Receiver) -> Outbound {
    Outbound::new(&settings_for(receiver)).unwrap()
}

/// Production's rules: public addresses only (the receiver's CA is still trusted, so a refusal
/// is the address check's doing, not the certificate's).
fn strict_client_for(receiver: &Receiver, resolver: Option<Arc<dyn NameResolver>>) -> Outbound {
    let settings = OutboundSettings { allow_loopback: false, ..settings_for(receiver) };
    match resolver {
        Some(resolver) => Outbound::with_resolver(&settings, resolver).unwrap(),
        None => Outbound::new(&settings).unwrap(),
    }
}

async fn post(outbound: &Outbound, url: &EndpointUrl) -> Result<velferd::outbound::Answer, Failure> {
    outbound.post(url, &[("content-type", "application/json".into())], bytes::Bytes::from_static(b"{}")).await
}

/// Answers every name with `answers[n]` on its n-th lookup (the last one from then on), and
/// counts the lookups.
struct ScriptedResolver {
    answers: Vec<Vec<SocketAddr>>,
    calls: AtomicUsize,
}

impl ScriptedResolver {
    fn new(answers: &[&[&str]]) -> Arc<ScriptedResolver> {
        let answers = answers.iter().map(|a| a.iter().map(|s| s.parse().unwrap()).collect()).collect();
        Arc::new(ScriptedResolver { answers, calls: AtomicUsize::new(0) })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl NameResolver for ScriptedResolver {
    fn resolve(&self, _host: &str, _port: u16) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let answer = self.answers[n.min(self.answers.len() - 1)].clone();
        Box::pin(async move { Ok(answer) })
    }
}

#[tokio::test]
async fn a_post_arrives_intact_over_https_with_the_configured_root() {
    let receiver = Receiver::start().await;
    let outbound = client_for(&receiver);
    let body = bytes::Bytes::from(r#"{"type":"alert.raised","data":{"id":"QWxlcnQ6MQ"}}"#);
    for (n, url) in [receiver.url("/hooks/velferd?x=1"), receiver.url_ip("/hooks/velferd?x=1")].iter().enumerate() {
        let url = outbound.check_url(url).unwrap();
        let headers = [
            ("content-type", "application/json".to_string()),
            ("webhook-id", format!("msg_{n}")),
            ("Webhook-Signature", "v1,c2lnbmF0dXJl".to_string()),
        ];
        let answer = outbound.post(&url, &headers, body.clone()).await.unwrap();
        assert_eq!((answer.status, answer.excerpt.as_str(), answer.body_read), (200, "ok", 2));
        let remote = answer.remote.expect("the peer's address is known");
        assert!(remote.ip().is_loopback() && remote.port() == receiver.port(), "{remote}");
        assert!(answer.latency > Duration::ZERO && answer.latency < Duration::from_secs(5));
        assert_eq!(answer.retry_after, None);
    }
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    for (n, request) in requests.iter().enumerate() {
        assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/hooks/velferd?x=1"));
        assert_eq!(request.body, body);
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("webhook-id"), Some(format!("msg_{n}").as_str()));
        assert_eq!(request.header("webhook-signature"), Some("v1,c2lnbmF0dXJl"));
        assert!(request.header("user-agent").is_some_and(|ua| ua.starts_with("Velferd/")));
        assert!(request.received_at <= SystemTime::now());
    }
}

#[tokio::test]
async fn an_untrusted_certificate_fails_with_tls_failed_even_with_loopback_allowed() {
    let trusted = Receiver::start().await;
    let untrusted = Receiver::start().await;
    // Trusts the first receiver's CA, not the second's; Mozilla's roots know neither.
    let outbound = client_for(&trusted);
    let without_extra_roots = Outbound::new(&OutboundSettings {
        allow_loopback: true,
        extra_roots_file: None,
        ..OutboundSettings::default()
    })
    .unwrap();
    for (client, receiver) in [(&outbound, &untrusted), (&without_extra_roots, &trusted)] {
        let url = client.check_url(&receiver.url("/hook")).unwrap();
        let failure = post(client, &url).await.unwrap_err();
        assert_eq!(failure.code(), "TLS_FAILED", "{failure}");
        assert!(matches!(failure, Failure::Tls(_)));
        assert!(receiver.requests().is_empty(), "no request is sent over an unverified connection");
    }
    assert_eq!(post(&outbound, &outbound.check_url(&trusted.url("/hook")).unwrap()).await.unwrap().status, 200);
}

#[tokio::test]
async fn with_loopback_not_allowed_every_ssrf_shape_is_refused_before_a_byte_is_sent() {
    let receiver = Receiver::start().await;
    let port = receiver.port();
    let strict = strict_client_for(&receiver, None);
    let lenient = client_for(&receiver);
    let shapes = [
        (format!("https://localhost:{port}/hook"), "URL_ADDRESS_REFUSED"),
        (format!("https://127.0.0.1:{port}/hook"), "URL_ADDRESS_REFUSED"),
        (format!("https://[::1]:{port}/hook"), "URL_ADDRESS_REFUSED"),
        (format!("https://[::ffff:127.0.0.1]:{port}/hook"), "URL_ADDRESS_REFUSED"),
        (format!("https://0.0.0.0:{port}/hook"), "URL_ADDRESS_REFUSED"),
        (format!("https://2130706433:{port}/hook"), "URL_ADDRESS_REFUSED"),
        (format!("https://0x7f.0.0.1:{port}/hook"), "URL_ADDRESS_REFUSED"),
        (format!("https://017700000001:{port}/hook"), "URL_ADDRESS_REFUSED"),
        (format!("https://10.0.0.1:{port}/hook"), "URL_ADDRESS_REFUSED"),
        (format!("https://169.254.169.254:{port}/latest/meta-data/"), "URL_ADDRESS_REFUSED"),
        (format!("https://[fd00::1]:{port}/hook"), "URL_ADDRESS_REFUSED"),
        (format!("http://127.0.0.1:{port}/hook"), "URL_NOT_HTTPS"),
        (format!("http://localhost:{port}/hook"), "URL_NOT_HTTPS"),
        ("http://hooks.example.no/hook".to_string(), "URL_NOT_HTTPS"),
    ];
    for (url, code) in &shapes {
        // Refused at registration…
        let refused = strict.check_url(url).unwrap_err();
        assert_eq!(refused.code, *code, "{url}: {}", refused.message);
        // …and when sending an address stored while loopback was allowed (or read back from
        // storage): the strict client checks again and sends nothing.
        if let Ok(stored) = lenient.check_url(url) {
            let started = Instant::now();
            let failure = post(&strict, &stored).await.unwrap_err();
            assert_eq!(failure.code(), "ADDRESS_REFUSED", "{url}: {failure}");
            assert!(started.elapsed() < Duration::from_secs(1), "{url}: refused without trying to connect");
        }
    }
    // A name the check cannot judge resolves, at connect time, to loopback only: refused,
    // naming the host and not the addresses it resolved to.
    let resolver = ScriptedResolver::new(&[&["127.0.0.1:0", "[::1]:0", "[::ffff:127.0.0.1]:0"]]);
    let strict_named = strict_client_for(&receiver, Some(resolver.clone()));
    let url = strict_named.check_url(&receiver.url_for_host(TEST_NAME, "/hook")).unwrap();
    let failure = post(&strict_named, &url).await.unwrap_err();
    assert_eq!(failure.code(), "ADDRESS_REFUSED");
    let message = failure.to_string();
    assert!(message.contains(TEST_NAME) && !message.contains("127.0.0.1") && !message.contains("::1"), "{message}");
    assert_eq!(resolver.calls(), 1, "the name was resolved when connecting");
    assert!(receiver.requests().is_empty(), "{:?}", receiver.requests());
}

#[tokio::test]
async fn a_name_that_rebinds_to_loopback_never_reaches_the_receiver() {
    let receiver = Receiver::start().await;
    // What a check at registration would have seen: a public address. What the name answers
    // when Velferd connects: 127.0.0.1.
    let resolver = ScriptedResolver::new(&[&["93.184.216.34:0"], &["127.0.0.1:0"]]);
    let registration_lookup = resolver.resolve(TEST_NAME, 443).await.unwrap();
    assert!(velferd::outbound::allowed(registration_lookup[0].ip(), false));
    let strict = strict_client_for(&receiver, Some(resolver.clone()));
    let url = strict.check_url(&receiver.url_for_host(TEST_NAME, "/hook")).unwrap();
    for _ in 0..3 {
        let failure = post(&strict, &url).await.unwrap_err();
        assert_eq!(failure.code(), "ADDRESS_REFUSED", "{failure}");
    }
    assert_eq!(resolver.calls(), 4, "every connection attempt resolves the name again and judges the answer");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn a_resolved_name_is_connected_to_on_the_urls_port_with_loopback_allowed() {
    let receiver = Receiver::start().await;
    // The resolver suggests port 9; the URL's port is the one used.
    let resolver = ScriptedResolver::new(&[&["127.0.0.1:9"]]);
    let outbound = Outbound::with_resolver(&settings_for(&receiver), resolver.clone()).unwrap();
    let url = outbound.check_url(&receiver.url_for_host(TEST_NAME, "/named")).unwrap();
    let answer = post(&outbound, &url).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.remote.map(|r| r.port()), Some(receiver.port()));
    assert_eq!(resolver.calls(), 1);
    assert_eq!(receiver.requests()[0].header("host"), Some(format!("{TEST_NAME}:{}", receiver.port()).as_str()));
}

#[tokio::test]
async fn a_redirect_is_an_answer_and_its_location_is_not_fetched() {
    let receiver = Receiver::start().await;
    let outbound = client_for(&receiver);
    for status in [301, 302, 307, 308] {
        receiver.respond_with(vec![Scripted::status(status).header("location", &receiver.url("/elsewhere"))]);
        let answer = post(&outbound, &outbound.check_url(&receiver.url("/hook")).unwrap()).await.unwrap();
        assert_eq!(answer.status, status);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let paths: Vec<_> = receiver.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/hook"; 4]);
}

#[tokio::test]
async fn retry_after_in_seconds_and_as_an_http_date_is_read_and_capped() {
    let receiver = Receiver::start().await;
    let settings = OutboundSettings { max_retry_after: Duration::from_secs(600), ..settings_for(&receiver) };
    let outbound = Outbound::new(&settings).unwrap();
    let url = outbound.check_url(&receiver.url("/hook")).unwrap();
    let in_five_minutes = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(300));
    let in_two_hours = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(7200));
    let an_hour_ago = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(3600));
    receiver.respond_with(vec![
        Scripted::status(429).header("retry-after", "120"),
        Scripted::status(503).header("retry-after", &in_five_minutes),
        Scripted::status(503).header("retry-after", "86400"),
        Scripted::status(502).header("retry-after", &in_two_hours),
        Scripted::status(504).header("retry-after", &an_hour_ago),
        Scripted::status(429).header("retry-after", "soon"),
    ]);
    let mut waits = Vec::new();
    for _ in 0..6 {
        waits.push(post(&outbound, &url).await.unwrap().retry_after);
    }
    assert_eq!(waits[0], Some(Duration::from_secs(120)));
    let date = waits[1].expect("an HTTP date is read");
    // The date has whole seconds and the call takes a moment.
    assert!(date <= Duration::from_secs(300) && date >= Duration::from_secs(295), "{date:?}");
    assert_eq!(
        waits[2..],
        [Some(Duration::from_secs(600)), Some(Duration::from_secs(600)), Some(Duration::ZERO), None]
    );
}

#[tokio::test]
async fn a_slow_receiver_fails_with_timeout() {
    let receiver = Receiver::start().await;
    let settings = OutboundSettings { timeout: Duration::from_millis(500), ..settings_for(&receiver) };
    let outbound = Outbound::new(&settings).unwrap();
    receiver.respond_with(vec![Scripted::status(200).delay(Duration::from_secs(3))]);
    let started = Instant::now();
    let failure = post(&outbound, &outbound.check_url(&receiver.url("/slow")).unwrap()).await.unwrap_err();
    assert_eq!(failure.code(), "TIMEOUT", "{failure}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(receiver.requests().len(), 1, "the request arrived; its answer came too late");
}

#[tokio::test]
async fn a_large_answer_is_cut_at_64_kib_and_its_excerpt_is_at_most_1_kib() {
    let receiver = Receiver::start().await;
    let outbound = client_for(&receiver);
    let url = outbound.check_url(&receiver.url("/hook")).unwrap();
    receiver.respond_with(vec![Scripted::status(500).body("é".repeat(1 << 19))]);
    let answer = post(&outbound, &url).await.unwrap();
    assert_eq!(answer.status, 500);
    assert_eq!(answer.body_read, velferd::outbound::MAX_BODY_READ);
    assert_eq!(answer.body_read, 64 * 1024);
    assert!(answer.excerpt.len() <= 1024 && answer.excerpt.len() >= 1022, "{}", answer.excerpt.len());
    assert!(answer.excerpt.chars().all(|c| c == 'é'));
    // The client is still good for the next call.
    assert_eq!(post(&outbound, &url).await.unwrap().excerpt, "ok");
}

#[tokio::test]
async fn a_stopped_receiver_fails_to_connect_and_is_reached_again_once_restarted() {
    let receiver = Receiver::start().await;
    let outbound = client_for(&receiver);
    let url = outbound.check_url(&receiver.url_ip("/hook")).unwrap();
    assert_eq!(post(&outbound, &url).await.unwrap().status, 200);
    receiver.stop().await;
    let failure = post(&outbound, &url).await.unwrap_err();
    assert_eq!(failure.code(), "CONNECT_FAILED", "{failure}");
    receiver.restart().await;
    assert_eq!(post(&outbound, &url).await.unwrap().status, 200);
    assert_eq!(receiver.wait_for_requests(2, Duration::from_secs(5)).await.len(), 2);
}

#[tokio::test]
async fn check_url_refusals_carry_their_codes() {
    let outbound = Outbound::new(&OutboundSettings::default()).unwrap();
    for (url, code) in [
        ("hooks.example.no/velferd", "URL_INVALID"),
        ("https://user:secret@hooks.example.no/", "URL_INVALID"),
        ("https://hooks.example.no/velferd#part", "URL_INVALID"),
        (&format!("https://hooks.example.no/{}", "a".repeat(2048)), "URL_INVALID"),
        ("http://hooks.example.no/velferd", "URL_NOT_HTTPS"),
        ("wss://hooks.example.no/velferd", "URL_NOT_HTTPS"),
        ("https://192.168.1.10/velferd", "URL_ADDRESS_REFUSED"),
        ("https://[fe80::1]/velferd", "URL_ADDRESS_REFUSED"),
        ("https://[2002:7f00:1::1]/velferd", "URL_ADDRESS_REFUSED"),
        ("https://[64:ff9b::a00:1]/velferd", "URL_ADDRESS_REFUSED"),
    ] {
        let refused = outbound.check_url(url).unwrap_err();
        assert_eq!(refused.code, code, "{url}: {}", refused.message);
        assert!(!refused.message.is_empty());
    }
    let url = outbound.check_url("https://hooks.example.no/velferd").unwrap();
    assert_eq!(url.as_str(), "https://hooks.example.no/velferd");
}

/// `velferd serve` refuses bad outbound settings, naming the setting, before it serves.
#[test]
fn bad_outbound_settings_stop_the_start_with_a_message_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("roots.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let not_pem = not_pem.display().to_string();
    for (env, setting) in [
        (vec![("VELFERD_OUTBOUND_TRUST_ROOTS_FILE", "/nonexistent/roots.pem")], "VELFERD_OUTBOUND_TRUST_ROOTS_FILE"),
        (vec![("VELFERD_OUTBOUND_TRUST_ROOTS_FILE", not_pem.as_str())], "VELFERD_OUTBOUND_TRUST_ROOTS_FILE"),
        (vec![("VELFERD_OUTBOUND_TIMEOUT", "ten seconds")], "VELFERD_OUTBOUND_TIMEOUT"),
        (vec![("VELFERD_OUTBOUND_MAX_RETRY_AFTER", "30d")], "VELFERD_OUTBOUND_MAX_RETRY_AFTER"),
        (vec![("VELFERD_OUTBOUND_ALLOW_LOOPBACK", "maybe")], "VELFERD_OUTBOUND_ALLOW_LOOPBACK"),
    ] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_velferd"));
        for (name, _) in std::env::vars() {
            if name.starts_with("VELFERD_") {
                command.env_remove(name);
            }
        }
        let output = command
            .current_dir(dir.path())
            .arg("serve")
            .env("VELFERD_LOG", "warn")
            .env("VELFERD_JWT_SECRET", crate::support::SECRET)
            .env("VELFERD_BIND", "127.0.0.1:0")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{env:?}: {stderr}");
        assert!(stderr.contains(setting) && !stderr.contains("panicked"), "{env:?}: {stderr}");
    }
}
