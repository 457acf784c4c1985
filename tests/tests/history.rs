//! The write path under faults, judged by a history checker (`wk_tests::history`): three send
//! clients pipelining SENDs over our own protocol client and one client writing a metadata
//! register (a group's subscriber list, reset to one member per write) record every invocation
//! and outcome while a seeded schedule of faults runs: kill -9 of a random node (the leader half
//! the time), SIGSTOP of the leader past an election timeout, leadership transfers, and a real
//! network partition of the leader (each node in its own network namespace). Afterwards every
//! node must serve identical seqs, no acknowledged send lost, none stored twice, per-connection
//! order equal to messageSeq order, and the register must hold its last acknowledged write (or
//! one whose outcome is unknown).
//!
//! `WK_HISTORY_CYCLES` sets the number of fault cycles (CI default 15; `scripts/soak` runs 50 or
//! more), `WK_HISTORY_SEED` replays a schedule. Needs root and iproute2.

use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::Duration;
use wk_tests::client::WkClient;
use wk_tests::history::{check_register, check_sends, SendClient, WriteOutcome};
use wk_tests::netns::NetLab;
use wk_tests::{post, RaftWatch, TestCluster};
use wukongim::proto::{Packet, ReasonCode};

const T: Duration = Duration::from_secs(30);
/// heartbeat 100ms × electionTick 10.
const ELECTION: Duration = Duration::from_secs(1);
const GROUP: &str = "hist-group";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    })
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn the_history_under_kills_pauses_transfers_and_partitions_is_clean() {
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

fn signal(pid: u32, s: &str) {
    let st = std::process::Command::new("kill")
        .arg(format!("-{s}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{s} {pid}");
}

/// Writes register values 1, 2, … in sequence through rotating nodes until stopped.
async fn register_writer(
    urls: Vec<String>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<(u64, WriteOutcome)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(8))
        .build()
        .expect("http client");
    let mut out = Vec::new();
    let mut n = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        let url = &urls[n as usize % urls.len()];
        let body = serde_json::json!({"channel_id": GROUP, "channel_type": 2,
            "subscribers": [format!("m-{n}")], "reset": 1});
        let outcome = match http.post(url).json(&body).send().await {
            Ok(r) if r.status().is_success() => WriteOutcome::Acked,
            Ok(r) if r.status().is_client_error() => WriteOutcome::Refused,
            _ => WriteOutcome::Unknown,
        };
        out.push((n, outcome));
        if outcome != WriteOutcome::Acked {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    out
}

/// Whether user `m-<v>` may send to the group (is its subscriber), asked on `addr`.
async fn holds(addr: &str, v: u64) -> bool {
    let uid = format!("m-{v}");
    let (mut c, r) = WkClient::connect(addr, &uid, "", 5).await;
    assert_eq!(r, ReasonCode::Success);
    let p = c.text_packet(GROUP, 2, "probe", &format!("probe-{v}"));
    c.write(&Packet::Send(p)).await;
    loop {
        match c.next(T).await {
            Some(Packet::Sendack(a)) => return a.reason_code == ReasonCode::Success,
            Some(_) => continue,
            None => panic!("no SENDACK for the register probe of {uid}"),
        }
    }
}

async fn scenario(lab: &mut NetLab) {
    let cycles = env_u64("WK_HISTORY_CYCLES").unwrap_or(15);
    let seed = env_u64("WK_HISTORY_SEED").unwrap_or_else(rand::random);
    eprintln!("history: {cycles} fault cycles, WK_HISTORY_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let mut c = TestCluster::prepare_in(lab, 3, "");
    for n in &mut c.nodes {
        n.opts.cluster_yaml.push_str("  requestTimeout: 4s\n");
        n.write_config();
    }
    c.spawn_all(T).await;
    let watch = RaftWatch::start(
        c.nodes
            .iter()
            .map(|n| n.url("/cluster/raft/status"))
            .collect(),
    );
    let addrs: Vec<String> = c.nodes.iter().map(|n| n.tcp_addr()).collect();
    let senders: Vec<SendClient> = (0..3)
        .map(|k| {
            let mut a = addrs.clone();
            a.rotate_left(k);
            SendClient::start(&format!("h{k}"), &format!("sink{k}"), a, 8)
        })
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let register = tokio::spawn(register_writer(
        c.nodes
            .iter()
            .map(|n| n.url("/channel/subscriber_add"))
            .collect(),
        stop.clone(),
    ));
    for s in &senders {
        s.wait_progress(10, T).await;
    }

    let mut kinds = BTreeMap::<&str, u32>::new();
    for cycle in 0..cycles {
        let leader = c.leader_index().await;
        let fault = match rng.gen_range(0..4u32) {
            0 => "kill",
            1 => "pause",
            2 => "transfer",
            _ => "partition",
        };
        *kinds.entry(fault).or_default() += 1;
        eprintln!("history: cycle {cycle}: {fault} (leader node {leader})");
        match fault {
            "kill" => {
                let victim = if rng.gen_bool(0.5) {
                    leader
                } else {
                    rng.gen_range(0..3)
                };
                c.nodes[victim].kill9();
                c.nodes[victim].spawn();
                c.nodes[victim].wait_healthy(T).await;
            }
            "pause" => {
                let id = c.nodes[leader].opts.node_id;
                let pid = c.nodes[leader].pid().expect("running");
                signal(pid, "STOP");
                let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
                c.wait_leader_among(&others, id, T).await;
                signal(pid, "CONT");
            }
            "transfer" => {
                let target = c.nodes[(leader + 1 + rng.gen_range(0..2)) % 3].opts.node_id;
                let (st, v) = post(
                    &c.nodes[leader].url("/cluster/transfer-leadership"),
                    serde_json::json!({ "target_node": target }),
                )
                .await;
                // Refused only when the target is not caught up yet; that is no fault.
                eprintln!("history: transfer to {target}: {st} {v}");
            }
            _ => {
                let id = c.nodes[leader].opts.node_id;
                lab.isolate(leader);
                let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
                c.wait_leader_among(&others, id, T).await;
                tokio::time::sleep(ELECTION).await; // the cut lasts past one more election timeout
                lab.heal();
            }
        }
        c.wait_leader(T).await;
        for s in &senders {
            s.wait_progress(3, T).await;
        }
    }

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = register.await.expect("register writer");
    let mut histories = Vec::new();
    for s in senders {
        histories.push(s.finish().await);
    }
    c.wait_converged(T).await;
    let mut served = Vec::new();
    for i in 0..3 {
        let mut m = BTreeMap::new();
        for h in &histories {
            m.insert(h.uid.clone(), c.history(i, &h.uid, &h.to).await);
        }
        served.push(m);
    }
    let mut bad = check_sends(&histories, &served);
    // The register: probe the candidates and the acknowledged writes just before them.
    let cand = wk_tests::history::register_candidates(&writes);
    let last = cand.iter().copied().max().unwrap_or(0);
    let mut probe: Vec<u64> = cand.clone();
    probe.extend((last.saturating_sub(3)..=last).filter(|v| *v > 0));
    probe.sort();
    probe.dedup();
    let mut held = Vec::new();
    for v in probe {
        if holds(&addrs[(v % 3) as usize], v).await {
            held.push(v);
        }
    }
    bad.extend(check_register(&writes, &held));
    let acked: usize = histories.iter().map(|h| h.acked()).sum();
    let in_doubt: usize = histories
        .iter()
        .flat_map(|h| &h.ops)
        .filter(|o| o.acked.is_some() && !o.clean)
        .count();
    let reg_acked = writes
        .iter()
        .filter(|(_, o)| *o == WriteOutcome::Acked)
        .count();
    eprintln!(
        "history: cycles={cycles} faults={kinds:?} seed={seed} acked_sends={acked} \
         (retried {in_doubt}) register_writes={} acked={reg_acked} violations={}",
        writes.len(),
        bad.len()
    );
    watch.finish().await;
    assert!(
        bad.is_empty(),
        "history violations (seed {seed}):\n{}",
        bad.join("\n")
    );
    c.check_nodes();
}
