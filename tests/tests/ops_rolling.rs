//! `wk-ops rolling-restart`, `check` and `upgrade` over real SSH against a real three-node
//! cluster (issue 13), on the fleet of `wk_tests::ops` (a real sshd on 127.0.0.11–13, nodes
//! run by `tests/supervisor/wk-svc`). One cluster serves every scenario, in this order:
//!
//! 1. an unknown host key (strict checking, empty known_hosts) stops before anything restarts;
//! 2. a key the server does not accept stops before anything restarts;
//! 3. the full roll while the real wukongimjssdk sends 20 messages/s from one node's user to
//!    another's: every send acknowledged, every message received exactly once, the first leader
//!    restarted last and no node restarted while it led (a watcher samples every node's role);
//! 4. a node whose config is broken does not come back: the roll stops there with the others
//!    serving, and `--resume` after the repair finishes the roll;
//! 5. `check` passes, and fails the row of a hand-edited wk.yaml;
//! 6. `upgrade` never swaps in a binary failing `--check`, then rolls a good one;
//! 7. `upgrade --rollback` puts the previous binary back (sha256 on disk) and rolls it, the
//!    cluster serving.
//!
//! Needs sshd/ssh-keygen (openssh-server), node and the bundled SDK (scripts/test installs
//! them); a missing one fails the test.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wk_tests::ops::{base64_text, prerequisites, sender, stderr, stdout, SshFleet, RATE, T};
use wk_tests::{bin, retry, try_post, JsClient};

/// One look at one node: when, which node, its raft role (None when unreachable).
type Sample = (Instant, u64, Option<String>);

