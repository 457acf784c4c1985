//! `wk-ops scale-out` and `scale-in` over real SSH (issue 13), on the fleet of
//! `wk_tests::ops`: a real sshd on 127.0.0.11–15 and an inventory of five nodes of which the
//! last two say `joins: true` — rendered, but neither installed nor started; three form the
//! cluster. In this order:
//!
//! 1. refusals change nothing: scale-in from 3 to 2 voters, scale-out to 4 without `--force`,
//!    any `--dry-run`, and a node the inventory does not list;
//! 2. while the real wukongimjssdk sends 20 messages/s from one member's user to another's:
//!    scale-out to 4 (`--force`: the documented even step) and to 5, each new node installed
//!    over SSH, started and a caught-up voter; an original node restarted with its unchanged
//!    wk.yaml rejoins; scale-in of node 5 while it leads (leadership moved away first, `--force`
//!    for 4) and of node 4 — both stopped, their data directories left in place;
//! 3. every send acknowledged, and every message in the synced history of each remaining node
//!    exactly once, with the same seqs everywhere.
//!
//! Needs sshd/ssh-keygen (openssh-server), node and the bundled SDK (scripts/test installs
//! them); a missing one fails the test.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wk_tests::ops::{base64_text, prerequisites, sender, stderr, stdout, SshFleet, RATE, T};
use wk_tests::{get, poll, post, JsClient};

/// `wk-ops scale-out|scale-in INVENTORY --node ID --accept-new-host-keys ARGS…`.
fn scale(s: &SshFleet, command: &str, node: u64, args: &[&str]) -> Output {
    let id = node.to_string();
    let mut all = vec!["--node", id.as_str(), "--accept-new-host-keys"];
    all.extend_from_slice(args);
    s.ops(command, &s.inventory, &all)
}

/// The voters as the leader among `ids` reports them.
async fn voters(s: &SshFleet, ids: &[u64]) -> Vec<u64> {
    let leader = s.wait_leader_among(ids).await;
    let (_, v) = get(&s.api(leader, "/cluster/raft/status")).await;
    let mut out: Vec<u64> = v["membership"]["voters"]
        .as_array()
        .unwrap_or_else(|| panic!("no voters in {v}"))
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    out.sort_unstable();
    out
}

