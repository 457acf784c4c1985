//! The data version, kept incrementally: a multiset hash of the IM rows (sum mod 2^128 of one
//! 128-bit XXH3 hash per row), updated by every write the state machine makes and stored with
//! the applied index, so `GET /cluster/data/version` is a read of three values, not a walk of
//! the database. Order-independent, so the same set of rows gives the same version on every
//! replica however it got there (applied from the log or installed from a snapshot).
//!
//! A row's hash covers its table tag and the key and value bytes as redb stores them. Writes go
//! through [`Tx`], whose tables ([`Tracked`]) add the hash of each row written and subtract the
//! hash of each row replaced or removed; a [`Tracked`] table derefs to the redb table for reads
//! only, so a mutation that is not tracked does not compile.
//!
//! The counts beside the hash: messages and channels are table lengths (kept by redb in each
//! table's header, O(1)); users holding a token are counted as tokens are first stored.

use super::cmd::CMD_SYNC;
use super::seeded::{Pending, Seeded};
use super::sessions::{REPLIES, SESSIONS};
use super::snapshot::Row;
use super::{CHANNELS, CONVS, DEDUP, LISTS, MESSAGES, META, SEQS, TOKENS};
use redb::{
    AccessGuard, Key, ReadTransaction, ReadableTable, ReadableTableMetadata, StorageError, Table,
    TableDefinition, TableError, TableHandle, Value, WriteTransaction,
};
use std::borrow::Borrow;
use std::cell::Cell;
use std::ops::RangeBounds;
use xxhash_rust::xxh3::Xxh3;

/// Key in the state-machine metadata of the running sum (16 bytes LE) and user count (8 bytes
/// LE), committed with every apply.
pub(crate) const SUM_KEY: &str = "data_sum";

/// The tag of an IM table (1-based, in the order of the snapshot walk), `None` for the tables
/// outside the data version.
fn tag_of(name: &str) -> Option<u8> {
    [
        META.name(),
        TOKENS.name(),
        CHANNELS.name(),
        MESSAGES.name(),
        SEQS.name(),
        CONVS.name(),
        DEDUP.name(),
        SESSIONS.name(),
        REPLIES.name(),
        LISTS.name(),
        CMD_SYNC.name(),
    ]
    .iter()
    .position(|t| *t == name)
    .map(|i| i as u8 + 1)
}

/// Hash of one row: table tag, key length, key bytes, value bytes.
fn raw_hash(tag: u8, key: &[u8], value: &[u8]) -> u128 {
    let mut h = Xxh3::new();
    h.update(&[tag]);
    h.update(&(key.len() as u32).to_le_bytes());
    h.update(key);
    h.update(value);
    h.digest128()
}

fn typed_hash<K: Key, V: Value>(tag: u8, k: &K::SelfType<'_>, v: &V::SelfType<'_>) -> u128 {
    raw_hash(tag, K::as_bytes(k).as_ref(), V::as_bytes(v).as_ref())
}

/// Hash of a snapshot row: the same value [`Tracked`] computes for that row in its table.
pub fn row_hash(row: &Row) -> u128 {
    type S = &'static str;
    type B = &'static [u8];
    match *row {
        Row::Meta(k, v) => typed_hash::<S, u64>(1, &k, &v),
        Row::Token(a, b, v) => typed_hash::<(S, u8), B>(2, &(a, b), &v),
        Row::Channel(a, b, v) => typed_hash::<(u8, S), B>(3, &(a, b), &v),
        Row::Message(a, b, v) => typed_hash::<(S, u64), B>(4, &(a, b), &v),
        Row::Seq(k, v) => typed_hash::<S, u64>(5, &k, &v),
        Row::Conv(a, b, v) => typed_hash::<(S, S), B>(6, &(a, b), &v),
        Row::Dedup(a, b, v) => typed_hash::<(S, S), B>(7, &(a, b), &v),
        Row::Session(k, v) => typed_hash::<u64, B>(8, &k, &v),
        Row::Reply(a, b, v) => typed_hash::<(u64, u64), B>(9, &(a, b), &v),
        Row::List(a, b, c, d) => typed_hash::<(u8, u8, S, S), ()>(10, &(a, b, c, d), &()),
        Row::CmdSync(a, b, v) => typed_hash::<(S, S), u64>(11, &(a, b), &v),
    }
}

/// The running sum and user count (what [`SUM_KEY`] stores).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sum {
    pub hash: u128,
    pub users: u64,
}

impl Sum {
    /// The hash as the data version's hex string.
    pub fn hex(&self) -> String {
        format!("{:032x}", self.hash)
    }

