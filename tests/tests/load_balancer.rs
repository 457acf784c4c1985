//! The load balancers of `wk-ops render` in front of a real cluster (issue 7's end-to-end test).
//!
//! One inventory for three nodes on 127.0.0.11–13 (short Raft timeouts, client token auth on) is
//! rendered by the real `wk-ops` binary; the three `wukongim` processes run from the rendered
//! `nodes/<id>/wk.yaml`, real nginx and real HAProxy from the rendered configs (HAProxy's
//! frontends from a second render of the same inventory with other listen ports, so both run
//! at once). Through each balancer: the HTTP API under `/api/` (tokens, a group, messages sent
//! and read back through messagesync), WebSocket chat with the real wukongimjssdk, and raw TCP
//! with our own client. Then one node — one that serves SDK clients of both balancers — is
//! killed with SIGKILL, and through each balancer: API sends go through (retried while the
//! balancer notices), the SDK clients that were on the dead node reconnect by themselves and
//! receive new messages, the others keep their connection, and new WebSocket and TCP clients
//! connect to the survivors.
//!
//! Needs nginx (with libnginx-mod-stream), haproxy and node (and tests/js/dist, which
//! scripts/test builds): a missing one fails the test.

use base64::Engine;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use wk_testkit::{self as testkit, Balancer, LoopbackFleet};
use wk_tests::js::recv_text;
use wk_tests::{bin, get, poll, post, retry, try_post, JsClient, TestCluster, WkClient};
use wukongim::proto::{Packet, ReasonCode, SendackPacket};

const T: Duration = Duration::from_secs(30);
/// Protocol version of the TCP clients (≥ 4: CONNACK names the node).
const TCP_VERSION: u8 = 5;
/// The SDK's device flag (web); our TCP clients use 0 (app).
const SDK_DEVICE: u8 = 1;
/// Extra SDK clients a balancer may need until one lands on the node to be killed.
const WATCHERS: usize = 9;
/// API sends through each balancer after the kill.
const SENDS_AFTER_KILL: usize = 6;
/// Tries an API call may take outside the failover window: one more than the first, for a
/// balancer that passes over a dead node it has not yet marked down.
const STEADY_TRIES: u32 = 2;
/// Tries an API call may take right after the kill, while the balancer notices the dead node
/// and the cluster elects (retries are 50 ms apart: about four election timeouts).
const FAILOVER_TRIES: u32 = 80;

/// One balancer's frontends on 127.0.0.1.
struct Lb {
    kind: &'static str,
    api: u16,
    ws: u16,
    tcp: u16,
}

impl Lb {
    fn of(kind: &'static str, fleet: &LoopbackFleet) -> Lb {
        Lb {
            kind,
            api: fleet.lb_api,
            ws: fleet.lb_ws,
            tcp: fleet.lb_tcp,
        }
    }
    fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/api{path}", self.api)
    }
    fn ws(&self) -> String {
        format!("ws://127.0.0.1:{}", self.ws)
    }
    fn tcp(&self) -> String {
        format!("127.0.0.1:{}", self.tcp)
    }
    /// A user of this balancer's traffic (users are per balancer so the two never interfere).
    fn user(&self, name: &str) -> String {
        format!("{name}-{}", self.kind)
    }
    fn group(&self) -> String {
        self.user("room")
    }
    fn sdk_users(&self) -> Vec<String> {
        let mut users = vec![self.user("alice"), self.user("bob"), self.user("gina")];
        users.extend((0..WATCHERS).map(|k| self.user(&format!("watch{k}"))));
        users
    }
    fn tcp_users(&self) -> Vec<String> {
        ["carol", "dave", "erin", "frank"]
            .iter()
            .map(|n| self.user(n))
            .collect()
    }
}

fn token(uid: &str) -> String {
    format!("tok-{uid}")
}

/// Everything the test started; on a failure its logs are printed (then the processes stop:
/// the balancers by SIGTERM, the nodes by SIGKILL).
struct Setup {
    balancers: Vec<Balancer>,
    cluster: TestCluster,
    rendered: tempfile::TempDir,
}

impl Drop for Setup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.cluster.logs());
            for b in &self.balancers {
                eprintln!("--- {} ---\n{}", b.kind, b.log());
            }
            eprintln!("rendered files in {}", self.rendered.path().display());
        }
    }
}

