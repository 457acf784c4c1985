//! The resume file of a rolling restart: which nodes are done, so `--resume` continues where a
//! stopped roll left off. Written atomically (temp file, fsync, rename) after every node.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a roll has done so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollState {
    /// The cluster name of the inventory (a resume file of another cluster is refused).
    pub cluster: String,
    /// `rolling-restart` or `upgrade`.
    pub operation: String,
    /// The nodes selected when the roll started.
    pub nodes: Vec<u64>,
    /// Nodes restarted and caught up, in order.
    pub done: Vec<u64>,
    /// Where and why the roll stopped, if it did.
    pub stopped: Option<Stopped>,
}

impl RollState {
    /// The selected nodes not yet done, in selection order.
    pub fn remaining(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .copied()
            .filter(|id| !self.done.contains(id))
            .collect()
    }
}

/// Where a roll stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopped {
    pub node: u64,
    pub reason: String,
}

/// Reading or writing the resume file failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the resume file {file}: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("the resume file {file} is not valid ({reason}); remove it to start over")]
    Invalid { file: PathBuf, reason: String },
    #[error("cannot write the resume file {file}: {source}")]
    Write {
        file: PathBuf,
        source: std::io::Error,
    },
}

/// The default resume file: `.wk-ops-<operation>.json` beside the inventory.
pub fn default_path(inventory: &Path, operation: &str) -> PathBuf {
    let dir = inventory
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    dir.join(format!(".wk-ops-{operation}.json"))
}

/// The state in `file`, or None when there is none.
pub fn load(file: &Path) -> Result<Option<RollState>, StateError> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                file: file.into(),
                source,
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| StateError::Invalid {
            file: file.into(),
            reason: e.to_string(),
        })
}

/// Writes `state` to `file` atomically.
pub fn save(file: &Path, state: &RollState) -> Result<(), StateError> {
    let err = |source| StateError::Write {
        file: file.into(),
        source,
    };
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    let text = serde_json::to_string_pretty(state).expect("the state serializes");
    tmp.write_all(text.as_bytes()).map_err(err)?;
    tmp.write_all(b"\n").map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(file).map_err(|e| err(e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes the resume file (the roll finished).
pub fn clear(file: &Path) -> Result<(), StateError> {
    match std::fs::remove_file(file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StateError::Write {
            file: file.into(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.json");
        assert_eq!(load(&f).unwrap(), None);
        let s = RollState {
            cluster: "c".into(),
            operation: "rolling-restart".into(),
            nodes: vec![1, 2, 3],
            done: vec![2],
            stopped: Some(Stopped {
                node: 3,
                reason: "x".into(),
            }),
        };
        save(&f, &s).unwrap();
        assert_eq!(load(&f).unwrap(), Some(s));
        std::fs::write(&f, "{").unwrap();
        assert!(matches!(load(&f), Err(StateError::Invalid { .. })));
        clear(&f).unwrap();
        clear(&f).unwrap();
    }
}
