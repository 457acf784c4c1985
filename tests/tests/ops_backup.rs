//! `wk-ops backup`, `backup verify --restore-test` and `wk-ops restore` against a real 3-node
//! loopback cluster (issue 12). The fleet is rendered by `wk-ops render` from one inventory whose
//! service commands drive the nodes through `tests/supervisor/wk-svc` (local nodes, no SSH),
//! exactly as restore drives them in production through systemd.
//!
//! - Round trip: 10,000 messages over 50 channels (HTTP, concurrently), a backup taken by the
//!   rendered `wk-ops-backup.service` ExecStart while a TCP writer keeps writing, a restore
//!   drill, every data directory wiped, `wk-ops restore`; then every message acknowledged before
//!   the backup is on every node with its messageSeq, and the cluster takes new writes.
//! - Damaged archives: every mutation from `wk_testkit::mutations` is refused by `wk-ops
//!   restore` naming what is wrong, and the live cluster is untouched (same data version, nodes
//!   running, no directory moved); then a real restore over live data moves the old data aside.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wk_testkit::LoopbackFleet;
use wk_tests::{bin, poll, post, retry, Writer};

const T: Duration = Duration::from_secs(60);
const CHANNELS: usize = 50;
const PER_CHANNEL: usize = 200;

/// A rendered 3-node fleet run by wk-svc; stopped on drop (logs printed on failure).
struct Fleet {
    dir: tempfile::TempDir,
    fleet: LoopbackFleet,
    inventory: PathBuf,
    rendered: PathBuf,
    backups: PathBuf,
}

fn svc() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("supervisor/wk-svc")
}

impl Fleet {
    async fn start() -> Fleet {
        let dir = tempfile::Builder::new()
            .prefix("wk-ops-backup")
            .tempdir()
            .unwrap();
        let fleet = LoopbackFleet::new(dir.path(), 3).unwrap();
        let rendered = dir.path().join("rendered");
        let backups = dir.path().join("backups");
        let inventory = dir.path().join("inventory.yaml");
        let nodes = rendered.join("nodes");
        let svc_cmd = |action: &str| {
            format!(
                "WK_SVC_BIN={} WK_SVC_STOP_SECS=10 {} {action} {}/{{id}}/wk.yaml",
                bin("wukongim").display(),
                svc().display(),
                nodes.display()
            )
        };
        let defaults = format!(
            "  ssh: {{ local: true }}\n  service: {{ start: \"{}\", stop: \"{}\", restart: \"{}\", status: \"{}\" }}\n",
            svc_cmd("start"),
            svc_cmd("stop"),
            svc_cmd("restart"),
            svc_cmd("status")
        );
        let extra = format!(
            "systemd: {{ binary: {}, configDir: {}, opsBinary: {}, inventoryPath: {} }}\n\
             backup: {{ dir: {}, onCalendar: daily, keep: {{ last: 2, daily: 7, weekly: 4 }} }}\n",
            bin("wukongim").display(),
            nodes.display(),
            bin("wk-ops").display(),
            inventory.display(),
            backups.display()
        );
        let text = fleet.inventory_with("", &defaults, &extra);
        fleet.write_inventory_text("inventory.yaml", &text).unwrap();
        let out = wk_ops(&[
            "render",
            inventory.to_str().unwrap(),
            "--out",
            rendered.to_str().unwrap(),
        ]);
        assert!(out.0 == 0, "render failed: {}", out.1);
        let f = Fleet {
            dir,
            fleet,
            inventory,
            rendered,
            backups,
        };
        for id in f.ids() {
            f.service(id, "start");
        }
        f.wait_healthy().await;
        f
    }

    fn ids(&self) -> Vec<u64> {
        self.fleet.nodes.iter().map(|n| n.id).collect()
    }

    fn config(&self, id: u64) -> PathBuf {
        self.rendered.join(format!("nodes/{id}/wk.yaml"))
    }

    fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("data/{id}"))
    }

    fn service(&self, id: u64, action: &str) -> bool {
        Command::new(svc())
            .arg(action)
            .arg(self.config(id))
            .env("WK_SVC_BIN", bin("wukongim"))
            .env("WK_SVC_STOP_SECS", "10")
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    fn url(&self, i: usize, path: &str) -> String {
        let n = &self.fleet.nodes[i];
        format!("http://{}:{}{path}", n.ip(), n.api)
    }

    fn tcp_addrs(&self) -> Vec<String> {
        self.fleet
            .nodes
            .iter()
            .map(|n| format!("{}:{}", n.ip(), n.tcp))
            .collect()
    }

    async fn wait_healthy(&self) {
        let url = self.url(0, "/cluster/status");
        poll(T, "a healthy cluster", || async {
            let (st, v) = wk_tests::get(&url).await;
            (st == 200 && v["status"] == "healthy").then_some(())
        })
        .await;
    }

    async fn data_versions(&self) -> Vec<String> {
        let mut out = Vec::new();
        for i in 0..self.fleet.nodes.len() {
            let (st, v) = wk_tests::get(&self.url(i, "/cluster/data/version")).await;
            assert_eq!(st, 200, "{v}");
            out.push(v["hash"].as_str().unwrap().to_string());
        }
        out
    }

    /// The only archive in the backup directory.
    fn archive(&self) -> PathBuf {
        let archives: Vec<PathBuf> = std::fs::read_dir(&self.backups)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".tar.zst"))
            .collect();
        assert_eq!(archives.len(), 1, "{archives:?}");
        archives[0].clone()
    }

    fn logs(&self) -> String {
        self.ids()
            .iter()
            .map(|&id| {
                let log = std::fs::read_to_string(format!("{}.log", self.config(id).display()))
                    .unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                format!(
                    "--- node {id} ---\n{}",
                    lines[lines.len().saturating_sub(40)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for id in self.ids() {
            self.service(id, "stop");
        }
    }
}

/// Runs wk-ops; (exit code, stdout + stderr).
fn wk_ops(args: &[&str]) -> (i32, String) {
    let out = Command::new(bin("wk-ops"))
        .args(args)
        .env_remove("WK_OPS_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Sends PER_CHANNEL messages to each of CHANNELS group channels, one task per channel, spread
/// over the nodes; returns channel → (clientMsgNo → messageSeq).
async fn write_history(f: &Fleet) -> BTreeMap<String, BTreeMap<String, u64>> {
    let http = reqwest::Client::new();
    let tasks = (0..CHANNELS).map(|c| {
        let http = http.clone();
        let url = f.url(c % 3, "/message/send");
        async move {
            let channel = format!("room-{c}");
            let mut seqs = BTreeMap::new();
            for m in 0..PER_CHANNEL {
                let no = format!("{channel}-{m}");
                let body = json!({"from_uid": format!("user-{}", m % 7), "channel_id": channel,
                    "channel_type": 2, "client_msg_no": no, "payload": "aGVsbG8="});
                let v: Value = http
                    .post(&url)
                    .json(&body)
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let seq = v["data"]["message_seq"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{v}"));
                seqs.insert(no, seq);
            }
            (channel, seqs)
        }
    });
    futures::future::join_all(tasks).await.into_iter().collect()
}

/// The channel's history on node `i`: clientMsgNo → messageSeq.
async fn history(f: &Fleet, i: usize, login: &str, channel: &str, ty: u8) -> BTreeMap<String, u64> {
    let body = json!({"login_uid": login, "channel_id": channel, "channel_type": ty,
        "start_message_seq": 0, "limit": 10000, "pull_mode": 1});
    let (st, v) = post(&f.url(i, "/channel/messagesync"), body).await;
    assert_eq!(st, 200, "{v}");
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["client_msg_no"].as_str().unwrap().to_string(),
                m["message_seq"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_wipe_restore_round_trip() {
    let f = Fleet::start().await;
    let t0 = Instant::now();
    let written = write_history(&f).await;
    eprintln!(
        "wrote {} messages in {:?}",
        CHANNELS * PER_CHANNEL,
        t0.elapsed()
    );

    // Back up while a writer keeps going, with the rendered timer unit's own command.
    let writer = Writer::start("live-a", "live-b", f.tcp_addrs(), u64::MAX);
    writer.wait_progress(20, T).await;
    let unit = std::fs::read_to_string(f.rendered.join("systemd/wk-ops-backup.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart in the backup unit")
        .to_string();
    let acked_before = writer.acked();
    let t1 = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("sh")
            .arg("-c")
            .arg(&exec)
            .env_remove("WK_OPS_LOG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let backup_took = t1.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "backup failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    writer.wait_progress(20, T).await;
    let log = writer.finish().await;
    eprintln!("backup took {backup_took:?}:\n{stdout}");
    assert!(
        stdout.contains("follower"),
        "a follower is preferred:\n{stdout}"
    );
    let archive = f.archive();

    // The restore drill.
    let (code, text) = wk_ops(&[
        "backup",
        "verify",
        archive.to_str().unwrap(),
        "--restore-test",
        "--wukongim",
        bin("wukongim").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("restore test ok"), "{text}");
    // The manifest counts every message written before the backup (and perhaps a few more).
    let messages: u64 = text
        .split(" messages")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no message count in:\n{text}"));
    assert!(
        messages >= (CHANNELS * PER_CHANNEL) as u64 + acked_before,
        "{messages}: {text}"
    );

    // Wipe every data directory, then restore.
    for id in f.ids() {
        assert!(f.service(id, "stop"));
        std::fs::remove_dir_all(f.data_dir(id)).unwrap();
    }
    let t2 = Instant::now();
    let (code, text) = wk_ops(&[
        "restore",
        f.inventory.to_str().unwrap(),
        archive.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(code, 0, "{text}");
    eprintln!("restore took {:?}:\n{text}", t2.elapsed());
    f.wait_healthy().await;

    // Everything acknowledged before the backup started is on every node with its seq.
    let live_before: BTreeMap<String, u64> =
        log.acked[..acked_before as usize].iter().cloned().collect();
    for i in 0..3 {
        for (channel, seqs) in &written {
            let h = history(&f, i, "user-0", channel, 2).await;
            assert_eq!(&h, seqs, "node {i}: channel {channel}");
        }
        let live = history(&f, i, "live-a", "live-b", 1).await;
        for (no, seq) in &live_before {
            assert_eq!(live.get(no), Some(seq), "node {i}: live message {no}");
        }
        // What the live channel holds is a prefix of what was acknowledged, seqs unchanged.
        for (no, seq) in &live {
            let acked = log.acked.iter().find(|(n, _)| n == no);
            assert_eq!(acked.map(|a| a.1), Some(*seq), "node {i}: {no}");
        }
    }
    let versions = f.data_versions().await;
    assert!(versions.iter().all(|v| v == &versions[0]), "{versions:?}");

    // New writes are accepted, continuing each channel's sequence.
    let (_, tries) = retry(T, "a write after the restore", || async {
        let body = json!({"from_uid": "user-0", "channel_id": "room-0", "channel_type": 2,
            "client_msg_no": "after-restore", "payload": "aGVsbG8="});
        match wk_tests::try_post(&f.url(1, "/message/send"), body).await? {
            (200, v) if v["data"]["message_seq"].as_u64() == Some(PER_CHANNEL as u64 + 1) => Ok(()),
            (st, v) => Err(format!("{st} {v}")),
        }
    })
    .await;
    eprintln!("first write after restore took {tries} tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn damaged_archives_are_refused_and_live_data_untouched() {
    let f = Fleet::start().await;
    for k in 0..30 {
        let body = json!({"from_uid": "u1", "channel_id": format!("room-{}", k % 3), "channel_type": 2, "payload": "aGVsbG8="});
        let (st, v) = post(&f.url(k % 3, "/message/send"), body).await;
        assert_eq!(st, 200, "{v}");
    }
    let (code, text) = wk_ops(&["backup", f.inventory.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    let archive = f.archive();
    // The live state moves on after the backup, so a restore would be visible.
    let (st, v) = post(
        &f.url(0, "/message/send"),
        json!({"from_uid": "u1", "channel_id": "after", "channel_type": 2, "payload": "aGVsbG8="}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let before = poll(T, "every node on the same data version", || async {
        let v = f.data_versions().await;
        v.iter().all(|x| x == &v[0]).then_some(v)
    })
    .await;

    let mutations = wk_testkit::mutations::mutate(&archive, &f.dir.path().join("mutations"));
    assert!(mutations.len() >= 20, "{}", mutations.len());
    let node_bin = bin("wukongim");
    for m in &mutations {
        let (code, text) = wk_ops(&[
            "restore",
            f.inventory.to_str().unwrap(),
            m.archive.to_str().unwrap(),
            "--yes",
            "--wukongim",
            node_bin.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "{}: {text}", m.name);
        assert!(
            text.contains(m.expect),
            "{}: expected `{}` in:\n{text}",
            m.name,
            m.expect
        );
        assert!(text.contains("no node was touched"), "{}: {text}", m.name);
    }
    // Untouched: every node running, same data, nothing moved aside.
    for id in f.ids() {
        assert!(f.service(id, "status"), "node {id} was stopped");
    }
    assert_eq!(f.data_versions().await, before);
    let data = f.dir.path().join("data");
    let moved: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("restore"))
        .collect();
    assert!(moved.is_empty(), "{moved:?}");

    // The good archive restores over the live data, which is moved aside, not deleted.
    let (code, text) = wk_ops(&[
        "restore",
        f.inventory.to_str().unwrap(),
        archive.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(code, 0, "{text}");
    f.wait_healthy().await;
    let after = f.data_versions().await;
    assert_ne!(after, before, "the restore brought back the older state");
    for id in f.ids() {
        let aside: Vec<PathBuf> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{id}.pre-restore-"))
            })
            .collect();
        assert_eq!(aside.len(), 1, "node {id}: {aside:?}");
        assert!(
            std::fs::read_dir(&aside[0]).unwrap().count() > 0,
            "{aside:?} is empty"
        );
    }
    let (st, _) = wk_tests::get(&f.url(2, "/health")).await;
    assert_eq!(st, 200);
    // `after` equals the archive's data version.
    let (code, text) = wk_ops(&["backup", "verify", archive.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("data version {}", after[0])),
        "{text}\n{after:?}"
    );
}
