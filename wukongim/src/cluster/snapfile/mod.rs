//! The snapshot file: what a node writes under `rootDir/snapshots`, sends to followers, serves
//! at `GET /cluster/snapshot/download` and what `wukongim restore` reads. Written and read as a
//! stream (memory stays bounded by one row), and self-checking, so truncated or corrupt input is
//! refused before anything is replaced.
//!
//! # Format (version 4; integers little-endian)
//!
//! Version 2 adds the proposer-session rows (`Row::Session`, `Row::Reply`) after the other
//! tables, version 3 the uid-list rows (`Row::List`: black-, white- and system-uid lists) and
//! the command-message sync records (`Row::CmdSync`) after those; files of versions 1 and 2
//! (without them) are still read. Version 4 changes only `data_hash`: it is the data version
//! kept by the store (the multiset sum of the rows' hashes, `store/digest.rs`) instead of a
//! SHA-256 of the framed rows; older files are checked against their SHA-256.
//!
//! ```text
//! magic   "WKIMSNAP"
//! format  u32 = 3
//! hlen    u32, header: hlen bytes of JSON (server version, creation time, Raft snapshot meta)
//! rows    u32 len (> 0) · postcard(Row) — the IM tables, in the store's walk order
//! end     u32 0
//! trailer "WKSNEND!" · rows u64 · messages u64 · channels u64 · users u64
//!         · data_hash [32] (the data version: u128 LE sum of the row hashes, 16 zero bytes)
//!         · checksum [32] (SHA-256 of every byte of the file before it)
//! ```

mod read;
mod write;

pub use read::{read_info, SnapReader};
pub use write::SnapWriter;

use super::types::SnapshotMeta;
use crate::store::Counts;
use serde::{Deserialize, Serialize};

/// The file format this server writes (it reads every format from 1 up to this one).
pub const FORMAT: u32 = 4;
const MAGIC: &[u8; 8] = b"WKIMSNAP";
const END_MAGIC: &[u8; 8] = b"WKSNEND!";
/// Bytes of the trailer: magic, four counters, two hashes.
const TRAILER_LEN: u64 = 8 + 4 * 8 + 32 + 32;
/// Largest header accepted.
const MAX_HEADER: u32 = 1 << 20;

/// What the file header says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    /// Version of the server that wrote the file.
    pub server_version: String,
    /// Unix milliseconds when the snapshot was taken.
    pub created_unix_ms: u64,
    /// Raft snapshot metadata: last log id and membership.
    pub meta: SnapshotMeta,
}

/// What the trailer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    pub rows: u64,
    pub counts: Counts,
    pub data_hash: [u8; 32],
    pub checksum: [u8; 32],
}

/// Header and trailer of a file, and its size.
#[derive(Debug, Clone)]
pub struct Info {
    pub format: u32,
    pub header: Header,
    pub trailer: Trailer,
    pub len: u64,
}

impl Info {
    /// The data version (hex hash) of the state in the file.
    pub fn data_version(&self) -> String {
        crate::store::data_version_of(self.format, &self.trailer.data_hash)
    }

    /// Raft index and term of the last log entry the state includes (0, 0 when none).
    pub fn index_term(&self) -> (u64, u64) {
        self.header
            .meta
            .last_log_id
            .as_ref()
            .map(|l| (l.index, l.leader_id.term))
            .unwrap_or((0, 0))
    }

    /// The membership as `{"voters":[ids],"learners":[ids],"nodes":{"<id>":"host:port"}}`.
    pub fn membership_json(&self) -> serde_json::Value {
        let m = self.header.meta.last_membership.membership();
        let nodes: serde_json::Map<String, serde_json::Value> = m
            .nodes()
            .map(|(id, n)| (id.to_string(), n.addr.clone().into()))
            .collect();
        serde_json::json!({
            "voters": m.voter_ids().collect::<Vec<_>>(),
            "learners": m.learner_ids().collect::<Vec<_>>(),
            "nodes": nodes,
        })
    }
}

/// Why a snapshot file could not be written or was refused.
#[derive(Debug, thiserror::Error)]
pub enum SnapFileError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a wukongim snapshot (bad magic)")]
    BadMagic,
    #[error("snapshot format {0} is not supported (this server reads format {FORMAT})")]
    UnsupportedFormat(u32),
    #[error("snapshot is truncated ({0})")]
    Truncated(&'static str),
    #[error("snapshot is corrupt: {0}")]
    Corrupt(String),
    #[error("snapshot checksum mismatch: the file is damaged")]
    Checksum,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl From<SnapFileError> for std::io::Error {
    fn from(e: SnapFileError) -> Self {
        match e {
            SnapFileError::Io(e) => e,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

/// Snapshot data handed to openraft: an open snapshot file. The descriptor keeps the bytes
/// readable even after a newer snapshot replaced the file's name; readers use positional reads,
/// so any number of them can share it.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    pub file: std::sync::Arc<std::fs::File>,
    pub len: u64,
}

impl SnapshotFile {
    pub fn open(path: &std::path::Path) -> std::io::Result<SnapshotFile> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        Ok(SnapshotFile {
            file: std::sync::Arc::new(file),
            len,
        })
    }

    /// A reader of the bytes from `offset` on.
    pub fn reader(&self, offset: u64) -> PosReader {
        PosReader {
            file: self.file.clone(),
            pos: offset,
        }
    }
}

/// Reads a shared file at its own position (`pread`).
pub struct PosReader {
    file: std::sync::Arc<std::fs::File>,
    pos: u64,
}

impl std::io::Read for PosReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
