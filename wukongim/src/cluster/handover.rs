//! Leadership hand-over on a planned stop: a leader that is shutting down transfers leadership
//! to the most up-to-date voter whose process is up and waits (bounded by two election
//! timeouts) until another node leads, so a planned stop costs no election timeout.
//!
//! Voters whose cluster port refuses connections (the process is gone, as in
//! [`super::failover`]) are skipped, before the transfer and while waiting for it: when the whole
//! cluster is stopped at once, the leader finds no one to hand over to and stops at once instead
//! of waiting out the bound (20 s with the default 1 s heartbeat).

use super::failover::refused;
use super::Cluster;
use openraft::type_config::async_runtime::WatchReceiver;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

impl Cluster {
    /// If this node leads, hands leadership over (see the module doc); returns when another
    /// node leads, when no other voter is up, or at the bound.
    pub async fn hand_over_leadership(&self) {
        let m = self.raft.metrics().borrow_watched().clone();
        if m.current_leader != Some(self.node_id) {
            return;
        }
        let matched = |id: &u64| {
            m.replication
                .as_ref()
                .and_then(|r| r.get(id).cloned().flatten())
                .map(|l| l.index)
                .unwrap_or(0)
        };
        let mut voters: Vec<u64> = m
            .membership_config
            .membership()
            .voter_ids()
            .filter(|v| *v != self.node_id)
            .collect();
        // Most up-to-date first (ties: lowest id).
        voters.sort_by_key(|id| (std::cmp::Reverse(matched(id)), *id));
        if voters.is_empty() {
            return; // a cluster of one: nobody to hand over to
        }
        let mut candidates: VecDeque<u64> = voters.into();
        let step = (self.config.heartbeat() / 2)
            .clamp(Duration::from_millis(20), Duration::from_millis(250));
        let deadline = Instant::now() + self.config.election_timeout() * 2;
        let mut target: Option<u64> = None;
        loop {
            if let Some(l) = self.leader().filter(|l| *l != self.node_id) {
                tracing::info!(leader = l, "raft leadership handed over");
                return;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    to = ?target,
                    "raft leadership transfer did not complete before shutdown"
                );
                return;
            }
            let gone = match target {
                Some(t) => self.port_refuses(t, step).await,
                None => true,
            };
            if gone {
                if let Some(t) = target {
                    tracing::info!(
                        to = t,
                        "raft hand-over target stopped; trying another voter"
                    );
                }
                target = None;
                while let Some(id) = candidates.pop_front() {
                    if !self.port_refuses(id, step).await {
                        target = Some(id);
                        break;
                    }
                }
                let Some(t) = target else {
                    tracing::info!(
                        "raft leader shutting down with no other voter up: stopping without a hand-over"
                    );
                    return;
                };
                tracing::info!(
                    from = self.node_id,
                    to = t,
                    "raft leader shutting down, transferring leadership"
                );
                if self.raft.trigger().transfer_leader(t).await.is_err() {
                    return;
                }
            }
            tokio::time::sleep(step).await;
        }
    }

    /// Whether voter `id`'s cluster port refuses connections (or it has no address).
    async fn port_refuses(&self, id: u64, within: Duration) -> bool {
        match self.addr_of(id) {
            Some(addr) => refused(&addr, within).await,
            None => true,
        }
    }
}