/// nginx with the stream module, haproxy, node and the bundled SDK; a missing one fails.
fn prerequisites() {
    testkit::nginx_with_stream();
    testkit::require("haproxy", "haproxy");
    testkit::require("node", "nodejs");
    if !wk_tests::js::js_dir().join("dist/sdk.cjs").exists() {
        testkit::missing::<()>(
            "tests/js/dist/sdk.cjs (run scripts/test: it installs and bundles wukongimjssdk)",
        );
    }
}

/// `wk-ops render INVENTORY --out OUT [--only KIND]`, which must succeed.
fn render(inventory: &Path, out: &Path, only: Option<&str>) {
    let mut cmd = Command::new(bin("wk-ops"));
    cmd.arg("render").arg(inventory).arg("--out").arg(out);
    if let Some(kind) = only {
        cmd.args(["--only", kind]);
    }
    let o = cmd.output().expect("run wk-ops");
    assert!(
        o.status.success(),
        "wk-ops render {} failed ({})\n{}{}",
        inventory.display(),
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn text_payload(text: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(json!({ "type": 1, "content": text }).to_string())
}

fn payload_text(m: &Value) -> String {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(m["payload"].as_str().unwrap_or_default())
        .unwrap_or_default();
    serde_json::from_slice::<Value>(&raw).unwrap_or_default()["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// POSTs through the balancer until it answers 200, at most `max_tries` times (and within
/// `T`); returns the body and the number of tries. Outside the failover window a call gets
/// [`STEADY_TRIES`]: a balancer that needs more is failing its clients.
async fn api_post(lb: &Lb, path: &str, body: Value, max_tries: u32) -> (Value, u32) {
    let url = lb.api(path);
    let what = format!("{}: POST {path} {body}", lb.kind);
    let errors = std::cell::RefCell::new(Vec::new());
    let (v, tries) = retry(T, &what, || {
        let attempt = try_post(&url, body.clone());
        let errors = &errors;
        async move {
            let r = match attempt.await? {
                (200, v) => Ok(v),
                (st, v) => Err(format!("status {st}: {v}")),
            };
            if let Err(e) = &r {
                errors.borrow_mut().push(e.clone());
            }
            r
        }
    })
    .await;
    assert!(
        tries <= max_tries,
        "{what}: {tries} tries (at most {max_tries} allowed here); failures: {:?}",
        errors.borrow()
    );
    (v, tries)
}

/// Sends a text through `/api/message/send` with at most `max_tries` tries; returns the number
/// of tries.
async fn api_send(lb: &Lb, from: &str, channel: &str, ty: u8, text: &str, max_tries: u32) -> u32 {
    let (v, tries) = api_post(
        lb,
        "/message/send",
        json!({"from_uid": from, "channel_id": channel, "channel_type": ty, "payload": text_payload(text)}),
        max_tries,
    )
    .await;
    assert!(v["data"]["message_seq"].as_u64() > Some(0), "{v}");
    tries
}

/// Polls `/api/channel/messagesync` through the balancer until the channel's history, as
/// `login` sees it, holds every text of `texts` exactly once and in the order sent, with
/// gapless seqs and no text stored twice (a retried send that was in fact stored shows up
/// here as a duplicate).
async fn api_history_has(lb: &Lb, login: &str, channel: &str, ty: u8, texts: &[String]) {
    let body = json!({"login_uid": login, "channel_id": channel, "channel_type": ty, "start_message_seq": 0, "limit": 1000, "pull_mode": 1});
    let what = format!(
        "{}: messagesync of {channel} for {login} holding {texts:?}",
        lb.kind
    );
    let (history, _) = retry(T, &what, || async {
        let (v, _) = api_post(lb, "/channel/messagesync", body.clone(), STEADY_TRIES).await;
        let history: Vec<(u64, String)> = v["messages"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .map(|m| (m["message_seq"].as_u64().unwrap_or(0), payload_text(m)))
                    .collect()
            })
            .unwrap_or_default();
        match texts.iter().all(|t| history.iter().any(|(_, h)| h == t)) {
            true => Ok(history),
            false => Err(format!("history {history:?}")),
        }
    })
    .await;
    let seqs: Vec<u64> = history.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=history.len() as u64).collect::<Vec<_>>(),
        "{what}: seqs gapless from 1: {history:?}"
    );
    let mut seen = std::collections::HashSet::new();
    let twice: Vec<&String> = history
        .iter()
        .map(|(_, t)| t)
        .filter(|t| !seen.insert(*t))
        .collect();
    assert!(twice.is_empty(), "{what}: stored twice: {twice:?}");
    let ours: Vec<&String> = history
        .iter()
        .map(|(_, t)| t)
        .filter(|t| texts.contains(t))
        .collect();
    assert_eq!(
        ours,
        texts.iter().collect::<Vec<_>>(),
        "{what}: in the order sent"
    );
}

/// A TCP client through the balancer's TCP frontend, retried until CONNACK success.
async fn tcp_connect(lb: &Lb, uid: &str) -> WkClient {
    let what = format!("{}: TCP client {uid} connecting", lb.kind);
    retry(T, &what, || async {
        match WkClient::try_connect(&lb.tcp(), uid, &token(uid), TCP_VERSION).await? {
            (c, ReasonCode::Success) => Ok(c),
            (_, reason) => Err(format!("CONNACK {reason:?}")),
        }
    })
    .await
    .0
}

fn tcp_node(c: &WkClient) -> u64 {
    c.connack.as_ref().expect("connected").node_id
}

async fn tcp_sendack(c: &mut WkClient, who: &str) -> SendackPacket {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match c
            .next(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            Some(Packet::Sendack(a)) => return a,
            Some(_) => continue,
            None => panic!("{who}: no SENDACK within {T:?}"),
        }
    }
}

