//! `wk-ops status` and `wk-ops health` against a real 3-node loopback cluster with a manager
//! token, mailing a real SMTP server (Python aiosmtpd on 127.0.0.1, each message written to a
//! directory). One cluster walks through the issue's scenarios in order: healthy → no mail;
//! kill -9 a node → exactly one FIRING mail naming it; again → none; once the repeat interval
//! has passed → one reminder; SMTP stopped and the node restarted → non-zero exit, the
//! RESOLVED mail kept; SMTP back → exactly one RESOLVED mail; SIGSTOP the leader → it is
//! reported down, a new leader is elected and neither no_leader nor split_brain fires;
//! SIGCONT → RESOLVED. Also: every rendered wk-ops unit's `ExecStart=` runs against the live
//! cluster, and a bad inventory, a wrong token and unreachable nodes give one-line errors with
//! the documented exit codes.
//!
//! Needs python3 with aiosmtpd (scripts/test installs it): with `CI` set a missing one fails
//! the test, otherwise it is skipped with a notice.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use wk_ops::inventory;
use wk_ops::node_api::NodeApi;
use wk_testkit::{self as testkit, LoopbackFleet};
use wk_tests::{bin, poll, TestCluster};

const T: Duration = Duration::from_secs(30);
const TOKEN: &str = "health-test-manager-token";
/// Exit status the rendered `wk-ops-backup.service` is expected to end with against a live
/// cluster (0 since `wk-ops backup` landed; it was 1 while the command was a scaffold).
const BACKUP_UNIT_EXIT: i32 = 0;

/// A real SMTP server on loopback writing each message to `dir` (killed on drop).
struct Smtp {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

const SMTP_SERVER: &str = r#"
import os, signal, sys, time
from aiosmtpd.controller import Controller

class Save:
    async def handle_DATA(self, server, session, envelope):
        out = sys.argv[2]
        name = os.path.join(out, "%020d.eml" % time.time_ns())
        with open(name + ".tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(name + ".tmp", name)
        return "250 OK"

c = Controller(Save(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
c.stop()
"#;

impl Smtp {
    fn new(dir: &Path) -> Smtp {
        let dir = dir.join("mail");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("../smtp_server.py"), SMTP_SERVER).unwrap();
        Smtp {
            child: None,
            port: testkit::free_port().unwrap(),
            dir,
        }
    }

    fn start(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new("python3")
            .arg(self.dir.join("../smtp_server.py"))
            .arg(self.port.to_string())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn python3");
        self.child = Some(child);
        let deadline = Instant::now() + T;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "SMTP server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every message received so far, oldest first: (subject, whole text).
    fn mails(&self) -> Vec<(String, String)> {
        let mut names: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                let mut text = std::fs::read_to_string(p).unwrap().replace("\r\n", "\n");
                if text.contains("Content-Transfer-Encoding: quoted-printable") {
                    text = unquote(&text);
                }
                let subject = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Subject: "))
                    .unwrap_or_default()
                    .to_string();
                (subject, text)
            })
            .collect()
    }
}

/// Decodes quoted-printable text (soft line breaks and `=XX` escapes).
fn unquote(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A child process killed however the test ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A frozen process is thawed again however the test ends.
struct Frozen(u32);

impl Frozen {
    fn freeze(pid: u32) -> Frozen {
        signal("STOP", pid);
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("CONT", self.0);
    }
}

fn signal(sig: &str, pid: u32) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Runs `wk-ops ARGS` and returns its output.
fn wk_ops(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(bin("wk-ops"));
    c.args(args).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run wk-ops")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

struct Setup {
    dir: tempfile::TempDir,
    inventory: PathBuf,
    state: PathBuf,
    cluster: TestCluster,
    api: NodeApi,
    inv: inventory::Inventory,
    smtp: Smtp,
}

impl Drop for Setup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.cluster.logs());
            eprintln!("files in {}", self.dir.path().display());
        }
    }
}