/// Samples every node's raft role every 50 ms.
struct Watcher {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    fn start(s: &SshFleet) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let urls: Vec<(u64, String)> = s
            .ids()
            .into_iter()
            .map(|id| (id, s.api(id, "/cluster/raft/status")))
            .collect();
        let (stop2, samples2) = (stop.clone(), samples.clone());
        let task = tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_millis(500))
                .no_proxy()
                .build()
                .unwrap();
            while !stop2.load(Ordering::Relaxed) {
                for (id, url) in &urls {
                    let role = match http.get(url).send().await {
                        Ok(r) => r
                            .json::<Value>()
                            .await
                            .ok()
                            .and_then(|v| v["state"].as_str().map(str::to_string)),
                        Err(_) => None,
                    };
                    samples2.lock().unwrap().push((Instant::now(), *id, role));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Watcher {
            stop,
            samples,
            task,
        }
    }

    /// Per node: the role last seen before each time it stopped answering, and when.
    async fn finish(self) -> BTreeMap<u64, Vec<(Instant, String)>> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let samples = self.samples.lock().unwrap();
        let mut last: BTreeMap<u64, Option<String>> = BTreeMap::new();
        let mut downs: BTreeMap<u64, Vec<(Instant, String)>> = BTreeMap::new();
        for (t, id, role) in samples.iter() {
            let prev = last.insert(*id, role.clone()).flatten();
            if let (Some(prev), None) = (prev, role) {
                downs.entry(*id).or_default().push((*t, prev));
            }
        }
        downs
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_restart_over_ssh_loses_no_message() {
    prerequisites();
    let started = Instant::now();
    let step = |what: &str| eprintln!("[{:>6.2?}] {what}", started.elapsed());
    let s = SshFleet::start("wk-roll", 3, 0);
    let first_leader = s.wait_leader().await;
    step(&format!(
        "cluster up over wk-svc, leader {first_leader}; sshd on port {}",
        s.sshd.port
    ));

    // 1. Unknown host key, strict checking: nothing restarts.
    let before = s.pids();
    let o = s.roll(&s.inventory, &["--yes"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("host key") && stderr(&o).contains("--accept-new-host-keys"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("nothing was restarted"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        s.pids(),
        before,
        "a node restarted despite the host key error"
    );

    // 2. A key the server refuses: nothing restarts (host keys now recorded).
    let stranger = s.dir.path().join("inventory-stranger.yaml");
    let o = s.roll(&stranger, &["--yes", "--accept-new-host-keys"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("authentication"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("nothing was restarted"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        s.pids(),
        before,
        "a node restarted despite the SSH auth failure"
    );
    assert!(
        std::fs::read_to_string(&s.known_hosts)
            .unwrap()
            .lines()
            .count()
            >= 3
    );
    // Without a terminal and without --yes nothing happens either.
    let o = s.roll(&s.inventory, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--yes"), "{}", stderr(&o));
    step("host key, auth failure and missing --yes restarted nothing");

    // 3. The full roll while the SDK sends 20 messages/s from a follower's user to another's.
    let followers: Vec<u64> = s
        .ids()
        .into_iter()
        .filter(|id| *id != first_leader)
        .collect();
    let mut bob = JsClient::spawn(&s.ws(followers[1]), "bob", "");
    bob.wait_connected();
    let mut alice = JsClient::spawn(&s.ws(followers[0]), "alice", "");
    alice.wait_connected();
    let watcher = Watcher::start(&s);
    let stop = Arc::new(AtomicBool::new(false));
    let sending = sender(alice, "bob".into(), "roll", stop.clone());
    let roll_started = Instant::now();
    let inventory = s.inventory.clone();
    let kh = s.known_hosts.clone();
    let o = tokio::task::spawn_blocking(move || {
        Command::new(bin("wk-ops"))
            .arg("rolling-restart")
            .arg(&inventory)
            .arg("--known-hosts")
            .arg(&kh)
            .arg("--yes")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let roll_took = roll_started.elapsed();
    eprintln!("--- full roll: {}\n{}{}", o.status, stdout(&o), stderr(&o));
    stop.store(true, Ordering::Relaxed);
    let (mut alice, sent) = sending.join().unwrap();
    let downs = watcher.finish().await;
    assert!(o.status.success(), "the roll failed");
    let out = stdout(&o);
    assert!(out.contains("followers first, leader last"), "{out}");
    assert!(
        out.contains(&format!("node {first_leader}: leadership moved to node")),
        "{out}"
    );
    assert_ne!(
        s.pids().values().collect::<Vec<_>>(),
        before.values().collect::<Vec<_>>()
    );
    for (id, pid) in s.pids() {
        assert_ne!(pid, before[&id], "node {id} was not restarted");
    }
    step(&format!(
        "roll finished in {roll_took:.1?}; {} messages sent",
        sent.len()
    ));

    // Roles: no node went down while leading; the first leader went down last.
    for (id, d) in &downs {
        for (_, role) in d {
            assert_ne!(
                role, "leader",
                "node {id} went down while it led: {downs:?}"
            );
        }
    }
    let first_down = |id: u64| downs.get(&id).and_then(|d| d.first()).map(|(t, _)| *t);
    let leader_down = first_down(first_leader).expect("the first leader was seen going down");
    for f in &followers {
        let t = first_down(*f).unwrap_or_else(|| panic!("node {f} was never seen down: {downs:?}"));
        assert!(
            t < leader_down,
            "follower {f} went down after the first leader"
        );
    }

    // Every send acknowledged with success, every message received exactly once.
    let n = sent.len();
    assert!(n as u64 >= RATE * 3, "only {n} messages sent");
    let acked = |a: &mut JsClient| -> BTreeSet<u64> {
        a.mark();
        a.seen
            .iter()
            .filter(|v| v["ev"] == "ack" && v["reason"] == 1)
            .filter_map(|v| v["clientSeq"].as_u64())
            .collect()
    };
    let deadline = Instant::now() + T;
    while acked(&mut alice).len() < n {
        assert!(
            Instant::now() < deadline,
            "acknowledged {} of {n} sends; other events: {:?}",
            acked(&mut alice).len(),
            alice
                .seen
                .iter()
                .filter(|v| v["ev"] != "ack" && v["ev"] != "sent")
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let failed: Vec<&Value> = alice
        .seen
        .iter()
        .filter(|v| v["ev"] == "ack" && v["reason"] != 1)
        .collect();
    assert!(failed.is_empty(), "failed SENDACKs: {failed:?}");
    // Live delivery: pushes sent while bob's own node restarts can be missed (pending RECVs are
    // per node and in memory; see the closing note of issue #13), so a message bob did not get
    // live must be in the history he syncs on reconnect — as a real app catches up — stored
    // exactly once. Anything neither pushed nor stored fails the test.
    let deadline = Instant::now() + T;
    let missed: Vec<String> = loop {
        let got: BTreeSet<String> = bob
            .received_texts(Duration::from_millis(200))
            .into_iter()
            .collect();
        let missing: Vec<String> = sent.iter().filter(|t| !got.contains(*t)).cloned().collect();
        if missing.is_empty() || Instant::now() >= deadline {
            break missing;
        }
    };
    if !missed.is_empty() {
        let (_, stored) = wk_tests::post(
            &s.api(first_leader, "/channel/messagesync"),
            json!({"login_uid": "bob", "channel_id": "alice", "channel_type": 1,
                   "start_message_seq": 0, "limit": 10000, "pull_mode": 1}),
        )
        .await;
        let payloads: Vec<String> = stored["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|m| m["payload"].as_str().map(str::to_string))
            .collect();
        let decoded: Vec<String> = payloads.iter().filter_map(|p| base64_text(p)).collect();
        for t in &missed {
            let copies = decoded.iter().filter(|d| *d == t).count();
            assert_eq!(
                copies, 1,
                "{t} was neither pushed to bob nor stored exactly once in his history ({copies} copies)"
            );
        }
        step(&format!(
            "{} of {n} messages missed bob's live push during the roll and are in his synced history",
            missed.len()
        ));
    }
    // Nothing arrives twice (a last look after redeliveries could have come in).
    let texts = bob.received_texts(Duration::from_secs(2));
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &texts {
        *counts.entry(t.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    step(&format!("{n} sends acknowledged; none received twice"));

    // 4. A node that does not come back stops the roll; the rest serve; --resume finishes.
    let leader = s.wait_leader().await;
    let broken = *s.ids().iter().filter(|id| **id != leader).max().unwrap();
    let config = s.configs[&broken].clone();
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, "cluster: [this is not a config\n").unwrap();
    let before = s.pids();
    let o = s.roll(&s.inventory, &["--yes", "--wait", "20"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains(&format!("stopped at node {broken}")), "{err}");
    assert!(
        err.contains("--resume") && err.contains("the cluster is serving"),
        "{err}"
    );
    let after = s.pids();
    assert_eq!(
        after[&leader], before[&leader],
        "the leader was restarted after the stop"
    );
    // The others serve: a message through a surviving node is stored.
    let alive = *s.ids().iter().find(|id| **id != broken).unwrap();
    retry(T, "a send through a surviving node", || async {
        match try_post(
            &s.api(alive, "/message/send"),
            json!({"from_uid": "carol", "channel_id": "bob", "channel_type": 1,
                   "payload": "eyJ0eXBlIjoxLCJjb250ZW50IjoiYWZ0ZXIgdGhlIHN0b3AifQ=="}),
        )
        .await?
        {
            (200, _) => Ok(()),
            (st, v) => Err(format!("{st}: {v}")),
        }
    })
    .await;
    step(&format!(
        "the roll stopped at broken node {broken}; the rest serve"
    ));
    std::fs::write(&config, good).unwrap();
    let o = s.roll(&s.inventory, &["--yes", "--resume"]);
    assert!(o.status.success(), "resume failed");
    assert!(
        stdout(&o).contains("resuming: already done"),
        "{}",
        stdout(&o)
    );
    assert!(
        !s.dir.path().join(".wk-ops-rolling-restart.json").exists(),
        "resume file left behind"
    );
    s.wait_leader().await;
    step("--resume finished the roll");

    // 5. check: everything passes; a changed installed wk.yaml fails its row.
    let o = s.ops("check", &s.inventory, &["--min-free-mib", "1"]);
    assert!(o.status.success(), "check failed");
    assert!(stdout(&o).contains("all checks passed"), "{}", stdout(&o));
    let victim = s.ids()[1];
    let config = s.configs[&victim].clone();
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{good}# edited by hand\n")).unwrap();
    let o = s.ops("check", &s.inventory, &["--min-free-mib", "1"]);
    std::fs::write(&config, good).unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains(&format!("node {victim} config FAIL")), "{out}");
    assert_eq!(
        out.matches("FAIL").count(),
        2,
        "one failing cell and its detail: {out}"
    );
    step("check passes, and catches an edited wk.yaml");

    // 6. upgrade: a binary that fails `--check` on the nodes is never swapped in or started.
    let broken_bin = s.dir.path().join("wukongim-broken");
    std::fs::write(
        &broken_bin,
        "#!/bin/sh\ncase \"$1\" in --version) echo 'wukongim 9.9.9-broken';; \
         *) echo 'config check failed: broken build' >&2; exit 1;; esac\n",
    )
    .unwrap();
    let installed_before = std::fs::read(&s.installed).unwrap();
    let before = s.pids();
    let o = s.ops(
        "upgrade",
        &s.inventory,
        &["--yes", "--binary", broken_bin.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("broken build"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("nothing was swapped or restarted"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        s.pids(),
        before,
        "a node restarted with a binary that failed --check"
    );
    assert!(
        std::fs::read(&s.installed).unwrap() == installed_before,
        "the broken binary was installed"
    );
    let staged: Vec<_> = std::fs::read_dir(s.installed.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        staged,
        vec!["wukongim".to_string()],
        "leftovers beside the binary"
    );
    // A good binary: uploaded, checked, swapped (the old one kept as .prev) and rolled.
    // A new build: the same program with other bytes (trailing data does not change an ELF).
    let new_bin = s.dir.path().join("wukongim-new");
    let mut bytes = std::fs::read(bin("wukongim")).unwrap();
    bytes.extend_from_slice(b"\nnew build\n");
    std::fs::write(&new_bin, bytes).unwrap();
    let o = s.ops(
        "upgrade",
        &s.inventory,
        &["--yes", "--binary", new_bin.to_str().unwrap()],
    );
    assert!(o.status.success(), "upgrade failed");
    assert!(stdout(&o).contains("staged and checked"), "{}", stdout(&o));
    assert!(s.installed.with_extension("prev").exists());
    for (id, pid) in s.pids() {
        assert_ne!(
            pid, before[&id],
            "node {id} was not restarted by the upgrade"
        );
    }
    s.wait_leader().await;
    assert_eq!(
        std::fs::read(&s.installed).unwrap(),
        std::fs::read(&new_bin).unwrap(),
        "the upgrade did not install the new build"
    );
    step("upgrade refused a binary failing --check, then rolled a good one");

    // 7. --rollback: the binary kept at the upgrade goes back in, checked, and the nodes roll.
    let original = std::fs::read(bin("wukongim")).unwrap();
    assert_eq!(
        std::fs::read(s.installed.with_extension("prev")).unwrap(),
        original,
        "the upgrade did not keep the previous binary"
    );
    let before = s.pids();
    let o = s.ops("upgrade", &s.inventory, &["--yes", "--rollback"]);
    assert!(o.status.success(), "rollback failed");
    let out = stdout(&o);
    assert!(out.contains("rollback:"), "{out}");
    assert!(out.contains("staged and checked"), "{out}");
    assert!(
        std::fs::read(&s.installed).unwrap() == original,
        "after --rollback the installed binary is not the previous one"
    );
    for (id, pid) in s.pids() {
        assert_ne!(
            pid, before[&id],
            "node {id} was not restarted by the rollback"
        );
    }
    // Each node runs the rolled-back file: its /proc/<pid>/exe is the previous binary.
    for (id, pid) in s.pids() {
        let exe = std::fs::read(format!("/proc/{pid}/exe")).unwrap();
        assert!(
            exe == original,
            "node {id} (pid {pid}) does not run the previous binary"
        );
    }
    let leader = s.wait_leader().await;
    retry(T, "a send after the rollback", || async {
        match try_post(
            &s.api(leader, "/message/send"),
            json!({"from_uid": "carol", "channel_id": "bob", "channel_type": 1,
                   "payload": "eyJ0eXBlIjoxLCJjb250ZW50IjoiYWZ0ZXIgcm9sbGJhY2sifQ=="}),
        )
        .await?
        {
            (200, _) => Ok(()),
            (st, v) => Err(format!("{st}: {v}")),
        }
    })
    .await;
    step("upgrade --rollback put the previous binary back and the cluster serves");
}