/// Waits for a RECV with `text` (acknowledging every RECV on the way).
async fn tcp_recv(c: &mut WkClient, who: &str, from: &str, text: &str) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match c
            .next(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            Some(Packet::Recv(r)) => {
                c.ack(&r).await;
                if r.from_uid == from && c.recv_text(&r) == text {
                    return;
                }
            }
            Some(_) => continue,
            None => panic!("{who}: no RECV of {text:?} from {from} within {T:?}"),
        }
    }
}

/// Two new TCP clients of the balancer, users `a` and `b`; `a` sends `b` a person message
/// (SENDACK success, RECV at `b`). Returns (uid, client) of both.
async fn tcp_pair(lb: &Lb, a: &str, b: &str, text: &str) -> Vec<(String, WkClient)> {
    let (a, b) = (lb.user(a), lb.user(b));
    let mut ca = tcp_connect(lb, &a).await;
    let mut cb = tcp_connect(lb, &b).await;
    let seq = ca.send_text(&b, 1, text).await;
    let ack = tcp_sendack(&mut ca, &a).await;
    assert_eq!(
        (ack.client_seq, ack.reason_code),
        (seq, ReasonCode::Success),
        "{a} → {b}"
    );
    tcp_recv(&mut cb, &b, &a, text).await;
    vec![(a, ca), (b, cb)]
}

/// SDK person messages both ways.
fn sdk_chat(a: &mut JsClient, b: &mut JsClient, text: &str) {
    let (au, bu) = (a.uid.clone(), b.uid.clone());
    let since = a.mark();
    a.send_text(&bu, 1, &format!("{text} ({au} → {bu})"));
    b.wait_for(
        "a person message",
        T,
        recv_text(&au, &au, 1, &format!("{text} ({au} → {bu})")),
    );
    let ack = a.wait_for_since(since, "SENDACK", T, |v| v["ev"] == "ack");
    assert_eq!(ack["reason"], 1, "{au}: SENDACK success: {ack}");
    b.send_text(&au, 1, &format!("{text} ({bu} → {au})"));
    a.wait_for(
        "a person message",
        T,
        recv_text(&bu, &bu, 1, &format!("{text} ({bu} → {au})")),
    );
}

fn sdk_connect(lb: &Lb, uid: &str) -> JsClient {
    let mut c = JsClient::spawn(&lb.ws(), uid, &token(uid));
    c.wait_connected();
    c
}

/// Which node each of `uids` is connected to, asking every running node directly.
async fn where_online(c: &mut TestCluster, uids: &[String]) -> BTreeMap<String, u64> {
    // Any running node answers for the whole cluster (`node_id`: where each connection is); a
    // node the test killed is skipped, a crashed one fails the test.
    let url = c
        .nodes
        .iter_mut()
        .find_map(|n| n.alive().then(|| n.url("/user/onlinestatus")))
        .expect("a running node");
    let (st, v) = post(&url, json!(uids)).await;
    assert_eq!(st, 200, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let uid = e["uid"].as_str().unwrap().to_string();
            (
                uid,
                e["node_id"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("node_id in {e}")),
            )
        })
        .collect()
}

