//! The server side of the cluster RPC: dispatches each request kind to the local Raft instance,
//! or to the leader-side handling of forwarded writes and admin operations, or to this node's hub
//! for presence queries.

use super::messages::{
    kind, AdminRequest, ForwardNext, ForwardResult, ForwardWrite, OnlineQuery, PingResponse,
    SnapshotChunk, SnapshotInstall, SnapshotRequest,
};
use super::rpc::RpcHandler;
use super::snapfile::SnapshotFile;
use super::snapshots::SnapshotDir;
use super::types::{from_bytes, to_bytes, Snapshot, TypeConfig};
use super::Cluster;
use bytes::Bytes;
use openraft::errors::RaftError;
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use openraft::type_config::async_runtime::WatchReceiver;
use std::sync::Arc;

/// Handles requests from peers.
pub struct Service {
    pub cluster: Arc<Cluster>,
    /// Snapshot transfers from the leader.
    pub incoming: super::snapshot_recv::Receiver,
    /// This node's connections (answers presence queries).
    pub hub: Arc<crate::core::Hub>,
}

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    from_bytes(body).map_err(|e| format!("bad request body: {e}"))
}

impl RpcHandler for Service {
    async fn handle(&self, k: u8, body: Bytes) -> Result<Bytes, String> {
        let raft = &self.cluster.raft;
        if self.cluster.join_guard.held() && guarded(k) {
            return Err("node has no raft state yet and is deciding how to join; \
                        not voting or accepting replication"
                .into());
        }
        let out = match k {
            kind::PING => to_bytes(&PingResponse {
                node_id: self.cluster.node_id,
                initialized: raft.is_initialized().await.unwrap_or(false),
                leader: raft.current_leader().await,
                term: raft.metrics().borrow_watched().current_term,
                committed: raft
                    .metrics()
                    .borrow_watched()
                    .cluster_committed
                    .as_ref()
                    .map(|l| l.index)
                    .unwrap_or(0),
                last_log_index: raft.metrics().borrow_watched().last_log_index.unwrap_or(0),
            }),
            kind::APPEND => {
                let req: AppendEntriesRequest<TypeConfig> = decode(&body)?;
                self.cluster.failover.heard_from_leader();
                to_bytes(&raft.append_entries(req).await)
            }
            kind::VOTE => {
                let mut req: VoteRequest<TypeConfig> = decode(&body)?;
                super::failover::admit_vote(&self.cluster, &mut req).await;
                to_bytes(&raft.vote(req).await)
            }
            kind::PRE_VOTE => {
                let req: VoteRequest<TypeConfig> = decode(&body)?;
                to_bytes(&raft.pre_vote(req).await)
            }
            kind::SNAPSHOT => {
                let req: SnapshotRequest = decode(&body)?;
                let snap = Snapshot {
                    meta: req.meta,
                    snapshot: self.received(&req.data)?,
                };
                let res = raft
                    .install_full_snapshot(req.vote, snap)
                    .await
                    .map_err(RaftError::<TypeConfig>::Fatal);
                to_bytes(&res)
            }
            kind::SNAPSHOT_CHUNK => {
                let req: SnapshotChunk = decode(&body)?;
                self.check_vote(&req.vote)?;
                let ack = self.incoming.chunk(req).await?;
                to_bytes(&Ok::<_, RaftError<TypeConfig>>(ack))
            }
            kind::SNAPSHOT_INSTALL => {
                let req: SnapshotInstall = decode(&body)?;
                self.check_vote(&req.vote)?;
                let snap = Snapshot {
                    meta: req.meta,
                    snapshot: self.incoming.take(&req.transfer).await?,
                };
                let res = raft
                    .install_full_snapshot(req.vote, snap)
                    .await
                    .map_err(RaftError::<TypeConfig>::Fatal);
                to_bytes(&res)
            }
            kind::TRANSFER_LEADER => {
                let req: TransferLeaderRequest<TypeConfig> = decode(&body)?;
                let res = raft
                    .handle_transfer_leader(req)
                    .await
                    .map_err(RaftError::<TypeConfig>::Fatal);
                to_bytes(&res)
            }
            kind::FORWARD_WRITE => {
                let req: ForwardWrite = decode(&body)?;
                let tag = req.batch.tag;
                let deadline =
                    tokio::time::Instant::now() + self.cluster.config.cluster.request_timeout.0;
                let res: ForwardResult = self.cluster.write_as_leader(req.batch, deadline).await;
                if matches!(res, ForwardResult::Applied { .. }) {
                    // A pipelined successor may be waiting for this one (`forward.rs`).
                    self.cluster.forward_order.proposed(&tag);
                }
                to_bytes(&res)
            }
            kind::FORWARD_NEXT if super::levels::pre_level_knob() => {
                return Err(super::messages::unknown_kind(k));
            }
            kind::FORWARD_NEXT => {
                let req: ForwardNext = decode(&body)?;
                to_bytes(&self.cluster.forward_next_as_leader(req).await)
            }
            kind::ADMIN => {
                let req: AdminRequest = decode(&body)?;
                to_bytes(&self.cluster.admin_as_leader(req).await)
            }
            kind::ONLINE => {
                let req: OnlineQuery = decode(&body)?;
                if req.uids.len() > super::presence::MAX_QUERY_UIDS {
                    return Err(format!(
                        "presence query for {} uids (at most {})",
                        req.uids.len(),
                        super::presence::MAX_QUERY_UIDS
                    ));
                }
                to_bytes(&super::presence::local(
                    &self.hub,
                    self.cluster.node_id,
                    &req.uids,
                ))
            }
            kind::LEVEL => super::levels::answer()?,
            other => return Err(super::messages::unknown_kind(other)),
        };
        Ok(out.into())
    }
}

/// Raft traffic a node without state must refuse until it knows how it joins.
fn guarded(k: u8) -> bool {
    matches!(
        k,
        kind::APPEND
            | kind::VOTE
            | kind::PRE_VOTE
            | kind::SNAPSHOT
            | kind::SNAPSHOT_CHUNK
            | kind::SNAPSHOT_INSTALL
            | kind::TRANSFER_LEADER
    )
}

impl Service {
    /// Refuses snapshot traffic from a leader older than the vote this node holds.
    fn check_vote(&self, vote: &super::types::Vote) -> Result<(), String> {
        let mine = self.cluster.raft.metrics().borrow_watched().vote;
        if vote < &mine {
            return Err(format!("stale snapshot sender: vote {vote} < {mine}"));
        }
        Ok(())
    }

    /// Keeps a received snapshot as a file for the install.
    fn received(&self, data: &[u8]) -> Result<SnapshotFile, String> {
        let dir = SnapshotDir::new(self.cluster.config.root_dir.join("snapshots"))
            .map_err(|e| e.to_string())?;
        let path = dir.temp_path("received");
        let res =
            crate::fsutil::write_atomic(&path, data, 0o600).and_then(|_| SnapshotFile::open(&path));
        let _ = std::fs::remove_file(&path);
        res.map_err(|e| format!("storing a received snapshot: {e}"))
    }
}
