//! The Raft cluster: one openraft group holding all data. Writes from any node are batched,
//! proposed to the leader (forwarded over the cluster RPC when this node follows), committed,
//! and applied on every node, which delivers them to its own connected clients.

mod admin;
mod bootstrap;
pub mod catchup;
mod failover;
mod forward;
pub mod gauges;
mod handover;
mod health;
pub mod levels;
pub mod log_store;
pub mod messages;
mod network;
pub mod presence;
mod raft_config;
mod reads;
pub mod rpc;
mod service;
pub mod snapfile;
mod snapshot_pace;
mod snapshot_recv;
pub mod snapshots;
pub mod state_machine;
pub mod types;
mod writer;

pub use admin::NodeView;
pub use gauges::RaftGauges;
pub use network::PeerLatency;
pub use writer::{ProposeError, Proposer, WriteStats};

use crate::config::Config;
use crate::core::Hub;
use crate::store::Store;
use anyhow::{Context, Result};
use openraft::type_config::async_runtime::WatchReceiver;
use rpc::{RpcClient, RpcSettings};
use state_machine::{SnapshotStats, StateMachine};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use types::Raft;

/// This node's membership in the Raft group.
pub struct Cluster {
    pub node_id: u64,
    pub raft: Raft,
    pub rpc: RpcClient,
    pub store: Store,
    pub config: Config,
    /// Highest log index applied to the local state machine.
    pub applied: watch::Receiver<u64>,
    pub snapshots: Arc<SnapshotStats>,
    /// Where this node's snapshot files live.
    pub snapshot_dir: snapshots::SnapshotDir,
    /// Addresses of the initial members (for bootstrap and before membership is known).
    pub init_members: BTreeMap<u64, String>,
    /// Raft RPC latency per peer.
    pub peer_latency: network::PeerLatency,
    /// Held while a node without state decides how it joins (see `bootstrap.rs`).
    pub join_guard: bootstrap::JoinGuard,
    /// The command levels the peers' binaries answered (rolling upgrades, `levels.rs`).
    pub levels: levels::Levels,
    /// Shut until this node applied what the cluster had committed when it started.
    pub read_gate: catchup::ReadGate,
    /// When the leader was last heard from, and whether its process was found gone.
    pub failover: failover::Detector,
    /// The order of forwarded batches per proposer session (leader side), and the leaders
    /// that take no pipelined forwards (`forward.rs`).
    pub forward_order: forward::ForwardOrder,
}

