//! Archive file names: `<cluster>-<UTC yyyymmddThhmmssZ>-<raft index>.tar.zst`, with the
//! detached checksum beside it as `<name>.sha256`. Retention reads the time back out of the
//! name (never from file times, which copies and restores change), and verification checks the
//! cluster and index in the name against the manifest.

use chrono::{DateTime, NaiveDateTime, Utc};
use std::path::{Path, PathBuf};

/// Suffix of every archive.
pub const SUFFIX: &str = ".tar.zst";
const TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// What an archive's file name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveName {
    pub cluster: String,
    pub created: DateTime<Utc>,
    pub index: u64,
}

impl ArchiveName {
    /// The file name.
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}-{}{SUFFIX}",
            self.cluster,
            self.created.format(TIME_FORMAT),
            self.index
        )
    }

    /// Parses a file name (not a path); None when it is not an archive name.
    pub fn parse(file_name: &str) -> Option<ArchiveName> {
        let stem = file_name.strip_suffix(SUFFIX)?;
        let (rest, index) = stem.rsplit_once('-')?;
        let (cluster, time) = rest.rsplit_once('-')?;
        if cluster.is_empty() || index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let created = NaiveDateTime::parse_from_str(time, TIME_FORMAT)
            .ok()?
            .and_utc();
        Some(ArchiveName {
            cluster: cluster.to_string(),
            created,
            index: index.parse().ok()?,
        })
    }

    /// Parses the file name of `path`.
    pub fn of_path(path: &Path) -> Option<ArchiveName> {
        ArchiveName::parse(path.file_name()?.to_str()?)
    }
}

/// `<archive>.sha256`.
pub fn checksum_path(archive: &Path) -> PathBuf {
    let mut s = archive.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn round_trips_with_dashes_in_the_cluster_name() {
        let n = ArchiveName {
            cluster: "im-prod-eu".into(),
            created: Utc.with_ymd_and_hms(2026, 12, 2, 3, 4, 5).unwrap(),
            index: 98765,
        };
        assert_eq!(n.file_name(), "im-prod-eu-20261202T030405Z-98765.tar.zst");
        assert_eq!(ArchiveName::parse(&n.file_name()), Some(n));
    }

    #[test]
    fn refuses_other_names() {
        for s in [
            "x.tar.zst",
            "im-20261202T030405Z-.tar.zst",
            "im-20261202T030405Z-12.tar.gz",
            "im-2026120T030405Z-12.tar.zst",
            "-20261202T030405Z-12.tar.zst",
            "im-20261202T030405Z-1a.tar.zst",
        ] {
            assert_eq!(ArchiveName::parse(s), None, "{s}");
        }
    }
}
