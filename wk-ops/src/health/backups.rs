//! The newest backup archive in `backup.dir`, for the backup-age check. Archives are named as
//! `wk-ops backup` writes them ([`crate::backup::name`]) and count only with their `.sha256`
//! sibling (written after the archive is complete); the time in the name is when it was taken.

use crate::backup::name::{checksum_path, ArchiveName};
use chrono::{DateTime, Utc};
use std::path::Path;

/// What `backup.dir` holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Newest {
    /// No complete archive of this cluster (or no directory yet).
    NoArchives,
    /// The newest complete archive.
    Archive { name: String, taken: DateTime<Utc> },
    /// The directory exists but cannot be read.
    Unreadable(String),
}

/// Scans `dir` for `cluster`'s archives.
pub fn newest(dir: &Path, cluster: &str) -> Newest {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Newest::NoArchives,
        Err(e) => return Newest::Unreadable(format!("cannot read {}: {e}", dir.display())),
    };
    let mut best: Option<(DateTime<Utc>, String)> = None;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = ArchiveName::of_path(&path).filter(|n| n.cluster == cluster) else {
            continue;
        };
        if !checksum_path(&path).is_file() {
            continue;
        }
        let file = name.file_name();
        if best
            .as_ref()
            .is_none_or(|(t, n)| (name.created, &file) > (*t, n))
        {
            best = Some((name.created, file));
        }
    }
    match best {
        Some((taken, name)) => Newest::Archive { name, taken },
        None => Newest::NoArchives,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_complete_archive_of_the_cluster_wins() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(newest(&d.path().join("missing"), "c"), Newest::NoArchives);
        let touch = |n: &str| std::fs::write(d.path().join(n), b"x").unwrap();
        touch("c-20261201T000000Z-10.tar.zst");
        touch("c-20261201T000000Z-10.tar.zst.sha256");
        touch("c-x-20261203T000000Z-10.tar.zst");
        touch("c-x-20261203T000000Z-10.tar.zst.sha256");
        touch("notes.txt");
        assert_eq!(newest(d.path(), "d"), Newest::NoArchives);
        // Newer but without its checksum: still being written.
        touch("c-20261202T000000Z-12.tar.zst");
        match newest(d.path(), "c") {
            Newest::Archive { name, taken } => {
                assert_eq!(name, "c-20261201T000000Z-10.tar.zst");
                assert_eq!(taken.to_rfc3339(), "2026-12-01T00:00:00+00:00");
            }
            other => panic!("{other:?}"),
        }
        touch("c-20261202T000000Z-12.tar.zst.sha256");
        match newest(d.path(), "c") {
            Newest::Archive { name, .. } => assert_eq!(name, "c-20261202T000000Z-12.tar.zst"),
            other => panic!("{other:?}"),
        }
    }
}
