//! Webhooks end to end: a real HTTP receiver (axum) in the test process records what the nodes
//! POST to `webhook.httpAddr?event=<name>`. Three processes on loopback: `msg.offline` names
//! exactly the recipients connected to no node (one request per message, from the leader only),
//! `msg.notify` carries every message, `user.onlinestatus` reports connects and disconnects from
//! the node holding the connection, `/user/onlinestatus` answers for every node; kill -9 of the
//! leader mid-stream, while the receiver refuses the old leader's last pushes, loses no
//! acknowledged message's webhook (duplicates only around the kill);
//! a receiver answering 500 gets the request again until it answers 200.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wk_tests::client::WkClient;
use wk_tests::{poll, post, try_post, TestCluster};
use wukongim::proto::ReasonCode;

const T: Duration = Duration::from_secs(60);

/// One request the receiver got: event and body.
#[derive(Debug, Clone)]
struct Hit {
    event: String,
    body: Value,
}

#[derive(Default)]
struct Receiver {
    hits: Mutex<Vec<Hit>>,
    /// Requests still to answer with 500.
    fail: AtomicUsize,
    failed: AtomicUsize,
}

impl Receiver {
    fn of(&self, event: &str) -> Vec<Hit> {
        let g = self.hits.lock().unwrap();
        g.iter().filter(|h| h.event == event).cloned().collect()
    }

    /// Every message of every msg.notify request.
    fn notified(&self) -> Vec<Value> {
        self.of("msg.notify")
            .into_iter()
            .flat_map(|h| h.body.as_array().cloned().unwrap_or_default())
            .collect()
    }
}

