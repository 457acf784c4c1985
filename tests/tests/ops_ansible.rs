//! The Ansible playbooks of `ansible/` (issue 14), run for real by `ansible-playbook`.
//!
//! - Every playbook passes `ansible-playbook --syntax-check` against the hosts.yml that
//!   `wk-ops render` writes for examples/inventory.yaml.
//! - `ansible-lint` (offline, production profile) reports zero findings.
//! - `site.yml` against localhost (connection local; every path — binaries, configuration,
//!   secrets, data, Ansible's own temporary files — under a scratch directory; systemd switched
//!   off by `wukongim_systemd: false`, the node driven by tests/supervisor/wk-svc): `--check`
//!   on the fresh host changes nothing on disk, the real run installs a node that answers
//!   /health and accepts a message, with the file modes, and a second run reports
//!   changed=0.
//! - `rolling-restart.yml` against a 3-node loopback cluster deployed by `site.yml` (three
//!   inventory hosts on 127.0.0.11–13, distinct prefixes and ports) restarts all three, the
//!   leader last, while a client sends messages over HTTP without a single failed write; then
//!   `backup.yml` backs that cluster up with `wk-ops backup` and fetches an archive that
//!   `wk-ops backup verify` accepts.
//!
//! Needs `ansible-playbook` (Debian `ansible`) and `ansible-lint`: with `CI` set a missing one
//! fails the test, otherwise it is skipped with a notice.

use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wk_testkit::{self as testkit, LoopbackFleet};
use wk_tests::{bin, poll};

const T: Duration = Duration::from_secs(60);
const MANAGER_TOKEN: &str = "ansible-test-manager-token";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn playbook(name: &str) -> PathBuf {
    repo().join("ansible").join(name)
}

