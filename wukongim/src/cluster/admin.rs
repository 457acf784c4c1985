//! Cluster administration and views: membership changes, leadership transfer, and the JSON the
//! /cluster/* endpoints show. Changes run on the leader; other nodes forward them.

use super::messages::{kind, AdminError, AdminRequest, AdminResult};
use super::types::{from_bytes, to_bytes};
use super::Cluster;
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::{BasicNode, ChangeMembers, Instant as _, ServerState};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

/// One member as GET /cluster/nodes shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub id: u64,
    pub addr: String,
    pub status: &'static str,
    pub last_heartbeat: Option<String>,
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn bad(msg: impl Into<String>) -> AdminError {
    AdminError::Invalid(msg.into())
}

impl Cluster {
    /// Runs `req` on the leader: here, or forwarded.
    pub async fn admin(&self, req: AdminRequest) -> AdminResult {
        match self.leader() {
            Some(l) if l == self.node_id => self.admin_as_leader(req).await,
            Some(l) => {
                let Some(addr) = self.addr_of(l) else {
                    return Err(AdminError::Unavailable(format!(
                        "no address for leader {l}"
                    )));
                };
                let timeout = self.config.cluster.request_timeout.0 * 3;
                match self
                    .rpc
                    .call_timeout(&addr, kind::ADMIN, to_bytes(&req).into(), timeout)
                    .await
                {
                    Ok(body) => from_bytes::<AdminResult>(&body)
                        .unwrap_or_else(|e| Err(AdminError::BadReply(e.to_string()))),
                    Err(e) => Err(AdminError::Unavailable(format!(
                        "leader {l} unreachable: {e}"
                    ))),
                }
            }
            None => Err(AdminError::Unavailable("no leader".into())),
        }
    }