    fn encode(&self) -> [u8; 24] {
        let mut b = [0; 24];
        b[..16].copy_from_slice(&self.hash.to_le_bytes());
        b[16..].copy_from_slice(&self.users.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Sum> {
        let b: &[u8; 24] = b.try_into().ok()?;
        Some(Sum {
            hash: u128::from_le_bytes(b[..16].try_into().ok()?),
            users: u64::from_le_bytes(b[16..].try_into().ok()?),
        })
    }

    /// The sum stored in `txn`'s state-machine metadata, if any.
    pub fn stored(txn: &ReadTransaction) -> super::Result<Option<Sum>> {
        Sum::read(&txn.open_table(super::raft::SM_META)?)
    }

    /// The sum recorded in a state-machine metadata table.
    fn read(t: &impl ReadableTable<&'static str, &'static [u8]>) -> super::Result<Option<Sum>> {
        Ok(t.get(SUM_KEY)?.and_then(|g| Sum::decode(g.value())))
    }

    /// Records the sum in the state-machine metadata of `txn`.
    pub fn store(&self, txn: &WriteTransaction) -> super::Result<()> {
        txn.open_table(super::raft::SM_META)?
            .insert(SUM_KEY, self.encode().as_slice())?;
        Ok(())
    }

    /// Reads the stored sum in `txn` and adds `delta` to it (the sum of an empty state is 0).
    pub fn apply(txn: &WriteTransaction, delta: Delta) -> super::Result<()> {
        let stored = Sum::read(&txn.open_table(super::raft::SM_META)?)?.unwrap_or_default();
        Sum {
            hash: stored.hash.wrapping_add(delta.hash),
            users: stored.users.wrapping_add(delta.users),
        }
        .store(txn)
    }
}

/// The sum of every IM row of `txn` (a full walk: for start-up migration and checks).
pub fn full_sum(txn: &ReadTransaction) -> super::Result<Sum> {
    let mut digest = super::Digest32::default();
    super::walk_rows(txn, &mut |row| {
        digest.add_row(row);
        Ok(())
    })?;
    Ok(digest.sum())
}

/// What one transaction changed: hash delta and users added.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delta {
    pub hash: u128,
    pub users: u64,
}

/// A write transaction whose IM tables keep the data version (see the module doc).
pub(crate) struct Tx<'a> {
    txn: &'a WriteTransaction,
    hash: Cell<u128>,
    users: Cell<u64>,
    seeded: Pending<'a>,
}

impl<'a> Tx<'a> {
    /// `seeded`: the store's set of seeded group channels (see [`super::seeded`]).
    pub fn new(txn: &'a WriteTransaction, seeded: &'a Seeded) -> Self {
        Tx {
            txn,
            hash: Cell::new(0),
            users: Cell::new(0),
            seeded: Pending::new(seeded),
        }
    }

    /// The group channels whose subscribers all have a conversation row, as this transaction
    /// sees them.
    pub fn seeded(&self) -> &Pending<'a> {
        &self.seeded
    }

    /// Opens a table; writes to an IM table are tracked.
    pub fn open_table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<Tracked<'_, K, V>, TableError> {
        Ok(Tracked {
            tag: tag_of(def.name()),
            inner: self.txn.open_table(def)?,
            hash: &self.hash,
        })
    }

    /// Counts a user who holds a token for the first time.
    pub fn user_added(&self) {
        self.users.set(self.users.get() + 1);
    }

    /// What the writes so far changed.
    pub fn delta(&self) -> Delta {
        Delta {
            hash: self.hash.get(),
            users: self.users.get(),
        }
    }
}

/// A table of a [`Tx`]: reads through `Deref`, writes through the tracked methods below.
pub(crate) struct Tracked<'a, K: Key + 'static, V: Value + 'static> {
    inner: Table<'a, K, V>,
    tag: Option<u8>,
    hash: &'a Cell<u128>,
}

impl<'a, K: Key + 'static, V: Value + 'static> std::ops::Deref for Tracked<'a, K, V> {
    type Target = Table<'a, K, V>;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl<K: Key + 'static, V: Value + 'static> Tracked<'_, K, V> {
    fn add(&self, h: u128) {
        self.hash.set(self.hash.get().wrapping_add(h));
    }

    /// [`Table::insert`], tracked.
    pub fn insert<'k, 'v>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<Option<AccessGuard<'_, V>>, StorageError> {
        let key = key.borrow();
        let value = value.borrow();
        let Some(tag) = self.tag else {
            return self.inner.insert(key, value);
        };
        self.add(typed_hash::<K, V>(tag, key, value));
        let old = self.inner.insert(key, value)?;
        if let Some(g) = &old {
            let h = typed_hash::<K, V>(tag, key, &g.value());
            self.hash.set(self.hash.get().wrapping_sub(h));
        }
        Ok(old)
    }

