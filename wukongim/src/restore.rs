//! `wukongim restore --config WK.yaml --snapshot FILE [--force]`: offline restore of one node.
//! Builds a fresh store in `rootDir` holding the snapshot's IM state, an empty Raft log that
//! starts after the snapshot's index and the membership of `cluster.initNodes` (all voters), so
//! a cluster whose every node was restored this way forms again without initializing and serves
//! the data at once. The store is built under a temporary name and renamed into place only when
//! the whole snapshot checked out: a corrupt or truncated file leaves nothing behind.

use crate::cluster::log_store::seed_after_snapshot;
use crate::cluster::snapfile::{Info, SnapFileError, SnapReader, SnapshotFile};
use crate::cluster::snapshots::{SnapshotDir, LAST_APPLIED, MEMBERSHIP};
use crate::cluster::types::{to_bytes, StoredMembership};
use crate::config::Config;
use crate::store::{Counts, Store, StoreError, DB_FILE, RAFT_LOG_DIR};
use openraft::{BasicNode, Membership};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Why a restore was refused or failed. Every message names the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("snapshot {path}: {source}")]
    Snapshot {
        path: PathBuf,
        source: SnapFileError,
    },
    #[error("{0} is in use by a running node: stop the node first")]
    Running(PathBuf),
    #[error("rootDir {0} already holds data ({DB_FILE}): move it aside first, or pass --force to replace it")]
    HasData(PathBuf),
    #[error("cluster.nodeId {id} is not one of cluster.initNodes: the restored node would not be a member")]
    NotAMember { id: u64 },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("restored state in {path} does not match the snapshot's data version (store {store}, snapshot {snapshot})")]
    Mismatch {
        path: PathBuf,
        store: String,
        snapshot: String,
    },
}

/// What `wukongim restore` prints (one line of JSON).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    pub index: u64,
    pub term: u64,
    pub data_version: String,
    pub counts: Counts,
}

fn io_at(path: &Path) -> impl Fn(std::io::Error) -> RestoreError + '_ {
    move |e| RestoreError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn store_at(path: &Path) -> impl Fn(StoreError) -> RestoreError + '_ {
    move |e| match e {
        StoreError::Locked(p) => RestoreError::Running(p),
        other => RestoreError::Io {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    }
}

/// Restores `snapshot` as the state of the node `config` describes (the node must be stopped).
pub fn restore(config: &Config, snapshot: &Path, force: bool) -> Result<Restored, RestoreError> {
    let snap_err = |source| RestoreError::Snapshot {
        path: snapshot.to_path_buf(),
        source,
    };
    let me = config.cluster.node_id;
    let members = config.init_members();
    if !members.iter().any(|n| n.id == me) {
        return Err(RestoreError::NotAMember { id: me });
    }
    let file = SnapshotFile::open(snapshot).map_err(|e| snap_err(e.into()))?;
    let root = &config.root_dir;
    let db = root.join(DB_FILE);
    if db.exists() {
        // Opening takes the database lock: fails while the node runs.
        drop(redb::Database::open(&db).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => RestoreError::Running(db.clone()),
            other => RestoreError::Io {
                path: db.clone(),
                message: other.to_string(),
            },
        })?);
        if !force {
            return Err(RestoreError::HasData(root.clone()));
        }
    }
    std::fs::create_dir_all(root).map_err(io_at(root))?;
    let tmp = root.join(format!(".{DB_FILE}.restoring-{}", std::process::id()));
    let res = build(&tmp, &file, &members, me).map_err(|e| match e {
        Built::Snap(e) => snap_err(e),
        Built::Other(e) => e,
    });
    let (info, restored) = match res {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    // Files before format 4 name their rows' SHA-256 (checked while reading), not the version.
    if info.format >= crate::store::SUM_FORMAT && restored.hash != info.data_version() {
        let _ = std::fs::remove_file(&tmp);
        return Err(RestoreError::Mismatch {
            path: tmp,
            store: restored.hash,
            snapshot: info.data_version(),
        });
    }
    // The old snapshot (if any) describes the replaced state.
    SnapshotDir::new(root.join("snapshots"))
        .and_then(|d| d.remove_current())
        .map_err(io_at(root))?;
    // The old log continues the replaced state; the restored one starts after the snapshot.
    let log = root.join(RAFT_LOG_DIR);
    if log.exists() {
        std::fs::remove_dir_all(&log).map_err(io_at(&log))?;
    }
    std::fs::rename(&tmp, &db).map_err(io_at(&db))?;
    std::fs::File::open(root)
        .and_then(|d| d.sync_all())
        .map_err(io_at(root))?;
    let (index, term) = info.index_term();
    Ok(Restored {
        index,
        term,
        data_version: restored.hash,
        counts: restored.counts,
    })
}

enum Built {
    Snap(SnapFileError),
    Other(RestoreError),
}

/// Builds the restored database at `tmp` and reads back its data version.
fn build(
    tmp: &Path,
    file: &SnapshotFile,
    members: &[crate::config::NodeSpec],
    me: u64,
) -> Result<(Info, crate::store::DataVersion), Built> {
    let _ = std::fs::remove_file(tmp);
    let store = Store::open_file(tmp).map_err(|e| Built::Other(store_at(tmp)(e)))?;
    let voters: BTreeSet<u64> = members.iter().map(|n| n.id).collect();
    let nodes: BTreeMap<u64, BasicNode> = members
        .iter()
        .map(|n| (n.id, BasicNode::new(&n.addr)))
        .collect();
    let info = store
        .replace_state(|sink| {
            let reader = SnapReader::new(file.reader(0))?;
            let Some(last) = reader.header.meta.last_log_id else {
                return Err(SnapFileError::Corrupt("no applied Raft log id".into()));
            };
            let info = reader.rows(sink)?;
            let membership = Membership::new(vec![voters], nodes)
                .map_err(|e| SnapFileError::Corrupt(format!("cluster.initNodes: {e}")))?;
            let stored = StoredMembership::new(Some(last), membership);
            let meta = vec![
                (LAST_APPLIED, to_bytes(&last)),
                (MEMBERSHIP, to_bytes(&stored)),
            ];
            Ok(((info, last), meta))
        })
        .map_err(Built::Snap)?;
    let (info, last) = info;
    seed_after_snapshot(&store, &last, me).map_err(|e| Built::Other(io_at(tmp)(e)))?;
    let (version, _) = store
        .version(LAST_APPLIED)
        .map_err(|e| Built::Other(store_at(tmp)(e)))?;
    Ok((info, version))
}
