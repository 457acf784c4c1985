//! `wk-ops backup verify` and `wk-ops backup --dry-run` through the binary, on archives written
//! by the library's own writer (no server needed): a good archive passes, every structural
//! mutation of it is refused (exit 1) with a message naming what is wrong, and the command line
//! takes both `backup INVENTORY` and `backup verify ARCHIVE`. Restores of real archives from a
//! live cluster are tested end to end in `tests/tests/ops_backup.rs`.

mod common;

use common::wk_ops;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use wk_ops::backup::archive::{ArchiveWriter, Compression};
use wk_ops::backup::manifest::{self, Manifest, Membership, RaftPosition, SourceNode};
use wk_ops::backup::name::{checksum_path, ArchiveName};
use wk_ops::node_api::Counts;

/// Writes a well-formed archive of `cluster` holding `snapshot`.
fn write_archive(dir: &Path, cluster: &str, created: &str, index: u64, snapshot: &[u8]) -> PathBuf {
    let when = chrono::DateTime::parse_from_rfc3339(created)
        .unwrap()
        .to_utc();
    let name = ArchiveName {
        cluster: cluster.into(),
        created: when,
        index,
    };
    let path = dir.join(name.file_name());
    let c = Compression {
        level: 3,
        threads: 2,
    };
    let mut w = ArchiveWriter::create(&path, c, when.timestamp() as u64).unwrap();
    w.append(manifest::SNAPSHOT, snapshot.len() as u64, snapshot)
        .unwrap();
    let m = Manifest {
        format_version: manifest::FORMAT_VERSION,
        cluster: cluster.into(),
        source_node: SourceNode {
            id: 1002,
            host: "127.0.0.12".into(),
        },
        raft: RaftPosition { index, term: 2 },
        membership: Membership {
            voters: vec![1001, 1002, 1003],
            learners: vec![],
            nodes: BTreeMap::new(),
        },
        data_version: "00ff".repeat(8),
        counts: Counts {
            messages: 3,
            channels: 1,
            users: 2,
        },
        members: w.members().to_vec(),
        wukongim_version: "0.1.0".into(),
        snapshot_format: 1,
        created: created.into(),
        wk_ops_version: "0.1.0".into(),
        compression: manifest::Compression {
            algorithm: manifest::Algorithm::Zstd,
            level: 3,
        },
    };
    w.commit(&m).unwrap();
    path
}

fn snapshot_bytes() -> Vec<u8> {
    // Compressible but not trivially: a counter pattern with some noise.
    (0..400_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8 ^ (i / 1000) as u8)
        .collect()
}

#[test]
fn a_good_archive_verifies_and_matches_sha256sum() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_archive(
        dir.path(),
        "loop",
        "2026-12-02T10:00:00Z",
        4242,
        &snapshot_bytes(),
    );
    assert_eq!(
        a.file_name().unwrap().to_str().unwrap(),
        "loop-20261202T100000Z-4242.tar.zst"
    );
    let r = wk_ops(dir.path(), &["backup", "verify", a.to_str().unwrap()]).expect(0);
    assert!(r.stdout.starts_with("ok "), "{}", r.stdout);
    assert!(r.stdout.contains("raft index 4242 term 2"), "{}", r.stdout);
    // The detached checksum is in sha256sum's format.
    if let Some(sha256sum) = wk_testkit::tool("sha256sum", "coreutils") {
        let out = std::process::Command::new(sha256sum)
            .arg("-c")
            .arg(checksum_path(&a).file_name().unwrap())
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    // And plain tar + zstd read it.
    if let Some(tar) = wk_testkit::tool("tar", "tar") {
        if wk_testkit::tool("zstd", "zstd").is_some() {
            let out = std::process::Command::new(tar)
                .args(["--zstd", "-tvf"])
                .arg(&a)
                .output()
                .unwrap();
            let listing = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{out:?}");
            assert!(
                listing.contains("snapshot.bin") && listing.contains("manifest.json"),
                "{listing}"
            );
        }
    }
}

