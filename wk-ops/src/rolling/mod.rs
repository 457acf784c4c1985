//! Leader-aware rolling restart: one node at a time, followers first and the leader last, each
//! back and caught up before the next is touched. `upgrade` swaps binaries and then rolls
//! through the same [`roll`].
//!
//! Per node: every other voter is healthy and has applied the leader's commit index (the node
//! itself may be down: restarting it is the repair); if the node leads, leadership goes to the
//! most caught-up follower first; the inventory's restart command runs on the node's host; then
//! the node must answer /health, be a voter again and have applied the leader's commit index
//! as it was at restart time. Any failed check stops the roll, records where in the resume file
//! and leaves the rest of the cluster serving.

pub mod fleet;
pub mod plan;
pub mod progress;
pub mod state;

use crate::remote::RemoteError;
use fleet::Fleet;
use progress::Progress;
use state::{RollState, StateError, Stopped};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long each phase may take.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Until the cluster is healthy and caught up before a node, and until the node is back.
    pub wait: Duration,
    /// The restart command itself.
    pub command: Duration,
    /// Between two polls.
    pub poll: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            wait: Duration::from_secs(120),
            command: Duration::from_secs(120),
            poll: Duration::from_millis(200),
        }
    }
}

/// Why a roll stopped.
#[derive(Debug, thiserror::Error)]
pub enum RollError {
    #[error("before node {node}: the cluster is not ready: {reason}")]
    NotReady { node: u64, reason: String },
    #[error("node {node} leads and leadership could not be moved: {reason}")]
    Transfer { node: u64, reason: String },
    #[error("node {node}: the restart command failed: {source}")]
    Restart {
        node: u64,
        #[source]
        source: RemoteError,
    },
    #[error("node {node} did not come back: {reason}")]
    NotBack { node: u64, reason: String },
    #[error(transparent)]
    State(#[from] StateError),
}

impl RollError {
    /// The node the roll stopped at.
    pub fn node(&self) -> Option<u64> {
        match self {
            RollError::NotReady { node, .. }
            | RollError::Transfer { node, .. }
            | RollError::Restart { node, .. }
            | RollError::NotBack { node, .. } => Some(*node),
            RollError::State(_) => None,
        }
    }
}

/// Restarts every node of `state.nodes` not yet in `state.done`, saving `state` to
/// `state_file` after each node. The order is re-planned before every node (followers first,
/// the current leader last), so a leadership change mid-roll still leaves the leader for last.
pub async fn roll(
    fleet: &Fleet,
    state: &mut RollState,
    state_file: &Path,
    timing: Timing,
    progress: &Progress,
) -> Result<(), RollError> {
    loop {
        let remaining: Vec<u64> = state.remaining();
        if remaining.is_empty() {
            return Ok(());
        }
        let leader = fleet.leader().await.ok();
        let next = plan::order(&remaining, leader)[0];
        let started = Instant::now();
        match restart_one(fleet, next, timing, progress).await {
            Ok(applied) => {
                state.done.push(next);
                state.stopped = None;
                state::save(state_file, state)?;
                progress.node_done(
                    next,
                    &format!(
                        "back, healthy and caught up (applied {applied}) in {:.1}s",
                        started.elapsed().as_secs_f64()
                    ),
                );
            }
            Err(e) => {
                state.stopped = Some(Stopped {
                    node: next,
                    reason: e.to_string(),
                });
                state::save(state_file, state)?;
                return Err(e);
            }
        }
    }
}

/// One node: ready check, leadership away, restart, back and caught up. Returns the node's
/// applied index when it was found caught up.
async fn restart_one(
    fleet: &Fleet,
    id: u64,
    timing: Timing,
    progress: &Progress,
) -> Result<u64, RollError> {
    progress.step(
        id,
        "waiting until the other voters are healthy and caught up",
    );
    let view = fleet
        .wait_ready(id, timing.wait, timing.poll)
        .await
        .map_err(|reason| RollError::NotReady { node: id, reason })?;
    if view.leader == id {
        let target = view.successor(id).ok_or_else(|| RollError::Transfer {
            node: id,
            reason: "no other voter can take over".into(),
        })?;
        progress.step(id, &format!("leads: moving leadership to node {target}"));
        fleet
            .transfer(id, target, timing.wait, timing.poll)
            .await
            .map_err(|reason| RollError::Transfer { node: id, reason })?;
        progress.line(&format!("node {id}: leadership moved to node {target}"));
    }
    // Immediately before the restart: the commit index to reach, and the node must not lead.
    let view = fleet
        .wait_ready(id, timing.wait, timing.poll)
        .await
        .map_err(|reason| RollError::NotReady { node: id, reason })?;
    if view.leader == id {
        return Err(RollError::Transfer {
            node: id,
            reason: "it became leader again before its restart".into(),
        });
    }
    let target_index = view.commit_index;
    progress.step(id, "restarting");
    tracing::info!(
        node_id = id,
        leader = view.leader,
        commit_index = target_index,
        "restarting node"
    );
    fleet
        .restart(id, timing.command)
        .await
        .map_err(|source| RollError::Restart { node: id, source })?;
    progress.step(
        id,
        &format!("waiting for /health, membership and applied index ≥ {target_index}"),
    );
    fleet
        .wait_back(id, target_index, timing.wait, timing.poll)
        .await
        .map_err(|reason| RollError::NotBack { node: id, reason })
}
