//! The cluster RPC through its public surface and real sockets on 127.0.0.1: round trips,
//! multiplexing over a small pool, token authentication (and that the token never crosses the
//! wire), mutual TLS with rcgen-made certificates, hostile input, peer restarts and timeouts.

use bytes::Bytes;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wukongim::cluster::rpc::{serve, RpcClient, RpcError, RpcHandler, RpcSettings, TlsSettings};
use wukongim::config::Tls;

const ECHO: u8 = 1;
/// Body starts with a big-endian u16 delay in milliseconds; answered with the body.
const DELAYED: u8 = 2;
const NEVER: u8 = 3;
const FAIL: u8 = 4;
const PANIC: u8 = 5;

#[derive(Default)]
struct TestHandler {
    started: AtomicUsize,
}

impl RpcHandler for TestHandler {
    async fn handle(&self, kind: u8, body: Bytes) -> Result<Bytes, String> {
        self.started.fetch_add(1, Ordering::SeqCst);
        match kind {
            ECHO => Ok(body),
            DELAYED => {
                let ms = u16::from_be_bytes([body[0], body[1]]);
                tokio::time::sleep(Duration::from_millis(ms.into())).await;
                Ok(body)
            }
            NEVER => std::future::pending().await,
            FAIL => Err(format!("boom: {}", String::from_utf8_lossy(&body))),
            PANIC => panic!("a handler bug"),
            other => Err(format!("unknown kind {other}")),
        }
    }
}

struct Server {
    addr: String,
    handler: Arc<TestHandler>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(settings: RpcSettings) -> Server {
        Server::start_on("127.0.0.1:0", settings).await
    }

    async fn start_on(addr: &str, settings: RpcSettings) -> Server {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handler = Arc::new(TestHandler::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(
            listener,
            Arc::new(settings),
            handler.clone(),
            stop.clone(),
        ));
        Server {
            addr,
            handler,
            stop,
            task,
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap();
    }
}

fn fast() -> RpcSettings {
    RpcSettings {
        dial_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        max_connections: 2,
        max_frame: 8 << 20,
        ..RpcSettings::default()
    }
}

fn with_token(token: &str) -> RpcSettings {
    RpcSettings {
        token: Some(token.as_bytes().to_vec()),
        ..fast()
    }
}

fn client(settings: RpcSettings) -> RpcClient {
    RpcClient::new(Arc::new(settings))
}

fn delayed(ms: u16, tag: &[u8]) -> Bytes {
    let mut b = ms.to_be_bytes().to_vec();
    b.extend_from_slice(tag);
    b.into()
}

/// Polls `check` until it holds or `within` passes.
async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A TCP relay that counts connections and records every byte in both directions.
struct Relay {
    addr: String,
    connections: Arc<AtomicUsize>,
    recorded: Arc<Mutex<Vec<u8>>>,
}

async fn relay(target: String) -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let connections = Arc::new(AtomicUsize::new(0));
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let (conns, rec) = (connections.clone(), recorded.clone());
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            conns.fetch_add(1, Ordering::SeqCst);
            let Ok(outbound) = TcpStream::connect(&target).await else {
                continue;
            };
            let (ir, iw) = inbound.into_split();
            let (or, ow) = outbound.into_split();
            tokio::spawn(pipe(ir, ow, rec.clone()));
            tokio::spawn(pipe(or, iw, rec.clone()));
        }
    });
    Relay {
        addr,
        connections,
        recorded,
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    recorded: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                recorded.lock().unwrap().extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Connects raw and completes the token-less handshake by hand (see the wire format docs).
async fn raw_session(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut hello = vec![0, 0, 0, 38];
    hello.extend_from_slice(b"WKRPC\x01");
    hello.extend_from_slice(&[9u8; 32]);
    s.write_all(&hello).await.unwrap();
    let mut answer = [0u8; 4 + 39];
    s.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer[4..10], b"WKRPC\x01");
    assert_eq!(answer[10], 0, "no token configured");
    s
}

