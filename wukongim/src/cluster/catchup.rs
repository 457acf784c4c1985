//! The start-up read gate. The state machine commits its applies without an fsync of its own —
//! the Raft log is the one fsync per batch (`store/raft.rs`) — so after a crash a node's state
//! can be behind what it acknowledged: those entries are in its durable log, and openraft
//! re-applies them once the commit index is known again. Until this node has applied
//! everything the cluster had committed when it came up (a read index from the leader, the
//! same barrier a linearizable read uses), it serves no reads: `/health` answers 500, the API
//! and client CONNECTs wait for the gate (bounded) and are refused if it stays shut.

use super::Cluster;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Open once the node caught up after start.
pub struct ReadGate {
    open: watch::Sender<bool>,
}

impl Default for ReadGate {
    fn default() -> Self {
        ReadGate {
            open: watch::channel(false).0,
        }
    }
}

impl ReadGate {
    pub fn is_open(&self) -> bool {
        *self.open.borrow()
    }

    /// Waits (at most `timeout`) for the gate; whether it is open.
    pub async fn wait(&self, timeout: Duration) -> bool {
        let mut rx = self.open.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|o| *o))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn set_open(&self) {
        self.open.send_replace(true);
    }
}

/// Retries the read barrier until it passes, then opens the gate (once per process).
pub async fn run(cluster: Arc<Cluster>, stop: tokio_util::sync::CancellationToken) {
    let started = std::time::Instant::now();
    loop {
        if cluster.leader().is_some() && cluster.read_barrier().await.is_ok() {
            cluster.read_gate.set_open();
            tracing::info!(
                applied = *cluster.applied.borrow(),
                took_ms = started.elapsed().as_millis() as u64,
                "caught up with the cluster's commit index: serving reads"
            );
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.cancelled() => return,
        }
    }
}
