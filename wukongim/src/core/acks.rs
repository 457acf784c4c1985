//! RECVACKs across nodes. Every node applies every message and keeps it pending for its
//! recipients (`hub.rs`), so an acknowledgement must reach every node, or a device that
//! reconnects to another node is sent again what it already acknowledged.
//!
//! Design: the acknowledgement goes through the replicated write path, not a broadcast RPC.
//! The node that got the RECVACK drops the message from its own pending list at once and, when
//! it was pending there, queues `(uid, message_id)` here; one task gathers what queues up for
//! [`LINGER`] after the first one and proposes it as one [`Command::Recvacks`] at a time, and
//! each node's apply drops them from its hub (`core/devices.rs`). The linger keeps the relay
//! from competing with the sends: one group message to 1,000 online members brings 1,000
//! RECVACKs within a few tens of ms, which without it could go out as several log entries per
//! node per message, each a Raft round (append, fsync, replicate, apply) beside the sends
//! (bench/RESULTS.md, "fan-out A/B: RECVACK relay lingers 200 ms"). Being in the log
//! after the message it acknowledges, an acknowledgement can never reach a node before that
//! message does — an RPC could, and would then be lost. Best effort: when the queue is full or
//! the proposal fails the acknowledgement stays local (a duplicate RECV later, which clients
//! drop by message id), never a lost message. A node alone in the membership relays nothing
//! (no other node holds the message; one Raft write per batch of acknowledgements saved).
//!
//! Go has no per-user redelivery across reconnects (its retry queue is per connection and stops
//! when the connection goes; clients catch up with `/conversation/sync`), so there a device
//! reconnecting anywhere is never sent an acknowledged message either; this keeps that true for
//! our redelivery.

use crate::cluster::{Cluster, Proposer};
use crate::store::{Command, UidAcks};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Acknowledgements waiting to be proposed, at most.
const QUEUE: usize = 16_384;
/// Acknowledgements in one proposed command, at most.
const MAX_PER_COMMAND: usize = 4_096;
/// How long acknowledgements are gathered after the first before they are proposed: at most
/// one relay entry per node per linger (a device reconnecting to another node within it may be
/// sent an acknowledged message again, which clients drop by message id).
const LINGER: Duration = Duration::from_millis(200);

/// Where sessions hand acknowledgements to be replicated.
#[derive(Clone)]
pub struct AckRelay {
    tx: mpsc::Sender<(String, i64)>,
}

impl AckRelay {
    /// Starts the task proposing queued acknowledgements through `proposer` until `stop`.
    pub fn start(proposer: Proposer, cluster: Arc<Cluster>, stop: CancellationToken) -> AckRelay {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(rx, proposer, cluster, stop));
        AckRelay { tx }
    }

    /// Queues `uid`'s acknowledgement of `message_id` for every node.
    pub fn relay(&self, uid: &str, message_id: i64) {
        if self.tx.try_send((uid.to_string(), message_id)).is_err() {
            tracing::debug!(%uid, message_id, "RECVACK relay queue full: acknowledged on this node only");
        }
    }
}

/// Whether relaying to the other nodes applies: the membership holds another node, and every
/// member's binary can apply the relayed commands (not so during a rolling upgrade from an
/// older release: `cluster/levels.rs`).
pub(crate) fn relays(cluster: &Cluster) -> bool {
    !cluster.peers().is_empty() && cluster.levels.cluster_at(cluster, 2)
}

async fn run(
    mut rx: mpsc::Receiver<(String, i64)>,
    proposer: Proposer,
    cluster: Arc<Cluster>,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => return,
            a = rx.recv() => match a {
                Some(a) => a,
                None => return,
            },
        };
        let mut by_uid: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let mut n = 1;
        by_uid.entry(first.0).or_default().push(first.1);
        let linger = tokio::time::sleep(LINGER);
        tokio::pin!(linger);
        while n < MAX_PER_COMMAND {
            let (uid, id) = tokio::select! {
                // Shutting down: what was gathered still goes out (a rolling restart moves
                // its devices to other nodes, which would otherwise send them again).
                _ = stop.cancelled() => break,
                _ = &mut linger => break,
                a = rx.recv() => match a {
                    Some(a) => a,
                    None => break,
                },
            };
            by_uid.entry(uid).or_default().push(id);
            n += 1;
        }
        if !relays(&cluster) {
            continue;
        }
        let acks = by_uid
            .into_iter()
            .map(|(uid, message_ids)| UidAcks { uid, message_ids })
            .collect();
        if let Err(e) = proposer.propose(Command::Recvacks { acks }).await {
            tracing::warn!(error = %e, count = n, "relaying RECVACKs to the other nodes failed: they may send those messages again on reconnect");
        }
    }
}
