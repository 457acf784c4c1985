//! Real network partitions: three nodes, each in its own Linux network namespace joined by a
//! bridge (`wk_tests::netns`). The leader is cut off from the other nodes while a client stays
//! connected to it and keeps writing. The isolated leader must acknowledge nothing it cannot
//! commit and step down within an election timeout (checkQuorum, /health turns 500); the
//! majority elects a leader and serves writes; after healing, every node converges and every
//! acknowledged write is there exactly once. Split brain is judged from every node's own
//! `/cluster/raft/status`, sampled throughout. Needs root and iproute2.

use serde_json::json;
use std::time::{Duration, Instant};
use wk_tests::netns::NetLab;
use wk_tests::{get, poll, RaftWatch, TestCluster, Writer};

const T: Duration = Duration::from_secs(30);
/// heartbeat 100ms × electionTick 10.
const ELECTION: Duration = Duration::from_secs(1);
/// checkQuorum is evaluated every heartbeat; allow that and the status poll on top of the
/// election timeout.
const STEP_DOWN_SLACK: Duration = Duration::from_millis(600);

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    })
}

#[test]
fn an_isolated_leader_acknowledges_nothing_steps_down_and_the_majority_serves() {
    assert!(
        is_root(),
        "network namespaces need root: run the suite as root (scripts/test does)"
    );
    wk_testkit::require("ip", "iproute2");
    let mut lab = NetLab::new(3);
    lab.enter_hub();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(scenario(&mut lab));
}

async fn scenario(lab: &mut NetLab) {
    let mut c = TestCluster::prepare_in(lab, 3, "");
    let leader_id = c.spawn_all(T).await;
    let leader = c.index_of(leader_id);
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let watch = RaftWatch::start(
        c.nodes
            .iter()
            .map(|n| n.url("/cluster/raft/status"))
            .collect(),
    );
    // One client on the leader only (it stays connected through the partition), one on the
    // other two nodes.
    let minority = Writer::start(
        "isolated",
        "sink",
        vec![c.nodes[leader].tcp_addr()],
        u64::MAX,
    );
    let majority = Writer::start(
        "majority",
        "sink",
        others.iter().map(|i| c.nodes[*i].tcp_addr()).collect(),
        u64::MAX,
    );
    minority.wait_progress(20, T).await;
    majority.wait_progress(20, T).await;

    lab.isolate(leader);
    let cut = Instant::now();
    let acked_at_cut = minority.acked();
    let status = poll(T, "the isolated leader to step down", || {
        let u = c.nodes[leader].url("/cluster/raft/status");
        async move {
            let (st, v) = get(&u).await;
            (st == 200 && v["state"] != "leader").then_some(v)
        }
    })
    .await;
    let stepped_down = cut.elapsed();
    let (st, health) = get(&c.nodes[leader].url("/health")).await;
    assert_eq!(st, 500, "the isolated node reports unhealthy: {health}");
    // The majority elects one of its own and serves.
    let new_leader = c.wait_leader_among(&others, leader_id, T).await;
    let elected = cut.elapsed();
    majority.wait_progress(30, T).await;
    // An HTTP send on the isolated node is refused (it cannot commit).
    let (st, v) = wk_tests::try_post(
        &c.nodes[leader].url("/message/send"),
        json!({"from_uid": "isolated-http", "channel_id": "sink", "channel_type": 1, "payload": "aGk="}),
    )
    .await
    .unwrap_or((0, serde_json::Value::Null));
    assert_ne!(st, 200, "the isolated node acknowledged an HTTP send: {v}");
    let acked_before_heal = minority.acked();
    // A sequential writer can have at most one message in flight when the link breaks: that
    // one may still be acknowledged (it was committed), nothing after it.
    assert!(
        acked_before_heal <= acked_at_cut + 1,
        "the isolated leader acknowledged {} messages after losing its quorum",
        acked_before_heal - acked_at_cut
    );
    assert!(
        stepped_down <= ELECTION + STEP_DOWN_SLACK,
        "the isolated leader stepped down after {stepped_down:?} (state {})",
        status["state"]
    );

    lab.heal();
    let healed = Instant::now();
    minority.wait_progress(20, T).await;
    majority.wait_progress(10, T).await;
    let recovered = healed.elapsed();
    let min_log = minority.finish().await;
    let maj_log = majority.finish().await;
    c.wait_leader(T).await;
    c.wait_converged(T).await;
    c.check_no_loss(&[
        ("isolated".into(), "sink".into(), min_log),
        ("majority".into(), "sink".into(), maj_log),
    ])
    .await;
    let history = watch.finish().await;
    c.check_nodes();
    eprintln!(
        "step-down {stepped_down:?}, new leader {new_leader} after {elected:?}, isolated writer \
         acks at cut {acked_at_cut} / before heal {acked_before_heal}, recovery after heal \
         {recovered:?}; leaders by term {:?}",
        history.leaders
    );
}
