//! Rendered files against an output directory: what would change (created, updated,
//! unchanged, stale), unified diffs, and atomic writes (temporary file in the same directory,
//! fsync, rename, fsync of the directory) so a crash never leaves a half-written config.

use super::{Kind, RenderedFile};
use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Prefix of our temporary files; such leftovers are never reported as stale.
const TMP_PREFIX: &str = ".wk-ops-";

/// What writing a file would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Unchanged,
    /// On disk in a directory render owns, but no longer rendered.
    Stale,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
            Change::Stale => "stale",
        })
    }
}

/// One file's planned change.
#[derive(Debug, Clone)]
pub struct Planned {
    pub path: String,
    pub change: Change,
    pub old: Option<String>,
    pub new: Option<String>,
}

impl Planned {
    pub fn changes(&self) -> bool {
        self.change != Change::Unchanged
    }

    /// A unified diff of old → new (empty when unchanged).
    pub fn diff(&self) -> String {
        if !self.changes() {
            return String::new();
        }
        let old = self.old.as_deref().unwrap_or("");
        let new = self.new.as_deref().unwrap_or("");
        let a = if self.old.is_some() {
            format!("a/{}", self.path)
        } else {
            "/dev/null".into()
        };
        let b = if self.new.is_some() {
            format!("b/{}", self.path)
        } else {
            "/dev/null".into()
        };
        similar::TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(3)
            .header(&a, &b)
            .to_string()
    }
}

/// Compares `files` with what is in `out`. Stale files are looked for in the directories of
/// `kinds` only.
pub fn plan(out: &Path, files: &[RenderedFile], kinds: &[Kind]) -> io::Result<Vec<Planned>> {
    let mut planned = Vec::new();
    let rendered: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    for f in files {
        let path = out.join(&f.path);
        let (change, old) = match std::fs::read(&path) {
            Ok(bytes) => {
                let old = String::from_utf8_lossy(&bytes).into_owned();
                let change = if bytes == f.contents.as_bytes() {
                    Change::Unchanged
                } else {
                    Change::Updated
                };
                (change, Some(old))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Change::Created, None),
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot read {}: {e}", path.display()),
                ))
            }
        };
        planned.push(Planned {
            path: f.path.clone(),
            change,
            old,
            new: Some(f.contents.clone()),
        });
    }
    for kind in kinds {
        let mut found = Vec::new();
        list_files(out, &out.join(kind.dir()), &mut found)?;
        for rel in found {
            if !rendered.contains(rel.as_str()) {
                let old = std::fs::read(out.join(&rel))
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).into_owned());
                planned.push(Planned {
                    path: rel,
                    change: Change::Stale,
                    old,
                    new: None,
                });
            }
        }
    }
    planned.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(planned)
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot list {}: {e}", dir.display()),
            ))
        }
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            list_files(root, &path, out)?;
        } else if !entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push(
                rel.components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/"),
            );
        }
    }
    Ok(())
}

/// Writes every created or updated file atomically; removes stale files when `prune`.
pub fn apply(out: &Path, planned: &[Planned], prune: bool) -> io::Result<()> {
    for p in planned {
        let path = out.join(&p.path);
        match (p.change, &p.new) {
            (Change::Created | Change::Updated, Some(new)) => write_atomic(&path, new.as_bytes())?,
            (Change::Stale, _) if prune => {
                std::fs::remove_file(&path).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot remove {}: {e}", path.display()))
                })?;
                if let Some(dir) = path.parent() {
                    sync_dir(dir)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same directory (mode 0644: rendered
/// files hold no secrets), fsyncs it, renames it over `path` and fsyncs the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let ctx = |what: &str, e: io::Error| {
        io::Error::new(e.kind(), format!("cannot {what} {}: {e}", path.display()))
    };
    let dir: PathBuf = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    std::fs::create_dir_all(&dir).map_err(|e| ctx("create the directory of", e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| ctx("create a temporary file for", e))?;
    tmp.write_all(bytes).map_err(|e| ctx("write", e))?;
    set_mode(tmp.as_file(), 0o644).map_err(|e| ctx("set permissions of", e))?;
    tmp.as_file().sync_all().map_err(|e| ctx("fsync", e))?;
    tmp.persist(path).map_err(|e| ctx("rename into", e.error))?;
    sync_dir(&dir)
}

#[cfg(unix)]
fn set_mode(f: &std::fs::File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &std::fs::File, _: u32) -> io::Result<()> {
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let d = std::fs::File::open(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", dir.display())))?;
        d.sync_all().map_err(|e| {
            io::Error::new(e.kind(), format!("cannot fsync {}: {e}", dir.display()))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, contents: &str) -> RenderedFile {
        RenderedFile {
            kind: Kind::Nodes,
            path: path.into(),
            contents: contents.into(),
        }
    }

    #[test]
    fn plan_apply_and_stale() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![
            file("nodes/1/wk.yaml", "a\n"),
            file("nodes/2/wk.yaml", "b\n"),
        ];
        let p = plan(dir.path(), &files, &[Kind::Nodes]).unwrap();
        assert!(p.iter().all(|p| p.change == Change::Created));
        apply(dir.path(), &p, false).unwrap();
        let mode = std::fs::metadata(dir.path().join("nodes/1/wk.yaml")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(mode.permissions().mode() & 0o777, 0o644);
        }
        let files = vec![file("nodes/1/wk.yaml", "a2\n")];
        let p = plan(dir.path(), &files, &[Kind::Nodes]).unwrap();
        let changes: Vec<_> = p.iter().map(|p| (p.path.as_str(), p.change)).collect();
        assert_eq!(
            changes,
            [
                ("nodes/1/wk.yaml", Change::Updated),
                ("nodes/2/wk.yaml", Change::Stale)
            ]
        );
        assert!(p[0].diff().contains("-a\n+a2\n"), "{}", p[0].diff());
        apply(dir.path(), &p, true).unwrap();
        assert!(!dir.path().join("nodes/2/wk.yaml").exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("nodes/1"))
            .unwrap()
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left behind");
    }
}
