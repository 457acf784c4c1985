//! Metrics and drain: a live /metrics scrape passes `promtool check metrics` and agrees with
//! /cluster/raft/status and /varz; SIGTERM on the leader hands leadership over, disconnects
//! clients and exits 0.

use serde_json::json;
use std::io::Write;
use std::time::{Duration, Instant};
use wk_tests::{get, post, TestCluster, WkClient};
use wukongim::proto::{Packet, ReasonCode};

const T: Duration = Duration::from_secs(30);

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_match_the_status_endpoints() {
    let mut c = TestCluster::start(3, "").await;
    let leader = c.leader_index().await;
    let (mut cl, r) = WkClient::connect(&c.nodes[leader].tcp_addr(), "m1", "", 5).await;
    assert_eq!(r, ReasonCode::Success);
    for _ in 0..5 {
        cl.send_text("m2", 1, "x").await;
    }
    let mut acks = 0;
    let deadline = Instant::now() + T;
    while acks < 5 {
        let left = deadline.saturating_duration_since(Instant::now());
        match cl.next(left).await {
            Some(Packet::Sendack(a)) => {
                assert_eq!(a.reason_code, ReasonCode::Success);
                acks += 1;
            }
            Some(_) if !left.is_zero() => {}
            other => panic!("only {acks} of 5 SENDACKs within {T:?}; then {other:?}"),
        }
    }
    c.wait_converged(T).await;
    let text = reqwest::get(c.nodes[leader].metrics_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Every family of the contract is exported, and nothing outside it.
    let families = wukongim::metrics::families();
    for name in &families {
        assert!(text.contains(&format!("# TYPE {name} ")), "missing {name}");
    }
    for line in text.lines().filter(|l| l.starts_with("# TYPE wukongim_")) {
        let name = line.split_whitespace().nth(2).unwrap();
        assert!(
            families.iter().any(|f| f == name),
            "{name} is not in metrics::families()"
        );
    }
    for name in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
    ] {
        assert!(text.contains(name), "missing {name}");
    }
    assert_eq!(
        metric(&text, "wukongim_raft_state"),
        Some(2.0),
        "the leader reports state 2"
    );
    assert!(metric(&text, "wukongim_storage_fsyncs_total").unwrap() > 0.0);
    assert!(
        text.contains("wukongim_send_ack_duration_seconds_count 5"),
        "5 sends timed"
    );

    // One source of truth: the same numbers on /cluster/raft/status and /varz.
    let (_, status) = get(&c.nodes[leader].url("/cluster/raft/status")).await;
    assert_eq!(metric(&text, "wukongim_raft_term"), status["term"].as_f64());
    assert_eq!(
        metric(&text, "wukongim_raft_applied_index"),
        status["applied_index"].as_f64()
    );
    let (_, varz) = get(&c.nodes[leader].url("/varz")).await;
    assert_eq!(
        metric(&text, "wukongim_raft_proposals_total"),
        varz["proposals"].as_f64()
    );

    // promtool, the real validator (a missing promtool fails the test).
    let promtool = wk_testkit::require("promtool", "prometheus");
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_the_leader_hands_over_and_exits_cleanly() {
    let mut c = TestCluster::start(3, "").await;
    let leader = c.leader_index().await;
    let old_id = c.nodes[leader].opts.node_id;
    let (mut client, _) = WkClient::connect(&c.nodes[leader].tcp_addr(), "drained", "", 5).await;
    let started = Instant::now();
    let code = c.nodes[leader].terminate(Duration::from_secs(20)).await;
    assert_eq!(code, Some(0), "clean exit");
    // Closed without DISCONNECT: SDKs take a DISCONNECT as a kick and would not reconnect.
    let seen = client.closed_within(T).await;
    assert!(
        !seen.iter().any(|p| matches!(p, Packet::Disconnect(_))),
        "closed without DISCONNECT: {seen:?}"
    );
    let new_leader = c.wait_leader(T).await;
    assert_ne!(new_leader, old_id);
    let elapsed = started.elapsed();
    // Leadership was handed over: well under an election timeout plus the drain.
    assert!(
        elapsed < Duration::from_secs(8),
        "drain + hand-over took {elapsed:?}"
    );
    let i = c.index_of(new_leader);
    let (st, _) = post(
        &c.nodes[i].url("/message/send"),
        json!({"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": "aGk="}),
    )
    .await;
    assert_eq!(st, 200);
    let log = std::fs::read_to_string(c.nodes[leader].log_path()).unwrap();
    assert!(
        log.contains("leadership handed over") || log.contains("transferring leadership"),
        "{log}"
    );
}
