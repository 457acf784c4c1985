//! Open doors are never silent and secrets must be private, seen from the `wukongim` binary:
//! `--check` lists every insecure setting, a running node logs each as a WARN and exports
//! `wukongim_insecure_setting{setting}`, and a token or key file that group or others can read
//! stops the start with the file and its mode named. Keys of the Go server's file that this
//! server does not implement are never silent either (one WARN each), while typos stay errors.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn wukongim() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wukongim"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("WK_")) {
        cmd.env_remove(k);
    }
    cmd
}

fn check(config: &Path) -> Output {
    wukongim()
        .arg("--config")
        .arg(config)
        .arg("--check")
        .output()
        .expect("run wukongim")
}

fn warnings(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("# WARNING insecure setting "))
        .map(|l| l.split(':').next().unwrap_or_default().to_string())
        .collect()
}

fn secret(path: &Path, body: &str, mode: u32) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn free_port() -> u16 {
    wk_testkit::ports::reserve("127.0.0.1").unwrap()
}

/// Ports of a node started from [`node_file`].
struct Ports {
    manager: u16,
    http: u16,
    rpc: u16,
    tcp: u16,
    ws: u16,
}

/// A single-node file on loopback ports; `extra` is appended at the top level.
fn node_file(dir: &Path, extra: &str, cluster_extra: &str) -> (PathBuf, u16) {
    let (p, ports) = node_file_ports(dir, extra, cluster_extra);
    (p, ports.manager)
}

fn node_file_ports(dir: &Path, extra: &str, cluster_extra: &str) -> (PathBuf, Ports) {
    let (manager, http, rpc) = (free_port(), free_port(), free_port());
    let (tcp, ws) = (free_port(), free_port());
    let body = format!(
        "rootDir: {root}\naddr: tcp://127.0.0.1:{tcp}\nwsAddr: ws://127.0.0.1:{ws}\n\
         httpAddr: 127.0.0.1:{http}\nmanager:\n  addr: 127.0.0.1:{manager}\n{extra}\
         cluster:\n  nodeId: 1\n  serverAddr: 127.0.0.1:{rpc}\n  heartbeatTick: 100ms\n{cluster_extra}",
        root = dir.join("data").display(),
    );
    let p = dir.join("wk.yaml");
    std::fs::write(&p, body).unwrap();
    (
        p,
        Ports {
            manager,
            http,
            rpc,
            tcp,
            ws,
        },
    )
}

/// Kills the node when the test ends, however it ends.
struct Running(Child);

/// Starts the server on `config`, stdout discarded, stderr to `stderr`.
fn start(config: &Path, stderr: impl Into<Stdio>) -> Running {
    Running(
        wukongim()
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    )
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn check_lists_every_open_door_of_the_guide_files() {
    let guide = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/guide/wk-node1.yaml");
    let out = check(&guide);
    assert!(out.status.success());
    assert_eq!(
        warnings(&out),
        ["cluster_auth", "manager_token", "token_auth"]
    );
}

#[test]
fn check_is_quiet_when_every_door_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    secret(&d.join("manager-token"), "m\n", 0o600);
    secret(&d.join("cluster-token"), "c\n", 0o600);
    let p = d.join("wk.yaml");
    std::fs::write(
        &p,
        format!(
            "managerTokenFile: {d}/manager-token\ntokenAuthOn: true\ncluster:\n  \
             serverAddr: 0.0.0.0:11110\n  auth:\n    enabled: true\n    \
             tokenFile: {d}/cluster-token\n",
            d = d.display()
        ),
    )
    .unwrap();
    let out = check(&p);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(warnings(&out).is_empty(), "{:?}", warnings(&out));
    // Each door alone is reported by its own name.
    std::fs::write(
        &p,
        "tokenAuthOn: true\nhttpAddr: 10.1.2.3:5001\ncluster:\n  serverAddr: 127.0.0.1:11110\n",
    )
    .unwrap();
    assert_eq!(
        warnings(&check(&p)),
        ["cluster_auth", "manager_token"],
        "an unauthenticated cluster port is open to local processes even on loopback"
    );
}

