//! Writes every metric family in the Prometheus text format.

use crate::app::App;
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::ServerState;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(self.0, "{name}{labels} {v}");
        }
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, v: f64) {
        self.family(name, kind, help, &[(String::new(), v)]);
    }
}

/// Packet type names by type number.
pub const PACKET_NAMES: [&str; 13] = [
    "",
    "connect",
    "connack",
    "send",
    "sendack",
    "recv",
    "recvack",
    "ping",
    "pong",
    "disconnect",
    "sub",
    "suback",
    "event",
];

pub fn render(app: &App, disk_bytes: u64) -> String {
    let mut o = Out(String::new());
    let c = &app.core.cluster;
    let m = c.raft.metrics().borrow_watched().clone();
    o.family(
        "wukongim_info",
        "gauge",
        "Node identity.",
        &[(
            format!(
                "{{node_id=\"{}\",version=\"{}\"}}",
                app.node_id,
                env!("CARGO_PKG_VERSION")
            ),
            1.0,
        )],
    );
    let state = match m.state {
        ServerState::Follower => 0.0,
        ServerState::Candidate => 1.0,
        ServerState::Leader => 2.0,
        ServerState::Learner => 3.0,
        ServerState::Shutdown => 4.0,
    };
    o.one(
        "wukongim_raft_state",
        "gauge",
        "Raft role: 0 follower, 1 candidate, 2 leader, 3 learner, 4 shutdown.",
        state,
    );
    o.one(
        "wukongim_raft_term",
        "gauge",
        "Current Raft term.",
        m.current_term as f64,
    );
    o.one(
        "wukongim_raft_leader_id",
        "gauge",
        "Node id of the known leader (0 = none).",
        m.current_leader.unwrap_or(0) as f64,
    );
    let idx =
        |l: &Option<crate::cluster::types::LogId>| l.as_ref().map(|l| l.index).unwrap_or(0) as f64;
    o.one(
        "wukongim_raft_commit_index",
        "gauge",
        "Highest log index known committed.",
        idx(&m.cluster_committed),
    );
    o.one(
        "wukongim_raft_applied_index",
        "gauge",
        "Highest log index applied locally.",
        idx(&m.last_applied),
    );
    o.one(
        "wukongim_raft_last_log_index",
        "gauge",
        "Highest log index stored locally.",
        m.last_log_index.unwrap_or(0) as f64,
    );
    let last = m.last_log_index.unwrap_or(0);
    let lag: Vec<(String, f64)> = m
        .replication
        .as_ref()
        .map(|r| {
            r.iter()
                .filter(|(id, _)| **id != app.node_id)
                .map(|(id, matched)| {
                    let matched = matched.as_ref().map(|l| l.index).unwrap_or(0);
                    (
                        format!("{{peer=\"{id}\"}}"),
                        last.saturating_sub(matched) as f64,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    o.family(
        "wukongim_raft_replication_lag_entries",
        "gauge",
        "Entries a follower is behind the leader's log (leader only).",
        &lag,
    );
    let latencies = c
        .peer_latency
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut first = true;
    for (peer, h) in &latencies {
        let mut s = String::new();
        h.render(
            &mut s,
            "wukongim_raft_rpc_duration_seconds",
            "Cluster RPC latency by peer.",
            &format!("peer=\"{peer}\""),
        );
        if !first {
            // One HELP/TYPE per family.
            s = s
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| format!("{l}\n"))
                .collect();
        }
        first = false;
        o.0.push_str(&s);
    }
    let w = &app.core.proposer.stats;
    o.one(
        "wukongim_raft_proposals_total",
        "counter",
        "Commands proposed on this node.",
        w.proposals.load(Relaxed) as f64,
    );
    o.one(
        "wukongim_raft_batches_total",
        "counter",
        "Batches (log entries) proposed on this node.",
        w.batches.load(Relaxed) as f64,
    );
    o.one(
        "wukongim_raft_forwarded_batches_total",
        "counter",
        "Batches forwarded to the leader.",
        w.forwarded.load(Relaxed) as f64,
    );
    w.batch_sizes.render(
        &mut o.0,
        "wukongim_raft_batch_size",
        "Commands per proposed batch.",
        "",
    );
    w.commit_latency.render(
        &mut o.0,
        "wukongim_raft_commit_duration_seconds",
        "Time from batch proposal to local apply.",
        "",
    );
    o.one(
        "wukongim_storage_fsyncs_total",
        "counter",
        "Durable storage commits (one fsync each).",
        app.store.fsyncs.load(Relaxed) as f64,
    );
    o.one(
        "wukongim_storage_bytes",
        "gauge",
        "Bytes used by rootDir.",
        disk_bytes as f64,
    );
    let s = &c.snapshots;
    o.one(
        "wukongim_snapshots_total",
        "counter",
        "Snapshots built.",
        s.built.load(Relaxed) as f64,
    );
    o.one(
        "wukongim_snapshots_installed_total",
        "counter",
        "Snapshots received and installed.",
        s.installed.load(Relaxed) as f64,
    );
    o.one(
        "wukongim_snapshot_failures_total",
        "counter",
        "Snapshot builds that failed.",
        s.failures.load(Relaxed) as f64,
    );
    o.one(
        "wukongim_snapshot_duration_seconds",
        "gauge",
        "Duration of the last snapshot build.",
        s.last_duration_ms.load(Relaxed) as f64 / 1000.0,
    );
    o.one(
        "wukongim_snapshot_size_bytes",
        "gauge",
        "Size of the last snapshot.",
        s.last_size_bytes.load(Relaxed) as f64,
    );
    let conns = app.core.hub.connection_counts();
    let by_transport: Vec<(String, f64)> = ["tcp", "ws"]
        .iter()
        .map(|t| {
            (
                format!("{{transport=\"{t}\"}}"),
                conns.get(t).copied().unwrap_or(0) as f64,
            )
        })
        .collect();
    o.family(
        "wukongim_connections",
        "gauge",
        "Client connections by transport.",
        &by_transport,
    );
    let t = &app.traffic;
    let by_type = |arr: &[std::sync::atomic::AtomicU64; 16]| -> Vec<(String, f64)> {
        PACKET_NAMES
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, n)| (format!("{{type=\"{n}\"}}"), arr[i].load(Relaxed) as f64))
            .collect()
    };
    o.family(
        "wukongim_packets_received_total",
        "counter",
        "Client packets received by type.",
        &by_type(&t.packets_in),
    );
    o.family(
        "wukongim_packets_sent_total",
        "counter",
        "Client packets sent by type.",
        &by_type(&t.packets_out),
    );
    o.one(
        "wukongim_messages_sent_total",
        "counter",
        "Messages accepted from senders on this node.",
        t.in_msgs.load(Relaxed) as f64,
    );
    o.one(
        "wukongim_messages_delivered_total",
        "counter",
        "Messages pushed to online devices of this node.",
        app.core.hub.delivered.load(Relaxed) as f64,
    );
    o.one(
        "wukongim_received_bytes_total",
        "counter",
        "Bytes received from clients.",
        t.in_bytes.load(Relaxed) as f64,
    );
    o.one(
        "wukongim_sent_bytes_total",
        "counter",
        "Bytes sent to clients.",
        t.out_bytes.load(Relaxed) as f64,
    );
    t.send_ack.render(
        &mut o.0,
        "wukongim_send_ack_duration_seconds",
        "Time from SEND received to SENDACK sent.",
        "",
    );
    let (rss, cpu, fds) = super::process::read();
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
        - app.started.elapsed().as_secs_f64();
    o.one(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        rss as f64,
    );
    o.one(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time in seconds.",
        cpu,
    );
    o.one(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        fds as f64,
    );
    o.one(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        start,
    );
    o.0
}