fn have(tool: &str) -> bool {
    let package = if tool == "ansible-lint" {
        "ansible-lint"
    } else {
        "ansible"
    };
    testkit::tool(tool, package).is_some()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `wk-ops render INVENTORY --out OUT`, which must succeed.
fn render(inventory: &Path, out: &Path) {
    let o = Command::new(bin("wk-ops"))
        .arg("render")
        .arg(inventory)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run wk-ops");
    assert!(o.status.success(), "wk-ops render failed\n{}", text(&o));
}

/// The SHA-256 of a file (coreutils' sha256sum).
fn sha256(path: &Path) -> String {
    let o = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(o.status.success(), "sha256sum: {}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn id(flag: &str) -> String {
    let o = Command::new("id").arg(flag).output().expect("run id");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// A fleet deployed by the playbooks under one scratch directory. Dropping it stops every node
/// through wk-ops' supervisor (and prints the node logs when the test failed).
struct Deploy {
    dir: tempfile::TempDir,
    fleet: LoopbackFleet,
    hosts: PathBuf,
    vars: PathBuf,
}

impl Deploy {
    /// Writes the inventory (service commands through wk-svc, every path under the scratch
    /// directory, a manager token), renders it, and writes the playbook variables.
    fn new(nodes: usize) -> Deploy {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let fleet = LoopbackFleet::new(dir.path(), nodes).unwrap();
        let svc = repo().join("tests/supervisor/wk-svc").display().to_string();
        let command = |action: &str| {
            format!(
                "    {action}: \"env WK_SVC_BIN={d}/bin/wukongim WK_SVC_STOP_SECS=30 {svc} {action} {d}/etc/{{id}}/wk.yaml\"\n"
            )
        };
        let defaults = format!(
            "  service:\n{}{}{}{}",
            command("start"),
            command("stop"),
            command("restart"),
            command("status")
        );
        let (user, group) = (id("-un"), id("-gn"));
        let text = fleet.inventory_with(
            &format!("  managerTokenFile: {d}/etc/secrets/manager-token\n"),
            &defaults,
            &format!(
                "systemd:\n  user: {user}\n  group: {group}\n  binary: {d}/bin/wukongim\n  \
                 configDir: {d}/etc\n  opsBinary: {d}/bin/wk-ops\n  opsUser: {user}\n  \
                 opsGroup: {group}\n  inventoryPath: {d}/etc/wk-ops/inventory.yaml\n\
                 backup:\n  dir: {d}/backup\n"
            ),
        );
        let inventory = fleet.write_inventory_text("inventory.yaml", &text).unwrap();
        let rendered = dir.path().join("rendered");
        render(&inventory, &rendered);
        let secrets = dir.path().join("controller-secrets");
        std::fs::create_dir_all(&secrets).unwrap();
        wk_testkit::write_secret(&secrets.join("manager-token"), MANAGER_TOKEN).unwrap();
        let (wukongim, wk_ops) = (bin("wukongim"), bin("wk-ops"));
        let vars = json!({
            "ansible_connection": "local",
            "ansible_python_interpreter": "auto_silent",
            "wukongim_become": false,
            "wukongim_systemd": false,
            "wukongim_manage_user": false,
            "wukongim_file_owner": user,
            "wk_ops_file_owner": user,
            "wukongim_binary_src": wukongim,
            "wukongim_binary_sha256": sha256(&wukongim),
            "wk_ops_binary_src": wk_ops,
            "wk_ops_binary_sha256": sha256(&wk_ops),
            "wk_ops_inventory_src": inventory,
            "wukongim_secrets_dir": secrets,
            "wukongim_health_timeout": 60,
        });
        let vars_path = dir.path().join("vars.json");
        std::fs::write(&vars_path, vars.to_string()).unwrap();
        Deploy {
            hosts: rendered.join("ansible/hosts.yml"),
            dir,
            fleet,
            vars: vars_path,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn config(&self, id: u64) -> PathBuf {
        self.path(&format!("etc/{id}/wk.yaml"))
    }

    fn api(&self, i: usize, path: &str) -> String {
        let n = &self.fleet.nodes[i];
        format!("http://{}:{}{path}", n.ip(), n.api)
    }

    /// `ansible-playbook -i hosts.yml PLAYBOOK -e @vars.json ARGS` with the JSON callback;
    /// returns its report (and asserts it succeeded).
    fn play(&self, name: &str, args: &[&str]) -> Value {
        let home = self.path("ansible-home");
        let started = Instant::now();
        let o = Command::new("ansible-playbook")
            .arg("-i")
            .arg(&self.hosts)
            .arg(playbook(name))
            .arg("-e")
            .arg(format!("@{}", self.vars.display()))
            .args(args)
            .env("ANSIBLE_HOME", &home)
            .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
            .env("ANSIBLE_REMOTE_TEMP", home.join("remote-tmp"))
            // The JSON report callback of the ansible.posix collection (Debian's `ansible`).
            .env("ANSIBLE_STDOUT_CALLBACK", "ansible.posix.json")
            .env("ANSIBLE_PIPELINING", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "false")
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_FORCE_COLOR", "0")
            .output()
            .expect("run ansible-playbook");
        eprintln!(
            "ansible-playbook {name} {args:?}: {} in {:.1?}",
            o.status,
            started.elapsed()
        );
        let report: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!("{name}: no JSON report ({e}):\n{}", text(&o));
        });
        assert!(
            o.status.success(),
            "ansible-playbook {name} {args:?} failed ({}):\n{}\n{}",
            o.status,
            serde_json::to_string_pretty(&report).unwrap_or_default(),
            String::from_utf8_lossy(&o.stderr)
        );
        report
    }

    fn pid(&self, id: u64) -> Option<String> {
        std::fs::read_to_string(format!("{}.pid", self.config(id).display()))
            .ok()
            .map(|s| s.trim().to_string())
    }
}

impl Drop for Deploy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for n in &self.fleet.nodes {
                let log = std::fs::read_to_string(format!("{}.log", self.config(n.id).display()))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                eprintln!("--- node {} (last lines) ---", n.id);
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        let svc = repo().join("tests/supervisor/wk-svc");
        for n in &self.fleet.nodes {
            let _ = Command::new(&svc)
                .arg("stop")
                .arg(self.config(n.id))
                .env("WK_SVC_STOP_SECS", "5")
                .status();
        }
    }
}

/// Sum of a per-host counter in the report's stats.
fn stat(report: &Value, key: &str) -> u64 {
    report["stats"]
        .as_object()
        .map(|hosts| hosts.values().map(|h| h[key].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0)
}

/// Every task result that changed, as (task name, host), in the order they ran.
fn changed_tasks(report: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for play in report["plays"].as_array().into_iter().flatten() {
        for task in play["tasks"].as_array().into_iter().flatten() {
            let name = task["task"]["name"].as_str().unwrap_or_default();
            for (host, r) in task["hosts"].as_object().into_iter().flatten() {
                if r["changed"].as_bool() == Some(true) {
                    out.push((name.to_string(), host.clone()));
                }
            }
        }
    }
    out
}

async fn api_post(url: &str, body: Value) -> Result<(u16, Value), reqwest::Error> {
    let resp = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(15))
        .build()?
        .post(url)
        .header("token", MANAGER_TOKEN)
        .json(&body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let v = resp.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, v))
}

/// What the concurrent writer saw.
#[derive(Debug, Default)]
struct WriteLog {
    acked: Vec<String>,
    failed: Vec<String>,
    /// Requests no node handled, sent again to the next node.
    retried: u64,
}

/// The request reached no handler: the connection was refused, or closed before any response
/// (hyper closes a connection it has not read a request from when the server shuts down).
fn not_handled(e: &reqwest::Error) -> bool {
    if e.is_connect() {
        return true;
    }
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        if err
            .to_string()
            .contains("connection closed before message completed")
        {
            return true;
        }
        source = err.source();
    }
    false
}

