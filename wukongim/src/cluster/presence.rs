//! Cluster-wide presence: which uids have connections on which node. Each node answers for its
//! own hub (`ONLINE` request of the cluster RPC, authenticated like every RPC); [`everywhere`]
//! asks every member at once.

use super::messages::{kind, OnlineConn, OnlineQuery};
use super::types::{from_bytes, to_bytes};
use super::Cluster;
use crate::core::Hub;
use std::time::Duration;

/// Most uids in one presence query (a larger list is split by the caller).
pub const MAX_QUERY_UIDS: usize = 10_000;

/// The connections of `uids` on this node.
pub fn local(hub: &Hub, node_id: u64, uids: &[String]) -> Vec<OnlineConn> {
    let mut out = Vec::new();
    for uid in uids {
        for c in hub.online(uid) {
            out.push(OnlineConn {
                node_id,
                uid: c.uid,
                device_flag: c.device_flag,
                device_level: c.device_level,
                conn_id: c.id,
            });
        }
    }
    out
}

/// The connections of `uids` on every member, and the members that did not answer within
/// `timeout` (their users are unknown, not offline).
pub async fn everywhere(
    cluster: &Cluster,
    hub: &Hub,
    uids: &[String],
    timeout: Duration,
) -> (Vec<OnlineConn>, Vec<u64>) {
    let mut out = local(hub, cluster.node_id, uids);
    let mut unreachable = Vec::new();
    if uids.is_empty() {
        return (out, unreachable);
    }
    let members = cluster.peers();
    let calls = members.into_iter().map(|(id, addr)| async move {
        let mut conns = Vec::new();
        for chunk in uids.chunks(MAX_QUERY_UIDS) {
            let body = to_bytes(&OnlineQuery {
                uids: chunk.to_vec(),
            });
            let reply = cluster
                .rpc
                .call_timeout(&addr, kind::ONLINE, body.into(), timeout)
                .await
                .map_err(|e| e.to_string())
                .and_then(|b| from_bytes::<Vec<OnlineConn>>(&b).map_err(|e| e.to_string()));
            match reply {
                Ok(c) => conns.extend(c),
                Err(e) => {
                    tracing::warn!(node = id, error = %e, "presence query failed");
                    return (id, None);
                }
            }
        }
        (id, Some(conns))
    });
    for (id, res) in futures::future::join_all(calls).await {
        match res {
            Some(c) => out.extend(c),
            None => unreachable.push(id),
        }
    }
    (out, unreachable)
}
