//! Durable storage under `rootDir`: one redb database holding the IM state machine (users,
//! channels, messages, conversations) and Raft's metadata, and the Raft log in its own segment
//! files ([`raft_log`]). Writes to the state come only through [`Store::apply_entries`], one
//! transaction per applied chunk; reads are served from snapshots of the same file.

mod apply;
mod channels;
mod cmd;
mod conversation;
mod devices;
mod digest;
mod handle;
mod lookup;
mod model;
pub mod perms;
mod query;
mod raft;
mod raft_log;
#[cfg(test)]
mod replace_tests;
mod seeded;
mod sessions;
mod snapshot;

pub use apply::Applied;
pub use cmd::{
    cmd_channel_for_send, source_channel as cmd_source_channel, CmdPage, CmdRecord, CHANNEL_TEMP,
};
pub use conversation::{ConversationQuery, ConversationView, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
pub use devices::{Effect, UidAcks, QUIT_ALL_FLAGS, REASON_CONNECT_KICK};
pub(crate) use digest::Tx;
pub use digest::{full_sum, row_hash, Sum};
pub(crate) use handle::lock;
pub use model::*;
pub use query::SyncRange;
pub use sessions::{Batch, BatchTag, Verdict};
pub use snapshot::{
    data_version_of, decode_row, frame_row, hex, version_in, walk_rows, Counts, DataVersion,
    Digest32, ReplaceResult, Row, MAX_ROW, SUM_FORMAT,
};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use redb::{Database, TableDefinition};

/// The database file inside `rootDir`.
pub const DB_FILE: &str = "state.redb";
pub use raft_log::DIR as RAFT_LOG_DIR;

/// redb's page cache (reads and the write buffer of a transaction). Bounded so that walking or
/// installing a large state does not grow the process by the size of the state.
const CACHE_BYTES: usize = 32 << 20;

/// Test knob: an environment variable that, when set to a byte count, replaces [`CACHE_BYTES`]
/// (so a memory test can tell the fixed cache apart from growth with the size of the state).
/// Not for production use.
pub const TEST_CACHE_BYTES_ENV: &str = "WUKONGIM_TEST_STORE_CACHE_BYTES";

/// The page cache size: [`CACHE_BYTES`] unless the test knob names another (≥ 1 MiB).
fn cache_bytes() -> usize {
    let Ok(v) = std::env::var(TEST_CACHE_BYTES_ENV) else {
        return CACHE_BYTES;
    };
    match v.trim().parse::<usize>() {
        Ok(n) if n >= 1 << 20 => n,
        _ => {
            tracing::warn!(value = %v, "{TEST_CACHE_BYTES_ENV} ignored: not a byte count >= 1048576");
            CACHE_BYTES
        }
    }
}
use std::path::Path;
use std::sync::Arc;

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Key in [`META`] of the replicated webhook cursor ([`Command::WebhookCursor`]).
pub(crate) const WEBHOOK_CURSOR: &str = "webhook_cursor";
pub(crate) const TOKENS: TableDefinition<(&str, u8), &[u8]> = TableDefinition::new("tokens");
pub(crate) const CHANNELS: TableDefinition<(u8, &str), &[u8]> = TableDefinition::new("channels");
pub(crate) const MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("messages");
pub(crate) const SEQS: TableDefinition<&str, u64> = TableDefinition::new("channel_seqs");
pub(crate) const CONVS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("conversations");
pub(crate) const DEDUP: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("dedup");
/// Uid lists: (list tag, channel type, channel id, uid); see [`channels`].
pub(crate) const LISTS: TableDefinition<(u8, u8, &str, &str), ()> =
    TableDefinition::new("uid_lists");

/// Storage failures. The server maps them to SystemError (reason 15) / HTTP 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Db(#[from] redb::Error),
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: std::path::PathBuf,
        source: redb::DatabaseError,
    },
    #[error("{0} is locked by another process (is the node still running?)")]
    Locked(std::path::PathBuf),
    #[error("writing snapshot rows: {source}")]
    SnapshotRows { source: std::io::Error },
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot swap in the new database file {}: {source}", path.display())]
    Swap {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Log {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("this store has no Raft log (opened on a bare database file)")]
    NoLog,
    #[error("corrupt record in {table}: {source}")]
    Corrupt {
        table: &'static str,
        source: postcard::Error,
    },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.into()) }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::SetDurabilityError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type Result<T> = std::result::Result<T, StoreError>;

