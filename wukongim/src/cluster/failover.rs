//! Fast failover when the leader's process dies. Raft alone notices a dead leader only after an
//! election timeout of silence (plus the timer's spread). But when the process died and its host
//! is up — a crash, `kill -9`, the OOM killer, a restart — the kernel refuses connections to its
//! cluster port at once. So a voter that has not heard from its leader for 1.5 heartbeats
//! probes that port:
//!
//! - connection refused → the leader is gone. The surviving voter with the longest log (ties:
//!   lowest id; the voters answer a PING) campaigns at once, and a voter asked for its vote
//!   grants it past the dead leader's lease once it saw the same refusal itself.
//! - anything else (connected, timed out, unreachable: alive but slow, paused, or partitioned) →
//!   nothing changes; Raft's timers apply as before.
//!
//! Raft's safety does not depend on this: it only changes *when* an election starts and lets
//! the vote through the lease (which this server never uses for reads: reads use ReadIndex,
//! `reads.rs`). A leader that refuses connections cannot serve anything either. If the elected
//! campaign fails (e.g. a peer's log was ahead after all), the normal election timers take over.

use super::messages::{kind, PingResponse};
use super::types::{from_bytes, TypeConfig};
use super::Cluster;
use openraft::raft::VoteRequest;
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::ServerState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What this node knows of its leader's liveness.
pub struct Detector {
    epoch: Instant,
    /// When the last AppendEntries (or heartbeat) arrived, in ms since `epoch`.
    last_append_ms: AtomicU64,
    /// The leader last found refusing connections, and when.
    down: Mutex<Option<(u64, Instant)>>,
}

impl Default for Detector {
    fn default() -> Self {
        Detector {
            epoch: Instant::now(),
            last_append_ms: AtomicU64::new(0),
            down: Mutex::new(None),
        }
    }
}

