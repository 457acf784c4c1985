//! Read semantics. Reads are served from the local store: on a follower they may lag the leader
//! by what it has not applied yet (`/cluster/raft/status` shows `read_lag_entries`). A
//! linearizable read first learns the leader's read index — the leader confirms it still leads
//! (openraft's `ensure_linearizable`, a quorum round) — and then waits until this node applied
//! that index, so it sees every write acknowledged before it started.

use super::messages::{AdminError, AdminRequest};
use super::Cluster;
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::ReadPolicy;
use std::time::Duration;

impl Cluster {
    /// The index a linearizable read must wait for, asked here when this node leads.
    pub(super) async fn read_index_as_leader(&self) -> Result<u64, AdminError> {
        self.raft
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .map(|r| r.log_id().index)
            .map_err(|e| AdminError::Unavailable(format!("linearizable read: {e}")))
    }

    /// Waits until this node may serve a linearizable read (bounded by `requestTimeout`).
    pub async fn read_barrier(&self) -> Result<(), AdminError> {
        let timeout = self.config.cluster.request_timeout.0;
        let index = tokio::time::timeout(timeout, async {
            if self.raft.is_leader() {
                return self.read_index_as_leader().await;
            }
            let text = self.admin(AdminRequest::ReadIndex).await?;
            serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["index"].as_u64())
                .ok_or_else(|| AdminError::BadReply(format!("read index answer: {text}")))
        })
        .await
        .map_err(|_| {
            AdminError::Unavailable("no read index within the request timeout".into())
        })??;
        if self
            .wait_applied(index, timeout.max(Duration::from_millis(100)))
            .await
        {
            Ok(())
        } else {
            Err(AdminError::Unavailable(format!(
                "this node did not apply index {index} within the request timeout"
            )))
        }
    }

    /// How many committed entries this node has not applied yet (what a local read may miss of
    /// what it already knows to be committed).
    pub fn read_lag_entries(&self) -> u64 {
        let m = self.raft.metrics().borrow_watched().clone();
        let committed = m.cluster_committed.as_ref().map(|l| l.index).unwrap_or(0);
        let applied = m.last_applied.as_ref().map(|l| l.index).unwrap_or(0);
        committed.saturating_sub(applied)
    }
}
