//! The node's IM side that is not Raft: the connection [`Hub`] (delivery of applied messages to
//! this node's clients) and [`Core`], the one handle gateway and API hold. No write logic lives
//! here: the write path is `cluster/writer.rs` (queue → batch → propose → commit) and
//! `cluster/state_machine.rs` + `store/apply.rs` (apply → deliver through the hub).

pub mod acks;
pub mod devices;
pub mod hub;

pub use crate::cluster::ProposeError;
pub use hub::{ConnInfo, Hub, Outbound};

use crate::cluster::{Cluster, Proposer};
use crate::store::{Command, Outcome};
use std::sync::Arc;
use tokio::sync::oneshot;

/// What gateway and API hold: this node's hub, cluster and write queue.
#[derive(Clone)]
pub struct Core {
    pub hub: Arc<Hub>,
    pub cluster: Arc<Cluster>,
    pub proposer: Proposer,
    /// RECVACKs on their way to the other nodes (`acks.rs`).
    pub acks: acks::AckRelay,
}

impl Core {
    /// A client of `uid` acknowledged `message_id` here: no node redelivers it any more.
    /// Returns the messages this node stopped keeping for it.
    pub fn recvack(
        &self,
        uid: &str,
        message_id: i64,
    ) -> Vec<std::sync::Arc<crate::store::Message>> {
        let acked = self.hub.ack(uid, message_id);
        if !acked.is_empty() {
            self.acks.relay(uid, message_id);
        }
        acked
    }

    /// Proposes `cmd` and waits until it is committed and applied on this node.
    pub async fn propose(&self, cmd: Command) -> Result<Outcome, ProposeError> {
        self.proposer.propose(cmd).await
    }

    /// Queues `cmd` in order; the receiver yields its outcome.
    pub async fn submit(
        &self,
        cmd: Command,
    ) -> Result<oneshot::Receiver<Result<Outcome, ProposeError>>, ProposeError> {
        self.proposer.submit(cmd).await
    }
}

/// Polls `done` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub async fn wait_until(timeout: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Current unix time in seconds, as WuKongIM stamps messages.
pub fn now_secs() -> i32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i32)
        .unwrap_or(0)
}

/// Current unix time in milliseconds.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
