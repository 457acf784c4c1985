//! Watches this node's Raft state: logs elections and leader changes (so `grep -i raft` finds
//! them), and enforces `checkQuorum` — a leader that has not heard from a quorum for an election
//! timeout steps down instead of serving a minority.

use super::types::{TypeConfig, Vote};
use super::Cluster;
use openraft::raft::VoteRequest;
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::{Instant as _, ServerState};
use std::sync::Arc;

pub async fn run(cluster: Arc<Cluster>, shutdown: tokio_util::sync::CancellationToken) {
    let mut last: Option<(ServerState, Option<u64>, u64)> = None;
    // When this node last became leader: a fresh leader has had no chance to hear from a quorum.
    let mut leading_since = std::time::Instant::now();
    let tick = cluster
        .config
        .heartbeat()
        .max(std::time::Duration::from_millis(10));
    let election = cluster.config.election_timeout();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.cancelled() => return,
        }
        let m = cluster.raft.metrics().borrow_watched().clone();
        let now = (m.state, m.current_leader, m.current_term);
        if last != Some(now) {
            if m.state == ServerState::Leader {
                leading_since = std::time::Instant::now();
            }
            tracing::info!(
                node_id = cluster.node_id,
                state = ?m.state,
                leader = ?m.current_leader,
                term = m.current_term,
                "raft state changed"
            );
            last = Some(now);
        }
        if !cluster.config.cluster.check_quorum || m.state != ServerState::Leader {
            continue;
        }
        let voters = m.membership_config.membership().voter_ids().count();
        if voters <= 1 || leading_since.elapsed() <= election {
            continue;
        }
        let stale = m
            .last_quorum_acked
            .as_ref()
            .is_none_or(|t| t.elapsed() > election);
        if stale {
            tracing::warn!(
                node_id = cluster.node_id,
                term = m.current_term,
                "raft leader has not heard from a quorum for an election timeout; stepping down (checkQuorum)"
            );
            step_down(&cluster, m.current_term).await;
        }
    }
}

/// Makes this leader give up: it grants a vote in the next term to node 0 (which does not
/// exist), so it stops leading without disturbing anyone; the majority elects as usual.
async fn step_down(cluster: &Cluster, term: u64) {
    // The request must not look behind our log or it is refused: claim our own last log id.
    let store = cluster.store.clone();
    let last = tokio::task::spawn_blocking(move || store.log_last()).await;
    let log_id = match last {
        Ok(Ok(Some((_, bytes)))) => match super::types::from_bytes::<super::types::Entry>(&bytes) {
            Ok(e) => Some(openraft::entry::RaftEntry::log_id(&e)),
            Err(_) => return,
        },
        _ => return,
    };
    let mut req = VoteRequest::<TypeConfig>::new(Vote::new(term + 1, 0), log_id);
    req.leadership_transfer = true;
    if let Err(e) = cluster.raft.vote(req).await {
        tracing::warn!(error = %e, "raft step-down failed");
    }
}