impl Setup {
    /// `wk-ops health INVENTORY --once --state … --timeout 1s EXTRA…`.
    fn health(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "health",
            self.inventory.to_str().unwrap(),
            "--once",
            "--state",
            self.state.to_str().unwrap(),
            "--timeout",
            "1s",
        ];
        args.extend(extra);
        wk_ops(&args, &[])
    }

    /// Runs health, expecting `exit`, and returns the mails it sent.
    fn health_mails(&self, exit: i32) -> Vec<(String, String)> {
        let before = self.smtp.mails().len();
        let out = self.health(&[]);
        assert_eq!(code(&out), exit, "{}", show(&out));
        self.smtp.mails().split_off(before)
    }

    /// Waits until every node `up` answers /cluster/status with `status` and names a leader
    /// other than `not_leader`.
    async fn wait_cluster(&self, up: &[usize], status: &str, not_leader: Option<u64>) -> u64 {
        poll(T, &format!("cluster status {status}"), || async {
            let mut leader = None;
            for &i in up {
                let s = self.api.cluster_status(&self.inv.nodes[i]).await.ok()?;
                if s.status != status || s.leader.is_none() || s.leader == not_leader {
                    return None;
                }
                if leader.is_some() && leader != s.leader {
                    return None;
                }
                leader = s.leader;
            }
            leader
        })
        .await
    }
}

