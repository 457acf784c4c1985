//! The open database file as a swappable whole. Installing a snapshot builds the new state in a
//! new file beside the old one and swaps it in (rename + handle switch) instead of rewriting the
//! live file in place. Write transactions hold the shared side of a lock for their whole life and
//! the swap takes the exclusive side, so no write can land in a file that has been replaced;
//! reads clone the current handle and never wait for a swap (a read that began on the old file
//! keeps its consistent view of it until it ends).

use redb::{Database, WriteTransaction};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// Shared by every clone of a [`super::Store`].
pub(crate) struct Handle {
    /// The database file's path (the name a swap renames the new file to).
    path: PathBuf,
    current: Mutex<Arc<Database>>,
    /// Shared by write transactions, exclusive for a swap.
    writers: RwLock<()>,
    /// When the last durable commit through [`super::Store::commit`] ended.
    synced: Mutex<Instant>,
}

/// A write transaction on the current file; the file cannot be swapped while it lives.
pub(crate) struct Writing<'h> {
    // Dropped in this order: the transaction, then the file handle, then the lock.
    txn: WriteTransaction,
    _db: Arc<Database>,
    _shared: RwLockReadGuard<'h, ()>,
}

impl Deref for Writing<'_> {
    type Target = WriteTransaction;
    fn deref(&self) -> &WriteTransaction {
        &self.txn
    }
}

impl DerefMut for Writing<'_> {
    fn deref_mut(&mut self) -> &mut WriteTransaction {
        &mut self.txn
    }
}

impl Writing<'_> {
    pub fn commit(self) -> Result<(), redb::CommitError> {
        self.txn.commit()
    }
}

/// The exclusive side, held while a new file replaces the current one.
pub(crate) struct Swapping<'h> {
    handle: &'h Handle,
    _exclusive: RwLockWriteGuard<'h, ()>,
}

impl Swapping<'_> {
    /// The file being replaced (no write transaction is open on it).
    pub fn old(&self) -> Arc<Database> {
        self.handle.db()
    }

    /// Makes `db`, a complete and durable database at `tmp`, the current file: renames it over
    /// the current path (atomic), syncs the directory and switches the handle.
    /// Once the rename is done the handle is switched whatever follows: the name now belongs
    /// to the new file, and writes must never go to the unlinked old one.
    pub fn install(self, db: Database, tmp: &Path) -> std::io::Result<()> {
        std::fs::rename(tmp, &self.handle.path)?;
        *lock(&self.handle.current) = Arc::new(db);
        let dir = self.handle.path.parent().unwrap_or(Path::new("."));
        std::fs::File::open(dir)?.sync_all()
    }
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Locks `m`, ignoring poisoning (the guarded values stay valid across a panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Handle {
    pub fn new(path: PathBuf, db: Database) -> Handle {
        Handle {
            path,
            current: Mutex::new(Arc::new(db)),
            writers: RwLock::new(()),
            synced: Mutex::new(Instant::now()),
        }
    }

    /// Notes a durable commit.
    pub fn mark_synced(&self) {
        *lock(&self.synced) = Instant::now();
    }

    /// Whether `every` has passed since the last durable commit.
    pub fn sync_due(&self, every: Duration) -> bool {
        lock(&self.synced).elapsed() >= every
    }

    /// The current file, for reading.
    pub fn db(&self) -> Arc<Database> {
        lock(&self.current).clone()
    }

    /// Begins a write transaction on the current file.
    pub fn begin_write(&self) -> Result<Writing<'_>, redb::TransactionError> {
        let shared = self.writers.read().unwrap_or_else(|e| e.into_inner());
        let db = self.db();
        let txn = db.begin_write()?;
        Ok(Writing {
            txn,
            _db: db,
            _shared: shared,
        })
    }

    /// Waits for the open write transactions to end and keeps new ones out until the returned
    /// guard is dropped or installs a new file.
    pub fn swapping(&self) -> Swapping<'_> {
        Swapping {
            handle: self,
            _exclusive: self.writers.write().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// A fresh name beside the database file for a file being built to replace it.
    pub fn temp_path(&self) -> PathBuf {
        let n = TMP_SEQ.fetch_add(1, Relaxed);
        let dir = self.path.parent().unwrap_or(Path::new("."));
        dir.join(format!(
            "{}{}-{n}{TEMP_SUFFIX}",
            temp_prefix(&self.path),
            std::process::id()
        ))
    }
}

const TEMP_SUFFIX: &str = ".tmp";

fn temp_prefix(path: &Path) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    format!(".{name}.installing-")
}

/// Removes replacement files a crash left half-built beside `path`.
pub(crate) fn clean_temp(path: &Path) {
    let prefix = temp_prefix(path);
    crate::fsutil::remove_leftovers(
        path.parent().unwrap_or(Path::new(".")),
        |name| name.starts_with(&prefix) && name.ends_with(TEMP_SUFFIX),
        "a half-built database file",
    );
}
