//! Durability under power loss: node data directories live on `wk-lazyfs` (a FUSE filesystem
//! that drops every write not yet fsynced when the power is cut, see `wk_tests::powercut`), so a
//! missing or misplaced fsync loses acknowledged messages here — unlike `kill -9`, after which
//! the page cache still holds them. A power cut is `kill -9` of the node's process plus dropping
//! its unsynced data.

use serde_json::json;
use std::io::Write;
use std::time::{Duration, Instant};
use wk_tests::{post, LazyFs, Node, NodeOptions, TestCluster, WkClient, Writer};
use wukongim::proto::{Packet, ReasonCode};

const T: Duration = Duration::from_secs(30);

/// The harness itself: synced data survives a cut, unsynced data does not.
#[test]
fn the_power_loss_filesystem_drops_exactly_what_was_not_synced() {
    let mut fs = LazyFs::mount();
    let synced = fs.path().join("synced");
    let mut f = std::fs::File::create(&synced).unwrap();
    f.write_all(b"durable").unwrap();
    f.sync_data().unwrap();
    f.write_all(b" and lost").unwrap();
    drop(f);
    std::fs::write(fs.path().join("never-synced"), b"gone").unwrap();
    std::fs::create_dir(fs.path().join("dir")).unwrap();
    assert_eq!(std::fs::read(&synced).unwrap(), b"durable and lost");
    let (files, bytes) = fs.cut();
    assert_eq!(std::fs::read(&synced).unwrap(), b"durable");
    assert_eq!(std::fs::read(fs.path().join("never-synced")).unwrap(), b"");
    assert!(fs.path().join("dir").is_dir(), "names are kept");
    assert_eq!(files, 2, "two files rolled back");
    assert!(bytes > 0);
}

#[tokio::test]
async fn a_thousand_acknowledged_sends_survive_a_power_cut() {
    let mut fs = LazyFs::mount();
    let mut node = Node::prepare(NodeOptions::default());
    node.put_data_on(fs.path());
    node.spawn();
    node.wait_healthy(T).await;
    let (mut c, r) = WkClient::connect(&node.tcp_addr(), "writer", "", 5).await;
    assert_eq!(r, ReasonCode::Success);
    const N: u64 = 1000;
    // Pipeline the sends; SENDACKs come back in order.
    for i in 0..N {
        c.send_text("reader", 1, &format!("msg-{i}")).await;
    }
    let mut acked = 0u64;
    let deadline = Instant::now() + T;
    while acked < N {
        match c
            .next(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            Some(Packet::Sendack(a)) => {
                assert_eq!(a.reason_code, ReasonCode::Success);
                acked += 1;
                assert_eq!(a.message_seq, acked, "acks in order, seqs gapless");
            }
            Some(_) if Instant::now() < deadline => {}
            _ => panic!("only {acked} of {N} acknowledged within {T:?}"),
        }
    }
    // Also an HTTP-acknowledged message.
    let (st, _) = post(&node.url("/message/send"), json!({"from_uid": "writer", "channel_id": "reader", "channel_type": 1, "payload": "eyJ0eXBlIjoxLCJjb250ZW50IjoiaHR0cCJ9"})).await;
    assert_eq!(st, 200);

    node.kill9();
    let (files, bytes) = fs.cut();
    eprintln!("power cut: {files} files rolled back, {bytes} bytes dropped");
    node.spawn();
    node.wait_healthy(T).await;
    let (st, sync) = post(
        &node.url("/channel/messagesync"),
        json!({"login_uid": "reader", "channel_id": "writer", "channel_type": 1, "start_message_seq": 1, "limit": 5000, "pull_mode": 1}),
    )
    .await;
    assert_eq!(st, 200);
    let msgs = sync["messages"].as_array().unwrap();
    assert_eq!(
        msgs.len() as u64,
        N + 1,
        "all acknowledged messages after a power cut"
    );
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m["message_seq"].as_u64().unwrap(), i as u64 + 1);
    }
    // The store keeps counting where it left off.
    let (mut c, _) = WkClient::connect(&node.tcp_addr(), "writer", "", 5).await;
    c.send_text("reader", 1, "after restart").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.next(left).await {
            Some(Packet::Sendack(a)) => {
                assert_eq!(a.message_seq, N + 2);
                break;
            }
            Some(_) if !left.is_zero() => {}
            other => panic!("no SENDACK after the restart: {other:?}"),
        }
    }
}

/// Power cuts of single nodes (the leader among them) under a concurrent writer, then of the
/// whole cluster at once: every acknowledged message survives, exactly once, on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_of_single_nodes_and_of_the_whole_cluster_lose_no_acknowledged_message() {
    let mut disks: Vec<LazyFs> = (0..3).map(|_| LazyFs::mount()).collect();
    let mut c = TestCluster::prepare(3, "");
    for (node, fs) in c.nodes.iter().zip(&disks) {
        node.put_data_on(fs.path());
    }
    c.spawn_all(T).await;
    let addrs: Vec<String> = c.nodes.iter().map(|n| n.tcp_addr()).collect();
    let writer = Writer::start("powered", "sink", addrs, u64::MAX);
    writer.wait_progress(20, T).await;
    let mut dropped = Vec::new();
    for cycle in 0..6 {
        let victim = if cycle % 2 == 0 {
            c.leader_index().await
        } else {
            (c.leader_index().await + cycle) % 3
        };
        c.nodes[victim].kill9();
        dropped.push(disks[victim].cut());
        writer.wait_progress(5, T).await;
        c.nodes[victim].spawn();
        c.nodes[victim].wait_healthy(T).await;
        // A node whose cut lost its Raft state rejoins as a learner first; the next cut must
        // wait until it votes again, or two of three voters would be down at once.
        c.wait_voters(T).await;
        writer.wait_progress(3, T).await;
    }
    // The whole cluster loses power at once.
    for (node, fs) in c.nodes.iter_mut().zip(&mut disks) {
        node.kill9();
        dropped.push(fs.cut());
    }
    c.spawn_all(T).await;
    writer.wait_progress(10, T).await;
    let log = writer.finish().await;
    c.check_no_loss(&[("powered".into(), "sink".into(), log.clone())])
        .await;
    eprintln!(
        "acked {} (refusals {}, reconnects {}); (files, bytes) dropped per cut: {dropped:?}",
        log.acked.len(),
        log.refusals,
        log.reconnects
    );
}
