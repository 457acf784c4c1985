//! Raft figures as gauges (role, term, leader, indexes, replication lag), refreshed from
//! openraft's metrics at each scrape.

use super::types::{LogId, Raft};
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::ServerState;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The `wukongim_raft_*` gauges.
#[derive(Debug, Default)]
pub struct RaftGauges {
    state: Gauge,
    term: Gauge,
    leader_id: Gauge,
    commit_index: Gauge,
    applied_index: Gauge,
    last_log_index: Gauge,
    lag: Family<[(&'static str, u64); 1], Gauge>,
}

impl RaftGauges {
    pub fn register(&self, r: &mut Registry) {
        let gauges = [
            (
                "wukongim_raft_state",
                "Raft role: 0 follower, 1 candidate, 2 leader, 3 learner, 4 shutdown.",
                &self.state,
            ),
            ("wukongim_raft_term", "Current Raft term.", &self.term),
            (
                "wukongim_raft_leader_id",
                "Node id of the known leader (0 = none).",
                &self.leader_id,
            ),
            (
                "wukongim_raft_commit_index",
                "Highest log index known committed.",
                &self.commit_index,
            ),
            (
                "wukongim_raft_applied_index",
                "Highest log index applied locally.",
                &self.applied_index,
            ),
            (
                "wukongim_raft_last_log_index",
                "Highest log index stored locally.",
                &self.last_log_index,
            ),
        ];
        for (name, help, g) in gauges {
            r.register(name, help, g.clone());
        }
        r.register(
            "wukongim_raft_replication_lag_entries",
            "Entries a follower is behind the leader's log (leader only).",
            self.lag.clone(),
        );
    }

    /// Reads `raft`'s current metrics into the gauges.
    pub fn update(&self, raft: &Raft, node_id: u64) {
        let m = raft.metrics().borrow_watched().clone();
        let state = match m.state {
            ServerState::Follower => 0,
            ServerState::Candidate => 1,
            ServerState::Leader => 2,
            ServerState::Learner => 3,
            ServerState::Shutdown => 4,
        };
        let idx = |l: &Option<LogId>| l.as_ref().map(|l| l.index).unwrap_or(0) as i64;
        self.state.set(state);
        self.term.set(m.current_term as i64);
        self.leader_id.set(m.current_leader.unwrap_or(0) as i64);
        self.commit_index.set(idx(&m.cluster_committed));
        self.applied_index.set(idx(&m.last_applied));
        let last = m.last_log_index.unwrap_or(0);
        self.last_log_index.set(last as i64);
        // Followers and removed peers have no row.
        self.lag.clear();
        for (peer, matched) in m.replication.iter().flatten() {
            if *peer != node_id {
                let matched = matched.as_ref().map(|l| l.index).unwrap_or(0);
                self.lag
                    .get_or_create(&[("peer", *peer)])
                    .set(last.saturating_sub(matched) as i64);
            }
        }
    }
}
