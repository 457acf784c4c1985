//! Which replicated commands the members' binaries can decode, so that a rolling upgrade never
//! puts a command into the log that a member still running the old binary cannot read.
//!
//! A Raft entry is a postcard-encoded batch: a command added in a later release is an unknown
//! enum variant to an older binary, which would refuse the whole batch when it is forwarded to
//! it as leader (failing the sends in the same batch) or stop replicating when it follows.
//! Each binary therefore has a [`COMMAND_LEVEL`], answered on the `LEVEL` RPC; a binary from
//! before the exchange answers "unknown request kind" and counts as level 1. Every few seconds
//! each node asks its peers; a command above level 1 ([`crate::store::Command::level`]) is
//! refused with [`super::ProposeError::Upgrading`] while any member is known to be below it, and
//! callers with an older equivalent use that instead (`/user/token`). A member that cannot be
//! reached is not held against the cluster: it is not decoding anything, and a binary that
//! answers at all tells its level within one round.

use super::messages::kind;
use super::types::{from_bytes, to_bytes};
use super::Cluster;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The commands this binary decodes: 2 = channel permissions and lists, command-message sync,
/// device kicks, logins and acks relayed, webhook cursors.
pub const COMMAND_LEVEL: u32 = 2;

/// How often the peers are asked.
const EVERY: Duration = Duration::from_secs(3);

/// The last level each peer answered.
#[derive(Debug, Default)]
pub struct Levels(Mutex<HashMap<u64, u32>>);

impl Levels {
    /// Whether no current member is known to run a binary below `level`.
    pub fn cluster_at(&self, cluster: &Cluster, level: u32) -> bool {
        if level <= 1 {
            return true;
        }
        let known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cluster
            .peers()
            .iter()
            .all(|(id, _)| known.get(id).is_none_or(|l| *l >= level))
    }

    /// The members known to be below `level`, for error messages.
    pub fn behind(&self, cluster: &Cluster, level: u32) -> Vec<u64> {
        let known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cluster
            .peers()
            .iter()
            .filter(|(id, _)| known.get(id).is_some_and(|l| *l < level))
            .map(|(id, _)| *id)
            .collect()
    }

    fn set(&self, id: u64, level: u32) {
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if known.insert(id, level) != Some(level) {
            tracing::info!(node = id, level, "peer command level");
        }
    }
}

/// Test knob: when set (to anything), this node refuses `LEVEL` as a binary from before the
/// exchange does, so a test can run a cluster "mid-upgrade". Not for production use.
pub const TEST_PRE_LEVEL_ENV: &str = "WUKONGIM_TEST_PRE_LEVEL";

/// Whether the test knob makes this node answer as a binary from before the level exchange
/// (which also knew no pipelined forwards, `FORWARD_NEXT`).
pub fn pre_level_knob() -> bool {
    static KNOB: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *KNOB.get_or_init(|| std::env::var_os(TEST_PRE_LEVEL_ENV).is_some())
}

/// The answer to `LEVEL` (an error exactly as an older binary's, under the test knob).
pub fn answer() -> Result<Vec<u8>, String> {
    if pre_level_knob() {
        return Err(super::messages::unknown_kind(kind::LEVEL));
    }
    Ok(to_bytes(&COMMAND_LEVEL))
}

/// Asks every peer for its level now and then every few seconds, until `stop`.
pub fn spawn_refresh(cluster: Arc<Cluster>, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            for (id, addr) in cluster.peers() {
                let res = cluster
                    .rpc
                    .call_timeout(&addr, kind::LEVEL, Vec::new().into(), EVERY)
                    .await;
                match res {
                    Ok(body) => match from_bytes::<u32>(&body) {
                        Ok(level) => cluster.levels.set(id, level),
                        Err(e) => tracing::debug!(node = id, error = %e, "bad LEVEL answer"),
                    },
                    // A binary from before the exchange refuses the kind: level 1.
                    Err(e) if super::messages::is_unknown_kind(&e.to_string()) => {
                        cluster.levels.set(id, 1)
                    }
                    Err(_) => {}
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
        }
    });
}
