//! The shared state of a running node (`Arc<App>`): configuration, storage, write path, hub and
//! traffic counters. Handlers of every listener receive it.

use crate::config::Config;
use crate::core::Core;
use crate::store::Store;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

/// Traffic counters shared by the gateways, /varz and /metrics.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Packets received / sent, indexed by packet type.
    pub packets_in: [AtomicU64; 16],
    pub packets_out: [AtomicU64; 16],
    /// SEND received → SENDACK written.
    pub send_ack: crate::metrics::Histogram,
    pub in_msgs: AtomicU64,
    pub out_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
    pub out_bytes: AtomicU64,
    pub connects: AtomicU64,
}

/// One running node.
pub struct App {
    pub config: Config,
    pub node_id: u64,
    pub store: Store,
    pub core: Core,
    pub manager_token: Option<String>,
    pub traffic: Traffic,
    pub started: Instant,
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Set when the node starts draining: SENDs that can no longer be stored go unanswered
    /// (the client resends them after reconnecting) instead of failing.
    pub draining: std::sync::atomic::AtomicBool,
}
