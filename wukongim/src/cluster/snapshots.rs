//! The node's snapshot directory (`rootDir/snapshots`): building the current snapshot file by
//! streaming one redb read transaction (writers keep going meanwhile), finding it again, and
//! installing a snapshot file into the store in one pass that checks, installs and keeps a copy
//! as the new current snapshot.

use super::snapfile::{
    read_info, Header, Info, SnapFileError, SnapReader, SnapWriter, SnapshotFile,
};
use super::types::{from_bytes, to_bytes, LogId, SnapshotMeta, StoredMembership};
use crate::store::{walk_rows, Store};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// State-machine metadata key of the last applied log id.
pub const LAST_APPLIED: &str = "last_applied";
/// State-machine metadata key of the last applied membership.
pub const MEMBERSHIP: &str = "last_membership";

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Where snapshot files live.
#[derive(Debug, Clone)]
pub struct SnapshotDir {
    dir: PathBuf,
    /// The SHA-256 of the whole file of the last snapshot built here, keyed by its trailer
    /// checksum (so it is only announced for the very file it belongs to).
    built_sha256: Arc<Mutex<Option<BuiltSha>>>,
}

/// A built file's trailer checksum and the SHA-256 of the whole file.
type BuiltSha = ([u8; 32], [u8; 32]);

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A new private file for writing (and reading back).
fn create_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Makes `tmp` durable under the name `path`.
fn publish(file: &File, tmp: &Path, path: &Path) -> std::io::Result<()> {
    file.sync_all()?;
    std::fs::rename(tmp, path)?;
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

impl SnapshotDir {
    pub fn new(dir: PathBuf) -> std::io::Result<SnapshotDir> {
        std::fs::create_dir_all(&dir)?;
        Ok(SnapshotDir {
            dir,
            built_sha256: Arc::default(),
        })
    }

    /// Removes temporary files a crash left behind (half-built or half-received snapshots).
    pub fn clean_temp(&self) {
        crate::fsutil::remove_leftovers(
            &self.dir,
            |name| name.starts_with('.') && name.ends_with(".tmp"),
            "a snapshot temp file",
        );
    }

    /// The current snapshot file.
    pub fn current_path(&self) -> PathBuf {
        self.dir.join("current.snap")
    }

    /// A fresh temporary name in the directory.
    pub fn temp_path(&self, what: &str) -> PathBuf {
        let n = TMP_SEQ.fetch_add(1, Relaxed);
        self.dir
            .join(format!(".{what}-{}-{n}.tmp", std::process::id()))
    }

    /// Streams the store's applied state into a new current snapshot.
    pub fn build(&self, store: &Store) -> Result<(Info, SnapshotFile), SnapFileError> {
        let txn = store.read_txn()?;
        let vals = Store::sm_meta_in(&txn, &[LAST_APPLIED, MEMBERSHIP])?;
        let meta = SnapshotMeta {
            last_log_id: vals[0].as_deref().map(from_bytes::<LogId>).transpose()?,
            last_membership: vals[1]
                .as_deref()
                .map(from_bytes::<StoredMembership>)
                .transpose()?
                .unwrap_or_default(),
        };
        let header = Header {
            server_version: env!("CARGO_PKG_VERSION").to_string(),
            created_unix_ms: unix_ms(),
            meta,
        };
        let tmp = self.temp_path("building");
        let res = (|| {
            let started = std::time::Instant::now();
            let mut w = SnapWriter::new(create_private(&tmp)?, &header)?;
            walk_rows(&txn, &mut |row| w.row(row))?;
            let (file, trailer, len, whole) = w.finish()?;
            let written = started.elapsed();
            let path = self.current_path();
            publish(&file, &tmp, &path)?;
            *self.built_sha256.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((trailer.checksum, whole));
            tracing::info!(
                bytes = len,
                write_ms = written.as_millis() as u64,
                sync_ms = (started.elapsed() - written).as_millis() as u64,
                "snapshot file built"
            );
            let info = Info {
                format: super::snapfile::FORMAT,
                header,
                trailer,
                len,
            };
            Ok((
                info,
                SnapshotFile {
                    file: file.into(),
                    len,
                },
            ))
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }

    /// The current snapshot and what its header and trailer say; `None` when there is none.
    /// A file this server cannot read (another format, damaged) counts as none: the state
    /// is in the store, and the next build replaces it.
    pub fn current(&self) -> Result<Option<(Info, SnapshotFile)>, SnapFileError> {
        let path = self.current_path();
        let snap = match SnapshotFile::open(&path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match read_info(&mut &*snap.file) {
            Ok(info) => Ok(Some((info, snap))),
            Err(SnapFileError::Io(e)) => Err(SnapFileError::Io(e)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable snapshot file");
                Ok(None)
            }
        }
    }

    /// The SHA-256 of the whole file described by `info`, when this process built that file
    /// (else unknown without reading it all).
    pub fn file_sha256(&self, info: &Info) -> Option<[u8; 32]> {
        let known = *self.built_sha256.lock().unwrap_or_else(|e| e.into_inner());
        known
            .filter(|(checksum, _)| *checksum == info.trailer.checksum)
            .map(|(_, whole)| whole)
    }

    /// Installs `snap` into `store` in one pass: reads and checks it, replaces the IM state
    /// with its rows and `meta`'s applied id and membership (committed only if the whole file
    /// checked out), and keeps the bytes as the new current snapshot.
    pub fn install(
        &self,
        store: &Store,
        snap: &SnapshotFile,
        meta: &SnapshotMeta,
    ) -> Result<(Info, SnapshotFile), SnapFileError> {
        let tmp = self.temp_path("installing");
        let res = (|| {
            let copy = create_private(&tmp)?;
            let mut tee = Tee {
                input: snap.reader(0),
                copy: std::io::BufWriter::with_capacity(256 << 10, &copy),
            };
            let info = store.replace_state(|sink| {
                let info = SnapReader::new(&mut tee)?.rows(sink)?;
                let mut sm = vec![(MEMBERSHIP, to_bytes(&meta.last_membership))];
                if let Some(l) = &meta.last_log_id {
                    sm.push((LAST_APPLIED, to_bytes(l)));
                }
                Ok::<_, SnapFileError>((info, sm))
            })?;
            tee.copy.flush()?;
            drop(tee);
            publish(&copy, &tmp, &self.current_path())?;
            let len = info.len;
            Ok((
                info,
                SnapshotFile {
                    file: copy.into(),
                    len,
                },
            ))
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }

    /// Removes the current snapshot (it describes a state the store no longer holds).
    pub fn remove_current(&self) -> std::io::Result<()> {
        match std::fs::remove_file(self.current_path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Copies everything read through it.
struct Tee<R: Read, W: Write> {
    input: R,
    copy: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.input.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}
