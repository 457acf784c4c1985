//! How a node with no Raft state joins: forming the cluster from `initNodes`, or rejoining it
//! after its data directory was lost.
//!
//! A node that starts uninitialized holds a guard: it refuses votes, appends, snapshots and
//! leadership transfers until it knows which case it is in — a node that forgot its log and its
//! vote must neither elect a leader that lacks an entry it had acknowledged, nor vote twice in
//! one term. It pings the `initNodes`:
//! - a quorum reachable and nobody initialized: a new cluster. The guard goes; the member with the smallest id
//!   initializes once it can reach a quorum.
//! - initialized peers holding nothing but the initial membership, no leader: a cluster being
//!   formed right now; the guard goes.
//! - a leader: a rejoin. The node asks the leader (`AdminRequest::Rejoin`)
//!   to demote it to learner — once that change commits, every voter holds every committed
//!   entry — and to accept that its log went back. Then the guard goes, the node catches up (by
//!   snapshot when the log was purged) and, once it has applied what the leader had committed,
//!   asks to be promoted back to voter (`AddNode`).
//! - otherwise (peers initialized, no leader yet) it waits, guard held.
//!
//! Restarts of a node with state never re-initialize (openraft refuses, and we check first).

use super::messages::{kind, AdminError, AdminRequest, AdminResult, PingResponse};
use super::types::{from_bytes, to_bytes};
use super::Cluster;
use openraft::BasicNode;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Whether this node still refuses Raft traffic while deciding how it joins.
#[derive(Debug, Default)]
pub struct JoinGuard(AtomicBool);

