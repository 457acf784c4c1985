//! What the fleet looks like right now: every node of the inventory asked at once (through
//! [`NodeApi`], so with the manager token) for its raft status, health, cluster view, version,
//! data version, clock and storage. `wk-ops status` prints it as a table; `wk-ops health` runs
//! its checks on the same observation.

use crate::inventory::{Inventory, Node};
use crate::node_api::{
    ClusterStatus, DataVersion, Dated, NodeApi, NodeError, NodesView, RaftStatus, Varz,
};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// One node as it answered (each answer kept with its own error).
#[derive(Debug)]
pub struct Probe {
    pub node: Node,
    pub health: Result<(), NodeError>,
    pub raft: Result<RaftStatus, NodeError>,
    pub cluster: Result<ClusterStatus, NodeError>,
    pub varz: Result<Dated<Varz>, NodeError>,
    pub data: Result<DataVersion, NodeError>,
    /// `wukongim_storage_bytes` from the metrics port.
    pub storage_bytes: Result<Option<u64>, NodeError>,
}

impl Probe {
    /// Did the node answer its API at all (any status but a transport failure)?
    pub fn reachable(&self) -> bool {
        !matches!(self.raft, Err(NodeError::Unreachable { .. }))
    }
}

/// The whole fleet at one moment.
#[derive(Debug)]
pub struct Observation {
    pub probes: Vec<Probe>,
    /// The members as the leader sees them (from the first node that knows a leader).
    pub members: Option<NodesView>,
}

/// Overall state, which is also `wk-ops status`' exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every node up, one leader, every node a member, nothing lagging.
    Healthy,
    /// A leader and a quorum, but something is wrong.
    Degraded,
    /// No leader, or no quorum of voters reachable.
    Unavailable,
}

impl Verdict {
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Healthy => 0,
            Verdict::Degraded => 1,
            Verdict::Unavailable => 2,
        }
    }
}

/// Asks every node of `inv` at once.
pub async fn observe(api: &NodeApi, inv: &Inventory) -> Observation {
    let probes = futures::future::join_all(inv.nodes.iter().map(|n| probe(api, n))).await;
    let mut members = None;
    for p in probes.iter().filter(|p| known_leader(p).is_some()) {
        if let Ok(view) = api.nodes_view(&p.node).await {
            members = Some(view);
            break;
        }
    }
    let mut obs = Observation { probes, members };
    obs.drop_waiting_joiners();
    obs
}

async fn probe(api: &NodeApi, node: &Node) -> Probe {
    let (health, raft, cluster, varz, data, metrics) = tokio::join!(
        api.health(node),
        api.raft_status(node),
        api.cluster_status(node),
        api.varz(node),
        api.data_version(node),
        api.metrics_text(node),
    );
    Probe {
        node: node.clone(),
        health: health.map(|_| ()),
        raft,
        cluster,
        varz,
        data,
        storage_bytes: metrics.map(|text| metric_value(&text, "wukongim_storage_bytes")),
    }
}

