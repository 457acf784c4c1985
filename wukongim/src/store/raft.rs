//! Raw storage for the Raft layer in the same database file: the log (index → encoded entry),
//! Raft metadata (vote, last purged id, committed id) and the state machine's own metadata
//! (last applied id, membership). Encoding of openraft types is the caller's business.

use super::apply::{apply_in, Applied};
use super::*;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

pub(crate) const RAFT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
pub(crate) const RAFT_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
pub(crate) const SM_META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");

impl Store {
    /// Appends (or overwrites) log entries in one durable transaction.
    pub fn log_append(&self, entries: &[(u64, Vec<u8>)]) -> Result<()> {
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(RAFT_LOG)?;
            for (idx, bytes) in entries {
                t.insert(*idx, bytes.as_slice())?;
            }
        }
        self.commit(txn)?;
        Ok(())
    }

    /// Entries with index in `lo..hi`.
    pub fn log_range(&self, lo: u64, hi: u64) -> Result<Vec<(u64, Vec<u8>)>> {
        self.log_range_limited(lo, hi, usize::MAX)
    }

    /// The entries in `lo..hi` up to `max_bytes` of stored entries in total, and always at
    /// least the first one (if any).
    pub fn log_range_limited(
        &self,
        lo: u64,
        hi: u64,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(RAFT_LOG)?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        if lo < hi {
            for item in t.range(lo..hi)? {
                let (k, v) = item?;
                bytes = bytes.saturating_add(v.value().len());
                if bytes > max_bytes && !out.is_empty() {
                    break;
                }
                out.push((k.value(), v.value().to_vec()));
            }
        }
        Ok(out)
    }

    /// The index of the first log entry held, if any (after a purge, the one after it).
    pub fn log_first_index(&self) -> Result<Option<u64>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(RAFT_LOG)?;
        let first = t.first()?.map(|(k, _)| k.value());
        Ok(first)
    }

    /// The last log entry, if any.
    pub fn log_last(&self) -> Result<Option<(u64, Vec<u8>)>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(RAFT_LOG)?;
        let last = t.last()?.map(|(k, v)| (k.value(), v.value().to_vec()));
        Ok(last)
    }

    /// Deletes every entry with index ≥ `from`.
    pub fn log_truncate_from(&self, from: u64) -> Result<()> {
        let txn = self.begin_write()?;
        txn.open_table(RAFT_LOG)?.retain_in(from.., |_, _| false)?;
        self.commit(txn)?;
        Ok(())
    }

    /// Records `meta` under `key`, then deletes every entry with index ≤ `upto`.
    pub fn log_purge(&self, upto: u64, key: &str, meta: &[u8]) -> Result<()> {
        let txn = self.begin_write()?;
        txn.open_table(RAFT_META)?.insert(key, meta)?;
        txn.open_table(RAFT_LOG)?.retain_in(..=upto, |_, _| false)?;
        self.commit(txn)?;
        Ok(())
    }

    /// Number of log entries kept and their total encoded size.
    /// Entries in the Raft log, in O(1) (the table keeps its length).
    pub fn log_len(&self) -> Result<u64> {
        use redb::ReadableTableMetadata;
        let txn = self.db().begin_read()?;
        Ok(txn.open_table(RAFT_LOG)?.len()?)
    }

    /// Entries and bytes of the Raft log: reads the whole log (for the periodic `maxLogSize`
    /// check only; status endpoints use [`Store::log_len`] and the bytes of the last check).
    pub fn log_stats(&self) -> Result<(u64, u64)> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(RAFT_LOG)?;
        let mut n = 0;
        let mut bytes = 0;
        for item in t.iter()? {
            let (_, v) = item?;
            n += 1;
            bytes += v.value().len() as u64;
        }
        Ok((n, bytes))
    }

    pub fn raft_meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(RAFT_META)?;
        let v = t.get(key)?.map(|g| g.value().to_vec());
        Ok(v)
    }

    /// Durably records Raft metadata (the vote must survive a crash).
    pub fn raft_meta_put(&self, key: &str, value: &[u8]) -> Result<()> {
        let txn = self.begin_write()?;
        txn.open_table(RAFT_META)?.insert(key, value)?;
        self.commit(txn)?;
        Ok(())
    }

    /// Records Raft metadata without an fsync of its own (persisted by the next durable commit);
    /// for hints that may safely be lost, such as the committed index.
    pub fn raft_meta_put_lazy(&self, key: &str, value: &[u8]) -> Result<()> {
        let mut txn = self.begin_write()?;
        txn.set_durability(redb::Durability::None)?;
        txn.open_table(RAFT_META)?.insert(key, value)?;
        txn.commit()?;
        Ok(())
    }

    pub fn sm_meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db().begin_read()?;
        let t = txn.open_table(SM_META)?;
        let v = t.get(key)?.map(|g| g.value().to_vec());
        Ok(v)
    }

    /// Makes every earlier commit durable (an empty durable commit).
    pub fn sync(&self) -> Result<()> {
        let txn = self.begin_write()?;
        self.commit(txn)
    }

    /// Applies several log entries' commands and the new state-machine metadata in one
    /// transaction. `None` marks an entry without commands (blank or membership).
    ///
    /// The commit has no fsync of its own: the entries are already durable in the Raft log,
    /// and the next durable commit (the next log append, purge or vote) persists this one with
    /// it — redb commits are ordered, so a crash keeps a prefix of the applies, never a hole.
    /// After a crash openraft re-applies from the last persisted apply, and the node serves no
    /// reads until it caught up with the cluster (`cluster/catchup.rs`). One fsync per batch
    /// instead of two, and the apply no longer holds redb's writer lock across a sync.
    pub fn apply_entries(
        &self,
        entries: &[Option<Batch>],
        meta: &[(&str, Vec<u8>)],
    ) -> Result<Vec<Applied>> {
        let mut txn = self.begin_write()?;
        txn.set_durability(redb::Durability::None)?;
        let mut out = Vec::with_capacity(entries.len());
        let tx = super::Tx::new(&txn);
        for e in entries {
            out.push(match e {
                Some(batch) => apply_in(&tx, batch)?,
                None => Applied::default(),
            });
        }
        super::Sum::apply(&txn, tx.delta())?;
        {
            let mut t = txn.open_table(SM_META)?;
            for (k, v) in meta {
                t.insert(*k, v.as_slice())?;
            }
        }
        txn.commit()?;
        super::digest::check_stored(self)?;
        Ok(out)
    }
}
