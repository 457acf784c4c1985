//! The Raft cluster end to end: separate processes on 127.0.0.11–13 (and .14 for scaling), real
//! SDK clients on different nodes, failures by kill -9 and SIGSTOP, and every /cluster endpoint.
//! Raft timeouts are short (heartbeat 100ms, election 10 ticks = 1s).

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};
use wk_tests::js::recv_text;
use wk_tests::{get, poll, post, JsClient, RaftWatch, TestCluster, Writer};

const T: Duration = Duration::from_secs(30);
const ELECTION: Duration = Duration::from_secs(1);

async fn delete(url: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .delete(url)
        .send()
        .await
        .expect("DELETE");
    let st = resp.status().as_u16();
    (st, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_form_one_cluster_and_sdk_clients_chat_across_nodes() {
    let mut c = TestCluster::start(3, "").await;
    let leader = c.wait_leader(T).await;
    for i in 0..3 {
        let (st, v) = get(&c.nodes[i].url("/cluster/nodes")).await;
        assert_eq!(st, 200);
        assert_eq!(v["leader"], leader, "node {i}: {v}");
        let nodes = v["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 3, "{v}");
        let leaders = nodes.iter().filter(|n| n["status"] == "leader").count();
        let followers = nodes.iter().filter(|n| n["status"] == "follower").count();
        assert_eq!((leaders, followers), (1, 2), "{v}");
        assert!(
            nodes
                .iter()
                .all(|n| n["last_heartbeat"].is_string() || n["status"] == "leader"),
            "{v}"
        );
    }
    let (_, st) = get(&c.nodes[0].url("/cluster/status")).await;
    assert_eq!(st["status"], "healthy", "{st}");
    assert_eq!(st["quorum"], 2);

    // The group is created through a follower's API (forwarded to the leader).
    let follower = (c.index_of(leader) + 1) % 3;
    let (st, _) = post(
        &c.nodes[follower].url("/channel"),
        json!({"channel_id": "ops", "channel_type": 2, "subscribers": ["alice", "bob", "carol"]}),
    )
    .await;
    assert_eq!(st, 200);

    let mut alice = JsClient::spawn(&c.nodes[0].ws_addr(), "alice", "");
    let mut bob = JsClient::spawn(&c.nodes[1].ws_addr(), "bob", "");
    let mut carol = JsClient::spawn(&c.nodes[2].ws_addr(), "carol", "");
    alice.wait_connected();
    bob.wait_connected();
    carol.wait_connected();
    alice.send_text("bob", 1, "hello from node 1");
    bob.wait_for(
        "cross-node person message",
        T,
        recv_text("alice", "alice", 1, "hello from node 1"),
    );
    let ack = alice.wait_for("SENDACK", T, |v| v["ev"] == "ack");
    assert_eq!(ack["reason"], 1);
    bob.send_text("alice", 1, "hello from node 2");
    alice.wait_for("reply", T, recv_text("bob", "bob", 1, "hello from node 2"));
    carol.send_text("ops", 2, "group from node 3");
    alice.wait_for(
        "group message",
        T,
        recv_text("carol", "ops", 2, "group from node 3"),
    );
    bob.wait_for(
        "group message",
        T,
        recv_text("carol", "ops", 2, "group from node 3"),
    );

    // Follower reads: every node serves the same history.
    let v = c.wait_converged(T).await;
    assert!(v["applied_index"].as_u64().unwrap() > 0);
    for i in 0..3 {
        let h = c.history(i, "alice", "bob").await;
        assert_eq!(h.len(), 2, "node {i}: {h:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_under_load_loses_no_acknowledged_message() {
    let mut c = TestCluster::start(3, "").await;
    let addrs: Vec<String> = c.nodes.iter().map(|n| n.tcp_addr()).collect();
    let writers: Vec<Writer> = (0..3)
        .map(|i| {
            let mut a = addrs.clone();
            a.rotate_left(i);
            Writer::start(&format!("w{i}"), &format!("sink{i}"), a, u64::MAX)
        })
        .collect();
    for w in &writers {
        w.wait_progress(30, T).await;
    }
    let old = c.leader_index().await;
    let old_id = c.nodes[old].opts.node_id;
    c.nodes[old].kill9();
    let killed = Instant::now();
    let new_leader = poll(T, "a new leader", || {
        let urls: Vec<String> = (0..3)
            .filter(|i| *i != old)
            .map(|i| c.nodes[i].url("/cluster/raft/status"))
            .collect();
        async move {
            for u in urls {
                let (_, v) = get(&u).await;
                if let Some(l) = v["leader"].as_u64() {
                    if l != old_id && v["state"] == "leader" {
                        return Some(l);
                    }
                }
            }
            None
        }
    })
    .await;
    let failover = killed.elapsed();
    assert!(
        failover <= ELECTION * 2 + Duration::from_millis(500),
        "new leader {new_leader} after {failover:?}"
    );
    for w in &writers {
        w.wait_progress(20, T).await;
    }
    c.nodes[old].spawn();
    c.nodes[old].wait_healthy(T).await;
    let mut logs = Vec::new();
    for w in writers {
        let (uid, to) = (w.uid.clone(), w.to.clone());
        logs.push((uid, to, w.finish().await));
    }
    c.check_no_loss(&logs).await;
    eprintln!(
        "failover took {failover:?}; acked: {:?}",
        logs.iter().map(|l| l.2.acked.len()).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_random_kill_9_cycles_with_a_concurrent_writer() {
    use rand::{Rng, SeedableRng};
    let mut c = TestCluster::start(3, "").await;
    let addrs: Vec<String> = c.nodes.iter().map(|n| n.tcp_addr()).collect();
    let writer = Writer::start("chaos", "sink", addrs, u64::MAX);
    writer.wait_progress(10, T).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    for cycle in 0..20 {
        let victim = if cycle % 3 == 0 {
            c.leader_index().await
        } else {
            rng.gen_range(0..3)
        };
        c.nodes[victim].kill9();
        writer.wait_progress(3, T).await;
        c.nodes[victim].spawn();
        c.nodes[victim].wait_healthy(T).await;
    }
    writer.wait_progress(5, T).await;
    let log = writer.finish().await;
    c.check_no_loss(&[("chaos".into(), "sink".into(), log)])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_scaling_leadership_transfer_and_forced_election() {
    let mut c = TestCluster::prepare_with(3, 4, "");
    // Node 1004 is not an initial voter: it starts empty and waits to be added.
    for i in 0..3 {
        c.nodes[i].spawn();
    }
    let leader = c.wait_leader(T).await;
    c.nodes[3].spawn();
    let addrs: Vec<String> = c.nodes[..3].iter().map(|n| n.tcp_addr()).collect();
    let writer = Writer::start("scaler", "sink", addrs, u64::MAX);
    writer.wait_progress(20, T).await;

    let n4 = format!("{}:{}", c.nodes[3].opts.ip, c.nodes[3].ports.cluster);
    let follower = (c.index_of(leader) + 1) % 3;
    let (st, v) = post(
        &c.nodes[follower].url("/cluster/nodes"),
        json!({"id": 1004, "addr": n4}),
    )
    .await;
    assert_eq!(st, 200, "add node: {v}");
    let (_, v) = get(&c.nodes[0].url("/cluster/nodes")).await;
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4, "{v}");
    assert!(
        nodes
            .iter()
            .any(|n| n["id"] == 1004 && n["status"] == "follower"),
        "{v}"
    );
    writer.wait_progress(20, T).await;
    c.wait_converged(T).await;

    // Wrong input leaves the cluster unchanged.
    let (st, _) = post(
        &c.nodes[0].url("/cluster/nodes"),
        json!({"id": 1004, "addr": n4}),
    )
    .await;
    assert_eq!(st, 400, "adding an existing voter");
    let (st, _) = delete(&c.nodes[0].url("/cluster/nodes/4242")).await;
    assert_eq!(st, 404);
    let (st, _) = delete(&c.nodes[0].url("/cluster/nodes/abc")).await;
    assert_eq!(st, 400);
    let (st, _) = post(
        &c.nodes[0].url("/cluster/transfer-leadership"),
        json!({"target_node": 4242}),
    )
    .await;
    assert_eq!(st, 400);
    let (st, _) = post(&c.nodes[0].url("/cluster/nodes"), json!({"id": "x"})).await;
    assert_eq!(st, 400);

    // Transfer leadership to each voter in turn.
    for target in [1001u64, 1002, 1003, 1004] {
        let (st, v) = post(
            &c.nodes[0].url("/cluster/transfer-leadership"),
            json!({"target_node": target}),
        )
        .await;
        assert_eq!(st, 200, "transfer to {target}: {v}");
        assert_eq!(c.wait_leader(T).await, target);
        writer.wait_progress(3, T).await;
    }
    // Remove 1004 (the current leader): leadership moves, the cluster keeps serving.
    let (st, v) = delete(&c.nodes[0].url("/cluster/nodes/1004")).await;
    assert_eq!(st, 200, "remove: {v}");
    c.nodes[3].kill9();
    let leader = poll(T, "a leader other than the removed node", || {
        let u = c.nodes[0].url("/cluster/raft/status");
        async move {
            let (_, v) = get(&u).await;
            v["leader"].as_u64().filter(|l| *l != 1004)
        }
    })
    .await;
    assert_eq!(c.wait_leader(T).await, leader);
    let (_, v) = get(&c.nodes[0].url("/cluster/nodes")).await;
    assert_eq!(v["nodes"].as_array().unwrap().len(), 3, "{v}");
    writer.wait_progress(10, T).await;

    // Forced election on a follower.
    let f = (c.index_of(leader) + 1) % 3;
    let (st, v) = post(&c.nodes[f].url("/cluster/election"), json!({})).await;
    assert_eq!(st, 200, "{v}");
    c.wait_leader(T).await;
    writer.wait_progress(5, T).await;
    let log = writer.finish().await;
    c.check_no_loss(&[("scaler".into(), "sink".into(), log)])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_rejoins_by_snapshot_and_snapshot_endpoints_work() {
    // Small snapshotEntries / compactionOverhead: snapshots and log purges happen on their own.
    let mut c = TestCluster::prepare(3, "");
    for n in &mut c.nodes {
        n.opts
            .cluster_yaml
            .push_str("  snapshotEntries: 50\n  compactionOverhead: 10\n");
        n.write_config();
        n.spawn();
    }
    let leader = c.leader_index().await;
    let (st, v) = post(&c.nodes[leader].url("/cluster/snapshot"), json!({})).await;
    assert_eq!(st, 200, "{v}");
    let addrs: Vec<String> = c.nodes.iter().map(|n| n.tcp_addr()).collect();
    let writer = Writer::start("snap", "sink", addrs, 200);
    writer.wait_progress(200, T).await;
    let log = writer.finish().await;
    // Snapshot on the leader, then purge: a wiped follower must be sent the snapshot.
    let (st, v) = post(&c.nodes[leader].url("/cluster/snapshot"), json!({})).await;
    assert_eq!(st, 200, "{v}");
    assert!(v["data"]["index"].as_u64().unwrap() > 0, "{v}");
    assert!(v["data"]["size"].as_u64().unwrap() > 0, "{v}");
    let st = poll(
        T,
        "the leader's log to be purged behind its snapshots",
        || {
            let u = c.nodes[leader].url("/cluster/raft/status");
            async move {
                let (_, v) = get(&u).await;
                (v["purged_index"].as_u64().unwrap_or(0) > 0).then_some(v)
            }
        },
    )
    .await;
    assert!(
        st["snapshot"]["built"].as_u64().unwrap() >= 3,
        "automatic snapshots every 50 entries: {st}"
    );
    assert!(
        st["log"]["entries"].as_u64().unwrap() < 100,
        "purged log is short: {st}"
    );
    let victim = (leader + 1) % 3;
    c.nodes[victim].kill9();
    std::fs::remove_dir_all(c.nodes[victim].dir.path().join("data")).unwrap();
    c.nodes[victim].spawn();
    c.nodes[victim].wait_healthy(T).await;
    let (st, v) = post(&c.nodes[victim].url("/cluster/sync/force"), json!({})).await;
    assert_eq!(st, 200, "{v}");
    c.check_no_loss(&[("snap".into(), "sink".into(), log)])
        .await;
    let (_, st) = get(&c.nodes[victim].url("/cluster/raft/status")).await;
    assert!(
        st["snapshot"]["installed"].as_u64().unwrap() >= 1,
        "caught up by snapshot: {st}"
    );
    let mut versions = BTreeMap::new();
    for i in 0..3 {
        let v = c.data_version(i).await;
        versions.insert(i, v["hash"].clone());
    }
    assert_eq!(
        versions.values().collect::<HashSet<_>>().len(),
        1,
        "{versions:?}"
    );
}

/// A leader whose process died (its cluster port refuses connections) is replaced at once, not
/// after the election timeout; a leader that is only paused (its port still accepts) is not
/// disturbed while its followers' election timers run. The election timeout here is 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leader_is_replaced_before_the_election_timeout_a_paused_one_is_kept() {
    let election = Duration::from_secs(5);
    let (mut c, leader_id) = start_with_5s_election().await;
    let old = c.index_of(leader_id);
    let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let urls: Vec<String> = (0..3)
        .map(|i| c.nodes[i].url("/cluster/raft/status"))
        .collect();
    let status = |i: usize| urls[i].clone();
    let (_, before) = get(&status(old)).await;
    let term = before["term"].as_u64().unwrap();

    // Paused for 15 heartbeats: the followers miss heartbeats and probe, but the port of a
    // stopped process still accepts connections, so no one campaigns.
    let pid = c.nodes[old].pid().unwrap();
    let sig = |s: &str| {
        let st = std::process::Command::new("kill")
            .args([format!("-{s}"), pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill -{s} {pid}");
    };
    sig("STOP");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in &others {
        let (_, v) = get(&status(*i)).await;
        assert_eq!(
            (v["leader"].as_u64(), v["term"].as_u64()),
            (Some(leader_id), Some(term)),
            "node {i} while the leader is paused: {v}"
        );
    }
    sig("CONT");

    // Killed: a new leader well before the 5 s election timeout, in the next term (one
    // campaign, no split vote).
    c.nodes[old].kill9();
    let killed = Instant::now();
    let new_leader = c.wait_leader_among(&others, leader_id, election / 2).await;
    let took = killed.elapsed();
    let (_, v) = get(&status(c.index_of(new_leader))).await;
    assert_eq!(v["term"].as_u64(), Some(term + 1), "{v}");
    assert!(took < election / 2, "new leader after {took:?}");
    // The cluster serves writes, and the old node rejoins as a follower.
    let (st, body) = post(
        &c.nodes[others[0]].url("/message/send"),
        json!({"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": "aGk="}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    c.nodes[old].spawn();
    assert_eq!(c.spawn_all(T).await, new_leader);
    eprintln!("new leader {took:?} after kill -9 (election timeout {election:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_nodes_no_split_brain_and_check_quorum() {
    let mut c = TestCluster::start(3, "").await;
    let old = c.leader_index().await;
    let old_id = c.nodes[old].opts.node_id;
    let sig = |pid: u32, s: &str| {
        let st = std::process::Command::new("kill")
            .arg(format!("-{s}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(st.success(), "kill -{s} {pid}");
    };
    // Split brain is judged from every node's own raft status, sampled throughout, and from
    // the acknowledged writes of a client that starts on the leader and keeps writing.
    let watch = RaftWatch::start(
        c.nodes
            .iter()
            .map(|n| n.url("/cluster/raft/status"))
            .collect(),
    );
    let mut addrs: Vec<String> = c.nodes.iter().map(|n| n.tcp_addr()).collect();
    addrs.rotate_left(old);
    let writer = Writer::start("pauses", "sink", addrs, u64::MAX);
    writer.wait_progress(10, T).await;

    // A follower frozen for several election timeouts comes back without disturbing the
    // leader: pre-vote keeps it from bumping the term.
    let (_, before) = get(&c.nodes[old].url("/cluster/raft/status")).await;
    let follower = (old + 1) % 3;
    let fid = c.nodes[follower].opts.node_id;
    let fpid = c.nodes[follower].pid().unwrap();
    sig(fpid, "STOP");
    let frozen = Instant::now();
    // Frozen until the leader has marked it offline and three election timeouts have passed
    // (its election timer has long expired when it wakes up).
    poll(T, "the leader to see the frozen follower offline", || {
        let u = c.nodes[old].url("/cluster/nodes");
        async move {
            let (_, v) = get(&u).await;
            let offline = v["nodes"]
                .as_array()?
                .iter()
                .any(|n| n["id"] == fid && n["status"] == "offline");
            (offline && frozen.elapsed() >= ELECTION * 3).then_some(())
        }
    })
    .await;
    writer.wait_progress(5, T).await;
    sig(fpid, "CONT");
    // Caught up: the thawed follower applies what the leader had committed when it woke (the
    // writer keeps going, so the nodes are never sampled at one index).
    let (_, now) = get(&c.nodes[old].url("/cluster/raft/status")).await;
    let committed = now["commit_index"].as_u64().unwrap();
    poll(T, "the thawed follower to catch up", || {
        let u = c.nodes[follower].url("/cluster/raft/status");
        async move {
            let (_, v) = get(&u).await;
            (v["applied_index"].as_u64()? >= committed).then_some(())
        }
    })
    .await;
    let (_, after) = get(&c.nodes[old].url("/cluster/raft/status")).await;
    assert_eq!(
        (after["leader"].clone(), after["term"].clone()),
        (before["leader"].clone(), before["term"].clone()),
        "rejoin disrupted the leader"
    );
    // Freeze the leader (its client connected): the others elect a new one; the old one,
    // thawed, follows it, and the writer's acknowledged messages all survive.
    let pid = c.nodes[old].pid().unwrap();
    sig(pid, "STOP");
    let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let new_leader = c.wait_leader_among(&others, old_id, T).await;
    sig(pid, "CONT");
    assert_eq!(
        c.wait_leader(T).await,
        new_leader,
        "the thawed old leader follows the new one"
    );
    writer.wait_progress(5, T).await;

    // Freeze both followers: the minority leader steps down (checkQuorum) and says so on
    // /health; nothing is acknowledged while it has no quorum.
    let leader = c.index_of(new_leader);
    let followers: Vec<u32> = (0..3)
        .filter(|i| *i != leader)
        .map(|i| c.nodes[i].pid().unwrap())
        .collect();
    for p in &followers {
        sig(*p, "STOP");
    }
    let isolated = Instant::now();
    poll(T, "the isolated leader to step down", || {
        let u = c.nodes[leader].url("/cluster/raft/status");
        async move {
            let (_, v) = get(&u).await;
            (v["state"] != "leader").then_some(v)
        }
    })
    .await;
    let stepped_down = isolated.elapsed();
    let (st, health) = get(&c.nodes[leader].url("/health")).await;
    assert_eq!(
        st, 500,
        "a leader without quorum reports unhealthy: {health}"
    );
    let acked_isolated = writer.acked();
    let (st, v) = wk_tests::try_post(
        &c.nodes[leader].url("/message/send"),
        json!({"from_uid": "minority", "channel_id": "sink", "channel_type": 1, "payload": "aGk="}),
    )
    .await
    .unwrap_or((0, Value::Null));
    assert_ne!(st, 200, "a node without quorum acknowledged a send: {v}");
    for p in &followers {
        sig(*p, "CONT");
    }
    c.wait_leader(T).await;
    writer.wait_progress(5, T).await;
    let log = writer.finish().await;
    c.check_no_loss(&[("pauses".into(), "sink".into(), log)])
        .await;
    let history = watch.finish().await;
    eprintln!(
        "check-quorum step-down after {stepped_down:?}; acked when isolated: {acked_isolated}; \
         leaders by term: {:?}",
        history.leaders
    );
}

/// `cluster.maxSizePerMsg` bounds the cluster's messages: a follower that was down while 8 MB
/// of messages were written catches up from the log although one AppendEntries of
/// `maxInflightMsgs` (256) entries would be above the RPC's message limit (each replication
/// read stops at maxSizePerMsg bytes), and write batches stay under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_catches_up_from_the_log_in_messages_under_max_size_per_msg() {
    use base64::Engine as _;
    let mut c = TestCluster::prepare(3, "");
    for n in &mut c.nodes {
        n.opts.cluster_yaml.push_str("  maxSizePerMsg: 64KiB\n");
        n.write_config();
        n.spawn();
    }
    let leader = c.leader_index().await;
    let follower = (leader + 1) % 3;
    c.nodes[follower].kill9();
    // 400 messages of 20 KB, 16 at a time (so batches hold several and must be cut by bytes).
    let payload = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; 20_000]);
    let url = c.nodes[leader].url("/message/send");
    for round in 0..25 {
        let mut set = tokio::task::JoinSet::new();
        for k in 0..16 {
            let (url, payload) = (url.clone(), payload.clone());
            set.spawn(async move {
                let body = json!({"from_uid": "big", "channel_id": "sink", "channel_type": 1,
                                  "client_msg_no": format!("m{round}-{k}"), "payload": payload});
                let (st, v) = post(&url, body).await;
                assert_eq!(st, 200, "{v}");
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    }
    c.nodes[follower].spawn();
    c.nodes[follower].wait_healthy(T).await;
    let v = c.wait_converged(T).await;
    assert_eq!(v["counts"]["messages"].as_u64(), Some(400), "{v}");
    let (_, st) = get(&c.nodes[follower].url("/cluster/raft/status")).await;
    assert_eq!(
        st["snapshot"]["installed"].as_u64().unwrap_or(0),
        0,
        "caught up from the log, not by snapshot: {st}"
    );
    // Batches were cut by bytes: 16 concurrent 20 KB sends never share one 64 KiB batch.
    let metrics = reqwest::get(c.nodes[leader].metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |suffix: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("wukongim_raft_batch_size_{suffix}")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("wukongim_raft_batch_size_{suffix} in\n{metrics}"))
    };
    let (batches, commands) = (count("count"), count("sum"));
    assert!(
        commands >= 400.0 && batches >= commands / 3.0,
        "at most 3 commands of 20 KB per 64 KiB batch: {batches} batches for {commands} commands"
    );
}

/// A rolling upgrade from a binary without the newer commands: while one member answers the
/// command-level query as an older binary does (test knob), the others refuse commands it could
/// not decode with a 503 naming it (a blacklist change), store tokens the old way, and keep
/// serving sends; once it runs the current binary, the same change goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_on_an_older_binary_holds_back_newer_commands_until_upgraded() {
    let mut c = TestCluster::prepare(3, "");
    let old = 2;
    c.nodes[old].opts.env.push((
        wukongim::cluster::levels::TEST_PRE_LEVEL_ENV.into(),
        "1".into(),
    ));
    for n in &mut c.nodes {
        n.write_config();
        n.spawn();
    }
    let leader = c.leader_index().await;
    let old_id = c.nodes[old].opts.node_id;
    let urls: Vec<_> = c.nodes.iter().map(|n| n.url("")).collect();
    let api = |i: usize, path: &str| format!("{}{path}", urls[i]);
    let blacklist = json!({"channel_id": "g1", "channel_type": 2, "uids": ["spammer"]});
    let refusal = poll(T, "newer commands refused while a member is older", || {
        let u = api(leader, "/channel/blacklist_add");
        let body = blacklist.clone();
        async move {
            let (st, v) = post(&u, body).await;
            (st == 503).then_some(v)
        }
    })
    .await;
    let text = refusal.to_string();
    assert!(
        text.contains("upgrade") && text.contains(&old_id.to_string()),
        "the refusal names the upgrade and node {old_id}: {refusal}"
    );
    // Channels, tokens and sends still work (stored with the commands every release applies).
    let (st, v) = post(
        &api(leader, "/channel"),
        json!({"channel_id": "g1", "channel_type": 2, "subscribers": ["a", "spammer"]}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = post(
        &api(leader, "/user/token"),
        json!({"uid": "u1", "token": "t1", "device_flag": 0, "device_level": 1}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = post(
        &api((leader + 1) % 3, "/message/send"),
        json!({"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": "aGk="}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    // "Upgrade" node 3: restarted without the knob, it answers its level and the change goes.
    c.nodes[old].terminate(T).await;
    c.nodes[old].opts.env.clear();
    c.nodes[old].spawn();
    c.nodes[old].wait_healthy(T).await;
    poll(
        T,
        "newer commands accepted once every member is current",
        || {
            let u = api(leader, "/channel/blacklist_add");
            let body = blacklist.clone();
            async move { (post(&u, body).await.0 == 200).then_some(()) }
        },
    )
    .await;
    c.wait_converged(T).await;
}

/// A member that starts after the other two formed the cluster (and wrote to it) never held an
/// entry: the leader keeps it a voter instead of treating it as a member that lost its data
/// (demotion to learner, promotion later — during which stopping the leader left one voter of
/// two). It catches up, votes, and holds what was written before it came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_starting_after_the_others_formed_the_cluster_stays_a_voter() {
    let mut c = TestCluster::prepare(3, "");
    c.nodes[0].spawn();
    c.nodes[1].spawn();
    let leader = c.wait_leader_among(&[0, 1], 0, T).await;
    let li = c.index_of(leader);
    let body = json!({"from_uid": "early", "channel_id": "late", "channel_type": 1,
                      "client_msg_no": "e1", "payload": "aGk="});
    let (st, v) = post(&c.nodes[li].url("/message/send"), body).await;
    assert_eq!(st, 200, "{v}");
    c.nodes[2].spawn();
    c.nodes[2].wait_healthy(T).await;
    c.wait_voters(T).await;
    let leader_log = std::fs::read_to_string(c.nodes[li].log_path()).unwrap_or_default();
    assert!(
        !leader_log.contains("lost its state"),
        "the late member was demoted as if it lost its data:\n{leader_log}"
    );
    assert!(
        leader_log.contains("it stays a voter"),
        "the leader did not take the late member back as a voter:\n{leader_log}"
    );
    let history = c.history(2, "late", "early").await;
    assert_eq!(history.len(), 1, "{history:?}");
    // It votes: with the leader stopped, the other two elect a new one.
    c.nodes[li].kill9();
    let rest: Vec<usize> = (0..3).filter(|i| *i != li).collect();
    c.wait_leader_among(&rest, leader, T).await;
}

/// Stopping the whole cluster at once (every node gets SIGTERM together, as `systemctl stop`
/// across the fleet does): the leader finds no voter up to hand leadership to and stops at once,
/// instead of waiting out its hand-over bound (two election timeouts: 10 s here).
#[tokio::test(flavor = "multi_thread")]
async fn stopping_every_node_at_once_the_leader_does_not_wait_for_a_hand_over() {
    let (mut c, leader_id) = start_with_5s_election().await;
    let leader = c.index_of(leader_id);
    let pids: Vec<String> = c
        .nodes
        .iter()
        .map(|n| n.pid().unwrap().to_string())
        .collect();
    let started = Instant::now();
    let st = std::process::Command::new("kill")
        .arg("-TERM")
        .args(&pids)
        .status()
        .unwrap();
    assert!(st.success(), "kill -TERM {pids:?}");
    for n in &mut c.nodes {
        assert_eq!(n.wait_exit(T).await, Some(0), "clean exit");
    }
    let elapsed = started.elapsed();
    let log = std::fs::read_to_string(c.nodes[leader].log_path()).unwrap();
    assert!(
        elapsed < Duration::from_secs(5),
        "the cluster took {elapsed:?} to stop\n{log}"
    );
    assert!(
        log.contains("no other voter up") || log.contains("handed over"),
        "{log}"
    );
}

/// Three nodes with a 5 s election timeout (50 heartbeats of 100 ms), started; the leader's id.
async fn start_with_5s_election() -> (TestCluster, u64) {
    let mut c = TestCluster::prepare(3, "");
    for n in &mut c.nodes {
        n.opts.cluster_yaml.push_str("  electionTick: 50\n");
        n.write_config();
    }
    let leader_id = c.spawn_all(T).await;
    (c, leader_id)
}
