//! Maps the guide's `cluster.*` knobs onto openraft's engine configuration.

use crate::config::Config;
use openraft::SnapshotPolicy;

/// openraft configuration derived from the node configuration.
pub fn raft_config(c: &Config) -> openraft::Config {
    let cl = &c.cluster;
    let heartbeat = c.heartbeat().as_millis().max(1) as u64;
    let election = c.election_timeout().as_millis().max(2) as u64;
    openraft::Config {
        cluster_name: "wukongim".into(),
        heartbeat_interval: heartbeat,
        // Followers' timers are randomised in [E/2, E); openraft's leader lease equals the
        // maximum, so a leader's loss is detected after at most E and a new leader is elected
        // within two election timeouts even when the first campaign meets an unexpired lease.
        election_timeout_min: (election / 2).max(1),
        election_timeout_max: election,
        install_snapshot_timeout: (election * 4).max(5_000),
        // Entries per AppendEntries RPC (each entry is a whole batch of commands).
        max_payload_entries: cl.max_inflight_msgs.max(1) as u64,
        replication_lag_threshold: cl.log_compact_threshold.max(1),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cl.snapshot_entries.max(1)),
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