async fn hook(
    State(r): State<Arc<Receiver>>,
    Query(q): Query<HashMap<String, String>>,
    body: String,
) -> StatusCode {
    if r.fail
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        r.failed.fetch_add(1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let body: Value = serde_json::from_str(&body).unwrap_or(json!({ "unparsable": body }));
    r.hits.lock().unwrap().push(Hit {
        event: q.get("event").cloned().unwrap_or_default(),
        body,
    });
    StatusCode::OK
}

/// Starts the receiver; returns it and the `webhook:` YAML pointing at it.
async fn receiver() -> (Arc<Receiver>, String) {
    let r = Arc::new(Receiver::default());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(r.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let yaml = format!(
        "webhook:\n  httpAddr: http://{addr}/hook\n  msgNotifyEventPushInterval: 200ms\n  \
         msgNotifyEventCountPerPush: 50\n"
    );
    (r, yaml)
}

async fn send(url: &str, from: &str, channel: &str, ty: u8, no: &str) -> Result<i64, String> {
    let (st, v) = try_post(
        url,
        json!({"from_uid": from, "channel_id": channel, "channel_type": ty,
               "client_msg_no": no, "payload": "aGk="}),
    )
    .await?;
    if st != 200 {
        return Err(format!("status {st}: {v}"));
    }
    v["data"]["message_id"]
        .as_i64()
        .ok_or_else(|| format!("no message_id: {v}"))
}

async fn connect(addr: &str, uid: &str) -> WkClient {
    let (c, r) = WkClient::connect(addr, uid, "", 5).await;
    assert_eq!(r, ReasonCode::Success, "{uid} connects");
    c
}

fn str_list(v: &Value) -> Vec<String> {
    let mut l: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    l.sort();
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_notify_and_presence_across_three_nodes() {
    let (rx, yaml) = receiver().await;
    let mut c = TestCluster::start(3, &yaml).await;
    let leader_id = c.wait_leader(T).await;
    let leader = c.index_of(leader_id);
    let follower = (leader + 1) % 3;
    let api = c.nodes[follower].url("/message/send");

    // `here` is online on a node that is not the leader; `away` is connected nowhere.
    let here = connect(&c.nodes[follower].tcp_addr(), "here").await;
    let up = poll(T, "user.onlinestatus for here's connect", || async {
        rx.of("user.onlinestatus")
            .into_iter()
            .flat_map(|h| str_list(&h.body))
            .find(|s| s.starts_with("here-0-1-"))
    })
    .await;
    assert!(up.ends_with("-1-1"), "one device of one: {up}");

    // /user/onlinestatus on the leader sees a connection held by another node.
    let (st, v) = post(
        &c.nodes[leader].url("/user/onlinestatus"),
        json!(["here", "away"]),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let uids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["uid"].as_str())
        .collect();
    assert_eq!(uids, vec!["here"], "{v}");

    let (st, v) = post(
        &c.nodes[follower].url("/channel"),
        json!({"channel_id": "g1", "channel_type": 2, "subscribers": ["boss", "here", "away"]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let group = send(&api, "boss", "g1", 2, "g-1").await.unwrap();
    let direct = send(&api, "boss", "away", 1, "d-1").await.unwrap();
    let to_here = send(&api, "boss", "here", 1, "h-1").await.unwrap();

    let offline = poll(T, "msg.offline for both messages to away", || async {
        let hits = rx.of("msg.offline");
        let ids: Vec<i64> = hits
            .iter()
            .filter_map(|h| h.body["message_id"].as_i64())
            .collect();
        (ids.contains(&group) && ids.contains(&direct)).then_some(hits)
    })
    .await;
    for h in &offline {
        assert_eq!(
            str_list(&h.body["to_uids"]),
            vec!["away".to_string()],
            "only the user connected nowhere (not the sender, not `here`): {}",
            h.body
        );
        assert_eq!(h.body["source_id"], leader_id, "posted by the leader");
    }
    let notified = poll(T, "msg.notify for the three messages", || async {
        let n = rx.notified();
        let ids: Vec<i64> = n.iter().filter_map(|m| m["message_id"].as_i64()).collect();
        [group, direct, to_here]
            .iter()
            .all(|i| ids.contains(i))
            .then_some(n)
    })
    .await;
    let g = notified.iter().find(|m| m["message_id"] == group).unwrap();
    assert_eq!(g["channel_id"], "g1");
    assert_eq!(g["channel_type"], 2);
    assert_eq!(g["from_uid"], "boss");
    assert_eq!(g["payload"], "aGk=");
    assert_eq!(g["client_msg_no"], "g-1");
    assert_eq!(g["message_idstr"], group.to_string());
    // Settle, then check: the message to `here` (online) never triggered msg.offline, and
    // each event came once (one poster: the leader).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let offline = rx.of("msg.offline");
    assert!(
        offline.iter().all(|h| h.body["message_id"] != to_here),
        "online recipient pushed offline: {offline:?}"
    );
    assert_eq!(offline.len(), 2, "one msg.offline per message: {offline:?}");
    assert_eq!(rx.notified().len(), 3, "one msg.notify entry per message");

    drop(here);
    let down = poll(T, "user.onlinestatus for here's disconnect", || async {
        rx.of("user.onlinestatus")
            .into_iter()
            .flat_map(|h| str_list(&h.body))
            .find(|s| s.starts_with("here-0-0-"))
    })
    .await;
    assert!(down.ends_with("-0-0"), "no device left: {down}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_mid_stream_loses_no_webhook() {
    let (rx, yaml) = receiver().await;
    let mut c = TestCluster::start(3, &yaml).await;
    let leader_id = c.wait_leader(T).await;
    let leader = c.index_of(leader_id);
    let via = (leader + 1) % 3;
    let api = c.nodes[via].url("/message/send");
    const N: usize = 240;
    const KILL_AT: usize = 80;
    let mut acked: BTreeMap<i64, (usize, Instant)> = BTreeMap::new();
    let mut killed_at = None;
    for i in 0..N {
        if i == KILL_AT - 20 {
            // The receiver refuses everything from here to the kill: the old leader is still
            // retrying these messages when it dies, so the new leader must post them.
            rx.fail.store(1_000_000, Ordering::SeqCst);
        }
        if i == KILL_AT {
            // The old leader has tried (and failed) to post some of them.
            poll(T, "a refused push of the old leader", || async {
                (rx.failed.load(Ordering::SeqCst) > 0).then_some(())
            })
            .await;
            c.nodes[leader].kill9();
            killed_at = Some(Instant::now());
            rx.fail.store(0, Ordering::SeqCst);
        }
        // The same client_msg_no on a retry: stored once.
        let no = format!("k-{i}");
        let (id, _) =
            wk_tests::retry(T, "send", || send(&api, "pusher", "offline-user", 1, &no)).await;
        acked.insert(id, (i, Instant::now()));
    }
    let killed_at = killed_at.unwrap();
    let new_leader = c.wait_leader(T).await;
    assert_ne!(new_leader, leader_id);
    poll(
        T,
        "msg.notify and msg.offline for every acknowledged message",
        || async {
            let notified: Vec<i64> = rx
                .notified()
                .iter()
                .filter_map(|m| m["message_id"].as_i64())
                .collect();
            let offline: Vec<i64> = rx
                .of("msg.offline")
                .iter()
                .filter_map(|h| h.body["message_id"].as_i64())
                .collect();
            acked
                .keys()
                .all(|id| notified.contains(id) && offline.contains(id))
                .then_some(())
        },
    )
    .await;
    let mut count: BTreeMap<i64, usize> = BTreeMap::new();
    for m in rx.notified() {
        if let Some(id) = m["message_id"].as_i64() {
            *count.entry(id).or_default() += 1;
        }
    }
    let dups: Vec<(i64, usize)> = count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(i, n)| (*i, *n))
        .collect();
    // A duplicate is a message the old leader posted after its last stored cursor: acknowledged
    // shortly before the kill (the cursor is proposed every push interval).
    let window = Duration::from_secs(5);
    for (id, _) in &dups {
        let (i, at) = acked[id];
        assert!(
            at + window >= killed_at && at <= killed_at + Duration::from_secs(1),
            "message #{i} (id {id}) pushed twice though acknowledged {:?} away from the kill",
            if at < killed_at {
                killed_at - at
            } else {
                at - killed_at
            }
        );
    }
    let offline_dups = {
        let mut n: BTreeMap<i64, usize> = BTreeMap::new();
        for h in rx.of("msg.offline") {
            if let Some(id) = h.body["message_id"].as_i64() {
                *n.entry(id).or_default() += 1;
            }
        }
        n.values().filter(|v| **v > 1).count()
    };
    eprintln!(
        "webhook leader kill: {} messages acknowledged, receiver down from #{} to the kill \
         before #{KILL_AT} ({} refused requests); msg.notify duplicates: {} (send indexes {:?}); \
         msg.offline duplicates: {offline_dups}",
        acked.len(),
        KILL_AT - 20,
        rx.failed.load(Ordering::SeqCst),
        dups.len(),
        dups.iter().map(|(id, _)| acked[id].0).collect::<Vec<_>>()
    );
    assert!(dups.len() < KILL_AT, "duplicates beyond the kill window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_errors_are_retried_until_accepted() {
    let (rx, yaml) = receiver().await;
    let yaml = format!("{yaml}  focusEvents: [msg.notify]\n");
    let c = TestCluster::start(1, &yaml).await;
    rx.fail.store(2, Ordering::SeqCst);
    let id = send(&c.nodes[0].url("/message/send"), "a", "b", 1, "r-1")
        .await
        .unwrap();
    poll(T, "msg.notify accepted after the 500s", || async {
        rx.notified()
            .iter()
            .any(|m| m["message_id"] == id)
            .then_some(())
    })
    .await;
    assert_eq!(rx.failed.load(Ordering::SeqCst), 2, "two 500 answers");
    assert_eq!(rx.of("msg.notify").len(), 1, "accepted once");
    assert!(rx.of("msg.offline").is_empty(), "not a focused event");
    let (_, text) = get_text(&c.nodes[0].metrics_url()).await;
    assert!(
        text.contains("wukongim_webhook_retries_total{event=\"msg.notify\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("wukongim_webhook_delivered_total{event=\"msg.notify\"} 1"),
        "{text}"
    );
}

async fn get_text(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.expect("GET");
    let st = r.status().as_u16();
    (st, r.text().await.unwrap_or_default())
}

/// A node restarted before the cursor covered what it had applied refills its queue from its Raft
/// log and posts those messages; once the log is purged behind a snapshot, the rest is a gap it
/// reports (error log and `wukongim_webhook_gaps_total`) instead of passing over it in silence,
/// and later messages are posted as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_before_the_cursor_refills_from_the_log_and_reports_what_was_purged() {
    let (rx, yaml) = receiver().await;
    // No log kept behind a snapshot: a snapshot purges everything it covers.
    let mut c = TestCluster::prepare(1, &yaml);
    c.nodes[0]
        .opts
        .cluster_yaml
        .push_str("  compactionOverhead: 0\n");
    c.nodes[0].write_config();
    c.nodes[0].spawn();
    c.wait_leader(T).await;
    let url = c.nodes[0].url("/message/send");
    let restart = |c: &mut TestCluster| {
        c.nodes[0].kill9();
        rx.fail.store(0, Ordering::SeqCst);
        c.nodes[0].spawn();
    };
    let notified = |id: i64| {
        let rx = rx.clone();
        move || {
            let hit = rx.notified().iter().any(|m| m["message_id"] == id);
            async move { hit.then_some(()) }
        }
    };
    // The app server refuses everything; two messages wait; the node is killed and restarted.
    rx.fail.store(1_000_000, Ordering::SeqCst);
    let first = send(&url, "a", "b", 1, "before-1").await.unwrap();
    let second = send(&url, "a", "b", 1, "before-2").await.unwrap();
    poll(T, "the first push attempt", || async {
        (rx.failed.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    restart(&mut c);
    c.wait_leader(T).await;
    poll(
        T,
        "msg.notify of the first message after the restart",
        notified(first),
    )
    .await;
    poll(
        T,
        "msg.notify of the second message after the restart",
        notified(second),
    )
    .await;
    let (_, text) = get_text(&c.nodes[0].metrics_url()).await;
    assert!(text.contains("wukongim_webhook_gaps_total 0"), "{text}");

    // Again, but the log is purged behind a snapshot before the restart: that is a gap.
    rx.fail.store(1_000_000, Ordering::SeqCst);
    let failed = rx.failed.load(Ordering::SeqCst);
    // More entries than one purge batch (256), so the snapshot purges the log behind it.
    for i in 0..300 {
        send(&url, "a", "b", 1, &format!("purged-{i}"))
            .await
            .unwrap();
    }
    poll(T, "a push attempt of the purged message", || async {
        (rx.failed.load(Ordering::SeqCst) > failed).then_some(())
    })
    .await;
    let (st, v) = post(&c.nodes[0].url("/cluster/snapshot"), json!({})).await;
    assert_eq!(st, 200, "{v}");
    let covered = v["data"]["index"].as_u64().unwrap();
    poll(T, "the log purged behind the snapshot", || {
        let u = c.nodes[0].url("/cluster/raft/status");
        async move {
            let (_, v) = wk_tests::get(&u).await;
            (v["purged_index"].as_u64()? >= covered).then_some(())
        }
    })
    .await;
    restart(&mut c);
    c.wait_leader(T).await;
    let after = send(&url, "a", "b", 1, "after").await.unwrap();
    poll(
        T,
        "msg.notify for the message sent after the restart",
        notified(after),
    )
    .await;
    let (_, text) = get_text(&c.nodes[0].metrics_url()).await;
    assert!(text.contains("wukongim_webhook_gaps_total 1"), "{text}");
}
