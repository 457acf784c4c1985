//! Raw storage for the Raft layer: the log (index → encoded entry, in [`super::raft_log`]'s
//! segment files), and in the database Raft metadata (vote, last purged id, committed id) and the
//! state machine's own metadata (last applied id, membership). Encoding of openraft types is the
//! caller's business.

use super::apply::{apply_in, Applied};
use super::handle::lock;
use super::raft_log::{self, RaftLog};
use super::*;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

/// Where the log was kept before it moved to its own files; emptied into them at open.
pub(crate) const RAFT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
pub(crate) const RAFT_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
pub(crate) const SM_META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");

/// The longest an applied state stays only in memory and the OS's cache: a bound on what a
/// restart re-applies from the log and on the pages redb holds back from reuse meanwhile.
const APPLY_SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Store {
    /// The node's Raft log (opened by [`Store::open`]; a store opened on a bare file has none).
    fn log(&self) -> Result<&RaftLog> {
        self.log.as_deref().ok_or(StoreError::NoLog)
    }

    /// Appends (or overwrites) log entries durably (one fdatasync of the log, counted).
    pub fn log_append(&self, entries: &[(u64, Vec<u8>)]) -> Result<()> {
        let log = self.log()?;
        log.append(entries).map_err(|e| self.log_err(e))?;
        self.metrics.fsyncs.inc();
        Ok(())
    }

    /// `source`, an error of the log, naming its directory.
    pub(super) fn log_err(&self, source: std::io::Error) -> StoreError {
        StoreError::Log {
            path: self.dir.join(raft_log::DIR),
            source,
        }
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
        self.log()?
            .range(lo, hi, max_bytes)
            .map_err(|e| self.log_err(e))
    }

    /// The index of the first log entry held, if any (after a purge, the one after it).
    pub fn log_first_index(&self) -> Result<Option<u64>> {
        Ok(self.log()?.first_index())
    }

    /// The last log entry, if any.
    pub fn log_last(&self) -> Result<Option<(u64, Vec<u8>)>> {
        let log = self.log()?;
        let Some(last) = log.last_index() else {
            return Ok(None);
        };
        Ok(log
            .range(last, last + 1, usize::MAX)
            .map_err(|e| self.log_err(e))?
            .pop())
    }

    /// Deletes every entry with index ≥ `from`, durably.
    pub fn log_truncate_from(&self, from: u64) -> Result<()> {
        self.log()?.truncate_from(from).map_err(|e| self.log_err(e))
    }

    /// Records `meta` under `key` durably — with every state-machine apply before it, so the
    /// state a restart begins from is at or past `upto` — then deletes every entry ≤ `upto`.
    pub fn log_purge(&self, upto: u64, key: &str, meta: &[u8]) -> Result<()> {
        let log = self.log()?;
        self.raft_meta_put(key, meta)?;
        log.purge(upto).map_err(|e| self.log_err(e))
    }

    /// Moves the entries a database from before the log files kept in its `raft_log` table into
    /// the log files (durably), then empties the table. Until the table is empty the files may
    /// be incomplete, so a crash midway starts over from the table at the next open.
    pub(super) fn move_log_out(&self) -> Result<()> {
        let rows: Vec<(u64, Vec<u8>)> = {
            let txn = self.db().begin_read()?;
            let t = txn.open_table(RAFT_LOG)?;
            let mut rows = Vec::new();
            for item in t.iter()? {
                let (k, v) = item?;
                rows.push((k.value(), v.value().to_vec()));
            }
            rows
        };
        if rows.is_empty() {
            return Ok(());
        }
        let log = self.log()?;
        log.clear().map_err(|e| self.log_err(e))?;
        log.append(&rows).map_err(|e| self.log_err(e))?;
        let txn = self.begin_write()?;
        txn.open_table(RAFT_LOG)?.retain(|_, _| false)?;
        self.commit(txn)?;
        tracing::info!(
            entries = rows.len(),
            "raft log moved out of the database into {}/",
            raft_log::DIR
        );
        Ok(())
    }

    /// Entries and bytes of the Raft log, in O(1).
    pub fn log_stats(&self) -> Result<(u64, u64)> {
        Ok(self.log()?.stats())
    }

    pub fn raft_meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        if let Some(v) = lock(&self.lazy_meta).get(key) {
            return Ok(Some(v.clone()));
        }
        let txn = self.db().begin_read()?;
        let t = txn.open_table(RAFT_META)?;
        let v = t.get(key)?.map(|g| g.value().to_vec());
        Ok(v)
    }

    /// Durably records Raft metadata (the vote must survive a crash).
    pub fn raft_meta_put(&self, key: &str, value: &[u8]) -> Result<()> {
        let txn = self.begin_write()?;
        self.flush_lazy_meta(&txn)?;
        txn.open_table(RAFT_META)?.insert(key, value)?;
        self.commit(txn)?;
        Ok(())
    }

    /// Records Raft metadata in memory only, written with the next apply or durable commit
    /// (no transaction of its own); for hints that may safely be lost, such as the committed
    /// index. Read back at once by [`Store::raft_meta_get`].
    pub fn raft_meta_put_lazy(&self, key: &str, value: &[u8]) {
        lock(&self.lazy_meta).insert(key.to_string(), value.to_vec());
    }

    /// Writes the metadata [`Store::raft_meta_put_lazy`] holds into `txn`.
    fn flush_lazy_meta(&self, txn: &redb::WriteTransaction) -> Result<()> {
        let pending = std::mem::take(&mut *lock(&self.lazy_meta));
        if !pending.is_empty() {
            let mut t = txn.open_table(RAFT_META)?;
            for (k, v) in &pending {
                t.insert(k.as_str(), v.as_slice())?;
            }
        }
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
        self.flush_lazy_meta(&txn)?;
        self.commit(txn)
    }

    /// Applies several log entries' commands and the new state-machine metadata in one
    /// transaction. `None` marks an entry without commands (blank or membership).
    ///
    /// The commit is lazily durable: the entries are already durable in the Raft log, so the
    /// transaction is synced only when [`APPLY_SYNC_EVERY`] has passed since the database's last
    /// durable commit (otherwise a vote, a purge, shutdown's [`Store::sync`] or a later apply
    /// persists it) — redb commits are ordered, so a crash keeps a prefix of the applies, never
    /// a hole. After a crash openraft re-applies from the last persisted apply (the log is purged
    /// only behind a durable apply, see [`Store::log_purge`]), and the node serves no reads until
    /// it caught up with the cluster (`cluster/catchup.rs`).
    pub fn apply_entries(
        &self,
        entries: &[Option<Batch>],
        meta: &[(&str, Vec<u8>)],
    ) -> Result<Vec<Applied>> {
        let mut txn = self.begin_write()?;
        let durable = self.handle.sync_due(APPLY_SYNC_EVERY);
        if !durable {
            txn.set_durability(redb::Durability::None)?;
        }
        let mut out = Vec::with_capacity(entries.len());
        let tx = super::Tx::new(&txn, &self.seeded);
        for e in entries {
            out.push(match e {
                Some(batch) => apply_in(&tx, batch)?,
                None => Applied::default(),
            });
        }
        super::Sum::apply(&txn, tx.delta())?;
        let seeded = tx.seeded().take();
        drop(tx);
        self.flush_lazy_meta(&txn)?;
        {
            let mut t = txn.open_table(SM_META)?;
            for (k, v) in meta {
                t.insert(*k, v.as_slice())?;
            }
        }
        if durable {
            self.commit(txn)?;
        } else {
            txn.commit()?;
        }
        self.seeded.apply(seeded);
        super::digest::check_stored(self)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_kept_in_the_database_moves_into_the_log_files_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<(u64, Vec<u8>)> = (40..60).map(|i| (i, vec![i as u8; 9])).collect();
        {
            let old = Store::open_file(&dir.path().join(DB_FILE)).unwrap();
            assert!(matches!(old.log_append(&rows), Err(StoreError::NoLog)));
            let txn = old.begin_write().unwrap();
            {
                let mut t = txn.open_table(RAFT_LOG).unwrap();
                for (i, b) in &rows {
                    t.insert(*i, b.as_slice()).unwrap();
                }
            }
            old.commit(txn).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.log_range(0, u64::MAX).unwrap(), rows);
        let txn = store.db().begin_read().unwrap();
        assert!(txn.open_table(RAFT_LOG).unwrap().first().unwrap().is_none());
        drop(txn);
        drop(store);
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.log_range(0, u64::MAX).unwrap(), rows, "moved once");
        assert_eq!(again.log_last().unwrap(), Some((59, vec![59; 9])));
        drop(again);
        std::fs::remove_file(dir.path().join(DB_FILE)).unwrap();
        let wiped = Store::open(dir.path()).unwrap();
        assert_eq!(
            wiped.log_last().unwrap(),
            None,
            "a log without its database is dropped"
        );
    }
}