/// Runs the node and waits for it to exit within a deadline (it must refuse to start).
fn refused_start(config: &Path) -> String {
    let mut child = start(config, Stdio::piped());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the node started with a bad secret file"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn readable_token_or_key_files_stop_the_start_naming_file_and_mode() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let manager = d.join("manager-token");
    secret(&manager, "m\n", 0o644);
    let (p, _) = node_file(d, &format!("managerTokenFile: {}\n", manager.display()), "");
    let err = refused_start(&p);
    assert!(
        err.contains("managerTokenFile")
            && err.contains(&manager.display().to_string())
            && err.contains("0644"),
        "{err}"
    );

    let cluster = d.join("cluster-token");
    secret(&cluster, "c\n", 0o640);
    let (p, _) = node_file(
        d,
        "",
        &format!(
            "  auth:\n    enabled: true\n    tokenFile: {}\n",
            cluster.display()
        ),
    );
    let err = refused_start(&p);
    assert!(
        err.contains("cluster.auth.tokenFile")
            && err.contains(&cluster.display().to_string())
            && err.contains("0640"),
        "{err}"
    );
}

#[test]
fn a_running_node_warns_and_exports_its_open_doors() {
    let dir = tempfile::tempdir().unwrap();
    let (p, manager) = node_file(dir.path(), "", "");
    let log = dir.path().join("stderr.log");
    let _node = start(&p, std::fs::File::create(&log).unwrap());
    let deadline = Instant::now() + Duration::from_secs(90);
    let metrics = loop {
        if let Some(m) = http_get(manager, "/metrics").filter(|m| m.contains(" 200 ")) {
            break m;
        }
        assert!(Instant::now() < deadline, "no /metrics within 90s");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Loopback listeners: the API is not an open door there; the unauthenticated cluster port
    // (reachable by every local process) and tokenAuthOn=false are.
    // The exposition order of a family's label sets is not fixed: compare them sorted.
    let mut samples: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("wukongim_insecure_setting{"))
        .collect();
    samples.sort_unstable();
    assert_eq!(
        samples,
        [
            "wukongim_insecure_setting{setting=\"cluster_auth\"} 1",
            "wukongim_insecure_setting{setting=\"token_auth\"} 1"
        ]
    );
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(
        err.contains("WARN") && err.contains("insecure setting") && err.contains("tokenAuthOn"),
        "{err}"
    );
    assert!(
        err.contains("cluster port") && err.contains("any process on this host"),
        "{err}"
    );
    assert!(!err.contains("manager token"), "{err}");
}

