//! Real nginx and real HAProxy, started from the rendered configs, in front of stub nodes on
//! 127.0.0.11–13: HTTP through `/api/` (prefix stripped), a WebSocket upgrade followed by
//! tunnelled bytes, and raw TCP all reach the nodes, round-robin; after one node dies, traffic
//! through each balancer keeps working. (The full end-to-end test with a running cluster and
//! the real SDK, `tests/tests/load_balancer.rs`, builds on `wk_testkit` the same way.)

mod common;

use common::*;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;
use wk_testkit::{Balancer, LoopbackFleet, LoopbackNode};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A stub server on one port; dropping it (or `stop`) closes the port.
struct Stub {
    stop: Arc<AtomicBool>,
    addr: String,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Stub {
    fn start(addr: String, handler: fn(u64, TcpStream), id: u64) -> Stub {
        let listener = TcpListener::bind(&addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (flag, open) = (stop.clone(), conns.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(s) = conn {
                    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
                    if let Ok(c) = s.try_clone() {
                        open.lock().unwrap().push(c);
                    }
                    thread::spawn(move || handler(id, s));
                }
            }
        });
        Stub { stop, addr, conns }
    }

    fn stop(&self) {
        if !self.stop.swap(true, Ordering::SeqCst) {
            // Wake the accept loop so it sees the flag and drops the listener, then cut every
            // open connection, as a dying process would.
            let _ = TcpStream::connect(&self.addr);
            for c in self.conns.lock().unwrap().drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_head(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// HTTP API stub: `/health` → 200 ok; anything else → 200 "node=<id> path=<path>".
fn http_stub(id: u64, mut s: TcpStream) {
    while let Some(head) = read_head(&mut s) {
        let path = head.split_whitespace().nth(1).unwrap_or("?").to_string();
        let body = if path == "/health" {
            "ok".to_string()
        } else {
            format!("node={id} path={path}")
        };
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// WebSocket stub: answers the upgrade with 101, then echoes bytes prefixed with its id.
fn ws_stub(id: u64, mut s: TcpStream) {
    let Some(head) = read_head(&mut s) else {
        return;
    };
    if !head.to_ascii_lowercase().contains("upgrade: websocket") {
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    let _ = s.write_all(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: stub\r\n\r\n",
    );
    echo(id, s);
}

/// Raw TCP stub: greets with its id, then echoes.
fn tcp_stub(id: u64, mut s: TcpStream) {
    let _ = s.write_all(format!("node={id}\n").as_bytes());
    echo(id, s);
}

fn echo(id: u64, mut s: TcpStream) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0
            || s.write_all(format!("node={id}:").as_bytes()).is_err()
            || s.write_all(&buf[..n]).is_err()
        {
            return;
        }
    }
}

/// All stubs of one node.
struct StubNode {
    stubs: Vec<Stub>,
}

fn start_node(n: &LoopbackNode) -> StubNode {
    let ip = n.ip();
    StubNode {
        stubs: vec![
            Stub::start(format!("{ip}:{}", n.api), http_stub, n.id),
            Stub::start(format!("{ip}:{}", n.ws), ws_stub, n.id),
            Stub::start(format!("{ip}:{}", n.tcp), tcp_stub, n.id),
        ],
    }
}

fn connect(port: u16) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&format!("127.0.0.1:{port}").parse().unwrap(), IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// GET through the balancer; returns the body of a 200 response.
fn get(port: u16, path: &str) -> Result<String, String> {
    let mut s = connect(port).map_err(|e| format!("connect: {e}"))?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: wk.test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    let (head, body) = resp
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("bad response {resp:?}"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("status: {head}"));
    }
    Ok(body.to_string())
}

/// WebSocket upgrade through the balancer, then one tunnelled round trip; returns the node id.
fn ws_round_trip(port: u16) -> Result<String, String> {
    let mut s = connect(port).map_err(|e| format!("connect: {e}"))?;
    let req = "GET /ws HTTP/1.1\r\nHost: wk.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let head = read_head(&mut s).ok_or("no upgrade response")?;
    if !head.starts_with("HTTP/1.1 101") {
        return Err(format!("upgrade refused: {head}"));
    }
    round_trip(s)
}

/// Raw TCP through the balancer: greeting, then one echo; returns the node id.
fn tcp_round_trip(port: u16) -> Result<String, String> {
    let mut s = connect(port).map_err(|e| format!("connect: {e}"))?;
    let mut greeting = [0u8; 64];
    let n = s
        .read(&mut greeting)
        .map_err(|e| format!("greeting: {e}"))?;
    let greeting = String::from_utf8_lossy(&greeting[..n]).into_owned();
    let id = round_trip(s)?;
    if !greeting.starts_with(&format!("node={id}")) {
        return Err(format!(
            "greeting {greeting:?} from another node than the echo ({id})"
        ));
    }
    Ok(id)
}

fn round_trip(mut s: TcpStream) -> Result<String, String> {
    s.write_all(b"ping").map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"ping") {
        let n = s.read(&mut buf).map_err(|e| format!("echo: {e}"))?;
        if n == 0 {
            return Err(format!("closed after {:?}", String::from_utf8_lossy(&got)));
        }
        got.extend_from_slice(&buf[..n]);
    }
    let _ = s.shutdown(Shutdown::Both);
    let text = String::from_utf8_lossy(&got).into_owned();
    let id = text
        .trim_start_matches("node=")
        .split(':')
        .next()
        .unwrap_or("")
        .to_string();
    Ok(id)
}

/// Sends `rounds` requests of each kind; returns the nodes that answered.
fn drive(fleet: &LoopbackFleet, rounds: usize, lb: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for i in 0..rounds {
        let body = get(fleet.lb_api, &format!("/api/message/send?n={i}"))
            .unwrap_or_else(|e| panic!("{lb}: GET /api/ round {i}: {e}"));
        let (node, path) = body
            .split_once(' ')
            .unwrap_or_else(|| panic!("{lb}: body {body:?}"));
        assert_eq!(
            path,
            format!("path=/message/send?n={i}"),
            "{lb} strips /api"
        );
        seen.insert(node.trim_start_matches("node=").to_string());
        let id =
            ws_round_trip(fleet.lb_ws).unwrap_or_else(|e| panic!("{lb}: websocket round {i}: {e}"));
        seen.insert(id);
        let id =
            tcp_round_trip(fleet.lb_tcp).unwrap_or_else(|e| panic!("{lb}: tcp round {i}: {e}"));
        seen.insert(id);
    }
    seen
}

fn balancer_survives_a_dead_node(kind: &'static str) {
    if kind == "nginx" {
        nginx_with_stream();
    } else {
        require("haproxy", "haproxy");
    }
    let t = tempfile::tempdir().unwrap();
    let fleet = LoopbackFleet::new(t.path(), 3).unwrap();
    let inv = fleet.write_inventory("").unwrap();
    wk_ops(
        t.path(),
        &[
            "render",
            inv.to_str().unwrap(),
            "--out",
            "out",
            "--only",
            kind,
        ],
    )
    .expect(0);
    let mut nodes: Vec<StubNode> = fleet.nodes.iter().map(start_node).collect();

    let conf = if kind == "nginx" {
        t.path().join("out/nginx/nginx.conf")
    } else {
        t.path().join("out/haproxy/haproxy.cfg")
    };
    let mut proc = Balancer::start(kind, &conf, &t.path().join(format!("{kind}.log")))
        .unwrap_or_else(|e| panic!("start {kind}: {e}"));
    proc.wait_listening(
        &[fleet.lb_api, fleet.lb_ws, fleet.lb_tcp],
        Duration::from_secs(20),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // A balancer that just bound its ports may not have marked its backends up yet (HAProxy's
    // first health checks, per backend): wait, with a deadline, until one request of each kind
    // goes through.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let warm = || -> Result<(), String> {
        get(fleet.lb_api, "/api/warmup").map_err(|e| format!("api: {e}"))?;
        ws_round_trip(fleet.lb_ws).map_err(|e| format!("websocket: {e}"))?;
        tcp_round_trip(fleet.lb_tcp).map_err(|e| format!("tcp: {e}"))?;
        Ok(())
    };
    while let Err(e) = warm() {
        assert!(
            std::time::Instant::now() < deadline,
            "{kind} never served a request: {e}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let seen = drive(&fleet, 6, kind);
    assert!(
        seen.len() >= 2,
        "{kind} balances over several nodes, saw {seen:?}"
    );

    // Kill node 1001; every request still succeeds, served by the others.
    let dead = nodes.remove(0);
    for s in &dead.stubs {
        s.stop();
    }
    let seen = drive(&fleet, 6, kind);
    assert!(
        !seen.contains("1001"),
        "{kind} still routes to the dead node: {seen:?}"
    );
    assert!(!seen.is_empty());
    drop(proc);
}

#[test]
fn nginx_routes_api_websocket_and_tcp_and_survives_a_dead_node() {
    balancer_survives_a_dead_node("nginx");
}

#[test]
fn haproxy_routes_api_websocket_and_tcp_and_survives_a_dead_node() {
    balancer_survives_a_dead_node("haproxy");
}