/// Whether wk-svc runs node `id` (its pid file names a live process).
fn running(s: &SshFleet, id: u64) -> bool {
    let pid = s.pids()[&id].clone();
    !pid.is_empty() && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// bob's history of the channel with alice as node `id` serves it: (text, seq) in seq order.
async fn history(s: &SshFleet, id: u64) -> Vec<(String, u64)> {
    let (st, v) = post(
        &s.api(id, "/channel/messagesync"),
        json!({"login_uid": "bob", "channel_id": "alice", "channel_type": 1,
               "start_message_seq": 0, "limit": 10000, "pull_mode": 1}),
    )
    .await;
    assert_eq!(st, 200, "messagesync on node {id}: {v}");
    v["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|m| {
            Some((
                base64_text(m["payload"].as_str()?)?,
                m["message_seq"].as_u64()?,
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scale_out_and_in_over_ssh_loses_no_message() {
    prerequisites();
    let started = Instant::now();
    let step = |what: &str| eprintln!("[{:>6.2?}] {what}", started.elapsed());
    let s = SshFleet::start("wk-scale", 5, 2);
    let ids = s.ids();
    let (first, joining) = (ids[..3].to_vec(), s.joining.clone());
    assert_eq!(joining, ids[3..].to_vec());
    let (n4, n5) = (joining[0], joining[1]);
    assert_eq!(voters(&s, &first).await, first);
    step(&format!("cluster {first:?} up; {joining:?} join later"));

    // 1. Refusals and dry runs change nothing.
    let pids = s.pids();
    let o = scale(&s, "scale-in", first[2], &["--yes"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "scale-in to 2 voters was not refused"
    );
    assert!(
        stderr(&o).contains("refused") && stderr(&o).contains("3 → 2 voters"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("nothing changed"), "{}", stderr(&o));
    let o = scale(&s, "scale-in", first[2], &["--dry-run"]);
    assert_eq!(o.status.code(), Some(1), "a refused dry run must say so");
    let o = scale(&s, "scale-out", n4, &["--yes"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "scale-out to 4 voters was not refused"
    );
    assert!(
        stderr(&o).contains("an even number") && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
    let o = scale(&s, "scale-out", n4, &["--dry-run", "--force"]);
    assert!(o.status.success(), "dry run failed");
    let plan = stdout(&o);
    assert!(
        plan.contains("POST /cluster/nodes") && plan.contains("voters after"),
        "{plan}"
    );
    assert!(plan.contains("initNodes only matters"), "{plan}");
    let o = scale(&s, "scale-out", 9, &["--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not in the inventory"),
        "{}",
        stderr(&o)
    );
    let o = scale(
        &s,
        "scale-in",
        first[2],
        &["--yes", "--templates", "/nonexistent"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("scale-in renders nothing"),
        "{}",
        stderr(&o)
    );
    assert!(
        !s.configs[&n4].exists(),
        "a refused or dry scale-out installed a file"
    );
    assert_eq!(s.pids(), pids, "a refusal started or stopped a node");
    assert_eq!(voters(&s, &first).await, first);
    step("refusals, dry runs and an unknown node changed nothing");

    // 2. Scale out to 4 and 5, then in to 3, while alice sends to bob at 20 messages/s.
    let mut bob = JsClient::spawn(&s.ws(first[1]), "bob", "");
    bob.wait_connected();
    let mut alice = JsClient::spawn(&s.ws(first[0]), "alice", "");
    alice.wait_connected();
    let stop = Arc::new(AtomicBool::new(false));
    let sending = sender(alice, "bob".into(), "scale", stop.clone());

    let o = scale(&s, "scale-out", n4, &["--yes", "--force"]);
    assert!(o.status.success(), "scale-out of {n4} failed");
    assert!(stdout(&o).contains("warning (--force)"), "{}", stdout(&o));
    assert!(stdout(&o).contains("a caught-up voter"), "{}", stdout(&o));
    assert!(s.configs[&n4].exists(), "scale-out did not install wk.yaml");
    let four: Vec<u64> = ids[..4].to_vec();
    assert_eq!(voters(&s, &four).await, four);
    step(&format!("scale-out of {n4}: voters {four:?}"));

    let o = scale(&s, "scale-out", n5, &["--yes"]);
    assert!(o.status.success(), "scale-out of {n5} failed");
    assert!(!stdout(&o).contains("warning"), "{}", stdout(&o));
    assert_eq!(voters(&s, &ids).await, ids);
    // Re-running it is harmless.
    let o = scale(&s, "scale-out", n5, &["--yes"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("already a voter"), "{}", stdout(&o));
    step(&format!("scale-out of {n5}: voters {ids:?}"));

    // An original node restarted with its installed (unchanged) wk.yaml rejoins the five.
    let old = first[2];
    s.svc("restart", &s.configs[&old]);
    poll(T, "the restarted node back as a voter of five", || async {
        let (st, v) = get(&s.api(old, "/cluster/raft/status")).await;
        let n = v["membership"]["voters"].as_array().map_or(0, Vec::len);
        (st == 200 && v["leader"].as_u64().is_some() && n == 5).then_some(())
    })
    .await;
    step(&format!(
        "node {old} restarted with its old wk.yaml and rejoined"
    ));

    // Node 5 leads when it is removed: scale-in moves leadership away first.
    let leader = s.wait_leader_among(&ids).await;
    if leader != n5 {
        let (st, v) = post(
            &s.api(leader, "/cluster/transfer-leadership"),
            json!({"target_node": n5}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
    }
    assert_eq!(s.wait_leader_among(&ids).await, n5);
    let o = scale(&s, "scale-in", n5, &["--yes"]);
    assert_eq!(o.status.code(), Some(1), "scale-in to 4 was not refused");
    let o = scale(&s, "scale-in", n5, &["--yes", "--force"]);
    assert!(o.status.success(), "scale-in of {n5} failed");
    assert!(
        stdout(&o).contains(&format!("node {n5}: leadership moved to node")),
        "{}",
        stdout(&o)
    );
    assert_eq!(voters(&s, &four).await, four);
    assert!(!running(&s, n5), "node {n5} still runs after scale-in");
    step(&format!("scale-in of leading node {n5}: voters {four:?}"));

    let o = scale(&s, "scale-in", n4, &["--yes"]);
    assert!(o.status.success(), "scale-in of {n4} failed");
    assert_eq!(voters(&s, &first).await, first);
    assert!(!running(&s, n4), "node {n4} still runs after scale-in");
    for id in [n4, n5] {
        let data = s.dir.path().join(format!("data/{id}"));
        assert!(
            std::fs::read_dir(&data).is_ok_and(|mut d| d.next().is_some()),
            "scale-in removed the data directory {}",
            data.display()
        );
    }
    step(&format!("scale-in of {n4}: voters {first:?}"));

    stop.store(true, Ordering::Relaxed);
    let (mut alice, sent) = sending.join().unwrap();

    // 3. Every send acknowledged; every message stored once, with the same seq, on each node.
    let n = sent.len();
    assert!(n as u64 >= RATE * 5, "only {n} messages sent");
    let acked = |a: &mut JsClient| -> BTreeSet<u64> {
        a.mark();
        a.seen
            .iter()
            .filter(|v| v["ev"] == "ack" && v["reason"] == 1)
            .filter_map(|v| v["clientSeq"].as_u64())
            .collect()
    };
    let deadline = Instant::now() + T;
    while acked(&mut alice).len() < n {
        assert!(
            Instant::now() < deadline,
            "acknowledged {} of {n} sends",
            acked(&mut alice).len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let failed: Vec<&Value> = alice
        .seen
        .iter()
        .filter(|v| v["ev"] == "ack" && v["reason"] != 1)
        .collect();
    assert!(failed.is_empty(), "failed SENDACKs: {failed:?}");
    let mut histories = BTreeMap::new();
    for id in &first {
        let h = poll(T, "every sent message in the node's history", || async {
            let h = history(&s, *id).await;
            let texts: BTreeSet<&String> = h.iter().map(|(t, _)| t).collect();
            sent.iter().all(|t| texts.contains(t)).then_some(h)
        })
        .await;
        for t in &sent {
            let copies = h.iter().filter(|(x, _)| x == t).count();
            assert_eq!(copies, 1, "node {id} stores {t} {copies} times");
        }
        histories.insert(*id, h);
    }
    let reference = &histories[&first[0]];
    for (id, h) in &histories {
        assert_eq!(
            h, reference,
            "node {id}'s history differs from node {}'s",
            first[0]
        );
    }
    let live = bob.received_texts(Duration::from_secs(1));
    step(&format!(
        "{n} sends acknowledged, all stored once with identical seqs on {first:?}; bob got {} live",
        live.len()
    ));

    // rolling-restart leaves the removed nodes alone by default.
    let o = s.roll(&s.inventory, &["--dry-run"]);
    assert!(o.status.success());
    assert!(
        stdout(&o).contains(&format!("left alone: [{n4}, {n5}]")),
        "{}",
        stdout(&o)
    );
}