/// The value of an unlabelled sample in Prometheus text.
pub fn metric_value(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

fn known_leader(p: &Probe) -> Option<(u64, u64)> {
    let r = p.raft.as_ref().ok()?;
    Some((r.leader?, r.term))
}

impl Observation {
    /// Distinct (leader, term) pairs the reachable nodes report.
    pub fn leaders(&self) -> BTreeSet<(u64, u64)> {
        self.probes.iter().filter_map(known_leader).collect()
    }

    /// Nodes that claim to be leader themselves, with their term.
    pub fn self_leaders(&self) -> Vec<(u64, u64)> {
        self.probes
            .iter()
            .filter_map(|p| p.raft.as_ref().ok())
            .filter(|r| r.state == "leader")
            .map(|r| (r.node_id, r.term))
            .collect()
    }

    /// The leader every reachable node agrees on, if they do.
    pub fn agreed_leader(&self) -> Option<u64> {
        let l = self.leaders();
        (l.len() == 1)
            .then(|| l.iter().next().map(|(id, _)| *id))
            .flatten()
    }

    /// The agreed leader's own raft status.
    pub fn leader_status(&self) -> Option<&RaftStatus> {
        let id = self.agreed_leader()?;
        self.probes
            .iter()
            .filter_map(|p| p.raft.as_ref().ok())
            .find(|r| r.node_id == id)
    }

    /// Drops the `joins: true` nodes outside the agreed leader's membership (voters and
    /// learners): they wait for `wk-ops scale-out`, or were removed by `scale-in`, and are not
    /// part of the cluster the table and the health checks describe. Without an agreed leader
    /// nothing is dropped.
    pub fn drop_waiting_joiners(&mut self) {
        let Some(members) = self.leader_status().map(|l| {
            let m = &l.membership;
            m.voters
                .iter()
                .chain(&m.learners)
                .copied()
                .collect::<BTreeSet<u64>>()
        }) else {
            return;
        };
        self.probes
            .retain(|p| !p.node.joins || members.contains(&p.node.id));
    }

    /// The manager token is wrong: some node refused it and none accepted it (the others
    /// being unreachable). A configuration error, not an outage.
    pub fn token_refused(&self) -> Option<&NodeError> {
        if self.probes.iter().any(|p| p.raft.is_ok()) {
            return None;
        }
        self.probes.iter().find_map(|p| match &p.raft {
            Err(e @ NodeError::Unauthorized { .. }) => Some(e),
            _ => None,
        })
    }

    /// Replication lag of `id` as the agreed leader reports it.
    pub fn lag_of(&self, id: u64) -> Option<u64> {
        let leader = self.leader_status()?;
        if leader.node_id == id {
            return Some(0);
        }
        leader
            .replication
            .iter()
            .find(|r| r.node_id == id)
            .map(|r| r.lag)
    }

    /// Healthy, degraded or unavailable, from raft's point of view.
    pub fn verdict(&self, lag_limit: u64) -> Verdict {
        let Some(leader) = self.leader_status() else {
            return Verdict::Unavailable;
        };
        let voters = &leader.membership.voters;
        let up: BTreeSet<u64> = self
            .probes
            .iter()
            .filter_map(|p| p.raft.as_ref().ok())
            .map(|r| r.node_id)
            .collect();
        let voters_up = voters.iter().filter(|v| up.contains(v)).count();
        if voters_up < voters.len() / 2 + 1 {
            return Verdict::Unavailable;
        }
        let all_up = self.probes.iter().all(|p| p.raft.is_ok());
        let members: BTreeSet<u64> = voters
            .iter()
            .chain(&leader.membership.learners)
            .copied()
            .collect();
        let all_members = self.probes.iter().all(|p| members.contains(&p.node.id));
        let no_lag = self
            .probes
            .iter()
            .all(|p| self.lag_of(p.node.id).is_some_and(|l| l <= lag_limit));
        if all_up && all_members && no_lag {
            Verdict::Healthy
        } else {
            Verdict::Degraded
        }
    }

    /// One row per inventory node.
    pub fn rows(&self) -> Vec<Row> {
        self.probes.iter().map(|p| self.row(p)).collect()
    }

    fn row(&self, p: &Probe) -> Row {
        let member = self
            .members
            .as_ref()
            .and_then(|m| m.nodes.iter().find(|n| n.id == p.node.id));
        let raft = p.raft.as_ref().ok();
        Row {
            id: p.node.id,
            address: p.node.api_url(),
            up: raft.is_some(),
            role: match (raft, member) {
                (Some(r), _) => r.state.clone(),
                (None, Some(m)) => m.status.clone(),
                (None, None) => "-".into(),
            },
            term: raft.map(|r| r.term),
            commit_index: raft.and_then(|r| r.commit_index),
            applied_index: raft.and_then(|r| r.applied_index),
            lag: self.lag_of(p.node.id),
            last_heartbeat: member.and_then(|m| m.last_heartbeat.clone()),
            version: p.varz.as_ref().ok().map(|v| v.value.version.clone()),
            data_version: p.data.as_ref().ok().map(|d| short_hash(&d.hash)),
            error: p.raft.as_ref().err().map(NodeError::brief),
        }
    }
}

fn short_hash(h: &str) -> String {
    h.chars().take(12).collect()
}

/// One line of `wk-ops status`.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: u64,
    pub address: String,
    pub up: bool,
    pub role: String,
    pub term: Option<u64>,
    pub commit_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub lag: Option<u64>,
    pub last_heartbeat: Option<String>,
    pub version: Option<String>,
    pub data_version: Option<String>,
    pub error: Option<String>,
}

/// `wk-ops status --output json`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub cluster: String,
    pub status: Verdict,
    pub leader: Option<u64>,
    pub nodes: Vec<Row>,
}

impl Report {
    pub fn new(inv: &Inventory, obs: &Observation) -> Report {
        Report {
            cluster: inv.cluster.name.clone(),
            status: obs.verdict(inv.alerts.thresholds.replication_lag_entries),
            leader: obs.agreed_leader(),
            nodes: obs.rows(),
        }
    }

    /// The table, like `tiup cluster display`.
    pub fn table(&self) -> String {
        let opt = |v: Option<u64>| v.map_or_else(|| "-".into(), |v| v.to_string());
        let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let header = [
            "ID",
            "ADDRESS",
            "ROLE",
            "TERM",
            "COMMIT",
            "APPLIED",
            "LAG",
            "HEARTBEAT",
            "VERSION",
            "STATUS",
            "DATA",
        ];
        let mut lines: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
        for r in &self.nodes {
            lines.push(vec![
                r.id.to_string(),
                r.address.clone(),
                r.role.clone(),
                opt(r.term),
                opt(r.commit_index),
                opt(r.applied_index),
                opt(r.lag),
                text(&r.last_heartbeat),
                text(&r.version),
                match &r.error {
                    None => "up".into(),
                    Some(e) => format!("down ({e})"),
                },
                text(&r.data_version),
            ]);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                lines
                    .iter()
                    .map(|l| l[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = format!(
            "Cluster: {}\nStatus:  {}\nLeader:  {}\n\n",
            self.cluster,
            serde_json::to_value(self.status)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            opt(self.leader)
        );
        for l in &lines {
            let cells: Vec<String> = l
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        }
        out
    }
}