/// Handle to the node's database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    handle: Arc<handle::Handle>,
    /// The Raft log (`rootDir/raftlog`); `None` for a store opened on a bare database file.
    log: Option<Arc<raft_log::RaftLog>>,
    /// Raft metadata waiting for the next write transaction ([`Store::raft_meta_put_lazy`]).
    lazy_meta: Arc<std::sync::Mutex<std::collections::BTreeMap<String, Vec<u8>>>>,
    /// Group channels whose subscribers all have a conversation row ([`seeded`]).
    seeded: Arc<seeded::Seeded>,
    dir: std::path::PathBuf,
    pub metrics: StoreMetrics,
}

/// Storage metrics.
#[derive(Debug, Default, Clone)]
pub struct StoreMetrics {
    /// Durable commits (each one fsync).
    pub fsyncs: Counter,
    /// Bytes used by rootDir, refreshed at each scrape.
    pub bytes: Gauge,
}

impl StoreMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "wukongim_storage_fsyncs",
            "Durable storage commits (one fsync each).",
            self.fsyncs.clone(),
        );
        r.register(
            "wukongim_storage_bytes",
            "Bytes used by rootDir.",
            self.bytes.clone(),
        );
    }
}

impl Store {
    /// Opens (creating if needed) `dir/state.redb`.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let db_file = dir.join(DB_FILE);
        let fresh = !db_file.exists();
        let mut store = Self::open_file(&db_file)?;
        let log_dir = dir.join(raft_log::DIR);
        if fresh && log_dir.exists() {
            // A log without its database continues a state that is gone (the database file was
            // removed to wipe the node): it must not be replayed onto an empty one.
            tracing::warn!(dir = %log_dir.display(), "removing a raft log left without its database");
            std::fs::remove_dir_all(&log_dir).map_err(|e| store.log_err(e))?;
        }
        let log = raft_log::RaftLog::open(&log_dir).map_err(|e| store.log_err(e))?;
        store.log = Some(Arc::new(log));
        store.move_log_out()?;
        Ok(store)
    }

    /// Opens (creating if needed) the database file `path` alone, without a Raft log (for
    /// building a state to restore); its directory holds snapshots.
    /// Fails with [`StoreError::Locked`] while another process has it open.
    pub fn open_file(path: &Path) -> Result<Store> {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let db = create_db(path)?;
        handle::clean_temp(path);
        // A database from before the data version was kept incrementally: sum it once.
        let read = redb::ReadableDatabase::begin_read(&db)?;
        if Sum::stored(&read)?.is_none() {
            let sum = full_sum(&read)?;
            drop(read);
            let txn = db.begin_write()?;
            sum.store(&txn)?;
            txn.commit()?;
        }
        Ok(Store {
            handle: Arc::new(handle::Handle::new(path.to_path_buf(), db)),
            log: None,
            lazy_meta: Arc::default(),
            seeded: Arc::default(),
            dir,
            metrics: StoreMetrics::default(),
        })
    }

    /// The current database file, for reading.
    pub(crate) fn db(&self) -> Arc<Database> {
        self.handle.db()
    }

    /// Begins a write transaction (the file is not swapped while it lives).
    pub(crate) fn begin_write(&self) -> Result<handle::Writing<'_>> {
        Ok(self.handle.begin_write()?)
    }

    /// Commits a write transaction durably (one fsync) and counts it.
    pub(crate) fn commit(&self, txn: handle::Writing<'_>) -> Result<()> {
        txn.commit()?;
        self.handle.mark_synced();
        self.metrics.fsyncs.inc();
        Ok(())
    }

    /// Sets the storage-bytes gauge (walks rootDir: blocking).
    pub fn refresh_metrics(&self) {
        self.metrics.bytes.set(self.disk_bytes() as i64);
    }

    /// Bytes used by the data directory (database and snapshots).
    pub fn disk_bytes(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = std::fs::read_dir(p) else {
                return 0;
            };
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.dir)
    }
}