/// Asserts the server closes `s` (EOF or reset) within a few seconds.
async fn assert_closed_by_server(mut s: TcpStream) {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue,
            Err(_) => panic!("server kept the connection open"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_round_trip_errors_and_large_bodies() {
    let server = Server::start(fast()).await;
    let c = client(fast());
    let got = c
        .call(&server.addr, ECHO, Bytes::from_static(b"hello"))
        .await;
    assert_eq!(got.unwrap(), Bytes::from_static(b"hello"));
    assert_eq!(
        c.call(&server.addr, ECHO, Bytes::new()).await.unwrap(),
        Bytes::new()
    );

    // Larger than one frame chunk: travels in pieces and comes back whole.
    let big: Bytes = (0..3_000_000u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    assert_eq!(c.call(&server.addr, ECHO, big.clone()).await.unwrap(), big);

    match c.call(&server.addr, FAIL, Bytes::from_static(b"x")).await {
        Err(RpcError::Remote(m)) => assert_eq!(m, "boom: x"),
        other => panic!("expected a remote error, got {other:?}"),
    }
    match c.call(&server.addr, PANIC, Bytes::new()).await {
        Err(RpcError::Remote(m)) => assert!(m.contains("panicked"), "{m}"),
        other => panic!("expected a remote error, got {other:?}"),
    }
    // Neither an error nor a panicking handler hurts the connection.
    let got = c
        .call(&server.addr, ECHO, Bytes::from_static(b"still here"))
        .await;
    assert_eq!(got.unwrap(), Bytes::from_static(b"still here"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_two_connections_and_get_their_own_answers() {
    let server = Server::start(fast()).await;
    let relay = relay(server.addr.clone()).await;
    let c = client(fast());
    let calls: Vec<_> = (0..200u32)
        .map(|i| {
            let (c, addr) = (c.clone(), relay.addr.clone());
            // Later calls finish first: answers come back out of order.
            let body = delayed((200 - i) as u16 / 4, format!("call-{i}").as_bytes());
            tokio::spawn(async move {
                let got = c.call(&addr, DELAYED, body.clone()).await;
                (body, got)
            })
        })
        .collect();
    for call in calls {
        let (sent, got) = call.await.unwrap();
        assert_eq!(got.unwrap(), sent);
    }
    let n = relay.connections.load(Ordering::SeqCst);
    assert!((1..=2).contains(&n), "{n} connections for a pool of 2");
    assert_eq!(server.handler.started.load(Ordering::SeqCst), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_token_is_rejected_and_the_right_one_accepted() {
    let server = Server::start(with_token("the-right-token")).await;
    let wrong = client(with_token("a-wrong-token"));
    match wrong
        .call(&server.addr, ECHO, Bytes::from_static(b"x"))
        .await
    {
        Err(RpcError::Auth(m)) => assert!(m.contains(&server.addr), "{m}"),
        other => panic!("expected an auth error, got {other:?}"),
    }
    let none = client(fast());
    let res = none
        .call(&server.addr, ECHO, Bytes::from_static(b"x"))
        .await;
    assert!(matches!(res, Err(RpcError::Auth(_))), "{res:?}");
    assert_eq!(
        server.handler.started.load(Ordering::SeqCst),
        0,
        "no request is handled unauthenticated"
    );

    let right = client(with_token("the-right-token"));
    let got = right
        .call(&server.addr, ECHO, Bytes::from_static(b"x"))
        .await;
    assert_eq!(got.unwrap(), Bytes::from_static(b"x"));

    // A client holding a token refuses a server that does not ask for it.
    let open = Server::start(fast()).await;
    let res = right.call(&open.addr, ECHO, Bytes::from_static(b"x")).await;
    assert!(matches!(res, Err(RpcError::Auth(_))), "{res:?}");
    open.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_never_crosses_the_wire() {
    let token = "cluster-secret-5f3a9c17e2";
    let server = Server::start(with_token(token)).await;
    let relay = relay(server.addr.clone()).await;
    let c = client(with_token(token));
    for i in 0..5u8 {
        let got = c.call(&relay.addr, ECHO, Bytes::from(vec![i; 10])).await;
        assert_eq!(got.unwrap(), Bytes::from(vec![i; 10]));
    }
    // A rejected attempt must not leak the wrong token either.
    let wrong = "wrong-secret-88d1c0ffee";
    let res = client(with_token(wrong))
        .call(&relay.addr, ECHO, Bytes::new())
        .await;
    assert!(matches!(res, Err(RpcError::Auth(_))), "{res:?}");

    let recorded = relay.recorded.lock().unwrap().clone();
    assert!(contains(&recorded, b"WKRPC"), "the relay saw the handshake");
    assert!(!contains(&recorded, token.as_bytes()));
    assert!(!contains(&recorded, wrong.as_bytes()));
    server.stop().await;
}

/// A CA, and a certificate per name signed by it; files are `<prefix>.crt` / `<prefix>.key`.
struct Pki {
    ca_cert: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(dir: &Path, name: &str) -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        Pki {
            ca_cert: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn issue(&self, dir: &Path, prefix: &str, sans: &[&str]) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(dir.join(format!("{prefix}.crt")), cert.pem()).unwrap();
        write_secret(&dir.join(format!("{prefix}.key")), key.serialize_pem());
    }
}

fn tls_keys(dir: &Path, prefix: &str, ca: Option<&str>, client_auth: bool) -> Tls {
    Tls {
        enabled: true,
        cert_file: Some(dir.join(format!("{prefix}.crt"))),
        key_file: Some(dir.join(format!("{prefix}.key"))),
        ca_file: ca.map(|c| dir.join(format!("{c}.crt"))),
        client_auth,
        ..Tls::default()
    }
}

fn tls(t: &Tls) -> RpcSettings {
    RpcSettings {
        tls: Some(TlsSettings::from_config(t).unwrap().into()),
        ..fast()
    }
}

/// A client that trusts `ca` and presents no certificate, limited to `versions`.
fn anonymous_tls_client(
    ca: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> RpcSettings {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let placeholder = fast_tls_placeholder(ca.parent().unwrap());
    RpcSettings {
        tls: Some(
            TlsSettings {
                server: placeholder.server,
                client: Arc::new(cfg),
            }
            .into(),
        ),
        ..fast()
    }
}

fn fast_tls_placeholder(dir: &Path) -> TlsSettings {
    TlsSettings::from_config(&tls_keys(dir, "client", Some("ca"), false)).unwrap()
}

fn assert_rejected(res: Result<Bytes, RpcError>, what: &str) {
    match res {
        Err(RpcError::Tls(_)) => {}
        other => panic!("{what}: expected a TLS failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_accepts_only_clients_with_a_certificate_from_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Pki::new(d, "ca");
    ca.issue(d, "server", &["127.0.0.1"]);
    ca.issue(d, "client", &["127.0.0.1"]);
    let rogue_ca = Pki::new(d, "rogue-ca");
    rogue_ca.issue(d, "rogue", &["127.0.0.1"]);
    assert_ne!(ca.ca_cert, rogue_ca.ca_cert);

    let server = Server::start(tls(&tls_keys(d, "server", Some("ca"), true))).await;
    let good = client(tls(&tls_keys(d, "client", Some("ca"), false)));
    let got = good
        .call(&server.addr, ECHO, Bytes::from_static(b"secure"))
        .await;
    assert_eq!(got.unwrap(), Bytes::from_static(b"secure"));

    // A certificate from another CA (the client itself trusts the right CA).
    let rogue = client(tls(&tls_keys(d, "rogue", Some("ca"), false)));
    let res = rogue
        .call(&server.addr, ECHO, Bytes::from_static(b"x"))
        .await;
    assert_rejected(res, "certificate from another CA");

    // No client certificate at all.
    let anonymous = client(anonymous_tls_client(
        &d.join("ca.crt"),
        rustls::DEFAULT_VERSIONS,
    ));
    let res = anonymous
        .call(&server.addr, ECHO, Bytes::from_static(b"x"))
        .await;
    assert_rejected(res, "no client certificate");

    // A client that does not trust the server's CA refuses the server.
    let distrustful = client(tls(&tls_keys(d, "client", Some("rogue-ca"), false)));
    let res = distrustful
        .call(&server.addr, ECHO, Bytes::from_static(b"x"))
        .await;
    assert!(matches!(res, Err(RpcError::Tls(_))), "{res:?}");

    // Plain TCP to the TLS port fails cleanly and quickly.
    let started = Instant::now();
    let res = client(fast())
        .call(&server.addr, ECHO, Bytes::from_static(b"x"))
        .await;
    assert!(
        matches!(res, Err(RpcError::Protocol(_)) | Err(RpcError::Closed)),
        "{res:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.handler.started.load(Ordering::SeqCst), 1);

    // The server is unharmed and the good client still gets through.
    let got = good
        .call(&server.addr, ECHO, Bytes::from_static(b"again"))
        .await;
    assert_eq!(got.unwrap(), Bytes::from_static(b"again"));
    server.stop().await;

    // TLS to a plain server fails as a TLS error.
    let plain = Server::start(fast()).await;
    let res = good.call(&plain.addr, ECHO, Bytes::new()).await;
    assert!(matches!(res, Err(RpcError::Tls(_))), "{res:?}");
    plain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_versions_suites_and_a_shared_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Pki::new(d, "ca");
    ca.issue(d, "server", &["127.0.0.1"]);
    ca.issue(d, "client", &["127.0.0.1"]);

    // minVersion 1.3: a TLS 1.2-only client is refused.
    let mut keys = tls_keys(d, "server", Some("ca"), false);
    keys.min_version = "1.3".into();
    let server = Server::start(tls(&keys)).await;
    let old = client(anonymous_tls_client(
        &d.join("ca.crt"),
        &[&rustls::version::TLS12],
    ));
    let res = old.call(&server.addr, ECHO, Bytes::new()).await;
    assert!(matches!(res, Err(RpcError::Tls(_))), "{res:?}");
    let modern = client(anonymous_tls_client(
        &d.join("ca.crt"),
        rustls::DEFAULT_VERSIONS,
    ));
    assert!(modern.call(&server.addr, ECHO, Bytes::new()).await.is_ok());
    server.stop().await;

    // A TLS 1.2 suite restriction (rcgen keys are ECDSA) still connects.
    let mut keys = tls_keys(d, "server", Some("ca"), false);
    keys.cipher_suites = vec!["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into()];
    let server = Server::start(tls(&keys)).await;
    let c = client(tls(&tls_keys(d, "client", Some("ca"), false)));
    assert!(c.call(&server.addr, ECHO, Bytes::new()).await.is_ok());
    server.stop().await;

    // No caFile: peers trust the certificate they share.
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(d.join("shared.crt"), cert.pem()).unwrap();
    write_secret(&d.join("shared.key"), key.serialize_pem());
    let shared = tls_keys(d, "shared", None, false);
    let server = Server::start(tls(&shared)).await;
    let got = client(tls(&shared))
        .call(&server.addr, ECHO, Bytes::from_static(b"s"))
        .await;
    assert_eq!(got.unwrap(), Bytes::from_static(b"s"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_and_frames_are_refused() {
    let small = RpcSettings {
        max_frame: 100_000,
        ..fast()
    };
    let server = Server::start(small).await;
    let c = client(fast());

    // Over the caller's own limit: refused before anything is sent.
    let res = client(RpcSettings {
        max_frame: 10,
        ..fast()
    })
    .call(&server.addr, ECHO, Bytes::from(vec![0u8; 11]))
    .await;
    assert!(matches!(res, Err(RpcError::FrameTooLarge(11))), "{res:?}");

    // Over the server's limit: that request fails, the connection stays usable.
    match c
        .call(&server.addr, ECHO, Bytes::from(vec![1u8; 300_000]))
        .await
    {
        Err(RpcError::Remote(m)) => assert!(m.contains("exceeds"), "{m}"),
        other => panic!("expected the server to refuse the request, got {other:?}"),
    }
    let got = c.call(&server.addr, ECHO, Bytes::from_static(b"ok")).await;
    assert_eq!(got.unwrap(), Bytes::from_static(b"ok"));

    // A frame header announcing ~4 GiB closes that connection without an allocation.
    let mut s = raw_session(&server.addr).await;
    s.write_all(&[0xff, 0xff, 0xff, 0x00, 0, 0, 0, 0, 1, 1])
        .await
        .unwrap();
    assert_closed_by_server(s).await;
    let got = c
        .call(&server.addr, ECHO, Bytes::from_static(b"alive"))
        .await;
    assert_eq!(got.unwrap(), Bytes::from_static(b"alive"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_foreign_protocols_do_not_hurt_the_server() {
    let server = Server::start(with_token("t0ken")).await;
    let c = client(with_token("t0ken"));

    let mut http = TcpStream::connect(&server.addr).await.unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: node\r\n\r\n")
        .await
        .unwrap();
    assert_closed_by_server(http).await;

    let mut noise = TcpStream::connect(&server.addr).await.unwrap();
    let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 256) as u8).collect();
    let _ = noise.write_all(&junk).await;
    assert_closed_by_server(noise).await;

    // A valid handshake followed by garbage frames (unknown flag bits).
    let open = Server::start(fast()).await;
    let mut s = raw_session(&open.addr).await;
    s.write_all(&[0, 0, 0, 6, 0x40, 0, 0, 0, 1, 1])
        .await
        .unwrap();
    assert_closed_by_server(s).await;
    // A client half-open in the handshake does not block others.
    let mut stalled = TcpStream::connect(&open.addr).await.unwrap();
    stalled.write_all(&[0, 0, 0, 38, b'W']).await.unwrap();
    let got = client(fast())
        .call(&open.addr, ECHO, Bytes::from_static(b"y"))
        .await;
    assert_eq!(got.unwrap(), Bytes::from_static(b"y"));
    open.stop().await;

    let got = c
        .call(&server.addr, ECHO, Bytes::from_static(b"fine"))
        .await;
    assert_eq!(got.unwrap(), Bytes::from_static(b"fine"));
    assert_eq!(server.handler.started.load(Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_is_redialled() {
    let server = Server::start(fast()).await;
    let addr = server.addr.clone();
    let c = client(fast());
    assert!(c.call(&addr, ECHO, Bytes::from_static(b"1")).await.is_ok());
    server.stop().await;

    let res = c.call(&addr, ECHO, Bytes::from_static(b"2")).await;
    assert!(matches!(res, Err(RpcError::Dial { .. })), "{res:?}");

    let server = Server::start_on(&addr, fast()).await;
    let got = c.call(&addr, ECHO, Bytes::from_static(b"3")).await;
    assert_eq!(got.unwrap(), Bytes::from_static(b"3"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_closes_pooled_connections_and_the_next_call_dials_again() {
    let server = Server::start(fast()).await;
    let relay = relay(server.addr.clone()).await;
    let c = client(fast());
    assert!(c.call(&relay.addr, ECHO, Bytes::new()).await.is_ok());
    assert!(c.call(&relay.addr, ECHO, Bytes::new()).await.is_ok());
    assert_eq!(
        relay.connections.load(Ordering::SeqCst),
        1,
        "idle connection reused"
    );
    c.forget(&relay.addr);
    assert!(c.call(&relay.addr, ECHO, Bytes::new()).await.is_ok());
    assert_eq!(relay.connections.load(Ordering::SeqCst), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_is_enforced_against_a_silent_handler() {
    let c = client(RpcSettings {
        request_timeout: Duration::from_millis(300),
        ..fast()
    });
    let server = Server::start(RpcSettings {
        // Bounds how long shutdown waits for the handler that never answers.
        request_timeout: Duration::from_millis(300),
        ..fast()
    })
    .await;
    let started = Instant::now();
    let res = c.call(&server.addr, NEVER, Bytes::new()).await;
    let took = started.elapsed();
    assert!(matches!(res, Err(RpcError::Timeout)), "{res:?}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );

    let started = Instant::now();
    let res = c
        .call_timeout(
            &server.addr,
            NEVER,
            Bytes::new(),
            Duration::from_millis(100),
        )
        .await;
    assert!(matches!(res, Err(RpcError::Timeout)), "{res:?}");
    assert!(started.elapsed() < Duration::from_millis(290));

    // An explicit longer bound lets a slow request finish.
    let body = delayed(500, b"slow");
    let got = c
        .call_timeout(&server.addr, DELAYED, body.clone(), Duration::from_secs(5))
        .await;
    assert_eq!(got.unwrap(), body);
    // Timed-out calls leave the connection usable.
    assert!(c.call(&server.addr, ECHO, Bytes::new()).await.is_ok());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialling_honours_the_dial_timeout() {
    let settings = || RpcSettings {
        dial_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(5),
        ..fast()
    };
    // A closed port is refused at once.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().to_string()
    };
    let started = Instant::now();
    let res = client(settings()).call(&closed, ECHO, Bytes::new()).await;
    match res {
        Err(RpcError::Dial { addr, .. }) => assert_eq!(addr, closed),
        other => panic!("expected a dial error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_millis(300));

    // A port that accepts TCP but never answers the handshake times out at dial_timeout.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let res = client(settings())
        .call(&silent_addr, ECHO, Bytes::new())
        .await;
    let took = started.elapsed();
    match res {
        Err(RpcError::Dial { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::TimedOut)
        }
        other => panic!("expected a dial timeout, got {other:?}"),
    }
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_running_requests_answer_and_cuts_off_hung_ones() {
    let server = Server::start(RpcSettings {
        request_timeout: Duration::from_secs(1),
        ..fast()
    })
    .await;
    let c = client(fast());
    let (c2, addr) = (c.clone(), server.addr.clone());
    let slow = tokio::spawn(async move { c2.call(&addr, DELAYED, delayed(300, b"last")).await });
    let (c3, addr) = (c.clone(), server.addr.clone());
    let hung = tokio::spawn(async move {
        c3.call_timeout(&addr, NEVER, Bytes::new(), Duration::from_secs(30))
            .await
    });
    let handler = server.handler.clone();
    eventually("both requests to start", Duration::from_secs(5), || {
        let h = handler.clone();
        async move { h.started.load(Ordering::SeqCst) == 2 }
    })
    .await;
    let addr = server.addr.clone();
    let started = Instant::now();
    server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(slow.await.unwrap().unwrap(), delayed(300, b"last"));
    match hung.await.unwrap() {
        Err(RpcError::Remote(m)) => assert!(m.contains("shutting down"), "{m}"),
        other => panic!("expected the hung request to be cut off, got {other:?}"),
    }
    // The listener is gone.
    let res = c.call(&addr, ECHO, Bytes::new()).await;
    assert!(matches!(res, Err(RpcError::Dial { .. })), "{res:?}");
}

#[test]
fn settings_come_from_the_cluster_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Pki::new(d, "ca");
    ca.issue(d, "node", &["10.0.0.1"]);
    let token: PathBuf = d.join("token");
    write_secret(&token, "abc\n");
    let mut c = wukongim::config::Cluster {
        tls: tls_keys(d, "node", Some("ca"), true),
        ..Default::default()
    };
    c.auth.enabled = true;
    c.auth.token_file = Some(token);
    let s = RpcSettings::from_config(&c, 1 << 20).unwrap();
    assert_eq!(s.token.as_deref(), Some(&b"abc"[..]));
    assert!(s.tls.is_some());
    assert_eq!(s.max_connections, 100);

    c.tls.key_file = Some(d.join("missing.key"));
    match RpcSettings::from_config(&c, 1 << 20) {
        Err(RpcError::Config { key, message }) => {
            assert_eq!(key, "cluster.tls.keyFile");
            assert!(message.contains("missing.key"), "{message}");
        }
        other => panic!("expected a config error, got {other:?}"),
    }
    c.tls.key_file = Some(d.join("node.key"));
    c.tls.cipher_suites = vec!["TLS_NOT_A_SUITE".into()];
    match RpcSettings::from_config(&c, 1 << 20) {
        Err(RpcError::Config { key, .. }) => assert_eq!(key, "cluster.tls.cipherSuites[0]"),
        other => panic!("expected a config error, got {other:?}"),
    }
}

/// A token or key file as the server requires it: mode 0600.
fn write_secret(path: &std::path::Path, contents: impl AsRef<[u8]>) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}
