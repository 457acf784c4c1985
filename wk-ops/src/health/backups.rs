//! The newest backup archive in `backup.dir`, for the backup-age check. Archives are named
//! `<cluster>-<UTC yyyymmddThhmmssZ>-<index>.tar.zst` and count only with their `.sha256`
//! sibling (written after the archive is complete); the time in the name is when it was taken.

use chrono::{DateTime, NaiveDateTime, Utc};
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
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(taken) = archive_time(&name, cluster) else {
            continue;
        };
        if !dir.join(format!("{name}.sha256")).is_file() {
            continue;
        }
        if best.as_ref().is_none_or(|(t, n)| (taken, &name) > (*t, n)) {
            best = Some((taken, name));
        }
    }
    match best {
        Some((taken, name)) => Newest::Archive { name, taken },
        None => Newest::NoArchives,
    }
}

/// The time in an archive name of `cluster`, or None if the name is not one.
pub fn archive_time(name: &str, cluster: &str) -> Option<DateTime<Utc>> {
    let rest = name.strip_prefix(cluster)?.strip_prefix('-')?;
    let rest = rest.strip_suffix(".tar.zst")?;
    let (stamp, index) = rest.split_once('-')?;
    if index.is_empty() || !index.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_names_are_parsed_and_others_ignored() {
        let t = archive_time("im-prod-20261202T030000Z-4711.tar.zst", "im-prod").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-02T03:00:00+00:00");
        for bad in [
            "im-prod-20261202T030000Z-4711.tar.zst.sha256",
            "im-prod-20261202T030000Z.tar.zst",
            "other-20261202T030000Z-1.tar.zst",
            "im-prod-2026-12-02-1.tar.zst",
            "im-prod-20261202T030000Z-x.tar.zst",
        ] {
            assert_eq!(archive_time(bad, "im-prod"), None, "{bad}");
        }
    }

    #[test]
    fn newest_complete_archive_wins() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(newest(&d.path().join("missing"), "c"), Newest::NoArchives);
        let touch = |n: &str| std::fs::write(d.path().join(n), b"x").unwrap();
        touch("c-20261201T000000Z-10.tar.zst");
        touch("c-20261201T000000Z-10.tar.zst.sha256");
        assert_eq!(newest(d.path(), "d"), Newest::NoArchives);
        // Newer but without its checksum: still being written.
        touch("c-20261202T000000Z-12.tar.zst");
        match newest(d.path(), "c") {
            Newest::Archive { name, .. } => assert_eq!(name, "c-20261201T000000Z-10.tar.zst"),
            other => panic!("{other:?}"),
        }
        touch("c-20261202T000000Z-12.tar.zst.sha256");
        match newest(d.path(), "c") {
            Newest::Archive { name, .. } => assert_eq!(name, "c-20261202T000000Z-12.tar.zst"),
            other => panic!("{other:?}"),
        }
    }
}