impl Cluster {
    /// Creates the Raft instance over `store`, binds the cluster RPC on `serverAddr`, and starts
    /// bootstrap. Applied messages go to `hub` (and to the webhook `feed` when webhooks are on).
    pub async fn start(
        config: Config,
        store: Store,
        hub: Arc<Hub>,
        feed: Option<Arc<crate::webhook::Feed>>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<Arc<Cluster>> {
        let settings = Arc::new(
            RpcSettings::from_config(&config.cluster, writer::largest_command(&config))
                .context("cluster RPC settings")?,
        );
        let auth = &config.cluster.auth;
        let reload = rpc::Reloadable {
            tokens: auth
                .token_file
                .clone()
                .filter(|_| auth.enabled)
                .map(|p| (settings.ring.clone(), p)),
            tls: settings
                .tls
                .clone()
                .map(|live| (live, config.cluster.tls.clone())),
        };
        if reload.tokens.is_some() || reload.tls.is_some() {
            let every = Some(auth.token_rotation_interval.0).filter(|d| !d.is_zero());
            tokio::spawn(rpc::reload_secrets(reload, every, shutdown.clone()));
        }
        let rpc = RpcClient::new(settings.clone());
        let listen = cluster_listen(&config);
        let listener = TcpListener::bind(&listen).await.with_context(|| {
            format!("cannot listen on {listen} (config key `cluster.serverAddr`)")
        })?;
        let (applied_tx, applied_rx) = watch::channel(0u64);
        let sm = StateMachine::new(
            store.clone(),
            hub.clone(),
            feed,
            Arc::new(applied_tx),
            config.root_dir.join("snapshots"),
        )
        .context("creating the snapshot directory")?;
        let snapshots = sm.stats.clone();
        let snapshot_dir = sm.snapshots.clone();
        let raft_cfg = Arc::new(
            raft_config::raft_config(&config)
                .validate()
                .context("raft configuration")?,
        );
        let peer_latency = network::PeerLatency::default();
        let raft = Raft::new(
            config.cluster.node_id,
            raft_cfg,
            network::Network {
                rpc: rpc.clone(),
                latency: peer_latency.clone(),
            },
            log_store::LogStore::new(store.clone())
                .with_read_limit(config.cluster.max_size_per_msg.0 as usize),
            sm,
        )
        .await
        .context("starting raft")?;
        let init_members = config
            .init_members()
            .into_iter()
            .map(|n| (n.id, n.addr))
            .collect();
        let cluster = Arc::new(Cluster {
            node_id: config.cluster.node_id,
            raft,
            rpc,
            store,
            config,
            applied: applied_rx,
            snapshots,
            snapshot_dir,
            init_members,
            peer_latency,
            join_guard: bootstrap::JoinGuard::default(),
            levels: Default::default(),
            read_gate: Default::default(),
            failover: Default::default(),
            forward_order: Default::default(),
        });
        // Before the RPC server answers anyone: a node without state does not vote or accept
        // replication until bootstrap decided whether it forms the cluster or rejoins it.
        if !cluster.raft.is_initialized().await.unwrap_or(true) {
            cluster.join_guard.hold();
        }
        let handler = Arc::new(service::Service {
            cluster: cluster.clone(),
            incoming: snapshot_recv::Receiver::new(cluster.snapshot_dir.clone()),
            hub,
        });
        tokio::spawn(rpc::serve(listener, settings, handler, shutdown.clone()));
        tokio::spawn(bootstrap::run(cluster.clone(), shutdown.clone()));
        tokio::spawn(health::run(cluster.clone(), shutdown.clone()));
        tokio::spawn(catchup::run(cluster.clone(), shutdown.clone()));
        tokio::spawn(failover::run(cluster.clone(), shutdown.clone()));
        levels::spawn_refresh(cluster.clone(), shutdown.clone());
        tokio::spawn(snapshot_pace::run(cluster.clone(), shutdown.clone()));
        tokio::spawn(log_size_guard(cluster.clone(), shutdown));
        tracing::info!(node_id = cluster.node_id, addr = %listen, "raft node started");
        Ok(cluster)
    }

    /// The membership in force (as this node's Raft reports it).
    fn membership(&self) -> std::sync::Arc<types::StoredMembership> {
        self.raft
            .metrics()
            .borrow_watched()
            .membership_config
            .clone()
    }

    /// Address of a member: from the current membership, else from `initNodes`.
    pub fn addr_of(&self, id: u64) -> Option<String> {
        self.membership()
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
            .or_else(|| self.init_members.get(&id).cloned())
    }

    /// The other members of the current membership (voters and learners): id and address.
    pub fn peers(&self) -> Vec<(u64, String)> {
        self.membership()
            .membership()
            .nodes()
            .filter(|(id, _)| **id != self.node_id)
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect()
    }

    /// The current leader, if known.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow_watched().current_leader
    }

    /// Waits until the local state machine applied `index` (bounded).
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        let mut rx = self.applied.clone();
        tokio::time::timeout(timeout, rx.wait_for(|a| *a >= index))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The leader's commit index (asked over RPC when this node follows).
    pub async fn leader_commit_index(&self) -> Option<u64> {
        let leader = self.leader()?;
        if leader == self.node_id {
            return self
                .raft
                .metrics()
                .borrow_watched()
                .cluster_committed
                .as_ref()
                .map(|l| l.index);
        }
        let addr = self.addr_of(leader)?;
        let body = self
            .rpc
            .call_timeout(
                &addr,
                messages::kind::PING,
                Vec::new().into(),
                self.config.cluster.request_timeout.0,
            )
            .await
            .ok()?;
        types::from_bytes::<messages::PingResponse>(&body)
            .ok()
            .map(|p| p.committed)
    }

    /// Stops Raft (used on shutdown).
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

/// Where the cluster RPC listens: `serverAddr` (binding all interfaces when it names a host that
/// is not local is left to the operator's `serverAddr`).
fn cluster_listen(c: &Config) -> String {
    c.cluster.server_addr.clone()
}

/// Takes a snapshot (and so purges the log) when the log outgrows `maxLogSize`.
async fn log_size_guard(cluster: Arc<Cluster>, shutdown: tokio_util::sync::CancellationToken) {
    let limit = cluster.config.cluster.max_log_size.0;
    let mut first = true;
    loop {
        if !std::mem::take(&mut first) {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
        let Ok((_, bytes)) = cluster.store.log_stats() else {
            continue;
        };
        if bytes > limit {
            tracing::info!(
                bytes,
                limit,
                "raft log larger than maxLogSize, taking a snapshot"
            );
            let _ = cluster.raft.trigger().snapshot().await;
        }
    }
}