/// The leader every running node agrees on, once it is not `dead`.
async fn leader_other_than(c: &mut TestCluster, dead: u64) -> u64 {
    let urls: Vec<String> = c
        .nodes
        .iter_mut()
        .filter_map(|n| n.alive().then(|| n.url("/cluster/raft/status")))
        .collect();
    poll(T, &format!("a leader other than {dead}"), || async {
        let mut leaders = Vec::new();
        for u in &urls {
            leaders.push(get(u).await.1["leader"].as_u64());
        }
        match leaders[0] {
            Some(l) if l != dead && leaders.iter().all(|x| *x == Some(l)) => Some(l),
            _ => None,
        }
    })
    .await
}

/// The SDK clients of one balancer.
struct Sdk {
    clients: Vec<JsClient>,
}

impl Sdk {
    fn pair(&mut self, a: &str, b: &str) -> (&mut JsClient, &mut JsClient) {
        let ia = self.clients.iter().position(|c| c.uid == a).unwrap();
        let ib = self.clients.iter().position(|c| c.uid == b).unwrap();
        assert_ne!(ia, ib);
        if ia < ib {
            let (l, r) = self.clients.split_at_mut(ib);
            (&mut l[ia], &mut r[0])
        } else {
            let (l, r) = self.clients.split_at_mut(ia);
            (&mut r[0], &mut l[ib])
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_websocket_and_tcp_through_nginx_and_haproxy_survive_a_killed_node() {
    prerequisites();
    let started = Instant::now();
    let step = |what: &str| eprintln!("[{:>6.2?}] {what}", started.elapsed());

    // Render: the whole fleet with nginx's frontends, then HAProxy's with other ports.
    let dir = tempfile::Builder::new().prefix("wk-lb").tempdir().unwrap();
    let fleet = LoopbackFleet::new(dir.path(), 3).unwrap();
    let cluster_keys = "  tokenAuthOn: true\n";
    let defaults = format!(
        "  logFile: {}/logs/{{id}}.log\n  logLevel: \"info,openraft=warn\"\n",
        dir.path().display()
    );
    let inventory = fleet
        .write_inventory_text(
            "inventory.yaml",
            &fleet.inventory_with(cluster_keys, &defaults, ""),
        )
        .unwrap();
    let out = dir.path().join("out");
    render(&inventory, &out, None);
    let mut haproxy_fleet = fleet.clone();
    let mut taken = vec![fleet.lb_api, fleet.lb_ws, fleet.lb_tcp];
    let mut fresh_port = || loop {
        let p = testkit::free_port().unwrap();
        if !taken.contains(&p) {
            taken.push(p);
            return p;
        }
    };
    (
        haproxy_fleet.lb_api,
        haproxy_fleet.lb_ws,
        haproxy_fleet.lb_tcp,
    ) = (fresh_port(), fresh_port(), fresh_port());
    let haproxy_inventory = haproxy_fleet
        .write_inventory_text(
            "inventory-haproxy.yaml",
            &haproxy_fleet.inventory_with(cluster_keys, &defaults, ""),
        )
        .unwrap();
    let haproxy_out = dir.path().join("out-haproxy");
    render(&haproxy_inventory, &haproxy_out, Some("haproxy"));
    let node_file = std::fs::read_to_string(out.join("nodes/1001/wk.yaml")).unwrap();
    for key in [
        "heartbeatTick: \"100ms\"",
        "electionTick: 10",
        "tokenAuthOn: true",
    ] {
        assert!(node_file.contains(key), "{key} in\n{node_file}");
    }
    step("rendered");

    // The cluster from the rendered node files, then both balancers.
    let paths: Vec<_> = fleet
        .nodes
        .iter()
        .map(|n| out.join(format!("nodes/{}/wk.yaml", n.id)))
        .collect();
    let mut setup = Setup {
        balancers: Vec::new(),
        cluster: TestCluster::from_configs(&paths),
        rendered: dir,
    };
    let leader = setup.cluster.spawn_all(T).await;
    step(&format!("cluster up, leader {leader}"));
    for (kind, conf, f) in [
        ("nginx", out.join("nginx/nginx.conf"), &fleet),
        (
            "haproxy",
            haproxy_out.join("haproxy/haproxy.cfg"),
            &haproxy_fleet,
        ),
    ] {
        let log = setup.rendered.path().join(format!("{kind}.log"));
        let mut b =
            Balancer::start(kind, &conf, &log).unwrap_or_else(|e| panic!("start {kind}: {e}"));
        let listening = b.wait_listening(&[f.lb_api, f.lb_ws, f.lb_tcp], T);
        setup.balancers.push(b);
        listening.unwrap_or_else(|e| panic!("{e}"));
    }
    let lbs = [Lb::of("nginx", &fleet), Lb::of("haproxy", &haproxy_fleet)];
    step("nginx and haproxy listening");

    // Before the kill, through each balancer.
    let mut sdks = Vec::new();
    let mut tcps = Vec::new();
    for lb in &lbs {
        // (a) HTTP API: tokens for every user, a group, a message read back through messagesync.
        for uid in lb.sdk_users() {
            api_post(
                lb,
                "/user/token",
                json!({"uid": uid, "token": token(&uid), "device_flag": SDK_DEVICE}),
                STEADY_TRIES,
            )
            .await;
        }
        for uid in lb.tcp_users() {
            api_post(
                lb,
                "/user/token",
                json!({"uid": uid, "token": token(&uid), "device_flag": 0}),
                STEADY_TRIES,
            )
            .await;
        }
        let mut members = lb.sdk_users();
        members.extend(lb.tcp_users());
        api_post(
            lb,
            "/channel",
            json!({"channel_id": lb.group(), "channel_type": 2, "subscribers": members}),
            STEADY_TRIES,
        )
        .await;
        let hello = format!("hello through {}", lb.kind);
        api_send(
            lb,
            &lb.user("admin"),
            &lb.user("alice"),
            1,
            &hello,
            STEADY_TRIES,
        )
        .await;
        api_history_has(lb, &lb.user("alice"), &lb.user("admin"), 1, &[hello]).await;
        // Tokens are checked by whichever node a client reaches: let every node apply them.
        setup.cluster.wait_converged(T).await;

        // (b) WebSocket: the real SDK, person messages both ways.
        let mut sdk = Sdk {
            clients: vec![
                sdk_connect(lb, &lb.user("alice")),
                sdk_connect(lb, &lb.user("bob")),
            ],
        };
        let (alice, bob) = sdk.pair(&lb.user("alice"), &lb.user("bob"));
        sdk_chat(alice, bob, &format!("ws via {}", lb.kind));

        // (c) Raw TCP: SENDACK success, RECV on another client.
        let pair = tcp_pair(lb, "carol", "dave", &format!("tcp via {}", lb.kind)).await;
        sdks.push(sdk);
        tcps.push(pair);
        step(&format!("{}: API, WebSocket and TCP traffic", lb.kind));
    }

    // The node to kill: one serving SDK clients of as many balancers as possible; a balancer
    // with none there gets extra SDK clients until one lands on it.
    let all_sdk: Vec<String> = lbs.iter().flat_map(|lb| lb.sdk_users()).collect();
    let online = where_online(&mut setup.cluster, &all_sdk).await;
    let victim_id = setup
        .cluster
        .nodes
        .iter()
        .map(|n| n.opts.node_id)
        .max_by_key(|id| {
            let lbs_there = sdks
                .iter()
                .filter(|s| s.clients.iter().any(|c| online.get(&c.uid) == Some(id)))
                .count();
            let clients_there = online.values().filter(|n| *n == id).count();
            (lbs_there, clients_there)
        })
        .unwrap();
    for (lb, sdk) in lbs.iter().zip(&mut sdks) {
        let mut k = 0;
        while !sdk
            .clients
            .iter()
            .any(|c| online.get(&c.uid) == Some(&victim_id))
        {
            assert!(
                k < WATCHERS,
                "{}: {WATCHERS} new WebSocket connections, none reached node {victim_id}",
                lb.kind
            );
            let uid = lb.user(&format!("watch{k}"));
            let c = sdk_connect(lb, &uid);
            if where_online(&mut setup.cluster, std::slice::from_ref(&uid))
                .await
                .get(&uid)
                == Some(&victim_id)
            {
                sdk.clients.push(c);
                break;
            }
            k += 1;
        }
    }
    let online = where_online(&mut setup.cluster, &all_sdk).await;
    let victim = setup.cluster.index_of(victim_id);
    let leader = setup.cluster.wait_leader(T).await;
    step(&format!(
        "SDK clients on nodes {online:?}; killing node {victim_id} (leader: {leader})"
    ));

    // kill -9.
    let marks: Vec<Vec<usize>> = sdks
        .iter_mut()
        .map(|s| s.clients.iter_mut().map(|c| c.mark()).collect())
        .collect();
    setup.cluster.nodes[victim].kill9();
    // Straight away, before the balancers have noticed and while the cluster may be electing:
    // an API send through each balancer goes through (retried).
    let mut early = Vec::new();
    for lb in &lbs {
        let text = format!("right after the kill through {}", lb.kind);
        let tries = api_send(lb, &lb.user("admin"), &lb.group(), 2, &text, FAILOVER_TRIES).await;
        step(&format!(
            "{}: API send right after the kill ({tries} tries)",
            lb.kind
        ));
        early.push(text);
    }
    let new_leader = leader_other_than(&mut setup.cluster, victim_id).await;
    step(&format!("node {victim_id} killed; leader {new_leader}"));

    for (i, lb) in lbs.iter().enumerate() {
        let sdk = &mut sdks[i];
        // The SDK clients that were on the dead node reconnect by themselves (through the
        // balancer, to a survivor); the others keep their connection.
        let moved: Vec<String> = sdk
            .clients
            .iter()
            .filter(|c| online.get(&c.uid) == Some(&victim_id))
            .map(|c| c.uid.clone())
            .collect();
        assert!(!moved.is_empty());
        for (c, mark) in sdk.clients.iter_mut().zip(&marks[i]) {
            if moved.contains(&c.uid) {
                c.wait_for_since(*mark, "reconnection after the kill", T, |v| {
                    v["ev"] == "status" && v["status"] == 1
                });
            }
        }
        let now = where_online(&mut setup.cluster, &moved).await;
        for uid in &moved {
            assert!(
                now.get(uid).is_some_and(|n| *n != victim_id),
                "{uid} reconnected to a survivor: {now:?}"
            );
        }
        step(&format!("{}: SDK clients {moved:?} reconnected", lb.kind));

        // (a) API sends through the balancer, retried while it marks the node down.
        let mut texts = vec![early[i].clone()];
        let mut tries = Vec::new();
        for n in 0..SENDS_AFTER_KILL {
            let text = format!("after the kill #{n} through {}", lb.kind);
            tries.push(api_send(lb, &lb.user("admin"), &lb.group(), 2, &text, STEADY_TRIES).await);
            texts.push(text);
        }
        api_history_has(lb, &lb.user("alice"), &lb.group(), 2, &texts).await;
        step(&format!(
            "{}: {SENDS_AFTER_KILL} API sends after the kill (tries {tries:?})",
            lb.kind
        ));

        // Every SDK client receives them, the reconnected ones included (what was sent while
        // they were away comes on reconnection).
        for c in &mut sdk.clients {
            for text in &texts {
                c.wait_for(
                    "a group message sent after the kill",
                    T,
                    recv_text(&lb.user("admin"), &lb.group(), 2, text),
                );
            }
        }
        // (b) WebSocket: chat continues, and a new client connects and chats.
        let (alice, bob) = sdk.pair(&lb.user("alice"), &lb.user("bob"));
        sdk_chat(alice, bob, &format!("ws after the kill via {}", lb.kind));
        sdk.clients.push(sdk_connect(lb, &lb.user("gina")));
        let (gina, alice) = sdk.pair(&lb.user("gina"), &lb.user("alice"));
        sdk_chat(
            gina,
            alice,
            &format!("new ws after the kill via {}", lb.kind),
        );
        for (c, mark) in sdk.clients.iter_mut().zip(&marks[i]) {
            if !moved.contains(&c.uid) {
                c.mark();
                assert!(
                    !c.seen[*mark..]
                        .iter()
                        .any(|v| v["ev"] == "status" && v["status"] != 1),
                    "{}: connection through a live node was disturbed: {:#?}",
                    c.uid,
                    &c.seen[*mark..]
                );
            }
        }

        // (c) TCP: clients on survivors still receive; new clients reach survivors only.
        for (uid, c) in tcps[i].iter_mut() {
            if tcp_node(c) != victim_id {
                for text in &texts {
                    tcp_recv(c, uid, &lb.user("admin"), text).await;
                }
            }
        }
        let text = format!("tcp after the kill via {}", lb.kind);
        for (uid, c) in tcp_pair(lb, "erin", "frank", &text).await {
            assert_ne!(
                tcp_node(&c),
                victim_id,
                "{uid}: a new TCP client on the dead node"
            );
        }
        step(&format!(
            "{}: WebSocket and TCP traffic after the kill",
            lb.kind
        ));
    }

    // The survivors hold the same data; the balancers are still up.
    setup.cluster.wait_converged(T).await;
    for b in &mut setup.balancers {
        assert!(b.running(), "{} exited:\n{}", b.kind, b.log());
    }
    let (st, v) = get(&setup.cluster.nodes[(victim + 1) % 3].url("/cluster/status")).await;
    assert_eq!(st, 200, "{v}");
    step("done");
}