impl JoinGuard {
    pub fn held(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub(super) fn hold(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn release(&self, why: &str) {
        if self.0.swap(false, Ordering::AcqRel) {
            tracing::info!(why, "raft join guard released");
        }
    }
}

pub async fn run(cluster: Arc<Cluster>, shutdown: CancellationToken) {
    if cluster.raft.is_initialized().await.unwrap_or(true) {
        cluster.join_guard.release("node has state");
        return;
    }
    let me = cluster.node_id;
    let members = cluster.init_members.clone();
    let Some(&first) = members.keys().next() else {
        cluster.join_guard.release("no initNodes");
        return;
    };
    let quorum = members.len() / 2 + 1;
    let pause = cluster.config.heartbeat().max(Duration::from_millis(50));
    let mut announced = false;
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        if cluster.raft.is_initialized().await.unwrap_or(true) && !cluster.join_guard.held() {
            return;
        }
        let peers = ping_all(&cluster, &members).await;
        let reachable = 1 + peers.len();
        let initialized: Vec<&PingResponse> = peers.iter().filter(|p| p.initialized).collect();
        if initialized.is_empty() && reachable >= quorum {
            // A quorum without state: nothing can have been committed yet.
            cluster.join_guard.release("new cluster");
            if first != me {
                tracing::info!(
                    node_id = me,
                    initializer = first,
                    "raft waiting for node {first} to form the cluster"
                );
                return;
            }
            initialize(&cluster, &members).await;
            return;
        } else if initialized.is_empty() {
            tracing::debug!(
                reachable,
                quorum,
                "raft bootstrap waiting for a quorum of initNodes"
            );
        } else if let Some(leader) = initialized.iter().find_map(|p| p.leader) {
            let target = initialized.iter().map(|p| p.committed).max().unwrap_or(0);
            match rejoin(&cluster, leader).await {
                Ok(was_voter) => {
                    cluster.join_guard.release("rejoining as learner");
                    if was_voter {
                        tokio::spawn(promote(cluster.clone(), target, shutdown.clone()));
                    }
                    return;
                }
                Err(e) => {
                    tracing::debug!(leader, error = %e, "raft rejoin not accepted yet, retrying");
                }
            }
        } else if initialized.iter().all(|p| p.last_log_index == 0) {
            cluster
                .join_guard
                .release("cluster being formed, nothing committed yet");
            return;
        } else if !announced {
            announced = true;
            tracing::warn!(
                node_id = me,
                "raft node has no state but its peers form a cluster without a reachable \
                 leader; not voting until a leader lets it rejoin"
            );
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Pings every other member of `initNodes`; the answers of those that replied.
async fn ping_all(cluster: &Cluster, members: &BTreeMap<u64, String>) -> Vec<PingResponse> {
    let t = cluster
        .config
        .cluster
        .dial_timeout
        .0
        .min(Duration::from_secs(2));
    let mut out = Vec::new();
    for (&id, addr) in members {
        if id == cluster.node_id {
            continue;
        }
        if let Ok(body) = cluster
            .rpc
            .call_timeout(addr, kind::PING, Vec::new().into(), t)
            .await
        {
            if let Ok(p) = from_bytes::<PingResponse>(&body) {
                out.push(p);
            }
        }
    }
    out
}

async fn initialize(cluster: &Cluster, members: &BTreeMap<u64, String>) {
    let nodes: BTreeMap<u64, BasicNode> = members
        .iter()
        .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
        .collect();
    match cluster.raft.initialize(nodes).await {
        Ok(()) => tracing::info!(
            node_id = cluster.node_id,
            members = members.len(),
            "raft cluster initialized"
        ),
        Err(e) => tracing::warn!(node_id = cluster.node_id, error = %e, "raft initialize refused"),
    }
}

/// Sends `req` to node `to` (an `initNodes` member) as an admin request.
async fn admin_on(cluster: &Cluster, to: u64, req: AdminRequest) -> AdminResult {
    let addr = cluster
        .addr_of(to)
        .ok_or_else(|| AdminError::Unavailable(format!("no address for node {to}")))?;
    let timeout = cluster.config.cluster.request_timeout.0 * 3;
    let body = cluster
        .rpc
        .call_timeout(&addr, kind::ADMIN, to_bytes(&req).into(), timeout)
        .await
        .map_err(|e| AdminError::Unavailable(format!("node {to} unreachable: {e}")))?;
    from_bytes::<AdminResult>(&body).unwrap_or_else(|e| Err(AdminError::BadReply(e.to_string())))
}

/// Asks `leader` to take this node back as a learner; whether it was a voter.
async fn rejoin(cluster: &Cluster, leader: u64) -> Result<bool, AdminError> {
    tracing::info!(
        node_id = cluster.node_id,
        leader,
        "raft node has no state but its peers form a cluster: asking the leader to take it back"
    );
    match admin_on(
        cluster,
        leader,
        AdminRequest::Rejoin {
            id: cluster.node_id,
        },
    )
    .await
    {
        Ok(text) => {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            Ok(v["was_voter"].as_bool().unwrap_or(false))
        }
        // Not a member (yet): a node waiting to be added (`POST /cluster/nodes`).
        Err(AdminError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Once this node applied `target` (what the cluster had committed when it rejoined), asks the
/// leader to make it a voter again; retries until done or shut down.
async fn promote(cluster: Arc<Cluster>, target: u64, shutdown: CancellationToken) {
    let pause = cluster.config.election_timeout();
    loop {
        let applied = *cluster.applied.borrow();
        if applied >= target {
            let addr = cluster
                .init_members
                .get(&cluster.node_id)
                .cloned()
                .unwrap_or_else(|| cluster.config.cluster.server_addr.clone());
            let req = AdminRequest::AddNode {
                id: cluster.node_id,
                addr,
            };
            let res = match cluster.leader() {
                Some(l) => admin_on(&cluster, l, req).await,
                None => Err(AdminError::Unavailable("no leader".into())),
            };
            match res {
                Ok(_) | Err(AdminError::Conflict(_)) => {
                    tracing::info!(node_id = cluster.node_id, "raft rejoined as voter");
                    return;
                }
                Err(e) => tracing::info!(error = %e, "raft promotion after rejoin not yet done"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