fn send_body(from: &str, to: &str, no: &str) -> Value {
    json!({"header": {}, "from_uid": from, "channel_id": to, "channel_type": 1,
           "client_msg_no": no, "payload": "aGk="})
}

async fn history(url: &str, login: &str, channel: &str) -> Vec<Value> {
    let body = json!({"login_uid": login, "channel_id": channel, "channel_type": 1,
                      "start_message_seq": 0, "limit": 10000, "pull_mode": 1});
    match api_post(url, body).await {
        Ok((200, v)) => v["messages"].as_array().cloned().unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[test]
fn every_playbook_passes_syntax_check() {
    if !have("ansible-playbook") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    render(&repo().join("examples/inventory.yaml"), t.path());
    let mut playbooks: Vec<PathBuf> = std::fs::read_dir(repo().join("ansible"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    playbooks.sort();
    let names: Vec<String> = playbooks
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in ["backup.yml", "rolling-restart.yml", "site.yml"] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    for p in &playbooks {
        let o = Command::new("ansible-playbook")
            .arg("--syntax-check")
            .arg("-i")
            .arg(t.path().join("ansible/hosts.yml"))
            .arg(p)
            .env("ANSIBLE_HOME", t.path().join("ansible-home"))
            .env("ANSIBLE_NOCOLOR", "1")
            .output()
            .expect("run ansible-playbook");
        assert!(
            o.status.success(),
            "{}: syntax check failed\n{}",
            p.display(),
            text(&o)
        );
    }
}

#[test]
fn ansible_lint_production_profile_finds_nothing() {
    if !have("ansible-lint") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    // --offline: never install collections, refresh schemas or look for a newer release. No
    // path argument: ansible-lint then finds every file itself (given `.` it takes the
    // directory for one role and lints almost nothing).
    let o = Command::new("ansible-lint")
        .args([
            "--offline",
            "--profile",
            "production",
            "--nocolor",
            "--strict",
        ])
        .current_dir(repo().join("ansible"))
        .env("ANSIBLE_HOME", t.path().join("ansible-home"))
        .env("XDG_CACHE_HOME", t.path().join("cache"))
        .output()
        .expect("run ansible-lint");
    let out = text(&o);
    assert!(o.status.success(), "ansible-lint found problems:\n{out}");
    assert!(
        out.contains("Passed with production profile: 0 failure(s), 0 warning(s)"),
        "unexpected ansible-lint summary:\n{out}"
    );
    let linted: usize = out
        .split("warning(s) on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let yml = yml_files(&repo().join("ansible"));
    assert!(
        linted >= yml,
        "ansible-lint looked at {linted} files, there are {yml} YAML files:\n{out}"
    );
}

/// Number of `.yml` files under `dir`.
fn yml_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| match p.is_dir() {
            true => yml_files(&p),
            false => usize::from(p.extension().is_some_and(|e| e == "yml")),
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn site_yml_installs_a_working_node_and_a_second_run_changes_nothing() {
    if !have("ansible-playbook") {
        return;
    }
    let deploy = Deploy::new(1);
    let id = deploy.fleet.nodes[0].id;

    // --check --diff on the fresh host: succeeds, and nothing is installed or started.
    let report = deploy.play("site.yml", &["--check", "--diff"]);
    assert_eq!(stat(&report, "failures"), 0);
    assert!(!deploy.config(id).exists(), "check mode wrote the config");
    assert!(
        !deploy.path("bin/wukongim").exists(),
        "check mode installed"
    );
    assert_eq!(deploy.pid(id), None, "check mode started the node");

    let report = deploy.play("site.yml", &[]);
    assert!(
        stat(&report, "changed") > 0,
        "the first run changed nothing"
    );
    let (st, _) = wk_tests::get(&deploy.api(0, "/health")).await;
    assert_eq!(st, 200, "GET /health after site.yml");

    // The node accepts a message and serves it back.
    let (st, v) = api_post(
        &deploy.api(0, "/message/send"),
        send_body("ansible-a", "ansible-b", "site-1"),
    )
    .await
    .expect("send");
    assert_eq!(st, 200, "send: {v}");
    let url = deploy.api(0, "/channel/messagesync");
    poll(T, "the message in the history", || async {
        let h = history(&url, "ansible-b", "ansible-a").await;
        h.iter()
            .any(|m| m["client_msg_no"] == "site-1")
            .then_some(())
    })
    .await;

    // The modes: data and configuration directories 0750, secrets 0600.
    assert_eq!(mode(&deploy.path(&format!("data/{id}"))), 0o750);
    assert_eq!(mode(&deploy.path("etc")), 0o750);
    assert_eq!(mode(&deploy.path(&format!("etc/{id}"))), 0o750);
    assert_eq!(mode(&deploy.config(id)), 0o640);
    assert_eq!(mode(&deploy.path("etc/secrets/manager-token")), 0o600);
    assert_eq!(mode(&deploy.path("bin/wukongim")), 0o755);
    assert_eq!(mode(&deploy.path("backup")), 0o750);
    assert_eq!(
        std::fs::read(deploy.path("etc/wk-ops/inventory.yaml")).unwrap(),
        std::fs::read(deploy.path("inventory.yaml")).unwrap()
    );

    // Idempotent: a second run changes nothing and leaves the node running as it was.
    let pid = deploy.pid(id);
    let report = deploy.play("site.yml", &[]);
    assert_eq!(
        stat(&report, "changed"),
        0,
        "second run changed: {:?}",
        changed_tasks(&report)
    );
    assert_eq!(deploy.pid(id), pid, "the second run restarted the node");
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_restart_restarts_every_node_leader_last_without_a_failed_write_then_backup_yml_backs_it_up(
) {
    if !have("ansible-playbook") {
        return;
    }
    let deploy = Arc::new(Deploy::new(3));
    deploy.play("site.yml", &[]);
    let ids: Vec<u64> = deploy.fleet.nodes.iter().map(|n| n.id).collect();
    let status_url = deploy.api(0, "/cluster/status");
    let leader = poll(T, "a healthy cluster with a leader", || async {
        let r = reqwest::Client::new()
            .get(&status_url)
            .header("token", MANAGER_TOKEN)
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        (v["status"] == "healthy").then(|| v["leader"].as_u64())?
    })
    .await;
    let pids_before: Vec<Option<String>> = ids.iter().map(|id| deploy.pid(*id)).collect();

    // A client sends messages over HTTP the whole time, each to the next node in turn. A
    // request that no node handled — connection refused, or a connection a stopping node
    // closed before reading the request (hyper's graceful shutdown) — goes to the next node
    // with the same client_msg_no, as a load balancer would retry it; anything else that is not
    // a 200 with a message_seq is a failed write. That the retried ones were really not
    // handled is checked at the end: no message is stored twice.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, deploy) = (stop.clone(), deploy.clone());
        tokio::spawn(async move {
            let mut log = WriteLog::default();
            let mut k = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let no = format!("roll-{k}");
                let body = send_body("roll-writer", "roll-reader", &no);
                let nodes = deploy.fleet.nodes.len();
                let mut outcome = Err(format!("{no}: no node handled it"));
                for attempt in 0..nodes {
                    let i = (k + attempt) % nodes;
                    match api_post(&deploy.api(i, "/message/send"), body.clone()).await {
                        Err(e) if not_handled(&e) => log.retried += 1,
                        Ok((200, v)) if v["data"]["message_seq"].as_u64() > Some(0) => {
                            outcome = Ok(());
                            break;
                        }
                        other => {
                            outcome = Err(format!("{no} via node {i}: {other:?}"));
                            break;
                        }
                    }
                }
                match outcome {
                    Ok(()) => log.acked.push(no),
                    Err(e) => log.failed.push(e),
                }
                k += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            log
        })
    };

    let d = deploy.clone();
    let report = tokio::task::spawn_blocking(move || d.play("rolling-restart.yml", &[]))
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let WriteLog {
        acked,
        failed,
        retried,
    } = writer.await.unwrap();
    eprintln!(
        "writes during the rolling restart: {} acknowledged, {} failed, {retried} sent again to \
         another node (refused, or closed unhandled by a stopping node)",
        acked.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "failed writes: {failed:#?}");
    assert!(
        acked.len() >= 20,
        "too few writes ({}) to mean anything",
        acked.len()
    );

    // All three restarted, one at a time, the leader last.
    let restarts: Vec<String> = changed_tasks(&report)
        .into_iter()
        .filter(|(task, _)| task.contains("Restart the node"))
        .map(|(_, host)| host)
        .collect();
    assert_eq!(restarts.len(), 3, "restarts: {restarts:?}");
    assert_eq!(
        restarts[2],
        format!("wk-{leader}"),
        "restarts: {restarts:?}"
    );
    let transfers: Vec<String> = changed_tasks(&report)
        .into_iter()
        .filter(|(task, _)| task.contains("Transfer leadership"))
        .map(|(_, host)| host)
        .collect();
    assert_eq!(transfers, vec![format!("wk-{leader}")], "leadership moves");
    for (id, before) in ids.iter().zip(&pids_before) {
        assert!(before.is_some());
        assert_ne!(&deploy.pid(*id), before, "node {id} was not restarted");
    }
    for (i, id) in ids.iter().enumerate() {
        let (st, _) = wk_tests::get(&deploy.api(i, "/health")).await;
        assert_eq!(st, 200, "node {id} after the rolling restart");
    }
    // Every acknowledged message is there, on every node, and none twice (a request sent
    // again to another node had not been handled by the first).
    for (i, id) in ids.iter().enumerate() {
        let url = deploy.api(i, "/channel/messagesync");
        let stored = poll(T, "every acknowledged message on every node", || async {
            let h = history(&url, "roll-reader", "roll-writer").await;
            let stored: Vec<String> = h
                .iter()
                .filter_map(|m| m["client_msg_no"].as_str().map(String::from))
                .collect();
            acked.iter().all(|no| stored.contains(no)).then_some(stored)
        })
        .await;
        let mut seen = std::collections::HashSet::new();
        let twice: Vec<&String> = stored.iter().filter(|no| !seen.insert(*no)).collect();
        assert!(twice.is_empty(), "node {id} stores twice: {twice:?}");
    }

    // backup.yml on the same cluster: wk-ops backup on the wk_ops host, the archive and its
    // checksum fetched to the controller, where `wk-ops backup verify` accepts them.
    let fetched = deploy.path("fetched");
    let fetch_to = format!("wk_ops_backup_fetch_to={}", fetched.display());
    let report = deploy.play("backup.yml", &["-e", &fetch_to]);
    assert_eq!(stat(&report, "failures"), 0);
    let mut files: Vec<String> = std::fs::read_dir(&fetched)
        .unwrap_or_else(|e| panic!("{}: {e}", fetched.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "fetched: {files:?}");
    assert!(
        files[0].starts_with("loopback-") && files[0].ends_with(".tar.zst"),
        "{files:?}"
    );
    assert_eq!(files[1], format!("{}.sha256", files[0]));
    assert!(deploy.path("backup").join(&files[0]).exists());
    let o = Command::new(bin("wk-ops"))
        .args(["backup", "verify"])
        .arg(fetched.join(&files[0]))
        .output()
        .expect("run wk-ops backup verify");
    assert!(o.status.success(), "verify failed:\n{}", text(&o));
}
