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
        election_timeout_min: election,
        // Randomised in [min, 1.5 × min) so split votes resolve quickly.
        election_timeout_max: election + (election / 2).max(1),
        install_snapshot_timeout: (election * 4).max(5_000),
        // Entries per AppendEntries RPC (each entry is a whole batch of commands).
        max_payload_entries: cl.max_inflight_msgs.max(1) as u64,
        replication_lag_threshold: cl.log_compact_threshold.max(1),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(cl.snapshot_entries.max(1)),
        max_in_snapshot_log_to_keep: cl.compaction_overhead,
        purge_batch_size: 256,
        enable_pre_vote: Some(cl.pre_vote),
        ..Default::default()
    }
}
