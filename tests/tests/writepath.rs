//! The write path's bounds end to end (three processes on loopback): a write that cannot commit
//! is answered with an error naming the reason within `requestTimeout` + one election timeout —
//! on a follower (forwarding) and on a leader that lost its quorum — and the node writes again
//! as soon as a leader is reachable; and a member whose data directory was wiped rejoins without
//! costing an acknowledged message or electing two leaders in one term.

use std::time::{Duration, Instant};
use wk_tests::client::WkClient;
use wk_tests::{get, message_seqs, poll, post, try_post, RaftWatch, TestCluster};
use wukongim::proto::{Packet, ReasonCode, SendackPacket};

const T: Duration = Duration::from_secs(30);
const ELECTION: Duration = Duration::from_secs(1);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Scheduling slack on a loaded 2-core machine (the bound itself is the server's promise).
const SLACK: Duration = Duration::from_secs(3);

fn signal(pid: u32, s: &str) {
    let st = std::process::Command::new("kill")
        .arg(format!("-{s}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{s} {pid}");
}

async fn sendack(c: &mut WkClient) -> SendackPacket {
    loop {
        match c.next(T).await {
            Some(Packet::Sendack(a)) => return a,
            Some(_) => continue,
            None => panic!("no SENDACK within {T:?}"),
        }
    }
}

/// Freezes every node but `keep`, checks a TCP SEND and an HTTP send on `keep` fail in time
/// with a reason, thaws them, and checks `keep` writes again.
async fn no_quorum_round(c: &mut TestCluster, keep: usize, tag: &str) {
    let (mut client, r) = WkClient::connect(&c.nodes[keep].tcp_addr(), tag, "", 5).await;
    assert_eq!(r, ReasonCode::Success);
    let p = client.text_packet("peer", 1, "before", &format!("{tag}-before"));
    client.write(&Packet::Send(p)).await;
    assert_eq!(sendack(&mut client).await.reason_code, ReasonCode::Success);

    let frozen: Vec<u32> = (0..c.nodes.len())
        .filter(|i| *i != keep)
        .map(|i| c.nodes[i].pid().expect("running"))
        .collect();
    for p in &frozen {
        signal(*p, "STOP");
    }
    let bound = REQUEST_TIMEOUT + ELECTION + SLACK;
    let t0 = Instant::now();
    let p = client.text_packet("peer", 1, "stuck", &format!("{tag}-stuck"));
    client.write(&Packet::Send(p)).await;
    let ack = sendack(&mut client).await;
    let took = t0.elapsed();
    assert_ne!(
        ack.reason_code,
        ReasonCode::Success,
        "{tag}: acked without quorum"
    );
    assert!(
        took <= bound,
        "{tag}: SENDACK after {took:?} (bound {bound:?})"
    );

    let t0 = Instant::now();
    let body = serde_json::json!({
        "from_uid": tag, "channel_id": "peer", "channel_type": 1,
        "payload": "aGk=", "client_msg_no": format!("{tag}-http"),
    });
    let (st, v) = try_post(&c.nodes[keep].url("/message/send"), body.clone())
        .await
        .expect("the kept node answers HTTP");
    let took = t0.elapsed();
    assert_eq!(st, 503, "{tag}: {v}");
    let msg = v.to_string();
    assert!(
        msg.contains("request timeout") || msg.contains("outcome unknown"),
        "{tag}: the 503 names the reason: {msg}"
    );
    assert!(
        took <= bound,
        "{tag}: HTTP answer after {took:?} (bound {bound:?})"
    );

    for p in &frozen {
        signal(*p, "CONT");
    }
    c.wait_leader(T).await;
    // The same node writes again (the client retries the HTTP send: same clientMsgNo).
    poll(T, "the kept node to write again", || {
        let (u, b) = (c.nodes[keep].url("/message/send"), body.clone());
        async move {
            let (st, _) = try_post(&u, b).await.ok()?;
            (st == 200).then_some(())
        }
    })
    .await;
    let p = client.text_packet("peer", 1, "after", &format!("{tag}-after"));
    client.write(&Packet::Send(p)).await;
    let ack = sendack(&mut client).await;
    assert_eq!(
        ack.reason_code,
        ReasonCode::Success,
        "{tag}: TCP after thaw"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_without_quorum_errors_within_the_request_timeout_and_recovers() {
    let mut c = TestCluster::prepare(3, "");
    for n in &mut c.nodes {
        n.opts.cluster_yaml.push_str("  requestTimeout: 3s\n");
        n.write_config();
    }
    c.spawn_all(T).await;
    let leader = c.leader_index().await;
    // A follower left alone: it forwards, the leader is frozen.
    no_quorum_round(&mut c, (leader + 1) % 3, "alone-follower").await;
    // The leader left alone: it proposes, nobody replicates.
    let leader = c.leader_index().await;
    no_quorum_round(&mut c, leader, "alone-leader").await;
    let (st, _) = post(
        &c.nodes[leader].url("/message/send"),
        serde_json::json!({
            "from_uid": "x", "channel_id": "y", "channel_type": 1, "payload": "aGk=",
        }),
    )
    .await;
    assert_eq!(st, 200);
    c.wait_converged(T).await;
    c.check_nodes();
}

/// The scenario of issue #10: an entry commits on {A, B}; B's data directory is wiped and B
/// restarts; A goes down; B and C must not elect C (which never had the entry). Once A is back,
/// B rejoins (learner, caught up, voter again) and every node serves the entry exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_member_rejoins_without_losing_an_acknowledged_entry() {
    let mut c = TestCluster::start(3, "").await;
    let watch = RaftWatch::start(
        c.nodes
            .iter()
            .map(|n| n.url("/cluster/raft/status"))
            .collect(),
    );
    let a = c.leader_index().await;
    let (b, cc) = ((a + 1) % 3, (a + 2) % 3);
    let send = |no: &str| {
        serde_json::json!({
            "from_uid": "alice", "channel_id": "bob", "channel_type": 1,
            "payload": "aGk=", "client_msg_no": no,
        })
    };
    let (st, v) = post(&c.nodes[a].url("/message/send"), send("before")).await;
    assert_eq!(st, 200, "{v}");
    c.wait_converged(T).await;

    // C down; the entry commits on {A, B}.
    c.nodes[cc].kill9();
    let (st, v) = post(&c.nodes[a].url("/message/send"), send("acked-on-a-and-b")).await;
    assert_eq!(st, 200, "{v}");
    poll(T, "B to hold the acknowledged entry", || {
        let u = c.nodes[b].url("");
        async move {
            let seqs = message_seqs(u.trim_end_matches('/'), "alice", "bob", 1).await;
            seqs.iter()
                .any(|(no, _)| no == "acked-on-a-and-b")
                .then_some(())
        }
    })
    .await;

    // B loses its data and restarts; A goes down; C comes back.
    c.nodes[b].kill9();
    std::fs::remove_dir_all(c.nodes[b].dir.path().join("data")).expect("wipe B");
    c.nodes[b].spawn();
    c.nodes[a].kill9();
    c.nodes[cc].spawn();
    // (No /health yet: there is no leader to be healthy with.)
    for i in [b, cc] {
        poll(T, "B and C to answer raft status", || {
            let u = c.nodes[i].url("/cluster/raft/status");
            async move { (get(&u).await.0 == 200).then_some(()) }
        })
        .await;
    }
    // For five election timeouts, neither B nor C may lead a term without the entry: B, which
    // forgot its log and its vote, does not vote, so C cannot win.
    let window = Instant::now();
    while window.elapsed() < ELECTION * 5 {
        for i in [b, cc] {
            let (_, st) = get(&c.nodes[i].url("/cluster/raft/status")).await;
            assert_ne!(
                st["state"],
                "leader",
                "node {i} leads without A: {st}\n{}",
                c.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A is back: a leader holding the entry; B rejoins as learner and is promoted back.
    c.nodes[a].spawn();
    c.nodes[a].wait_healthy(T).await;
    c.wait_leader(T).await;
    poll(Duration::from_secs(60), "B to be a voter again", || {
        let urls: Vec<String> = c.nodes.iter().map(|n| n.url("/cluster/nodes")).collect();
        async move {
            for u in urls {
                let (st, v) = get(&u).await;
                let nodes = v["nodes"].as_array()?;
                let voters = nodes
                    .iter()
                    .filter(|n| n["status"] == "leader" || n["status"] == "follower")
                    .count();
                if st != 200 || voters != 3 {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    let (st, v) = post(&c.nodes[b].url("/message/send"), send("after")).await;
    assert_eq!(st, 200, "{v}");
    c.wait_converged(T).await;
    for (i, n) in c.nodes.iter().enumerate() {
        let seqs = message_seqs(n.url("").trim_end_matches('/'), "alice", "bob", 1).await;
        let nos: Vec<&str> = seqs.iter().map(|(no, _)| no.as_str()).collect();
        assert_eq!(
            nos,
            vec!["before", "acked-on-a-and-b", "after"],
            "node {i} serves every acknowledged entry once, in order"
        );
    }
    watch.finish().await;
    c.check_nodes();
}

/// Reads: `consistency: linearizable` on messagesync sees every acknowledged write on any node
/// and refuses (503) when no leader can confirm it, while a local read answers from the node's
/// own store; the status reports how far local reads lag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_reads_ask_the_leader_and_local_reads_do_not() {
    let mut c = TestCluster::prepare(3, "");
    for n in &mut c.nodes {
        n.opts.cluster_yaml.push_str("  requestTimeout: 3s\n");
        n.write_config();
    }
    c.spawn_all(T).await;
    let leader = c.leader_index().await;
    let follower = (leader + 1) % 3;
    let sync = |consistency: &str| {
        serde_json::json!({"login_uid": "reader", "channel_id": "writer", "channel_type": 1,
            "start_message_seq": 1, "limit": 100, "pull_mode": 1, "consistency": consistency})
    };
    for k in 0..5 {
        let (st, v) = post(
            &c.nodes[leader].url("/message/send"),
            serde_json::json!({"from_uid": "writer", "channel_id": "reader", "channel_type": 1,
                "payload": "aGk=", "client_msg_no": format!("w{k}")}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        // Right after the acknowledgement, on a follower: a linearizable read has it.
        let (st, v) = post(
            &c.nodes[follower].url("/channel/messagesync"),
            sync("linearizable"),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        let n = v["messages"].as_array().map(|m| m.len()).unwrap_or(0);
        assert_eq!(
            n,
            k + 1,
            "linearizable read on a follower misses a write: {v}"
        );
    }
    let (st, v) = post(
        &c.nodes[follower].url("/channel/messagesync"),
        sync("eventual"),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert!(v.to_string().contains("linearizable"), "{v}");
    let (_, s) = get(&c.nodes[follower].url("/cluster/raft/status")).await;
    assert!(s["read_lag_entries"].is_u64(), "{s}");

    // No quorum: the linearizable read is refused in time, the local one still answers.
    let frozen: Vec<u32> = (0..3)
        .filter(|i| *i != follower)
        .map(|i| c.nodes[i].pid().expect("running"))
        .collect();
    for p in &frozen {
        signal(*p, "STOP");
    }
    let t0 = Instant::now();
    let (st, v) = post(
        &c.nodes[follower].url("/channel/messagesync"),
        sync("linearizable"),
    )
    .await;
    let took = t0.elapsed();
    let (st_local, local) = post(
        &c.nodes[follower].url("/channel/messagesync"),
        sync("local"),
    )
    .await;
    for p in &frozen {
        signal(*p, "CONT");
    }
    assert_eq!(st, 503, "{v}");
    assert!(
        took <= REQUEST_TIMEOUT * 3 + ELECTION + SLACK,
        "linearizable read refused after {took:?}"
    );
    assert_eq!(st_local, 200, "{local}");
    assert_eq!(local["messages"].as_array().map(|m| m.len()), Some(5));
    c.wait_leader(T).await;
    c.check_nodes();
}

/// Pipelined forwarding: SENDs written back to back by several clients of a follower — many
/// batches in flight to the leader at once — are all acknowledged and stored in each client's
/// send order, once, on every node. Run twice: with the leader taking pipelined forwards, and
/// with every node answering as a binary from before them (test knob), so followers fall back
/// to one forwarded batch at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_sends_through_a_follower_are_stored_in_send_order() {
    const CLIENTS: usize = 4;
    const SENDS: usize = 120;
    for older in [false, true] {
        let mut c = TestCluster::prepare(3, "");
        for n in &mut c.nodes {
            if older {
                n.opts.env.push((
                    wukongim::cluster::levels::TEST_PRE_LEVEL_ENV.into(),
                    "1".into(),
                ));
            }
            n.write_config();
            n.spawn();
        }
        let leader = c.leader_index().await;
        let f = (leader + 1) % 3;
        let mut tasks = Vec::new();
        for k in 0..CLIENTS {
            let (mut client, r) =
                WkClient::connect(&c.nodes[f].tcp_addr(), &format!("s{k}"), "", 5).await;
            assert_eq!(r, ReasonCode::Success);
            tasks.push(tokio::spawn(async move {
                for i in 0..SENDS {
                    let p = client.text_packet(&format!("r{k}"), 1, "m", &format!("s{k}-{i:03}"));
                    client.write(&Packet::Send(p)).await;
                }
                let mut acks = Vec::new();
                while acks.len() < SENDS {
                    acks.push(sendack(&mut client).await);
                }
                acks
            }));
        }
        for (k, t) in tasks.into_iter().enumerate() {
            let acks = t.await.expect("sender");
            let seqs: Vec<u64> = acks.iter().map(|a| a.message_seq).collect();
            assert!(
                acks.iter().all(|a| a.reason_code == ReasonCode::Success),
                "older={older} client {k}: {:?}",
                acks.iter().map(|a| a.reason_code).collect::<Vec<_>>()
            );
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "older={older} client {k}: SENDACK seqs in send order: {seqs:?}"
            );
        }
        c.wait_converged(T).await;
        for (i, n) in c.nodes.iter().enumerate() {
            for k in 0..CLIENTS {
                let stored = message_seqs(
                    n.url("").trim_end_matches('/'),
                    &format!("s{k}"),
                    &format!("r{k}"),
                    1,
                )
                .await;
                let nos: Vec<String> = stored.iter().map(|(no, _)| no.clone()).collect();
                let want: Vec<String> = (0..SENDS).map(|i| format!("s{k}-{i:03}")).collect();
                assert_eq!(nos, want, "older={older} node {i} client {k}");
            }
        }
        let metrics = get(&c.nodes[f].metrics_url()).await.1;
        let text = metrics["raw"].as_str().unwrap_or_default().to_string();
        let counter = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{name} in\n{text}"))
        };
        let forwarded = counter("wukongim_raft_forwarded_batches_total");
        let pipelined = counter("wukongim_raft_forwarded_pipelined_batches_total");
        if older {
            // Only the first tries (before the refusal came back) went pipelined.
            assert!(
                pipelined * 2.0 < forwarded,
                "serial forwards: {pipelined} of {forwarded} pipelined"
            );
        } else {
            assert!(
                pipelined >= 2.0 && pipelined * 2.0 >= forwarded,
                "pipelined forwards: {pipelined} of {forwarded}"
            );
        }
        c.check_nodes();
    }
}