    /// Runs `req` on this node, which must be the leader.
    pub async fn admin_as_leader(&self, req: AdminRequest) -> AdminResult {
        if !self.raft.is_leader() {
            return Err(AdminError::Unavailable("not the leader".into()));
        }
        let membership = self
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .clone();
        let m = membership.membership();
        let voters: BTreeSet<u64> = m.voter_ids().collect();
        let learners: BTreeSet<u64> = m.learner_ids().collect();
        match req {
            AdminRequest::AddNode { id, addr } => {
                if id == 0 {
                    return Err(bad("id must be a positive integer"));
                }
                crate::config::NodeSpec::parse(&format!("{id}@{addr}")).map_err(bad)?;
                if voters.contains(&id) {
                    return Err(AdminError::Conflict(format!(
                        "node {id} is already a voter"
                    )));
                }
                if let Some((other, _)) = m.nodes().find(|(nid, n)| n.addr == addr && **nid != id) {
                    return Err(AdminError::Conflict(format!(
                        "address {addr} already belongs to node {other}"
                    )));
                }
                tracing::info!(id, %addr, "raft adding learner");
                self.raft
                    .add_learner(id, BasicNode { addr: addr.clone() }, true)
                    .await
                    .map_err(|e| AdminError::Unavailable(format!("adding learner {id}: {e}")))?;
                tracing::info!(id, "raft promoting learner to voter");
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await
                    .map_err(|e| AdminError::Unavailable(format!("promoting {id}: {e}")))?;
                Ok(json!({"id": id, "addr": addr, "status": "follower"}).to_string())
            }
            AdminRequest::RemoveNode { id } => {
                if voters.contains(&id) {
                    if voters.len() == 1 {
                        return Err(bad(format!(
                            "node {id} is the last voter; refusing to remove it"
                        )));
                    }
                    tracing::info!(id, "raft removing voter");
                    self.raft
                        .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                        .await
                        .map_err(|e| AdminError::Unavailable(format!("removing {id}: {e}")))?;
                } else if learners.contains(&id) {
                    tracing::info!(id, "raft removing learner");
                    self.raft
                        .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                        .await
                        .map_err(|e| AdminError::Unavailable(format!("removing {id}: {e}")))?;
                } else {
                    return Err(AdminError::NotFound(format!("node {id} is not a member")));
                }
                if let Some(addr) = m.get_node(&id).map(|n: &BasicNode| n.addr.clone()) {
                    self.rpc.forget(&addr);
                }
                Ok(json!({"id": id, "removed": true}).to_string())
            }
            AdminRequest::TransferLeader { target } => {
                if !voters.contains(&target) {
                    return Err(bad(format!("node {target} is not a voter")));
                }
                if target == self.node_id {
                    return Ok(json!({"leader": target}).to_string());
                }
                tracing::info!(
                    from = self.node_id,
                    to = target,
                    "raft transferring leadership"
                );
                self.raft
                    .trigger()
                    .transfer_leader(target)
                    .await
                    .map_err(|e| AdminError::Unavailable(e.to_string()))?;
                let deadline = self.config.election_timeout() * 4;
                if crate::core::wait_until(deadline, || self.leader() == Some(target)).await {
                    return Ok(json!({"leader": target}).to_string());
                }
                Err(AdminError::Unavailable(format!(
                    "node {target} did not take over within {deadline:?}"
                )))
            }
            AdminRequest::Nodes => {
                Ok(serde_json::to_string(&self.nodes_view()).unwrap_or_default())
            }
            AdminRequest::ReadIndex => {
                let index = self.read_index_as_leader().await?;
                Ok(json!({ "index": index }).to_string())
            }
            AdminRequest::Rejoin { id } => {
                let was_voter = voters.contains(&id);
                if !was_voter && !learners.contains(&id) {
                    return Err(AdminError::NotFound(format!("node {id} is not a member")));
                }
                let fresh = was_voter && self.never_acknowledged(id);
                if fresh {
                    tracing::info!(
                        id,
                        "raft member joins the cluster formed without it (it never held an entry): \
                         it stays a voter"
                    );
                } else if was_voter {
                    if voters.len() == 1 {
                        return Err(bad(format!("node {id} is the only voter")));
                    }
                    tracing::warn!(id, "raft member lost its state: demoting it to learner");
                    self.raft
                        .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), true)
                        .await
                        .map_err(|e| AdminError::Unavailable(format!("demoting {id}: {e}")))?;
                }
                // Only now (the demotion committed) may its replication start over.
                self.raft
                    .trigger()
                    .allow_next_revert(&id, true)
                    .await
                    .map_err(|e| AdminError::Unavailable(e.to_string()))?
                    .map_err(|e| AdminError::Unavailable(format!("resetting {id}: {e}")))?;
                Ok(json!({"id": id, "was_voter": was_voter}).to_string())
            }
        }
    }

    /// Whether voter `id`, which reports no Raft state, can never have held an entry of this
    /// cluster: this node leads, nothing was purged, every entry after the initial membership
    /// is of this leader's own term (no earlier leader wrote any), and `id` never acknowledged
    /// one to it. That is a member that came up after the others formed the cluster, not one
    /// that lost its data, so it need not be demoted: it cannot be in any majority that
    /// committed something.
    fn never_acknowledged(&self, id: u64) -> bool {
        let m = self.raft.metrics().borrow_watched().clone();
        // Terms never fall along a log: the entry after the initial membership (index 0)
        // tells whether an earlier leader wrote anything.
        let own_term_only = match self.store.log_range(1, 2) {
            Ok(rows) => rows.first().is_none_or(|(_, raw)| {
                from_bytes::<super::types::Entry>(raw)
                    .is_ok_and(|e| e.log_id.leader_id.term == m.current_term)
            }),
            Err(_) => false,
        };
        let acked = m
            .replication
            .as_ref()
            .and_then(|r| r.get(&id))
            .is_some_and(|matched| matched.is_some());
        m.state == ServerState::Leader && m.purged.is_none() && own_term_only && !acked
    }

    /// Members with their status, as this node sees them (authoritative on the leader).
    pub fn nodes_view(&self) -> Value {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let m = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = m.voter_ids().collect();
        let online_within = self.config.election_timeout() * 2;
        let now = SystemTime::now();
        let heartbeats: BTreeMap<u64, Option<Duration>> = metrics
            .heartbeat
            .as_ref()
            .map(|h| {
                h.iter()
                    .map(|(id, t)| (*id, t.as_ref().map(|t| t.elapsed())))
                    .collect()
            })
            .unwrap_or_default();
        let mut nodes = Vec::new();
        for (id, node) in m.nodes() {
            let role_ok = if voters.contains(id) {
                "follower"
            } else {
                "learner"
            };
            let (status, last) = if *id == self.node_id {
                let s = match metrics.state {
                    ServerState::Leader => "leader",
                    ServerState::Learner => "learner",
                    ServerState::Follower => "follower",
                    ServerState::Candidate => "candidate",
                    ServerState::Shutdown => "offline",
                };
                (s, Some(now))
            } else if metrics.current_leader == Some(*id) {
                ("leader", None)
            } else {
                match heartbeats.get(id) {
                    Some(Some(age)) if *age <= online_within => (role_ok, now.checked_sub(*age)),
                    Some(Some(age)) => ("offline", now.checked_sub(*age)),
                    Some(None) => ("offline", None),
                    None => (role_ok, None),
                }
            };
            nodes.push(NodeView {
                id: *id,
                addr: node.addr.clone(),
                status,
                last_heartbeat: last.map(rfc3339),
            });
        }
        json!({ "leader": metrics.current_leader, "nodes": nodes })
    }
}