/// Opens (creating if needed) the database file `path` with every table present.
fn create_db(path: &Path) -> Result<Database> {
    let db = redb::Builder::new()
        .set_cache_size(cache_bytes())
        .create(path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.to_path_buf()),
            other => StoreError::Open {
                path: path.to_path_buf(),
                source: other,
            },
        })?;
    let txn = db.begin_write()?;
    {
        txn.open_table(META)?;
        txn.open_table(TOKENS)?;
        txn.open_table(CHANNELS)?;
        txn.open_table(MESSAGES)?;
        txn.open_table(SEQS)?;
        txn.open_table(CONVS)?;
        txn.open_table(DEDUP)?;
        txn.open_table(LISTS)?;
        txn.open_table(cmd::CMD_SYNC)?;
        txn.open_table(sessions::SESSIONS)?;
        txn.open_table(sessions::REPLIES)?;
        txn.open_table(raft::RAFT_LOG)?;
        txn.open_table(raft::RAFT_META)?;
        txn.open_table(raft::SM_META)?;
    }
    txn.commit()?;
    Ok(db)
}

/// Storage key of a channel's message log: person channels are stored once per pair.
/// A person command channel (`peer____cmd`) is the pair's log plus the suffix, named the same
/// from either side (Go's `a@b____cmd`).
pub fn log_key(from_uid: &str, channel_id: &str, channel_type: u8) -> String {
    if channel_type == CHANNEL_PERSON {
        if let Some(peer) = channel_id.strip_suffix(CMD_SUFFIX) {
            return format!("{}{CMD_SUFFIX}", log_key(from_uid, peer, channel_type));
        }
        let (a, b) = if from_uid <= channel_id {
            (from_uid, channel_id)
        } else {
            (channel_id, from_uid)
        };
        format!("{channel_type}:{}@{}", escape_uid(a), escape_uid(b))
    } else {
        format!("{channel_type}:{channel_id}")
    }
}

/// A uid inside a person-channel key: `\` and `@` escaped, so the pair's separator is the only
/// bare `@` and no two pairs share a key ("a@b"+"c" vs "a"+"b@c"). Uids without either
/// character (all usual ones) keep the key they always had.
fn escape_uid(uid: &str) -> std::borrow::Cow<'_, str> {
    if !uid.contains(['\\', '@']) {
        return uid.into();
    }
    uid.replace('\\', "\\\\").replace('@', "\\@").into()
}

/// Key of a conversation as one user sees it.
pub(crate) fn conv_key(channel_id: &str, channel_type: u8) -> String {
    format!("{channel_type}:{channel_id}")
}

/// Encodes a value with postcard: stored records, Raft types and cluster RPC bodies alike.
pub fn to_bytes<T: serde::Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).expect("in-memory serialization cannot fail")
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(table: &'static str, b: &[u8]) -> Result<T> {
    postcard::from_bytes(b).map_err(|source| StoreError::Corrupt { table, source })
}

#[cfg(test)]
mod key_tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn person_keys_of_usual_uids_are_unchanged() {
        assert_eq!(log_key("bob", "alice", CHANNEL_PERSON), "1:alice@bob");
    }

    proptest! {
        /// Two unordered pairs share a log key only when they are the same pair.
        #[test]
        fn person_keys_never_collide(a in "[a@\\\\b]{0,4}", b in "[a@\\\\b]{0,4}",
                                     c in "[a@\\\\b]{0,4}", d in "[a@\\\\b]{0,4}") {
            let same_pair = (a == c && b == d) || (a == d && b == c);
            prop_assert_eq!(
                log_key(&a, &b, CHANNEL_PERSON) == log_key(&c, &d, CHANNEL_PERSON),
                same_pair
            );
        }
    }
}
