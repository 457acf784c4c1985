//! The IM state as a stream of rows: every IM table walked in a fixed order inside one redb read
//! transaction (bounded memory, writers never wait), each row framed as `u32 LE length ·
//! postcard(Row)`. The same framing feeds snapshot files, the data-version hash (SHA-256 over
//! the framed rows, equal on every replica holding the same state, independent of Raft
//! membership) and the row counts; installing builds a new database file from such a stream and
//! swaps it in, so readers see the old state or the new one, never a mix.

use super::raft::SM_META;
use super::sessions::{REPLIES, SESSIONS};
use super::*;
use redb::{
    ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One row of one IM table. Borrowed: encoding and decoding copy nothing. Byte values are
/// encoded with `serialize_bytes` (see [`bytes`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Row<'a> {
    Meta(&'a str, u64),
    Token(&'a str, u8, #[serde(serialize_with = "bytes")] &'a [u8]),
    Channel(u8, &'a str, #[serde(serialize_with = "bytes")] &'a [u8]),
    Message(&'a str, u64, #[serde(serialize_with = "bytes")] &'a [u8]),
    Seq(&'a str, u64),
    Conv(
        &'a str,
        &'a str,
        #[serde(serialize_with = "bytes")] &'a [u8],
    ),
    Dedup(
        &'a str,
        &'a str,
        #[serde(serialize_with = "bytes")] &'a [u8],
    ),
    /// Proposer sessions (appended last: older streams still decode).
    Session(u64, #[serde(serialize_with = "bytes")] &'a [u8]),
    Reply(u64, u64, #[serde(serialize_with = "bytes")] &'a [u8]),
    /// Uid lists: list tag, channel type, channel id, uid (appended last, after the sessions).
    List(u8, u8, &'a str, &'a str),
    /// /message/sync records not yet acknowledged (`store/cmd.rs`; appended: older streams
    /// still decode).
    CmdSync(&'a str, &'a str, u64),
}

/// Serializes a byte value in one piece. Serde's own impl for `[u8]` goes element by element
/// (a sequence of `u8`), which postcard encodes to the very same bytes (varint length, then the
/// bytes) but a byte at a time: for 16 KiB message payloads that was the snapshot writer's
/// largest cost after I/O.
fn bytes<S: serde::Serializer>(b: &&[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_bytes(b)
}

/// Largest framed row accepted when reading a stream (a message payload is far smaller).
pub const MAX_ROW: usize = 64 << 20;

/// Row counts of an IM state: stored messages, channels, users holding a token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub messages: u64,
    pub channels: u64,
    pub users: u64,
}

/// The data hash and counts of a snapshot file's rows, accumulated in stream order. Files of
/// format 4 on carry the data version (the multiset sum of [`super::row_hash`], in the first 16
/// bytes, little-endian); older files carry a SHA-256 of their framed rows, which is still
/// checked when they are read.
#[derive(Clone)]
pub struct Digest32 {
    stream: Option<Sha256>,
    sum: u128,
    pub rows: u64,
    pub counts: Counts,
    last_user: Option<String>,
}

impl Default for Digest32 {
    /// The digest of the current format.
    fn default() -> Self {
        Digest32::for_format(u32::MAX)
    }
}

/// The first snapshot format whose data hash is the data version's multiset sum.
pub const SUM_FORMAT: u32 = 4;

impl Digest32 {
    /// The digest files of `format` carry.
    pub fn for_format(format: u32) -> Self {
        Digest32 {
            stream: (format < SUM_FORMAT).then(Sha256::new),
            sum: 0,
            rows: 0,
            counts: Counts::default(),
            last_user: None,
        }
    }

    /// Accounts one framed row (`frame` = length prefix + encoded row).
    pub fn add(&mut self, row: &Row, frame: &[u8]) {
        match &mut self.stream {
            Some(h) => h.update(frame),
            None => self.sum = self.sum.wrapping_add(super::row_hash(row)),
        }
        self.count(row);
    }

    /// Accounts one row of the current format (its hash joins the sum; no frame needed).
    pub fn add_row(&mut self, row: &Row) {
        debug_assert!(self.stream.is_none(), "add_row is for the current format");
        self.sum = self.sum.wrapping_add(super::row_hash(row));
        self.count(row);
    }

    /// The data version's running sum and user count so far (current format).
    pub fn sum(&self) -> super::Sum {
        super::Sum {
            hash: self.sum,
            users: self.counts.users,
        }
    }

    /// Counts one row without hashing it.
    fn count(&mut self, row: &Row) {
        self.rows += 1;
        match row {
            Row::Message(..) => self.counts.messages += 1,
            Row::Channel(..) => self.counts.channels += 1,
            // Tokens are keyed (uid, device) in uid order: count each uid once.
            Row::Token(uid, ..) if self.last_user.as_deref() != Some(*uid) => {
                self.counts.users += 1;
                self.last_user = Some(uid.to_string());
            }
            _ => {}
        }
    }

    pub fn finish(self) -> [u8; 32] {
        match self.stream {
            Some(h) => h.finalize().into(),
            None => {
                let mut out = [0; 32];
                out[..16].copy_from_slice(&self.sum.to_le_bytes());
                out
            }
        }
    }
}

/// The data version (hex) a snapshot file of `format` with `data_hash` in its trailer names.
pub fn data_version_of(format: u32, data_hash: &[u8; 32]) -> String {
    if format >= SUM_FORMAT {
        let sum = u128::from_le_bytes(data_hash[..16].try_into().expect("16 bytes"));
        super::Sum {
            hash: sum,
            users: 0,
        }
        .hex()
    } else {
        hex(data_hash)
    }
}

/// Lower-case hex of a hash.
pub fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// Appends the frame of `row` (length prefix + postcard) to `buf`.
pub fn frame_row(row: &Row, buf: &mut Vec<u8>) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    let buf2 = std::mem::take(buf);
    let mut out = postcard::to_extend(row, buf2).expect("in-memory serialization cannot fail");
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    *buf = out;
}

/// Decodes the body of one frame (without its length prefix).
pub fn decode_row(body: &[u8]) -> Result<Row<'_>> {
    decode_borrowed("snapshot row", body)
}

fn decode_borrowed<'a, T: Deserialize<'a>>(table: &'static str, b: &'a [u8]) -> Result<T> {
    postcard::from_bytes(b).map_err(|source| StoreError::Corrupt { table, source })
}

/// Calls `f` with every IM row of `txn`, table by table, rows in key order.
pub fn walk_rows(
    txn: &ReadTransaction,
    f: &mut dyn FnMut(&Row) -> std::io::Result<()>,
) -> Result<()> {
    let io = |source: std::io::Error| StoreError::SnapshotRows { source };
    for item in txn.open_table(META)?.iter()? {
        let (k, v) = item?;
        f(&Row::Meta(k.value(), v.value())).map_err(io)?;
    }
    for item in txn.open_table(TOKENS)?.iter()? {
        let (k, v) = item?;
        let (a, b) = k.value();
        f(&Row::Token(a, b, v.value())).map_err(io)?;
    }
    for item in txn.open_table(CHANNELS)?.iter()? {
        let (k, v) = item?;
        let (a, b) = k.value();
        f(&Row::Channel(a, b, v.value())).map_err(io)?;
    }
    for item in txn.open_table(MESSAGES)?.iter()? {
        let (k, v) = item?;
        let (a, b) = k.value();
        f(&Row::Message(a, b, v.value())).map_err(io)?;
    }
    for item in txn.open_table(SEQS)?.iter()? {
        let (k, v) = item?;
        f(&Row::Seq(k.value(), v.value())).map_err(io)?;
    }
    for item in txn.open_table(CONVS)?.iter()? {
        let (k, v) = item?;
        let (a, b) = k.value();
        f(&Row::Conv(a, b, v.value())).map_err(io)?;
    }
    for item in txn.open_table(DEDUP)?.iter()? {
        let (k, v) = item?;
        let (a, b) = k.value();
        f(&Row::Dedup(a, b, v.value())).map_err(io)?;
    }
    for item in txn.open_table(SESSIONS)?.iter()? {
        let (k, v) = item?;
        f(&Row::Session(k.value(), v.value())).map_err(io)?;
    }
    for item in txn.open_table(REPLIES)?.iter()? {
        let (k, v) = item?;
        let (a, b) = k.value();
        f(&Row::Reply(a, b, v.value())).map_err(io)?;
    }
    for item in txn.open_table(LISTS)?.iter()? {
        let (k, _) = item?;
        let (a, b, c, d) = k.value();
        f(&Row::List(a, b, c, d)).map_err(io)?;
    }
    for item in txn.open_table(super::cmd::CMD_SYNC)?.iter()? {
        let (k, v) = item?;
        let (a, b) = k.value();
        f(&Row::CmdSync(a, b, v.value())).map_err(io)?;
    }
    Ok(())
}

/// Data version of an IM state: hash (hex) and counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataVersion {
    pub hash: String,
    pub counts: Counts,
}

/// Raw values of state-machine metadata keys, in the order asked.
pub type MetaValues = Vec<Option<Vec<u8>>>;

impl Store {
    /// A consistent read transaction (what snapshot builders stream from).
    pub fn read_txn(&self) -> Result<ReadTransaction> {
        Ok(self.db().begin_read()?)
    }

    /// Raw state-machine metadata values read inside `txn`.
    pub fn sm_meta_in(txn: &ReadTransaction, keys: &[&str]) -> Result<MetaValues> {
        let t = txn.open_table(SM_META)?;
        let mut vals = Vec::new();
        for k in keys {
            vals.push(t.get(*k)?.map(|g| g.value().to_vec()));
        }
        Ok(vals)
    }

    /// Data version of the IM state plus the raw value of a state-machine metadata key (the
    /// applied log id), from one read transaction. Streams: memory stays bounded.
    pub fn version(&self, meta_key: &str) -> Result<(DataVersion, Option<Vec<u8>>)> {
        let txn = self.read_txn()?;
        let mut meta = Self::sm_meta_in(&txn, &[meta_key])?;
        let version = match super::digest::stored_version(&txn)? {
            Some(v) => v,
            None => version_in(&txn)?,
        };
        Ok((version, meta.pop().flatten()))
    }

    /// Replaces the whole IM state (all or nothing): `fill` streams the new rows into the sink
    /// it is given and returns the state-machine metadata to record with them.
    ///
    /// The rows go into a new database file beside the current one (bounded memory; the live
    /// file is neither rewritten nor blocked for writers meanwhile). Then, with writers held off
    /// for a moment, the Raft metadata is copied over (state-machine metadata not named by `fill`
    /// too; the log is in its own files), the new file is made durable and renamed over the old,
    /// and this store switches to it. The result is a compact file holding only the new state.
    /// Nothing changes when `fill` (or the sink, or any step before the rename) fails; a crash
    /// before the rename leaves a temp file that the next open removes. Needs free space for the
    /// new state.
    pub fn replace_state<T, E: From<StoreError>>(
        &self,
        fill: impl FnOnce(&mut dyn FnMut(Row) -> std::result::Result<(), E>) -> ReplaceResult<T, E>,
    ) -> std::result::Result<T, E> {
        let tmp = self.handle.temp_path();
        let _ = std::fs::remove_file(&tmp);
        self.seeded.clear();
        let res = self.replace_via(&tmp, fill);
        self.seeded.clear();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }

    fn replace_via<T, E: From<StoreError>>(
        &self,
        tmp: &Path,
        fill: impl FnOnce(&mut dyn FnMut(Row) -> std::result::Result<(), E>) -> ReplaceResult<T, E>,
    ) -> std::result::Result<T, E> {
        let db = super::create_db(tmp)?;
        let mut txn = db.begin_write().map_err(StoreError::from)?;
        txn.set_durability(redb::Durability::None)
            .map_err(StoreError::from)?;
        let mut digest = Digest32::default();
        let filled = {
            let mut tables = Tables::open(&txn)?;
            fill(&mut |row| {
                digest.add_row(&row);
                tables.insert(row).map_err(E::from)
            })
        };
        let (out, meta) = match filled {
            Ok(v) => v,
            Err(e) => {
                let _ = txn.abort();
                return Err(e);
            }
        };
        {
            let mut t = txn.open_table(SM_META).map_err(StoreError::from)?;
            for (k, v) in &meta {
                t.insert(*k, v.as_slice()).map_err(StoreError::from)?;
            }
        }
        digest.sum().store(&txn)?;
        txn.commit().map_err(StoreError::from)?;

        let swap = self.handle.swapping();
        let old = swap.old().begin_read().map_err(StoreError::from)?;
        let txn = db.begin_write().map_err(StoreError::from)?;
        copy_raft_state(&old, &txn)?;
        txn.commit().map_err(StoreError::from)?;
        self.metrics.fsyncs.inc();
        drop(old);
        swap.install(db, tmp).map_err(|source| StoreError::Swap {
            path: tmp.to_path_buf(),
            source,
        })?;
        Ok(out)
    }
}

/// Copies what the Raft layer keeps in the database beside the IM state — its metadata (vote,
/// purge point, committed index) and state-machine metadata `to` does not have yet — from `from`
/// (the log itself is in its own files).
fn copy_raft_state(from: &ReadTransaction, to: &WriteTransaction) -> Result<()> {
    let mut meta = to.open_table(super::raft::RAFT_META)?;
    for item in from.open_table(super::raft::RAFT_META)?.iter()? {
        let (k, v) = item?;
        meta.insert(k.value(), v.value())?;
    }
    let mut sm = to.open_table(SM_META)?;
    for item in from.open_table(SM_META)?.iter()? {
        let (k, v) = item?;
        if sm.get(k.value())?.is_none() {
            sm.insert(k.value(), v.value())?;
        }
    }
    Ok(())
}

/// What a [`Store::replace_state`] filler returns: its own result and the metadata to record.
pub type ReplaceResult<T, E> = std::result::Result<(T, Vec<(&'static str, Vec<u8>)>), E>;

/// The data version of the state `txn` sees.
/// The data version of the state `txn` sees, computed by walking every row (what the stored,
/// incrementally kept version must always equal).
pub fn version_in(txn: &ReadTransaction) -> Result<DataVersion> {
    let sum = super::full_sum(txn)?;
    Ok(DataVersion {
        hash: sum.hex(),
        counts: Counts {
            messages: txn.open_table(MESSAGES)?.len()?,
            channels: txn.open_table(CHANNELS)?.len()?,
            users: sum.users,
        },
    })
}

/// The IM tables open for writing inside one transaction.
struct Tables<'t> {
    meta: redb::Table<'t, &'static str, u64>,
    tokens: redb::Table<'t, (&'static str, u8), &'static [u8]>,
    channels: redb::Table<'t, (u8, &'static str), &'static [u8]>,
    messages: redb::Table<'t, (&'static str, u64), &'static [u8]>,
    seqs: redb::Table<'t, &'static str, u64>,
    convs: redb::Table<'t, (&'static str, &'static str), &'static [u8]>,
    dedup: redb::Table<'t, (&'static str, &'static str), &'static [u8]>,
    sessions: redb::Table<'t, u64, &'static [u8]>,
    replies: redb::Table<'t, (u64, u64), &'static [u8]>,
    lists: redb::Table<'t, (u8, u8, &'static str, &'static str), ()>,
    cmd_sync: redb::Table<'t, (&'static str, &'static str), u64>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self> {
        Ok(Tables {
            meta: txn.open_table(META)?,
            tokens: txn.open_table(TOKENS)?,
            channels: txn.open_table(CHANNELS)?,
            messages: txn.open_table(MESSAGES)?,
            seqs: txn.open_table(SEQS)?,
            convs: txn.open_table(CONVS)?,
            dedup: txn.open_table(DEDUP)?,
            sessions: txn.open_table(SESSIONS)?,
            replies: txn.open_table(REPLIES)?,
            lists: txn.open_table(LISTS)?,
            cmd_sync: txn.open_table(super::cmd::CMD_SYNC)?,
        })
    }

    fn insert(&mut self, row: Row) -> Result<()> {
        match row {
            Row::Meta(k, v) => self.meta.insert(k, v).map(drop),
            Row::Token(a, b, v) => self.tokens.insert((a, b), v).map(drop),
            Row::Channel(a, b, v) => self.channels.insert((a, b), v).map(drop),
            Row::Message(a, b, v) => self.messages.insert((a, b), v).map(drop),
            Row::Seq(k, v) => self.seqs.insert(k, v).map(drop),
            Row::Conv(a, b, v) => self.convs.insert((a, b), v).map(drop),
            Row::Dedup(a, b, v) => self.dedup.insert((a, b), v).map(drop),
            Row::Session(k, v) => self.sessions.insert(k, v).map(drop),
            Row::Reply(a, b, v) => self.replies.insert((a, b), v).map(drop),
            Row::List(a, b, c, d) => self.lists.insert((a, b, c, d), ()).map(drop),
            Row::CmdSync(a, b, v) => self.cmd_sync.insert((a, b), v).map(drop),
        }?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_hash_is_order_sensitive() {
        let rows = [
            Row::Meta("message_id", 7),
            Row::Token("u1", 0, b"tok"),
            Row::Message("1:a@b", 3, b"payload"),
        ];
        let mut buf = Vec::new();
        for r in &rows {
            frame_row(r, &mut buf);
        }
        let mut at = 0;
        for r in &rows {
            let len = u32::from_le_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
            assert_eq!(&decode_row(&buf[at + 4..at + 4 + len]).unwrap(), r);
            at += 4 + len;
        }
        assert_eq!(at, buf.len());
        assert!(decode_row(&[0xff, 0xff]).is_err());
    }

    /// The bytes encoding is the one serde's element-by-element `[u8]` gives: snapshot files
    /// and data versions are unchanged by it.
    #[test]
    fn byte_values_encode_as_the_element_wise_sequence_did() {
        #[derive(Serialize)]
        enum Old<'a> {
            _Meta(&'a str, u64),
            _Token(&'a str, u8, &'a [u8]),
            _Channel(u8, &'a str, &'a [u8]),
            Message(&'a str, u64, &'a [u8]),
        }
        for len in [0usize, 1, 127, 128, 300, 16384, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut new = Vec::new();
            frame_row(&Row::Message("1:a@b", 42, &payload), &mut new);
            let old = postcard::to_allocvec(&Old::Message("1:a@b", 42, &payload)).unwrap();
            assert_eq!(&new[4..], &old[..], "payload of {len} bytes");
        }
    }
}
