//! openraft log storage over the node's store (log segment files, metadata in redb). `append`
//! reports the entries flushed only after their fdatasync; the vote is durable before
//! `save_vote` returns.

use super::types::{from_bytes, to_bytes, Entry, LogId, TypeConfig, Vote};
use crate::fsutil::io_err;
use crate::store::Store;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

/// The command batches of the log entries in `lo..hi` that `store` still holds, by index
/// (blank and membership entries left out), e.g. to re-read what was applied before a restart.
pub fn batches_in(store: &Store, lo: u64, hi: u64) -> io::Result<Vec<(u64, crate::store::Batch)>> {
    let rows = store.log_range(lo, hi).map_err(io_err)?;
    let mut out = Vec::new();
    for (i, b) in rows {
        if let openraft::EntryPayload::Normal(batch) = decode_entry(i, &b)?.payload {
            out.push((i, batch));
        }
    }
    Ok(out)
}

const VOTE: &str = "vote";
const PURGED: &str = "last_purged";
const COMMITTED: &str = "committed";

/// Handle to the log; cheap to clone.
#[derive(Clone)]
pub struct LogStore {
    store: Store,
    /// Stored bytes per replication read (`cluster.maxSizePerMsg`).
    read_limit: usize,
}

impl LogStore {
    pub fn new(store: Store) -> Self {
        LogStore {
            store,
            read_limit: usize::MAX,
        }
    }

    /// Bounds what one replication read returns ([`RaftLogReader::limited_get_log_entries`]):
    /// openraft sends one AppendEntries per read, so `cluster.maxSizePerMsg` bounds the entry
    /// bytes of every AppendEntries (always at least one entry; the rest follow in the next).
    pub fn with_read_limit(mut self, bytes: usize) -> Self {
        self.read_limit = bytes.max(1);
        self
    }
}

/// Runs blocking storage work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, io::Error> + Send + 'static,
) -> Result<T, io::Error> {
    tokio::task::spawn_blocking(f).await.map_err(io_err)?
}

/// Decodes the log entry stored at `index`. An entry that does not decode is most likely from a
/// server before proposer sessions (batches carry a `BatchTag` since then): say so.
fn decode_entry(index: u64, b: &[u8]) -> Result<Entry, io::Error> {
    from_bytes::<Entry>(b).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "raft log entry {index} cannot be decoded ({e}); a log written by a wukongim \
                 without proposer sessions is not readable by this one: upgrade a cluster from \
                 a snapshot (`wukongim restore`), not by replaying its log"
            ),
        )
    })
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let lo = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let hi = match range.end_bound() {
            Bound::Included(x) => x.saturating_add(1),
            Bound::Excluded(x) => *x,
            Bound::Unbounded => u64::MAX,
        };
        let store = self.store.clone();
        blocking(move || {
            let rows = store.log_range(lo, hi).map_err(io_err)?;
            rows.into_iter().map(|(i, b)| decode_entry(i, &b)).collect()
        })
        .await
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, io::Error> {
        let (store, limit) = (self.store.clone(), self.read_limit);
        blocking(move || {
            let rows = store.log_range_limited(start, end, limit).map_err(io_err)?;
            rows.into_iter().map(|(i, b)| decode_entry(i, &b)).collect()
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        let store = self.store.clone();
        blocking(move || {
            store
                .raft_meta_get(VOTE)
                .map_err(io_err)?
                .map(|b| from_bytes(&b))
                .transpose()
        })
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let store = self.store.clone();
        blocking(move || {
            let last = store
                .log_last()
                .map_err(io_err)?
                .map(|(i, b)| decode_entry(i, &b))
                .transpose()?;
            let purged: Option<LogId> = store
                .raft_meta_get(PURGED)
                .map_err(io_err)?
                .map(|b| from_bytes(&b))
                .transpose()?;
            let last_log_id = last.map(|e| e.log_id()).or(purged);
            Ok(LogState {
                last_purged_log_id: purged,
                last_log_id,
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let (store, bytes) = (self.store.clone(), to_bytes(vote));
        blocking(move || store.raft_meta_put(VOTE, &bytes).map_err(io_err)).await
    }

    /// The committed id is a restart hint (openraft re-applies up to it before serving); it is
    /// written without its own fsync — losing it only means re-learning it from the leader.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Kept in memory and written with the next apply: a hint that may be lost in a crash.
        self.store
            .raft_meta_put_lazy(COMMITTED, &to_bytes(&committed));
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        let store = self.store.clone();
        blocking(move || {
            let raw = store.raft_meta_get(COMMITTED).map_err(io_err)?;
            Ok(raw
                .map(|b| from_bytes::<Option<LogId>>(&b))
                .transpose()?
                .flatten())
        })
        .await
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
    {
        let rows: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|e| (e.index(), to_bytes(&e)))
            .collect();
        let store = self.store.clone();
        // Entries are readable and durable once the append returns (after its fdatasync).
        let res = blocking(move || store.log_append(&rows).map_err(io_err)).await;
        match res {
            Ok(()) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.io_completed(Err(io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map(|l| l.index() + 1).unwrap_or(0);
        let store = self.store.clone();
        blocking(move || store.log_truncate_from(from).map_err(io_err)).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let (store, bytes, upto) = (self.store.clone(), to_bytes(&log_id), log_id.index());
        blocking(move || store.log_purge(upto, PURGED, &bytes).map_err(io_err)).await
    }
}

/// Seeds the Raft state of a store restored from a snapshot: an empty log that starts after
/// `last` (purged and committed up to it) and a vote for `node_id` one term above `last`'s, so
/// the first election of the restored cluster opens a new term. Durable when it returns.
pub fn seed_after_snapshot(store: &Store, last: &LogId, node_id: u64) -> Result<(), io::Error> {
    let vote = Vote::new(last.leader_id.term + 1, node_id);
    store
        .raft_meta_put(PURGED, &to_bytes(last))
        .map_err(io_err)?;
    store
        .raft_meta_put(COMMITTED, &to_bytes(&Some(*last)))
        .map_err(io_err)?;
    store.raft_meta_put(VOTE, &to_bytes(&vote)).map_err(io_err)
}
