//! Forming the cluster from `initNodes`: the member with the smallest id initializes once it
//! can reach a quorum of them and none of them already belongs to an initialized cluster.
//! Restarts never re-initialize (openraft refuses on a node with state, and we check first).

use super::messages::{kind, PingResponse};
use super::types::from_bytes;
use super::Cluster;
use openraft::BasicNode;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub async fn run(cluster: Arc<Cluster>, shutdown: tokio_util::sync::CancellationToken) {
    if cluster.raft.is_initialized().await.unwrap_or(true) {
        return;
    }
    let me = cluster.node_id;
    let members = cluster.init_members.clone();
    let Some(&first) = members.keys().next() else {
        return;
    };
    if first != me {
        tracing::info!(
            node_id = me,
            initializer = first,
            "raft waiting for node {first} to form the cluster"
        );
        return;
    }
    let quorum = members.len() / 2 + 1;
    let pause = cluster.config.heartbeat().max(Duration::from_millis(50));
    loop {
        if shutdown.is_cancelled() || cluster.raft.is_initialized().await.unwrap_or(true) {
            return;
        }
        let mut reachable = 1; // this node
        let mut already = false;
        for (&id, addr) in &members {
            if id == me {
                continue;
            }
            let t = cluster
                .config
                .cluster
                .dial_timeout
                .0
                .min(Duration::from_secs(2));
            if let Ok(body) = cluster
                .rpc
                .call_timeout(addr, kind::PING, Vec::new().into(), t)
                .await
            {
                if let Ok(p) = from_bytes::<PingResponse>(&body) {
                    reachable += 1;
                    already |= p.initialized;
                }
            }
        }
        if already {
            tracing::info!(
                node_id = me,
                "raft peers already form a cluster; waiting to be replicated to"
            );
            return;
        }
        if reachable >= quorum {
            let nodes: BTreeMap<u64, BasicNode> = members
                .iter()
                .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
                .collect();
            match cluster.raft.initialize(nodes).await {
                Ok(()) => tracing::info!(
                    node_id = me,
                    members = members.len(),
                    "raft cluster initialized"
                ),
                Err(e) => tracing::warn!(node_id = me, error = %e, "raft initialize refused"),
            }
            return;
        }
        tracing::debug!(
            reachable,
            quorum,
            "raft bootstrap waiting for a quorum of initNodes"
        );
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