/// The SMTP server is python's aiosmtpd: a missing one fails the test (scripts/test installs it).
fn prerequisites() {
    testkit::require("python3", "python3");
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        testkit::missing::<()>(
            "python3's aiosmtpd (pip install aiosmtpd; scripts/test installs it)",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_health_mail_alerts_against_a_live_cluster() {
    prerequisites();
    let started = Instant::now();
    let step = |what: &str| eprintln!("[{:>6.2?}] {what}", started.elapsed());

    let dir = tempfile::Builder::new()
        .prefix("wk-health")
        .tempdir()
        .unwrap();
    let d = dir.path().to_path_buf();
    let fleet = LoopbackFleet::new(&d, 3).unwrap();
    wk_testkit::write_secret(&d.join("manager-token"), format!("{TOKEN}\n")).unwrap();
    let mut smtp = Smtp::new(&d);
    smtp.start();
    let smtp_port = smtp.port;
    let inventory_text = |token_file: &str| {
        fleet.inventory_with(
            &format!("  managerTokenFile: {}/{token_file}\n", d.display()),
            &format!(
                "  logFile: {}/logs/{{id}}.log\n  logLevel: \"info,openraft=warn\"\n",
                d.display()
            ),
            &format!(
                "alerts:\n  email:\n    to: [oncall@example.com]\n    from: wk-ops@example.com\n    \
                 smtp: {{ host: 127.0.0.1, port: {} }}\n  repeatInterval: 1m\n  \
                 thresholds: {{ nodeDownFor: 0s, noLeaderFor: 5s }}\n\
                 backup:\n  dir: {}/backups\n\
                 systemd:\n  opsBinary: {}\n  inventoryPath: {}/inventory.yaml\n",
                smtp_port,
                d.display(),
                bin("wk-ops").display(),
                d.display()
            ),
        )
    };
    let inventory = fleet
        .write_inventory_text("inventory.yaml", &inventory_text("manager-token"))
        .unwrap();
    let out = wk_ops(
        &[
            "render",
            inventory.to_str().unwrap(),
            "--out",
            d.join("out").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", show(&out));
    let paths: Vec<_> = fleet
        .nodes
        .iter()
        .map(|n| d.join(format!("out/nodes/{}/wk.yaml", n.id)))
        .collect();
    let inv = inventory::load(&inventory).unwrap().inventory;
    let api = NodeApi::new(&inv, Duration::from_secs(2)).unwrap();
    let mut s = Setup {
        inventory,
        state: d.join("state/health.json"),
        cluster: TestCluster::from_configs(&paths),
        api,
        inv,
        smtp,
        dir,
    };
    for n in &mut s.cluster.nodes {
        n.spawn();
    }
    for n in &mut s.cluster.nodes {
        n.wait_healthy(T).await;
    }
    let leader = s.wait_cluster(&[0, 1, 2], "healthy", None).await;
    step("cluster up");

    // status: the table and JSON, exit 0.
    let inv_path = s.inventory.to_str().unwrap().to_string();
    let out = wk_ops(&["status", &inv_path], &[]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(table.contains("Status:  healthy"), "{table}");
    for n in &fleet.nodes {
        assert!(
            table.contains(&format!("{}  http://{}", n.id, n.ip())),
            "{table}"
        );
    }
    assert!(table.contains("leader"), "{table}");
    let out = wk_ops(&["status", &inv_path, "--output", "json"], &[]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "healthy", "{v}");
    assert_eq!(v["leader"], leader, "{v}");
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for n in nodes {
        assert_eq!(n["up"], true, "{n}");
        assert_eq!(n["lag"], 0, "{n}");
        assert_eq!(n["version"], env!("CARGO_PKG_VERSION"), "{n}");
        assert!(
            n["data_version"].as_str().is_some_and(|h| h.len() == 12),
            "{n}"
        );
    }

    // Before any backup, the backup check says so (and passes).
    let out = s.health(&[]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        report.contains("ok    backup_age       no archives yet"),
        "{report}"
    );

    // The rendered units' ExecStart= lines run against the live cluster.
    let state_dir = d_join(&s, "systemd-state");
    for (unit, expected) in [
        ("wk-ops-health.service", 0),
        ("wk-ops-backup.service", BACKUP_UNIT_EXIT),
    ] {
        let text = std::fs::read_to_string(d_join(&s, &format!("out/systemd/{unit}"))).unwrap();
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("no ExecStart= in {unit}"));
        let words: Vec<&str> = exec.split_whitespace().collect();
        assert_eq!(words[0], bin("wk-ops").to_str().unwrap(), "{unit}: {exec}");
        let out = wk_ops(&words[1..], &[("STATE_DIRECTORY", &state_dir)]);
        assert_eq!(code(&out), expected, "{unit}: {exec}\n{}", show(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", show(&out));
    }
    assert!(
        state_dir.join("health-loopback.json").is_file(),
        "the health unit keeps its state in $STATE_DIRECTORY"
    );
    assert!(s.smtp.mails().is_empty(), "a healthy cluster sends no mail");
    step("units ran");

    // Healthy: exit 0, no mail; the backup check sees the unit's archive.
    let out = s.health(&[]);
    assert_eq!(code(&out), 0, "{}", show(&out));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(report.contains("all checks pass"), "{report}");
    if BACKUP_UNIT_EXIT == 0 {
        assert!(
            report.contains("ok    backup_age       newest archive loopback-"),
            "{report}"
        );
    }
    assert!(s.health_mails(0).is_empty());

    // --watch: a report every interval until interrupted (SIGINT), then the last exit code.
    let watch_out = d_join(&s, "watch.out");
    let mut watch = KillOnDrop(
        Command::new(bin("wk-ops"))
            .args(["health", inv_path.as_str(), "--watch", "200ms", "--dry-run"])
            .args(["--timeout", "1s"])
            .arg("--state")
            .arg(&s.state)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&watch_out).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + T;
    while std::fs::read_to_string(&watch_out)
        .unwrap()
        .matches("cluster loopback, ")
        .count()
        < 3
    {
        assert!(Instant::now() < deadline, "--watch did not repeat");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal("INT", watch.0.id());
    let deadline = Instant::now() + T;
    let status = loop {
        if let Some(st) = watch.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "--watch did not stop on SIGINT");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(&watch_out).unwrap()
    );

    // kill -9 a follower: exactly one FIRING mail naming it.
    let victim = (0..3).find(|&i| s.inv.nodes[i].id != leader).unwrap();
    let victim_id = s.inv.nodes[victim].id;
    let others: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    s.cluster.nodes[victim].kill9();
    s.wait_cluster(&others, "degraded", None).await;
    let out = wk_ops(&["status", &inv_path], &[]);
    assert_eq!(code(&out), 1, "degraded: {}", show(&out));
    let mails = s.health_mails(1);
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let (subject, text) = &mails[0];
    assert!(
        subject.starts_with("[wukongim loopback] FIRING 2: ")
            && subject.contains(&format!("node {victim_id} down")),
        "{subject}"
    );
    assert!(subject.contains("cluster degraded"), "{subject}");
    assert!(text.contains("To: oncall@example.com"), "{text}");
    assert!(text.to_lowercase().contains("connection refused"), "{text}");
    step("FIRING mailed");

    // Within repeatInterval: no mail.
    assert!(s.health_mails(1).is_empty());
    // After it: one reminder. (The state file's `last_mailed` is moved back past the 1m
    // interval — the inventory's smallest — instead of waiting a minute.)
    rewind_last_mailed(&s.state);
    let mails = s.health_mails(1);
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(
        mails[0]
            .0
            .starts_with("[wukongim loopback] STILL FIRING 2: "),
        "{}",
        mails[0].0
    );
    assert!(s.health_mails(1).is_empty());
    step("reminder mailed");

    // SMTP down, node back: the RESOLVED news fails, is kept, and goes out once SMTP returns.
    s.smtp.stop();
    s.cluster.nodes[victim].spawn();
    s.cluster.nodes[victim].wait_healthy(T).await;
    s.wait_cluster(&[0, 1, 2], "healthy", None).await;
    for _ in 0..2 {
        let out = s.health(&[]);
        assert_eq!(code(&out), 1, "{}", show(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "SMTP server 127.0.0.1:{} did not take",
                s.smtp.port
            )),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    let state = std::fs::read_to_string(&s.state).unwrap();
    assert!(state.contains("\"resolved\""), "{state}");
    s.smtp.start();
    let mails = s.health_mails(0);
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(
        mails[0].0.starts_with("[wukongim loopback] RESOLVED 2: ")
            && mails[0].0.contains(&format!("node {victim_id} down")),
        "{}",
        mails[0].0
    );
    assert!(s.health_mails(0).is_empty());
    step("RESOLVED mailed after SMTP came back");

    // SIGSTOP the leader: it is reported down (timed out); the others elect a new leader, so
    // neither no_leader nor split_brain fires.
    let li = s.cluster.index_of(leader);
    let survivors: Vec<usize> = (0..3).filter(|&i| i != li).collect();
    let frozen = Frozen::freeze(s.cluster.nodes[li].pid().unwrap());
    let new_leader = s.wait_cluster(&survivors, "degraded", Some(leader)).await;
    let mails = s.health_mails(1);
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let (subject, text) = &mails[0];
    assert!(
        subject.contains(&format!("node {leader} down")),
        "{subject}"
    );
    assert!(text.contains("timed out"), "{text}");
    assert!(
        !text.contains("split brain") && !text.contains("no leader"),
        "{text}"
    );
    let out = s.health(&[]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        report.contains(&format!("ok    split_brain      leader {new_leader}")),
        "{report}"
    );
    assert!(report.contains("ok    no_leader"), "{report}");
    drop(frozen);
    s.wait_cluster(&[0, 1, 2], "healthy", None).await;
    let mails = s.health_mails(0);
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert!(
        mails[0].0.starts_with("[wukongim loopback] RESOLVED"),
        "{}",
        mails[0].0
    );
    assert!(!mails[0].1.contains("split brain"), "{}", mails[0].1);
    step("frozen leader reported and resolved");

    // --dry-run prints the mail and leaves the state alone.
    let before = std::fs::read(&s.state).unwrap();
    let sent = s.smtp.mails().len();
    s.cluster.nodes[victim].kill9();
    let current = s.wait_cluster(&others, "degraded", None).await;
    let out = s.health(&["--dry-run"]);
    assert_eq!(code(&out), 1, "{}", show(&out));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(report.contains("mail (dry run, not sent):"), "{report}");
    assert!(
        report.contains("Subject: [wukongim loopback] FIRING"),
        "{report}"
    );
    assert_eq!(
        std::fs::read(&s.state).unwrap(),
        before,
        "dry run wrote the state"
    );
    assert_eq!(s.smtp.mails().len(), sent, "dry run sent mail");
    step("dry run");

    // Quorum lost: one node dead, the leader frozen. The last node still names the frozen
    // leader (it cannot elect another), but no answering node is the leader: no_leader is
    // pending for noLeaderFor (5s), then fires.
    let li = s.cluster.index_of(current);
    let frozen = Frozen::freeze(s.cluster.nodes[li].pid().unwrap());
    let out = s.health(&[]);
    assert_eq!(code(&out), 1, "{}", show(&out));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("FAIL  no_leader") && l.ends_with("(pending)")),
        "{report}"
    );
    let deadline = Instant::now() + T;
    let fired = loop {
        let mails = s.health_mails(1);
        if let Some(m) = mails
            .iter()
            .find(|(subject, _)| subject.contains("no leader"))
        {
            break m.clone();
        }
        assert!(Instant::now() < deadline, "no_leader never fired");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(fired.0.contains("FIRING"), "{}", fired.0);
    assert!(
        fired.1.contains(&format!(
            "none of the 1 answering nodes is the raft leader (they still name {current}"
        )),
        "{}",
        fired.1
    );
    drop(frozen);
    step("no_leader fired after noLeaderFor");

    // Errors: one line each, documented exit codes, no panic.
    wk_testkit::write_secret(&d_join(&s, "wrong-token"), "not-the-token\n").unwrap();
    let wrong = fleet
        .write_inventory_text("wrong-token.yaml", &inventory_text("wrong-token"))
        .unwrap();
    let scratch_state = d_join(&s, "wrong-token.json");
    for args in [
        vec!["status", wrong.to_str().unwrap()],
        vec![
            "health",
            wrong.to_str().unwrap(),
            "--state",
            scratch_state.to_str().unwrap(),
        ],
    ] {
        let out = wk_ops(&args, &[]);
        assert_eq!(code(&out), 2, "{}", show(&out));
        let err = stderr(&out);
        assert!(err.contains("refused the manager token"), "{}", show(&out));
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let bad = d_join(&s, "bad.yaml");
    std::fs::write(&bad, "cluster: [\n").unwrap();
    for cmd in ["status", "health"] {
        let out = wk_ops(&[cmd, bad.to_str().unwrap()], &[]);
        assert_eq!(code(&out), 2, "{}", show(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", show(&out));
    }
    let out = wk_ops(&["health", &inv_path, "--watch", "0s"], &[]);
    assert_eq!(code(&out), 2, "{}", show(&out));
    let nowhere = LoopbackFleet::new(&d_join(&s, "nowhere"), 3).unwrap();
    let nowhere_inv = nowhere
        .write_inventory_text(
            "inventory.yaml",
            &nowhere.inventory_with(
                &format!("  managerTokenFile: {}/manager-token\n", d.display()),
                "",
                "",
            ),
        )
        .unwrap();
    let out = wk_ops(
        &["status", nowhere_inv.to_str().unwrap(), "--timeout", "1s"],
        &[],
    );
    assert_eq!(code(&out), 2, "{}", show(&out));
    assert!(
        stderr(&out).contains("no node of cluster loopback answered"),
        "{}",
        show(&out)
    );
    let out = wk_ops(
        &[
            "health",
            nowhere_inv.to_str().unwrap(),
            "--dry-run",
            "--state",
            d_join(&s, "nowhere.json").to_str().unwrap(),
            "--timeout",
            "1s",
        ],
        &[],
    );
    assert_eq!(code(&out), 1, "{}", show(&out));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        report
            .to_lowercase()
            .contains("node 1001 down: connection refused"),
        "{report}"
    );
    // noLeaderFor defaults to 30s: pending, not yet in the mail.
    assert!(report.contains("no leader"), "{report}");
    step("errors");
}

fn d_join(s: &Setup, rel: &str) -> PathBuf {
    s.dir.path().join(rel)
}

/// Moves every alert's `last_mailed` far into the past (the state file is documented JSON).
fn rewind_last_mailed(path: &Path) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for a in v["alerts"].as_object_mut().unwrap().values_mut() {
        if !a["last_mailed"].is_null() {
            a["last_mailed"] = "2000-01-01T00:00:00Z".into();
        }
    }
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}