    /// [`Table::remove`], tracked.
    pub fn remove<'k>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
    ) -> Result<Option<AccessGuard<'_, V>>, StorageError> {
        let key = key.borrow();
        let old = self.inner.remove(key)?;
        if let (Some(tag), Some(g)) = (self.tag, &old) {
            let h = typed_hash::<K, V>(tag, key, &g.value());
            self.hash.set(self.hash.get().wrapping_sub(h));
        }
        Ok(old)
    }

    /// [`Table::retain_in`], tracked: removes the rows of `range` for which `keep` is false.
    pub fn retain_in<'r, KR>(
        &mut self,
        range: impl RangeBounds<KR> + Clone + 'r,
        mut keep: impl for<'f> FnMut(K::SelfType<'f>, V::SelfType<'f>) -> bool,
    ) -> Result<(), StorageError>
    where
        KR: Borrow<K::SelfType<'r>> + 'r,
    {
        let tag = self.tag;
        let hash = self.hash;
        self.inner.retain_in(range, |k, v| {
            let h = tag.map(|t| typed_hash::<K, V>(t, &k, &v));
            let kept = keep(k, v);
            if let (false, Some(h)) = (kept, h) {
                hash.set(hash.get().wrapping_sub(h));
            }
            kept
        })
    }
}

/// The data version of `txn`'s state read from what apply stored: hash, counts. `None` when
/// the store holds no sum yet (a database from before the sum was kept).
pub fn stored_version(txn: &ReadTransaction) -> super::Result<Option<super::DataVersion>> {
    let Some(sum) = Sum::stored(txn)? else {
        return Ok(None);
    };
    Ok(Some(super::DataVersion {
        hash: sum.hex(),
        counts: super::Counts {
            messages: txn.open_table(MESSAGES)?.len()?,
            channels: txn.open_table(CHANNELS)?.len()?,
            users: sum.users,
        },
    }))
}

/// Debug builds only, when `WUKONGIM_CHECK_DATA_VERSION=N` is set (the test harness sets it):
/// after each apply, while the store holds at most N messages, the stored version must equal a
/// full walk — a write that bypassed [`Tx`] fails loudly here instead of drifting silently.
/// Unit tests always check.
pub(crate) fn check_stored(store: &super::Store) -> super::Result<()> {
    if !cfg!(debug_assertions) {
        return Ok(());
    }
    let limit = if cfg!(test) {
        Some(u64::MAX)
    } else {
        std::env::var("WUKONGIM_CHECK_DATA_VERSION")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
    };
    let Some(limit) = limit else {
        return Ok(());
    };
    let txn = store.read_txn()?;
    if txn.open_table(MESSAGES)?.len()? > limit {
        return Ok(());
    }
    let stored = Sum::stored(&txn)?;
    let full = full_sum(&txn)?;
    assert_eq!(
        stored,
        Some(full),
        "the incrementally kept data version differs from a full walk of the store"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    fn send(from: &str, to: &str, n: u8) -> Command {
        Command::Send(SendCmd {
            from_uid: from.into(),
            from_device: String::new(),
            channel_id: to.into(),
            channel_type: CHANNEL_PERSON,
            client_msg_no: format!("{from}-{n}"),
            setting: 0,
            header: Header::default(),
            expire: 0,
            topic: None,
            stream_no: String::new(),
            payload: vec![n; 40],
            timestamp: 1,
            trusted: true,
        })
    }

    fn token(uid: &str, flag: u8, t: &str) -> Command {
        Command::TokenUpdate {
            uid: uid.into(),
            device_flag: flag,
            device_level: 0,
            token: t.into(),
            at_ms: 1,
        }
    }

    /// The version kept by apply equals a full walk; a copy holding the same rows written in
    /// the opposite order has the same version; writes change it; the counts follow the rows.
    #[test]
    fn kept_version_equals_a_walk_and_ignores_write_order() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (src, copy) = (
            Store::open(d1.path()).unwrap(),
            Store::open(d2.path()).unwrap(),
        );
        let empty = src.version("none").unwrap().0;
        let batches = [
            vec![
                token("a", 0, "t1"),
                token("a", 1, "t2"),
                token("b", 0, "t3"),
            ],
            vec![send("a", "b", 1), send("b", "a", 2), send("a", "c", 3)],
            vec![token("a", 0, "t1-new"), send("a", "b", 1)],
        ];
        for (i, cmds) in batches.into_iter().enumerate() {
            let before = src.version("none").unwrap().0;
            src.apply_entries(&[Some(Batch::numbered(i as u64 + 1, cmds))], &[])
                .unwrap();
            assert_ne!(src.version("none").unwrap().0, before, "batch {i}");
        }
        let (kept, _) = src.version("none").unwrap();
        let txn = src.read_txn().unwrap();
        assert_eq!(kept, version_in(&txn).unwrap());
        assert_ne!(kept, empty);
        assert_eq!(kept.counts.users, 2);
        assert_eq!(kept.counts.messages, 3, "the resend is deduplicated");

        let mut rows = Vec::new();
        walk_rows(&txn, &mut |row| {
            let mut b = Vec::new();
            frame_row(row, &mut b);
            rows.push(b);
            Ok(())
        })
        .unwrap();
        copy.replace_state(|sink: &mut dyn FnMut(Row) -> Result<()>| {
            for b in rows.iter().rev() {
                sink(decode_row(&b[4..])?)?;
            }
            Ok(((), Vec::new()))
        })
        .unwrap();
        assert_eq!(copy.version("none").unwrap().0, kept);
    }
}
