//! The follower side of a streamed snapshot: chunks are written at their offset into one file
//! under `rootDir/snapshots` (memory holds one chunk), a chunk that does not continue what is
//! held is answered with the held length so the leader resumes there, and the complete file is
//! handed to openraft's install.

use super::messages::{ChunkAck, SnapshotChunk};
use super::snapfile::SnapshotFile;
use super::snapshots::SnapshotDir;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Mutex;

/// One transfer in progress.
struct Incoming {
    transfer: String,
    total: u64,
    held: u64,
    path: PathBuf,
    file: Arc<File>,
}

/// Receives at most one snapshot at a time (a new transfer replaces an unfinished one).
pub struct Receiver {
    dir: SnapshotDir,
    current: Mutex<Option<Incoming>>,
}

impl Receiver {
    pub fn new(dir: SnapshotDir) -> Receiver {
        Receiver {
            dir,
            current: Mutex::new(None),
        }
    }

    /// Stores one chunk (when it continues the transfer) and says how much is held.
    pub async fn chunk(&self, c: SnapshotChunk) -> Result<ChunkAck, String> {
        let mut cur = self.current.lock().await;
        let same = cur
            .as_ref()
            .is_some_and(|i| i.transfer == c.transfer && i.total == c.total);
        if !same {
            if c.offset != 0 {
                return Ok(ChunkAck { held: 0 });
            }
            if let Some(old) = cur.take() {
                let _ = std::fs::remove_file(&old.path);
            }
            let path = self.dir.temp_path("receiving");
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            tracing::info!(transfer = %c.transfer, bytes = c.total, "raft snapshot transfer started");
            *cur = Some(Incoming {
                transfer: c.transfer.clone(),
                total: c.total,
                held: 0,
                path,
                file: Arc::new(file),
            });
        }
        let Some(inc) = cur.as_mut() else {
            return Ok(ChunkAck { held: 0 });
        };
        if c.offset != inc.held || c.data.is_empty() {
            return Ok(ChunkAck { held: inc.held });
        }
        let end = inc.held + c.data.len() as u64;
        if end > inc.total {
            return Err(format!(
                "snapshot chunk ends at {end}, beyond the announced {} bytes",
                inc.total
            ));
        }
        let (file, at) = (inc.file.clone(), inc.held);
        tokio::task::spawn_blocking(move || file.write_all_at(&c.data, at))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("{}: {e}", inc.path.display()))?;
        inc.held = end;
        Ok(ChunkAck { held: end })
    }

    /// The complete file of `transfer`, ready to install (its name is removed: the open file
    /// stays readable until dropped).
    pub async fn take(&self, transfer: &str) -> Result<SnapshotFile, String> {
        let mut cur = self.current.lock().await;
        match cur.take() {
            Some(inc) if inc.transfer == transfer && inc.held == inc.total => {
                let _ = std::fs::remove_file(&inc.path);
                Ok(SnapshotFile {
                    file: inc.file,
                    len: inc.total,
                })
            }
            other => {
                let held = other
                    .as_ref()
                    .map(|i| (i.transfer.clone(), i.held, i.total));
                *cur = other;
                Err(format!(
                    "snapshot transfer {transfer} is not complete here (holding {held:?})"
                ))
            }
        }
    }
}
