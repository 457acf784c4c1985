//! Which archives to keep: the newest `last`, the newest of each of the last `daily` days that
//! have an archive, and the newest of each of the last `weekly` ISO weeks that have one (days
//! and weeks in UTC, as in the file names). The newest verified archive is always kept, and
//! archives of other clusters or without their `.sha256` (unfinished or foreign) are never
//! touched. A pure function of the directory listing, so a month of archives is a unit test.

use super::name::{checksum_path, ArchiveName};
use chrono::{Datelike, NaiveDate};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Retention counts (`--keep-last/--keep-daily/--keep-weekly`, defaults from `backup.keep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub last: u32,
    pub daily: u32,
    pub weekly: u32,
}

/// One archive found in the backup directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub path: PathBuf,
    pub name: ArchiveName,
    /// Its `.sha256` exists (wk-ops writes it only after the archive is complete).
    pub verified: bool,
}

/// The decision for one archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub path: PathBuf,
    /// Why it stays (`last`, `daily 2026-12-01`, `weekly 2026-W48`, `newest verified`,
    /// `not verified`); empty when it goes.
    pub reasons: Vec<String>,
}

impl Decision {
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// Lists the archives of `cluster` in `dir`, newest first.
pub fn scan(dir: &Path, cluster: &str) -> std::io::Result<Vec<Candidate>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = ArchiveName::of_path(&path) else {
            continue;
        };
        if name.cluster != cluster || !path.is_file() {
            continue;
        }
        let verified = checksum_path(&path).is_file();
        out.push(Candidate {
            path,
            name,
            verified,
        });
    }
    sort_newest_first(&mut out);
    Ok(out)
}

fn sort_newest_first(c: &mut [Candidate]) {
    c.sort_by(|a, b| {
        (b.name.created, b.name.index, &b.path).cmp(&(a.name.created, a.name.index, &a.path))
    });
}

/// Decides for every candidate (in the order given back: newest first).
pub fn plan(mut candidates: Vec<Candidate>, policy: Policy) -> Vec<Decision> {
    sort_newest_first(&mut candidates);
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); candidates.len()];
    for (i, c) in candidates.iter().enumerate() {
        if !c.verified {
            reasons[i].push("not verified (no .sha256): left alone".into());
        }
    }
    let verified: Vec<usize> = (0..candidates.len())
        .filter(|&i| candidates[i].verified)
        .collect();
    if let Some(&newest) = verified.first() {
        reasons[newest].push("newest verified".into());
    }
    for &i in verified.iter().take(policy.last as usize) {
        reasons[i].push("last".into());
    }
    keep_per_bucket(&candidates, &verified, policy.daily, &mut reasons, |d| {
        format!("daily {d}")
    });
    keep_per_bucket(&candidates, &verified, policy.weekly, &mut reasons, |d| {
        let w = d.iso_week();
        format!("weekly {}-W{:02}", w.year(), w.week())
    });
    candidates
        .into_iter()
        .zip(reasons)
        .map(|(c, reasons)| Decision {
            path: c.path,
            reasons,
        })
        .collect()
}

/// Keeps the newest archive of each of the `n` newest buckets (days or weeks) that have one.
fn keep_per_bucket(
    candidates: &[Candidate],
    verified: &[usize],
    n: u32,
    reasons: &mut [Vec<String>],
    bucket: impl Fn(NaiveDate) -> String,
) {
    let mut seen = BTreeSet::new();
    for &i in verified {
        if seen.len() >= n as usize {
            break;
        }
        let b = bucket(candidates[i].name.created.date_naive());
        if seen.insert(b.clone()) {
            reasons[i].push(b);
        }
    }
}

/// Removes the archives the plan lets go, with their `.sha256`; returns what was removed.
pub fn apply(decisions: &[Decision]) -> std::io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for d in decisions.iter().filter(|d| !d.keep()) {
        std::fs::remove_file(&d.path)?;
        match std::fs::remove_file(checksum_path(&d.path)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        removed.push(d.path.clone());
    }
    if let Some(d) = decisions.first() {
        super::archive::sync_dir(&d.path)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    fn month() -> Vec<Candidate> {
        // Two archives a day (03:00 and 15:00 UTC) for the 30 days of November 2026.
        let start = Utc.with_ymd_and_hms(2026, 11, 1, 3, 0, 0).unwrap();
        (0..60)
            .map(|k| {
                let created = start + Duration::hours(12 * k);
                let name = ArchiveName {
                    cluster: "im".into(),
                    created,
                    index: 1000 + k as u64,
                };
                Candidate {
                    path: PathBuf::from(name.file_name()),
                    name,
                    verified: true,
                }
            })
            .collect()
    }

    fn kept(decisions: &[Decision]) -> Vec<String> {
        decisions
            .iter()
            .filter(|d| d.keep())
            .map(|d| d.path.display().to_string())
            .collect()
    }

    #[test]
    fn a_month_keeps_exactly_the_policy() {
        let d = plan(
            month(),
            Policy {
                last: 3,
                daily: 7,
                weekly: 4,
            },
        );
        // last 3: Nov 30 15:00, Nov 30 03:00, Nov 29 15:00. Daily 7: the 15:00 archive of
        // Nov 24–30. Weekly 4 (ISO weeks, Monday first): W48 (Nov 23–29) → Nov 29 15:00,
        // W49 starts Nov 30 → Nov 30 15:00, W47 → Nov 22 15:00, W46 → Nov 15 15:00.
        assert_eq!(
            kept(&d),
            [
                "im-20261130T150000Z-1059.tar.zst",
                "im-20261130T030000Z-1058.tar.zst",
                "im-20261129T150000Z-1057.tar.zst",
                "im-20261128T150000Z-1055.tar.zst",
                "im-20261127T150000Z-1053.tar.zst",
                "im-20261126T150000Z-1051.tar.zst",
                "im-20261125T150000Z-1049.tar.zst",
                "im-20261124T150000Z-1047.tar.zst",
                "im-20261122T150000Z-1043.tar.zst",
                "im-20261115T150000Z-1029.tar.zst",
            ]
        );
        assert_eq!(d.len(), 60);
        let newest = &d[0];
        assert!(newest.reasons.contains(&"newest verified".to_string()));
        assert!(newest.reasons.contains(&"weekly 2026-W49".to_string()));
    }

    #[test]
    fn zero_policy_still_keeps_the_newest_verified_and_unverified_ones() {
        let mut c = month();
        c[59].verified = false; // the newest is unfinished
        c[10].verified = false;
        let d = plan(
            c,
            Policy {
                last: 0,
                daily: 0,
                weekly: 0,
            },
        );
        assert_eq!(
            kept(&d),
            [
                "im-20261130T150000Z-1059.tar.zst",
                "im-20261130T030000Z-1058.tar.zst",
                "im-20261106T030000Z-1010.tar.zst",
            ]
        );
    }
}
