//! The client side of Raft traffic: openraft's network factory over the pooled cluster RPC.

use super::messages::{kind, SnapshotRequest};
use super::rpc::{RpcClient, RpcError};
use super::types::{from_bytes, to_bytes, Snapshot, TypeConfig, Vote};
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
use std::io::Cursor;
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

impl RaftNetworkV2<TypeConfig> for Peer {
    type SnapshotData = Cursor<Vec<u8>>;

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
        let req = SnapshotRequest {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot.into_inner(),
        };
        tracing::info!(
            target = self.target,
            bytes = req.data.len(),
            "raft snapshot sending"
        );
        // Snapshots can be large: allow much longer than a heartbeat-sized RPC.
        let timeout = option.hard_ttl().max(Duration::from_secs(60));
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            res = self.request(kind::SNAPSHOT, &req, timeout) => Ok(res?),
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