/// Polls `GET path` on `port` until it answers 200, within 90 s.
fn wait_ok(port: u16, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(r) = http_get(port, path).filter(|r| r.contains(" 200 ")) {
            return r;
        }
        assert!(Instant::now() < deadline, "GET {path} not 200 within 90s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn json_body(response: &str) -> serde_json::Value {
    let body = response
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or_default();
    serde_json::from_str(body.trim()).unwrap_or(serde_json::Value::Null)
}

/// A single node with cluster auth on (`cluster-token` in `dir` holding `token`, stderr in
/// `dir/stderr.log`), started and waited on until it leads; returns its status then.
fn authed_leader(dir: &Path, token: &str) -> (Running, Ports, serde_json::Value) {
    let file = dir.join("cluster-token");
    secret(&file, token, 0o600);
    let (p, ports) = node_file_ports(
        dir,
        "",
        &format!(
            "  auth:\n    enabled: true\n    tokenFile: {}\n",
            file.display()
        ),
    );
    let node = start(&p, std::fs::File::create(dir.join("stderr.log")).unwrap());
    let deadline = Instant::now() + Duration::from_secs(90);
    let before = loop {
        let s = json_body(&wait_ok(ports.http, "/cluster/raft/status"));
        if s["state"] == "leader" {
            break s;
        }
        assert!(Instant::now() < deadline, "no leader: {s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    (node, ports, before)
}

/// With cluster auth on, nothing a stranger sends on the cluster port reaches Raft: a client
/// with the wrong token, one with no token, a forged proof and frames without a handshake are
/// all refused, each refusal is logged, and the node's term and leadership do not move.
#[test]
fn cluster_port_refuses_every_rpc_without_the_token() {
    use wukongim::cluster::messages::kind;
    use wukongim::cluster::rpc::{RpcClient, RpcSettings};
    let dir = tempfile::tempdir().unwrap();
    let (_node, ports, before) = authed_leader(dir.path(), "the-right-token\n");
    let log = dir.path().join("stderr.log");
    let status = || json_body(&wait_ok(ports.http, "/cluster/raft/status"));
    let addr = format!("127.0.0.1:{}", ports.rpc);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let kinds = [
        kind::PING,
        kind::APPEND,
        kind::VOTE,
        kind::PRE_VOTE,
        kind::SNAPSHOT,
        kind::TRANSFER_LEADER,
        kind::FORWARD_WRITE,
        kind::ADMIN,
        kind::SNAPSHOT_CHUNK,
        kind::SNAPSHOT_INSTALL,
    ];
    let mut refused = 0;
    rt.block_on(async {
        for token in [Some(b"a-wrong-token".to_vec()), None] {
            let client = RpcClient::new(std::sync::Arc::new(RpcSettings {
                token,
                dial_timeout: Duration::from_secs(5),
                ..RpcSettings::default()
            }));
            for k in kinds {
                let r = client
                    .call(&addr, k, bytes::Bytes::from_static(&[0xff; 64]))
                    .await;
                assert!(r.is_err(), "kind {k} answered without the token: {r:?}");
                refused += 1;
                client.forget(&addr);
            }
        }
        // A forged proof after a well-formed hello, then raw frames without any handshake.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut hello = vec![0, 0, 0, 38];
        hello.extend_from_slice(b"WKRPC\x01");
        hello.extend_from_slice(&[7u8; 32]);
        s.write_all(&hello).await.unwrap();
        let mut answer = [0u8; 43];
        s.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer[10], 1, "the server asks for the token");
        s.write_all(&[0, 0, 0, 32]).await.unwrap();
        s.write_all(&[0u8; 32]).await.unwrap();
        let mut verdict = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut verdict)).await;
        assert!(
            verdict.is_empty() || verdict == [0, 0, 0, 1, 1],
            "forged proof accepted: {verdict:?}"
        );
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut frame = (6u32 + 16).to_be_bytes().to_vec();
        frame.extend_from_slice(&[0x01, 0, 0, 0, 1, kind::VOTE]);
        frame.extend_from_slice(&[0u8; 16]);
        s.write_all(&frame).await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
        assert!(
            rest.is_empty(),
            "a frame without handshake got an answer: {rest:?}"
        );
    });
    let after = status();
    assert_eq!(before["term"], after["term"], "{before} -> {after}");
    assert_eq!(before["leader"], after["leader"], "{before} -> {after}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let err = std::fs::read_to_string(&log).unwrap();
        let logged = err.matches("cluster rpc peer rejected").count();
        if logged >= 12 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{logged} refusals logged for {refused} attempts + 2 raw:\n{err}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// True when the server closed `s` (EOF or reset) within `within`.
fn closed_within(s: &mut std::net::TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn client_connections_past_the_cap_are_refused_until_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (p, ports) = node_file_ports(dir.path(), "conn:\n  maxConnections: 2\n", "");
    let _node = start(&p, Stdio::null());
    wait_ok(ports.http, "/health");
    let tcp = || std::net::TcpStream::connect(("127.0.0.1", ports.tcp)).unwrap();
    let first = tcp();
    let mut second = tcp();
    // Both are held open (until conn.connectTimeout); a third is closed at once.
    assert!(!closed_within(&mut second, Duration::from_secs(2)));
    let mut third = tcp();
    assert!(closed_within(&mut third, Duration::from_secs(30)));
    let upgrade = {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", ports.ws)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .unwrap();
        let mut b = [0u8; 64];
        let n = s.read(&mut b).unwrap_or(0);
        String::from_utf8_lossy(&b[..n]).into_owned()
    };
    assert!(upgrade.starts_with("HTTP/1.1 503"), "{upgrade}");
    let metrics = wait_ok(ports.manager, "/metrics");
    assert!(
        metrics.lines().any(
            |l| l.starts_with("wukongim_client_connections_refused_total ") && !l.ends_with(" 0")
        ),
        "{metrics}"
    );
    drop(first);
    // The freed place is taken by the next connection (poll: the close travels first).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut next = tcp();
        if !closed_within(&mut next, Duration::from_secs(2)) {
            break;
        }
        assert!(Instant::now() < deadline, "no place freed after a close");
    }
}

fn http_post(port: u16, path: &str, body: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Above `cluster.maxMemoryUsage` new sends get 503 with the reason, and the back-pressure is
/// visible in the metrics (recovery below 90 % is covered by the unit test of `memguard`).
#[test]
fn sends_are_refused_while_memory_is_over_max_memory_usage() {
    let dir = tempfile::tempdir().unwrap();
    let (p, ports) = node_file_ports(dir.path(), "", "  maxMemoryUsage: 1MiB\n");
    let _node = start(&p, Stdio::null());
    wait_ok(ports.http, "/health");
    let body = r#"{"from_uid":"a","channel_id":"b","channel_type":1,"payload":"aGk="}"#;
    let deadline = Instant::now() + Duration::from_secs(60);
    let refused = loop {
        let r = http_post(ports.http, "/message/send", body).unwrap_or_default();
        if r.starts_with("HTTP/1.1 503") {
            break r;
        }
        assert!(Instant::now() < deadline, "never refused: {r}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(refused.contains("maxMemoryUsage"), "{refused}");
    let metrics = wait_ok(ports.manager, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l == "wukongim_memory_backpressure 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("wukongim_sends_refused_memory_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    // Reads keep working.
    let r = http_post(
        ports.http,
        "/channel/messagesync",
        r#"{"login_uid":"a","channel_id":"b","channel_type":1}"#,
    )
    .unwrap_or_default();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

/// Resident memory of process `pid` in bytes.
fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// The bound this test states for a node under the abuse below: well above an idle node
/// (about 30 MiB) and far below what the oversized inputs would take if buffered.
const RSS_BOUND: u64 = 256 << 20;

/// Garbage, truncated frames, slowloris connections and oversized bodies at each of the five
/// ports: the node keeps serving every port and its resident memory stays under [`RSS_BOUND`].
#[test]
fn hostile_input_at_every_port_leaves_the_node_serving_and_bounded() {
    use std::net::TcpStream;
    let dir = tempfile::tempdir().unwrap();
    let (p, ports) = node_file_ports(dir.path(), "", "");
    let node = start(
        &p,
        std::fs::File::create(dir.path().join("stderr.log")).unwrap(),
    );
    wait_ok(ports.http, "/health");
    wait_ok(ports.manager, "/metrics");
    let all = [ports.tcp, ports.ws, ports.http, ports.manager, ports.rpc];
    let connect = |port: u16| {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };
    let mut garbage = vec![0u8; 64 << 10];
    let mut x: u32 = 0x9e37_79b9;
    for b in garbage.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    // Slowloris: connections that start something and never finish it, held to the end.
    let mut held = Vec::new();
    for port in all {
        for _ in 0..50 {
            let mut s = connect(port);
            let _ = s.write_all(b"\x10");
            held.push(s);
        }
    }
    for port in all {
        // Garbage.
        let mut s = connect(port);
        let _ = s.write_all(&garbage);
        // Truncated: a client CONNECT header announcing 1000 bytes, an HTTP request cut in the
        // headers, a cluster hello cut after the magic.
        let mut s2 = connect(port);
        let _ = s2.write_all(b"\x10\xe8\x07\x00\x04WKIM");
        let mut s3 = connect(port);
        let _ = s3.write_all(b"POST /message/send HTTP/1.1\r\nHost: x\r\nContent-Le");
        let mut s4 = connect(port);
        let _ = s4.write_all(b"\x00\x00\x00\x26WKRPC");
        held.extend([s, s2, s3, s4]);
    }
    // Oversized: a client packet announcing 200 MiB, an HTTP body of 64 MiB, a WebSocket
    // message of 8 MiB, a cluster handshake announcing 1 GiB; each is refused, not buffered.
    let mut tcp = connect(ports.tcp);
    let _ = tcp.write_all(&[0x10, 0xff, 0xff, 0xff, 0x7f]);
    let mut http = connect(ports.http);
    let _ = write!(
        http,
        "POST /message/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        64 << 20
    );
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..64 {
        if http.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut ws = connect(ports.ws);
    let _ = ws.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    let mut frame = vec![0x82u8, 0xff];
    frame.extend_from_slice(&(8u64 << 20).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    let _ = ws.write_all(&frame);
    for _ in 0..8 {
        if ws.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut rpc = connect(ports.rpc);
    let _ = rpc.write_all(&[0x40, 0, 0, 0]);
    held.extend([tcp, http, ws, rpc]);

    // Still serving on every port while all of that is held open.
    wait_ok(ports.http, "/health");
    let metrics = wait_ok(ports.manager, "/metrics");
    assert!(metrics.contains("wukongim_info"), "{metrics}");
    let body = r#"{"from_uid":"a","channel_id":"b","channel_type":1,"payload":"aGk="}"#;
    let sent = http_post(ports.http, "/message/send", body).unwrap_or_default();
    assert!(sent.starts_with("HTTP/1.1 200"), "{sent}");
    let mut fresh = connect(ports.tcp);
    assert!(
        !closed_within(&mut fresh, Duration::from_secs(1)),
        "TCP port not accepting"
    );
    let upgrade = {
        let mut s = connect(ports.ws);
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .unwrap();
        let mut b = [0u8; 64];
        let n = s.read(&mut b).unwrap_or(0);
        String::from_utf8_lossy(&b[..n]).into_owned()
    };
    assert!(upgrade.starts_with("HTTP/1.1 101"), "{upgrade}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pong = rt.block_on(async {
        let client = wukongim::cluster::rpc::RpcClient::new(std::sync::Arc::new(
            wukongim::cluster::rpc::RpcSettings::default(),
        ));
        client
            .call(
                &format!("127.0.0.1:{}", ports.rpc),
                wukongim::cluster::messages::kind::PING,
                bytes::Bytes::new(),
            )
            .await
    });
    assert!(pong.is_ok(), "cluster port: {pong:?}");
    let rss = rss_of(node.0.id());
    eprintln!("node RSS under abuse: {} MiB", rss >> 20);
    assert!(rss < RSS_BOUND, "RSS {} MiB over the bound", rss >> 20);
    drop(held);
    let err = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(!err.contains("panicked"), "{err}");
}

/// SIGHUP re-reads the cluster token file: the new token works at once, the one it replaced
/// stays accepted until the next reload (so nodes can be switched one by one), a token two
/// reloads old is refused, and the node keeps its leadership and term throughout.
#[test]
fn sighup_reloads_the_cluster_token_keeping_the_previous_one() {
    use wukongim::cluster::rpc::{RpcClient, RpcSettings};
    let dir = tempfile::tempdir().unwrap();
    let (node, ports, before) = authed_leader(dir.path(), "token-a\n");
    let token = dir.path().join("cluster-token");
    let status = || json_body(&wait_ok(ports.http, "/cluster/raft/status"));
    let addr = format!("127.0.0.1:{}", ports.rpc);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ping = |t: &str| {
        let client = RpcClient::new(std::sync::Arc::new(RpcSettings {
            token: Some(t.as_bytes().to_vec()),
            ..RpcSettings::default()
        }));
        rt.block_on(client.call(
            &addr,
            wukongim::cluster::messages::kind::PING,
            bytes::Bytes::new(),
        ))
        .is_ok()
    };
    let hup = |contents: &str| {
        // Replaced whole, as an operator (or `wk-ops secrets --replace`) does.
        let tmp = dir.path().join(".cluster-token.new");
        secret(&tmp, contents, 0o600);
        std::fs::rename(&tmp, &token).unwrap();
        let ok = Command::new("kill")
            .args(["-HUP", &node.0.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP failed");
    };
    let until = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(Instant::now() < deadline, "{what} within 30s");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert!(ping("token-a") && !ping("token-b"));
    hup("token-b\n");
    until("token-b accepted after SIGHUP", &|| ping("token-b"));
    assert!(ping("token-a"), "the previous token stays accepted");
    hup("token-c\n");
    until("token-c accepted after SIGHUP", &|| ping("token-c"));
    assert!(
        ping("token-b") && !ping("token-a"),
        "only one previous token"
    );
    // A file the node must not use (world-readable) is refused and the tokens stay.
    secret(&token, "token-d\n", 0o644);
    Command::new("kill")
        .args(["-HUP", &node.0.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let err = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
        if err.contains("cannot reload the cluster token") {
            assert!(err.contains("0644"), "{err}");
            break;
        }
        assert!(Instant::now() < deadline, "no reload error logged:\n{err}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ping("token-c") && !ping("token-d"));
    let after = status();
    assert_eq!(
        (&before["term"], &after["term"], &after["state"]),
        (&before["term"], &before["term"], &before["state"]),
        "{before} -> {after}"
    );
}

/// Keys accepted without effect are named by `--check` when set to something else than the
/// default, so a tuning value never silently does nothing.
#[test]
fn check_names_keys_that_are_accepted_without_effect() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("cluster-token");
    secret(&token, "t\n", 0o600);
    let p = dir.path().join("wk.yaml");
    let notes = |body: &str| {
        std::fs::write(&p, body).unwrap();
        let out = check(&p);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("# WARNING cluster."))
            .map(|l| l.split_whitespace().nth(2).unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    let auth = format!(
        "  auth:\n    enabled: true\n    tokenFile: {}\n",
        token.display()
    );
    assert!(notes(&format!("cluster:\n{auth}")).is_empty());
    assert_eq!(
        notes(&format!(
            "cluster:\n  gcInterval: 1m\n{auth}    tokenRotationInterval: 1h\n"
        )),
        ["cluster.gcInterval"],
        "tokenRotationInterval is acted on (the token file is re-read on that period)"
    );
}

/// Keys of the Go server's configuration (`internal/options/options.go`) that this server does
/// not implement, as a Go file would spell them.
const GO_ONLY: &str = "datasource:\n  addr: http://127.0.0.1:9/datasource\n  channelInfoOn: true\n\
                       logger:\n  dir: ./logs\n  level: 1\n\
                       conversation:\n  on: true\n  userMaxCount: 500\n";

/// The names [`GO_ONLY`] and `cluster.slotReplicaCount` give.
const GO_ONLY_KEYS: [&str; 7] = [
    "cluster.slotReplicaCount",
    "conversation.on",
    "conversation.userMaxCount",
    "datasource.addr",
    "datasource.channelInfoOn",
    "logger.dir",
    "logger.level",
];

/// A configuration file written for the Go server starts: each Go key this server does not
/// implement is named once by `--check` and once as a WARN by the running node; a key neither
/// server knows is still refused, naming it.
#[test]
fn go_only_keys_warn_once_each_and_typos_are_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (p, manager) = node_file(dir.path(), GO_ONLY, "  slotReplicaCount: 3\n");
    let out = check(&p);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let listed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("# WARNING unsupported: config key "))
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(listed, GO_ONLY_KEYS, "{stdout}");

    let log = dir.path().join("stderr.log");
    let node = start(&p, std::fs::File::create(&log).unwrap());
    wait_ok(manager, "/metrics");
    drop(node);
    let err = std::fs::read_to_string(&log).unwrap();
    for key in GO_ONLY_KEYS {
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.contains(&format!("config key {key} ")))
            .collect();
        assert_eq!(lines.len(), 1, "{key}: {err}");
        assert!(
            lines[0].contains("WARN") && lines[0].contains("does not support"),
            "{}",
            lines[0]
        );
    }

    // A typo (of Go's key or of ours) is neither server's key: refused, naming it.
    let (p, _) = node_file(
        dir.path(),
        "datasource:\n  adr: http://x\nlogger:\n  dir: ./logs\n",
        "  slotReplicaCnt: 3\n",
    );
    let out = check(&p);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key `datasource`"), "{err}");
    assert!(err.contains("cluster.slotReplicaCnt: unknown key"), "{err}");
}
