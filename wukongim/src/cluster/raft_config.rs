//! Maps the guide's `cluster.*` knobs onto openraft's engine configuration.

use crate::config::Config;
use openraft::SnapshotPolicy;

/// openraft configuration derived from the node configuration.
pub fn raft_config(c: &Config) -> openraft::Config {
    let cl = &c.cluster;
    let heartbeat = c.heartbeat().as_millis().max(1) as u64;
    let election = c.election_timeout().as_millis().max(2) as u64;
    let (election_timeout_min, election_timeout_max) = election_timers(heartbeat, election);
    openraft::Config {
        cluster_name: "wukongim".into(),
        heartbeat_interval: heartbeat,
        election_timeout_min,
        election_timeout_max,
        install_snapshot_timeout: (election * 4).max(5_000),
        // Entries per AppendEntries RPC (each entry is a whole batch of commands).
        max_payload_entries: cl.max_inflight_msgs.max(1) as u64,
        replication_lag_threshold: cl.log_compact_threshold.max(1),
        // `snapshotEntries` is applied by `snapshot_pace.rs`, which also paces builds by their cost.
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: cl.compaction_overhead,
        // Purge in batches, but never wait for more entries than a snapshot interval holds.
        purge_batch_size: (cl.snapshot_entries / 2).clamp(1, 256),
        enable_pre_vote: Some(cl.pre_vote),
        // A member whose log went back (data directory lost) is never silently reset: it
        // rejoins as a learner first (see `bootstrap.rs`), and the leader allows the reset for
        // that node alone.
        allow_log_reversion: Some(false),
        ..Default::default()
    }
}

/// openraft's election timer bounds `(min, max)` for a heartbeat `hb` and an election timeout
/// `e` (ms). openraft's leader lease is `max`, and a follower campaigns once its lease expired
/// *and* a timeout drawn from `[min, max)` passed after it: at `max + [min, max)` after it last
/// heard from the leader. Choosing `min + max = e` gives the window Raft (and etcd) mean by an
/// election timeout — no campaign before `e` of silence, first campaigns in `[e, 1.5e)` — where
/// `(e/2, e)` gave `[1.5e, 2e)`. `min` stays above the heartbeat (openraft requires it), which
/// for an `electionTick` of 4 or less starts the window a little after `e`.
fn election_timers(hb: u64, e: u64) -> (u64, u64) {
    let min = (e / 4).max(hb + 1);
    let max = e.saturating_sub(min).max(min + 1);
    (min, max)
}

#[cfg(test)]
mod tests {
    use super::election_timers;

    #[test]
    fn campaigns_start_at_the_election_timeout() {
        assert_eq!(election_timers(100, 1000), (250, 750));
        for hb in [10, 100, 1000] {
            for ticks in 2..=20 {
                let e = hb * ticks;
                let (min, max) = election_timers(hb, e);
                assert!(hb < min && min < max, "hb {hb} ticks {ticks}: {min}..{max}");
                // The first campaign comes no sooner than `e` after the last heartbeat, and
                // no later than 2e.
                assert!(min + max >= e, "hb {hb} ticks {ticks}");
                assert!(2 * max <= 2 * e + 4, "hb {hb} ticks {ticks}: max {max}");
            }
        }
    }
}
