//! The shared state of a running node (`Arc<App>`): configuration, storage, write path, hub and
//! traffic counters. Handlers of every listener receive it.

use crate::config::Config;
use crate::core::Core;
use crate::gateway::Traffic;
use crate::metrics::NodeMetrics;
use crate::store::Store;
use std::time::Instant;

/// One running node.
pub struct App {
    pub config: Config,
    pub node_id: u64,
    pub store: Store,
    pub core: Core,
    /// The manager token in force (re-read from `managerTokenFile` on SIGHUP).
    pub manager_token: std::sync::Arc<crate::manager_token::ManagerToken>,
    pub traffic: Traffic,
    pub metrics: NodeMetrics,
    pub started: Instant,
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Set when the node starts draining: SENDs that can no longer be stored go unanswered
    /// (the client resends them after reconnecting) instead of failing.
    pub draining: std::sync::atomic::AtomicBool,
    /// `cluster.maxMemoryUsage` back-pressure on new sends.
    pub memory: std::sync::Arc<crate::memguard::MemoryGuard>,
}
