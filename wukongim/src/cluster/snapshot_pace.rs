//! When this node builds a snapshot on its own. A snapshot is a full copy of the state (see
//! [`super::snapshots`]), so building one costs in proportion to the data held, not to the
//! entries applied since the last: with openraft's own policy (one every `snapshotEntries`
//! applied entries) a node holding 300,000 messages spent a third of its time under load
//! building ~1 s snapshots nearly back to back, and the 3-node write benchmark on such a store
//! ran at 0.77× etcd's throughput instead of 0.99× paced (bench/RESULTS.md, "CPU per request, a
//! store that is not fresh, and snapshots paced by their cost").
//!
//! The pacer builds one when `snapshotEntries` entries have been applied since the snapshot
//! this node holds (built or installed) *and* at least [`PACE`] times the last build's duration
//! has passed since that build ended, so building takes at most a tenth of one core however
//! large the data grows. A small state builds in milliseconds and is snapshotted every
//! `snapshotEntries` entries as before. The log keeps the entries in between (its size stays
//! bounded by `maxLogSize`, whose guard triggers a snapshot regardless); `POST /cluster/snapshot`
//! builds one at once.

use super::Cluster;
use openraft::type_config::async_runtime::WatchReceiver;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Time between the end of a build and the start of the next, in multiples of the build's own
/// duration.
pub const PACE: u32 = 9;

/// How long a trigger is taken to be building before it is sent again.
const STALE_TRIGGER: Duration = Duration::from_secs(60);

/// The last snapshot build that ended on this node: when, and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct LastBuild {
    pub ended: Instant,
    pub took: Duration,
}

/// Why a snapshot is not built now, or `None` when one is due.
#[derive(Debug, PartialEq, Eq)]
enum Wait {
    /// Fewer than `snapshotEntries` entries applied since the snapshot held.
    Entries,
    /// The last build ended too recently; due at this instant.
    Until(Instant),
}

/// Whether a snapshot is due with `applied` entries applied, the one held covering
/// `snapshot` (0: none), one every `entries` entries, and `last` the last build.
fn due(
    applied: u64,
    snapshot: u64,
    entries: u64,
    last: Option<LastBuild>,
    now: Instant,
) -> Option<Wait> {
    if applied.saturating_sub(snapshot) < entries.max(1) {
        return Some(Wait::Entries);
    }
    let next = last.map(|b| b.ended + b.took * PACE)?;
    (now < next).then_some(Wait::Until(next))
}

/// Builds snapshots as [`due`] says until shutdown (see the module docs).
pub async fn run(cluster: Arc<Cluster>, shutdown: CancellationToken) {
    let entries = cluster.config.cluster.snapshot_entries;
    let stats = cluster.snapshots.clone();
    let mut applied = cluster.applied.clone();
    // When the last trigger was sent, while the build it asked for may still run.
    let mut building: Option<Instant> = None;
    let mut wake_at: Option<Instant> = None;
    loop {
        let timer = async move {
            match wake_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            _ = timer => {}
            _ = shutdown.cancelled() => return,
        }
        wake_at = None;
        let last = stats.last_build();
        // The build asked for has run once a build (built or failed) ended after the trigger.
        // Should the trigger have started none (openraft drops one that arrives while another
        // build runs, whose end counts all the same), it is sent again after a minute, dropped
        // as well if a build is still running.
        let ended_since = |at: Instant| last.is_some_and(|b| b.ended >= at);
        if building.is_some_and(|at| !ended_since(at) && at.elapsed() < STALE_TRIGGER) {
            // Still building: look again after the next apply or a moment.
            wake_at = Some(Instant::now() + Duration::from_millis(100));
            continue;
        }
        building = None;
        let index = *applied.borrow_and_update();
        let snapshot = cluster
            .raft
            .metrics()
            .borrow_watched()
            .snapshot
            .as_ref()
            .map(|l| l.index())
            .unwrap_or(0);
        match due(index, snapshot, entries, last, Instant::now()) {
            Some(Wait::Entries) => {}
            Some(Wait::Until(at)) => wake_at = Some(at),
            None => {
                building = Some(Instant::now());
                tracing::debug!(index, snapshot, "taking a snapshot");
                if cluster.raft.trigger().snapshot().await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_after_the_entries_and_paced_by_the_last_build() {
        let now = Instant::now();
        assert_eq!(due(99, 0, 100, None, now), Some(Wait::Entries));
        assert_eq!(due(100, 0, 100, None, now), None, "no build yet");
        assert_eq!(due(1_150, 1_100, 100, None, now), Some(Wait::Entries));
        let quick = LastBuild {
            ended: now - Duration::from_millis(50),
            took: Duration::from_millis(5),
        };
        assert_eq!(due(1_200, 1_100, 100, Some(quick), now), None);
        let slow = LastBuild {
            ended: now - Duration::from_secs(3),
            took: Duration::from_secs(1),
        };
        assert_eq!(
            due(1_200, 1_100, 100, Some(slow), now),
            Some(Wait::Until(slow.ended + Duration::from_secs(9)))
        );
        assert_eq!(
            due(1_200, 1_100, 100, Some(slow), now + Duration::from_secs(6)),
            None
        );
        assert_eq!(due(5, 0, 0, None, now), None, "0 entries means every entry");
    }
}