#[test]
fn every_structural_mutation_is_refused_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_archive(
        dir.path(),
        "loop",
        "2026-12-02T10:00:00Z",
        4242,
        &snapshot_bytes(),
    );
    let mutations = wk_testkit::mutations::mutate(&a, &dir.path().join("mutations"));
    let structural: Vec<_> = mutations.iter().filter(|m| m.structural).collect();
    assert!(
        structural.len() >= 20,
        "only {} structural mutations",
        structural.len()
    );
    for m in structural {
        let r = wk_ops(
            dir.path(),
            &["backup", "verify", m.archive.to_str().unwrap()],
        );
        assert_eq!(r.code, 1, "{}: {}{}", m.name, r.stdout, r.stderr);
        assert!(
            r.stderr.contains(m.expect),
            "{}: expected `{}` in:\n{}",
            m.name,
            m.expect,
            r.stderr
        );
        assert!(r.stderr.contains("refused"), "{}: {}", m.name, r.stderr);
        eprintln!("{}: {}", m.name, r.stderr.trim());
    }
    // The original is untouched by all this.
    wk_ops(dir.path(), &["backup", "verify", a.to_str().unwrap()]).expect(0);
}

fn inventory(dir: &Path, backup_dir: &Path) -> PathBuf {
    let fleet = wk_testkit::LoopbackFleet::new(dir, 1).unwrap();
    let extra = format!(
        "backup:\n  dir: {}\n  onCalendar: daily\n  keep: {{ last: 2, daily: 3, weekly: 1 }}\n",
        backup_dir.display()
    );
    fleet.write_inventory(&extra).unwrap()
}

#[test]
fn dry_run_lists_what_retention_would_remove_and_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let snap = b"tiny snapshot".to_vec();
    for (day, hour) in [(1, 3), (1, 15), (2, 3), (3, 3), (4, 3), (4, 15)] {
        let created = format!("2026-11-{day:02}T{hour:02}:00:00Z");
        write_archive(&backups, "loopback", &created, 100 + day * 10 + hour, &snap);
    }
    // Another cluster's archive and an unfinished one are never touched.
    write_archive(&backups, "elsewhere", "2026-11-01T00:00:00Z", 1, &snap);
    std::fs::write(
        backups.join("loopback-20261101T000000Z-1.tar.zst"),
        b"partial",
    )
    .unwrap();
    let inv = inventory(dir.path(), &backups);
    let before = std::fs::read_dir(&backups).unwrap().count();
    for form in [
        vec!["backup", inv.to_str().unwrap(), "--dry-run"],
        vec!["backup", "--inventory", inv.to_str().unwrap(), "--dry-run"],
    ] {
        let r = wk_ops(dir.path(), &form).expect(0);
        let line = |name: &str| {
            r.stdout
                .lines()
                .find(|l| l.contains(name))
                .unwrap_or_else(|| panic!("{name} not listed:\n{}", r.stdout))
                .to_string()
        };
        // last 2: Nov 4 15:00, Nov 4 03:00; daily 3: Nov 4, 3, 2; weekly 1: W45 (Nov 2–8).
        assert!(line("20261104T150000Z").contains("keep"));
        assert!(line("20261104T030000Z").contains("keep"));
        assert!(line("20261103T030000Z").contains("daily 2026-11-03"));
        assert!(line("20261102T030000Z").contains("daily 2026-11-02"));
        assert!(line("20261101T150000Z").contains("would remove"));
        assert!(line("20261101T030000Z").contains("would remove"));
        assert!(line("loopback-20261101T000000Z-1").contains("not verified"));
        assert!(!r.stdout.contains("elsewhere"), "{}", r.stdout);
        assert!(
            r.stdout.contains("2 archive(s) would be removed"),
            "{}",
            r.stdout
        );
    }
    assert_eq!(std::fs::read_dir(&backups).unwrap().count(), before);
}

#[test]
fn command_line_shapes() {
    let dir = tempfile::tempdir().unwrap();
    // No inventory and no subcommand: a usage error.
    let r = wk_ops(dir.path(), &["backup"]).expect(2);
    assert!(r.stderr.contains("INVENTORY"), "{}", r.stderr);
    // verify needs its archive.
    wk_ops(dir.path(), &["backup", "verify"]).expect(2);
    // A missing archive is a failed check naming the checksum file.
    let r = wk_ops(
        dir.path(),
        &["backup", "verify", "nope-20261202T000000Z-1.tar.zst"],
    )
    .expect(1);
    assert!(
        r.stderr.contains("nope-20261202T000000Z-1.tar.zst.sha256"),
        "{}",
        r.stderr
    );
    // Restore never proceeds unasked when nobody can be asked.
    let inv = inventory(dir.path(), &dir.path().join("b"));
    let r = wk_ops(dir.path(), &["restore", inv.to_str().unwrap(), "x.tar.zst"]).expect(2);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
}
