//! The client side of Raft traffic: openraft's network factory over the pooled cluster RPC.

use super::messages::{kind, ChunkAck, SnapshotChunk, SnapshotInstall};
use super::rpc::{RpcClient, RpcError, SNAPSHOT_CHUNK};
use super::snapfile::SnapshotFile;
use super::types::{from_bytes, to_bytes, Snapshot, SnapshotMeta, TypeConfig, Vote};
use openraft::errors::{
    NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::time::Duration;

/// Raft RPC latency histograms by peer id.
#[derive(Debug, Clone)]
pub struct PeerLatency(ByPeer);

type ByPeer = Family<[(&'static str, u64); 1], Histogram, fn() -> Histogram>;

impl Default for PeerLatency {
    fn default() -> Self {
        PeerLatency(Family::new_with_constructor(
            crate::metrics::latency_histogram,
        ))
    }
}

impl PeerLatency {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "wukongim_raft_rpc_duration_seconds",
            "Cluster RPC latency by peer.",
            self.0.clone(),
        );
    }

    fn of(&self, peer: u64) -> Histogram {
        self.0.get_or_create(&[("peer", peer)]).clone()
    }
}

/// Creates per-peer clients sharing one connection pool.
#[derive(Clone)]
pub struct Network {
    pub rpc: RpcClient,
    pub latency: PeerLatency,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer {
        let latency = self.latency.of(target);
        Peer {
            rpc: self.rpc.clone(),
            addr: node.addr.clone(),
            target,
            latency,
        }
    }
}

/// Raft RPCs to one peer.
pub struct Peer {
    rpc: RpcClient,
    addr: String,
    target: u64,
    latency: Histogram,
}

fn to_rpc_error(e: RpcError) -> RPCError<TypeConfig> {
    match e {
        RpcError::Dial { .. } | RpcError::Closed | RpcError::Timeout => {
            RPCError::Unreachable(Unreachable::new(&e))
        }
        other => RPCError::Network(NetworkError::new(&other)),
    }
}

impl Peer {
    async fn request<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        k: u8,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let started = std::time::Instant::now();
        let body = self
            .rpc
            .call_timeout(&self.addr, k, to_bytes(req).into(), timeout)
            .await
            .map_err(to_rpc_error)?;
        self.latency.observe(started.elapsed().as_secs_f64());
        let res: Result<Resp, RaftError<TypeConfig>> =
            from_bytes(&body).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        res.map_err(|e| {
            tracing::debug!(target = self.target, error = %e, "raft rpc refused by peer");
            RPCError::Unreachable(Unreachable::new(&e))
        })
    }
}

impl Peer {
    /// Streams a snapshot file in chunks, one in flight (back-pressure: the next is read only
    /// when the follower stored the last), resuming at whatever the follower already holds of
    /// the same file, then asks it to install.
    async fn stream_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let file = snapshot.snapshot;
        let total = file.len;
        let net = |e: &dyn std::fmt::Display| {
            StreamingError::Network(NetworkError::new(&std::io::Error::other(e.to_string())))
        };
        let transfer = transfer_id(&snapshot.meta, &file).map_err(|e| net(&e))?;
        let chunk = SNAPSHOT_CHUNK
            .min(self.rpc.settings().max_frame.saturating_sub(4096))
            .max(4096) as u64;
        let timeout = option.hard_ttl().max(Duration::from_secs(10));
        let started = std::time::Instant::now();
        let mut req = SnapshotChunk {
            vote,
            transfer: transfer.clone(),
            total,
            offset: 0,
            data: Vec::new(),
        };
        let mut held = self.send_chunk(&req, timeout).await?;
        if held > 0 {
            tracing::info!(
                target = self.target,
                held,
                total,
                "raft snapshot transfer resumes"
            );
        } else {
            tracing::info!(target = self.target, bytes = total, "raft snapshot sending");
        }
        let mut stalls = 0;
        while held < total {
            let n = chunk.min(total - held) as usize;
            let f = file.file.clone();
            req.offset = held;
            req.data = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; n];
                std::os::unix::fs::FileExt::read_exact_at(&*f, &mut buf, held).map(|_| buf)
            })
            .await
            .map_err(|e| net(&e))?
            .map_err(|e| net(&e))?;
            let now = self.send_chunk(&req, timeout).await?;
            if now <= held || now > total {
                stalls += 1;
                if stalls > 3 {
                    let e = std::io::Error::other(format!(
                        "follower holds {now} of {total} bytes after a chunk at {held}"
                    ));
                    return Err(net(&e));
                }
            } else {
                stalls = 0;
            }
            held = now.min(total);
        }
        let install = SnapshotInstall {
            vote,
            transfer,
            meta: snapshot.meta,
        };
        // Installing streams the whole state into the follower's store: allow for its size.
        let res = self
            .request(kind::SNAPSHOT_INSTALL, &install, Duration::from_secs(3600))
            .await?;
        tracing::info!(
            target = self.target,
            bytes = total,
            ms = started.elapsed().as_millis() as u64,
            "raft snapshot sent and installed"
        );
        Ok(res)
    }

    async fn send_chunk(
        &self,
        req: &SnapshotChunk,
        timeout: Duration,
    ) -> Result<u64, StreamingError<TypeConfig>> {
        let ack: ChunkAck = self.request(kind::SNAPSHOT_CHUNK, req, timeout).await?;
        Ok(ack.held)
    }
}

/// Names a snapshot file by its content: Raft position, size and checksum (the last 32 bytes),
/// so a retry of the same file resumes and a different file starts over.
fn transfer_id(meta: &SnapshotMeta, file: &SnapshotFile) -> std::io::Result<String> {
    let mut sum = [0u8; 32];
    if file.len >= 32 {
        std::os::unix::fs::FileExt::read_exact_at(&*file.file, &mut sum, file.len - 32)?;
    }
    let (index, term) = meta
        .last_log_id
        .as_ref()
        .map(|l| (l.index, l.leader_id.term))
        .unwrap_or((0, 0));
    Ok(format!(
        "{index}-{term}-{}-{}",
        file.len,
        crate::store::hex(&sum[..8])
    ))
}

impl RaftNetworkV2<TypeConfig> for Peer {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.request(kind::APPEND, &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.request(kind::VOTE, &rpc, option.hard_ttl()).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.request(kind::PRE_VOTE, &rpc, option.hard_ttl()).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            res = self.stream_snapshot(vote, snapshot, option) => res,
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.request(kind::TRANSFER_LEADER, &req, option.hard_ttl())
            .await
    }
}