impl Detector {
    /// Records that a leader's AppendEntries arrived (called by the RPC service).
    pub fn heard_from_leader(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_append_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn silence(&self) -> Duration {
        let last = Duration::from_millis(self.last_append_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    fn mark_down(&self, leader: u64) {
        *self.down.lock().unwrap_or_else(|p| p.into_inner()) = Some((leader, Instant::now()));
    }

    /// Whether `leader` was found refusing connections within `recent`.
    fn seen_down(&self, leader: u64, recent: Duration) -> bool {
        self.down
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|(l, at)| l == leader && at.elapsed() <= recent)
    }
}

/// Whether a TCP connection to `addr` is refused within `within` (the process behind the port
/// is gone while its host is up). Connected, timed out or unreachable: `false`.
pub(super) async fn refused(addr: &str, within: Duration) -> bool {
    match tokio::time::timeout(within, tokio::net::TcpStream::connect(addr)).await {
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

/// Whether the node with `mine = (last_log_index, id)` should campaign among the surviving
/// voters that answered, given as the same pairs: the longest log wins, ties go to the lowest id.
fn should_campaign(mine: (u64, u64), others: &[(u64, u64)]) -> bool {
    let key = |(index, id): (u64, u64)| (std::cmp::Reverse(index), id);
    others.iter().all(|o| key(mine) < key(*o))
}

/// The leader this node follows as a voter, if any.
fn followed_leader(cluster: &Cluster) -> Option<u64> {
    let rx = cluster.raft.metrics();
    let m = rx.borrow_watched();
    if m.state != ServerState::Follower {
        return None;
    }
    let leader = m.current_leader.filter(|l| *l != cluster.node_id)?;
    let voter = m
        .membership_config
        .membership()
        .voter_ids()
        .any(|v| v == cluster.node_id);
    voter.then_some(leader)
}

/// Watches for a dead leader until shutdown (see the module docs).
pub async fn run(cluster: Arc<Cluster>, shutdown: tokio_util::sync::CancellationToken) {
    let hb = cluster.config.heartbeat();
    let quiet = hb * 3 / 2;
    let tick = (hb / 4).max(Duration::from_millis(5));
    let mut probed: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.cancelled() => return,
        }
        let Some(leader) = followed_leader(&cluster) else {
            continue;
        };
        if cluster.failover.silence() < quiet || probed.is_some_and(|t| t.elapsed() < hb) {
            continue;
        }
        probed = Some(Instant::now());
        let Some(addr) = cluster.addr_of(leader) else {
            continue;
        };
        if !refused(&addr, hb).await {
            continue;
        }
        cluster.failover.mark_down(leader);
        let term = cluster.raft.metrics().borrow_watched().current_term;
        if !best_candidate(&cluster, leader, hb).await {
            tracing::info!(
                leader,
                term,
                "raft leader's cluster port refuses connections; a voter with a longer log \
                 campaigns"
            );
            continue;
        }
        // Still following the same dead leader (no one else won meanwhile)?
        if followed_leader(&cluster) != Some(leader) {
            continue;
        }
        tracing::warn!(
            leader,
            term,
            "raft leader's cluster port refuses connections (process gone); campaigning now \
             instead of waiting out the election timeout"
        );
        if let Err(e) = cluster.raft.trigger().elect(false).await {
            tracing::warn!(error = %e, "raft election trigger failed");
        }
    }
}

/// Asks the other surviving voters for their last log index (PING, bounded by `within`) and
/// decides whether this node is the one to campaign.
async fn best_candidate(cluster: &Cluster, dead: u64, within: Duration) -> bool {
    let (mine, voters) = {
        let rx = cluster.raft.metrics();
        let m = rx.borrow_watched();
        let voters: Vec<u64> = m
            .membership_config
            .membership()
            .voter_ids()
            .filter(|v| *v != dead && *v != cluster.node_id)
            .collect();
        (m.last_log_index.unwrap_or(0), voters)
    };
    let asks = voters.into_iter().filter_map(|id| {
        let addr = cluster.addr_of(id)?;
        Some(async move {
            let body = cluster
                .rpc
                .call_timeout(&addr, kind::PING, Vec::new().into(), within)
                .await
                .ok()?;
            let p = from_bytes::<PingResponse>(&body).ok()?;
            Some((p.last_log_index, id))
        })
    });
    let others: Vec<(u64, u64)> = futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    should_campaign((mine, cluster.node_id), &others)
}

/// Lets a vote request through the leader lease when this node's leader is gone: it was seen
/// refusing connections within an election timeout, or refuses them now. Called before the
/// request reaches Raft; Raft still checks the candidate's term and log.
pub async fn admit_vote(cluster: &Cluster, req: &mut VoteRequest<TypeConfig>) {
    if req.leadership_transfer {
        return;
    }
    let candidate = req.vote.leader_id().node_id;
    let Some(leader) = cluster
        .leader()
        .filter(|l| *l != candidate && *l != cluster.node_id)
    else {
        return;
    };
    let hb = cluster.config.heartbeat();
    let gone = cluster
        .failover
        .seen_down(leader, cluster.config.election_timeout())
        || match cluster.addr_of(leader) {
            // Bounded tighter than the watcher's probe: the vote waits for it.
            Some(addr) if cluster.failover.silence() >= hb => refused(&addr, hb / 2).await,
            _ => false,
        };
    if gone {
        cluster.failover.mark_down(leader);
        tracing::info!(
            leader,
            candidate,
            "raft vote request while the leader's cluster port refuses connections; \
             not holding the vote back for the dead leader's lease"
        );
        req.leadership_transfer = true;
    }
}

#[cfg(test)]
mod tests {
    use super::should_campaign;

    #[test]
    fn the_longest_log_campaigns_and_ties_go_to_the_lowest_id() {
        assert!(should_campaign((10, 2), &[(9, 1), (10, 3)]));
        assert!(!should_campaign((10, 2), &[(10, 1)]));
        assert!(!should_campaign((9, 1), &[(10, 2)]));
        assert!(should_campaign((10, 1), &[(10, 2)]));
        // Alone (the others did not answer): campaign.
        assert!(should_campaign((0, 5), &[]));
    }

    #[tokio::test]
    async fn only_a_refused_connection_counts_as_gone() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = l.local_addr().unwrap().to_string();
        assert!(!super::refused(&open, std::time::Duration::from_secs(1)).await);
        drop(l);
        assert!(super::refused(&open, std::time::Duration::from_secs(1)).await);
    }
}
