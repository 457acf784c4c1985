//! The fleet the `wk-ops` SSH tests drive (issue 13): a real OpenSSH server started here on the
//! fleet's loopback addresses (host and client keys made with ssh-keygen, key-only root login,
//! its own config in a temp dir), a cluster rendered by `wk-ops render` whose nodes run under
//! `tests/supervisor/wk-svc` — the command the inventory's service commands run over SSH — and
//! the app-like SDK sender whose every message must be acknowledged. Nodes marked as joining
//! are in the inventory (`joins: true`) but neither installed nor started: `scale-out` does that.

use crate::{bin, get, poll, JsClient};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wk_testkit::{self as testkit, LoopbackFleet};

pub const T: Duration = Duration::from_secs(30);
/// Messages per second the SDK client sends while the fleet changes.
pub const RATE: u64 = 20;

/// sshd, ssh-keygen, Node and the bundled SDK: a missing one fails the test (scripts/test
/// installs them).
pub fn prerequisites() {
    testkit::require("sshd", "openssh-server");
    testkit::require("ssh-keygen", "openssh-client");
    testkit::require("node", "nodejs");
    if !crate::js::js_dir().join("dist/sdk.cjs").exists() {
        testkit::missing::<()>("tests/js/dist/sdk.cjs (scripts/test bundles wukongimjssdk)");
    }
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed ({})\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

pub fn keygen(path: &Path) {
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "wk-test", "-f"])
            .arg(path),
    );
}

/// A real sshd on one port of every fleet address, stopped on drop.
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Sshd {
    pub fn start(dir: &Path, ips: &[String], client_key: &Path) -> Sshd {
        std::fs::create_dir_all(dir).unwrap();
        let host_key = dir.join("host_key");
        keygen(&host_key);
        let pubkey = std::fs::read_to_string(client_key.with_extension("pub")).unwrap();
        std::fs::write(dir.join("authorized_keys"), pubkey).unwrap();
        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = loop {
            let p = testkit::free_port().unwrap();
            if ips
                .iter()
                .all(|ip| std::net::TcpListener::bind((ip.as_str(), p)).is_ok())
            {
                break p;
            }
        };
        let mut conf = format!(
            "Port {port}\nHostKey {hk}\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n\
             UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nMaxStartups 100\n\
             MaxSessions 100\nLogLevel VERBOSE\n",
            hk = host_key.display(),
            d = dir.display()
        );
        for ip in ips {
            conf.push_str(&format!("ListenAddress {ip}\n"));
        }
        let config = dir.join("sshd_config");
        std::fs::write(&config, conf).unwrap();
        let sshd = testkit::tool("sshd", "openssh-server").unwrap();
        run_ok(Command::new(&sshd).arg("-t").arg("-f").arg(&config));
        let log = dir.join("sshd.log");
        let child = Command::new(&sshd)
            .arg("-D")
            .arg("-f")
            .arg(&config)
            .arg("-E")
            .arg(&log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshd");
        let deadline = Instant::now() + T;
        for ip in ips {
            while std::net::TcpStream::connect((ip.as_str(), port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "sshd does not listen on {ip}:{port}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Sshd { child, port, log }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fleet under test: rendered files, nodes run by wk-svc, sshd. Stops everything on drop.
pub struct SshFleet {
    pub dir: tempfile::TempDir,
    pub fleet: LoopbackFleet,
    pub inventory: PathBuf,
    /// The wukongim binary the service commands run.
    pub installed: PathBuf,
    pub known_hosts: PathBuf,
    /// Every node's wk.yaml path (installed or, for joining nodes, where scale-out puts it).
    pub configs: BTreeMap<u64, PathBuf>,
    /// The nodes marked `joins: true` (not started here).
    pub joining: Vec<u64>,
    pub sshd: Sshd,
}

pub fn wk_svc() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("supervisor/wk-svc")
}

impl SshFleet {
    /// `total` nodes of which the last `joining` are marked `joins: true` in the inventory;
    /// the others are rendered and started.
    pub fn start(prefix: &str, total: usize, joining: usize) -> SshFleet {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        let d = dir.path();
        let fleet = LoopbackFleet::new(d, total).unwrap();
        let client_key = d.join("id_ed25519");
        keygen(&client_key);
        keygen(&d.join("stranger_key"));
        let ips: Vec<String> = fleet.nodes.iter().map(|n| n.ip()).collect();
        let sshd = Sshd::start(&d.join("sshd"), &ips, &client_key);
        let out = d.join("out");
        // The installed binary (what `upgrade` replaces) is a copy in the scratch directory.
        let installed = d.join("bin/wukongim");
        std::fs::create_dir_all(d.join("bin")).unwrap();
        std::fs::copy(bin("wukongim"), &installed).unwrap();
        let svc = format!(
            "WK_SVC_BIN={} WK_SVC_STOP_SECS=20 {}",
            installed.display(),
            wk_svc().display()
        );
        let cfg = format!("{}/nodes/{{id}}/wk.yaml", out.display());
        let defaults = format!(
            "  logFile: {d}/logs/{{id}}.log\n  logLevel: \"info,openraft=warn\"\n  \
             ssh: {{ user: root, port: {port}, identityFile: {key} }}\n  \
             service: {{ start: \"{svc} start {cfg}\", stop: \"{svc} stop {cfg}\", \
             restart: \"{svc} restart {cfg}\", status: \"{svc} status {cfg}\" }}\n",
            d = d.display(),
            port = sshd.port,
            key = client_key.display(),
        );
        let systemd = format!(
            "systemd: {{ user: root, group: root, binary: {}, configDir: {} }}\n",
            installed.display(),
            out.join("nodes").display()
        );
        let mut text = fleet.inventory_with("", &defaults, &systemd);
        let joining_ids: Vec<u64> = fleet.nodes[total - joining..]
            .iter()
            .map(|n| n.id)
            .collect();
        for id in &joining_ids {
            text = text.replace(
                &format!("- {{ id: {id}, "),
                &format!("- {{ id: {id}, joins: true, "),
            );
        }
        let inventory = fleet.write_inventory_text("inventory.yaml", &text).unwrap();
        // The same fleet reached with a key the server does not know.
        fleet
            .write_inventory_text(
                "inventory-stranger.yaml",
                &text.replace(
                    &client_key.display().to_string(),
                    &d.join("stranger_key").display().to_string(),
                ),
            )
            .unwrap();
        run_ok(
            Command::new(bin("wk-ops"))
                .arg("render")
                .arg(&inventory)
                .arg("--out")
                .arg(&out),
        );
        let configs = fleet
            .nodes
            .iter()
            .map(|n| (n.id, out.join(format!("nodes/{}/wk.yaml", n.id))))
            .collect();
        // scale-out installs a joining node's wk.yaml: none is there before.
        for id in &joining_ids {
            std::fs::remove_dir_all(out.join(format!("nodes/{id}"))).unwrap();
        }
        let s = SshFleet {
            joining: joining_ids,
            installed,
            known_hosts: d.join("known_hosts"),
            dir,
            fleet,
            inventory,
            configs,
            sshd,
        };
        for (id, c) in &s.configs {
            if !s.joining.contains(id) {
                s.svc("start", c);
            }
        }
        s
    }

    pub fn svc(&self, action: &str, config: &Path) -> Output {
        let mut cmd = Command::new(wk_svc());
        cmd.arg(action)
            .arg(config)
            .env("WK_SVC_BIN", &self.installed)
            .env("WK_SVC_STOP_SECS", "20");
        if action == "stop" {
            return cmd.output().expect("run wk-svc");
        }
        run_ok(&mut cmd)
    }

    pub fn api(&self, id: u64, path: &str) -> String {
        let n = self.fleet.nodes.iter().find(|n| n.id == id).unwrap();
        format!("http://{}:{}{path}", n.ip(), n.api)
    }

    pub fn ws(&self, id: u64) -> String {
        let n = self.fleet.nodes.iter().find(|n| n.id == id).unwrap();
        format!("ws://{}:{}", n.ip(), n.ws)
    }

    pub fn ids(&self) -> Vec<u64> {
        self.fleet.nodes.iter().map(|n| n.id).collect()
    }

    /// Each node's pid from wk-svc's pid file.
    pub fn pids(&self) -> BTreeMap<u64, String> {
        self.configs
            .iter()
            .map(|(id, c)| {
                let pid = std::fs::read_to_string(c.with_extension("yaml.pid")).unwrap_or_default();
                (*id, pid.trim().to_string())
            })
            .collect()
    }

    /// `wk-ops rolling-restart INVENTORY ARGS…` (stdin closed: not a terminal).
    pub fn roll(&self, inventory: &Path, args: &[&str]) -> Output {
        self.ops("rolling-restart", inventory, args)
    }

    /// `wk-ops COMMAND INVENTORY --known-hosts … ARGS…` (stdin closed: not a terminal).
    pub fn ops(&self, command: &str, inventory: &Path, args: &[&str]) -> Output {
        let o = Command::new(bin("wk-ops"))
            .arg(command)
            .arg(inventory)
            .arg("--known-hosts")
            .arg(&self.known_hosts)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run wk-ops");
        eprintln!(
            "--- wk-ops {command} {args:?}: {}\n{}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    /// Every node healthy and agreeing on one leader; returns it.
    pub async fn wait_leader(&self) -> u64 {
        self.wait_leader_among(&self.ids()).await
    }

    /// Every node of `ids` healthy and agreeing on one leader; returns it.
    pub async fn wait_leader_among(&self, ids: &[u64]) -> u64 {
        poll(T, "every node healthy with one agreed leader", || async {
            let mut leaders = BTreeSet::new();
            for id in ids {
                let (st, v) = get(&self.api(*id, "/cluster/raft/status")).await;
                if st != 200 {
                    return None;
                }
                leaders.insert(v["leader"].as_u64()?);
            }
            (leaders.len() == 1).then(|| *leaders.first().unwrap())
        })
        .await
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        for (id, c) in &self.configs {
            let log = std::fs::read_to_string(c.with_extension("yaml.log")).unwrap_or_default();
            let app = std::fs::read_to_string(self.dir.path().join(format!("logs/{id}.log")))
                .unwrap_or_default();
            let tail = |t: &str| {
                t.lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            s.push_str(&format!(
                "--- node {id} ---\n{}\n{}\n",
                tail(&log),
                tail(&app)
            ));
        }
        s.push_str(&format!(
            "--- sshd ---\n{}",
            std::fs::read_to_string(&self.sshd.log).unwrap_or_default()
        ));
        s
    }
}

impl Drop for SshFleet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for c in self.configs.values() {
            let _ = self.svc("stop", c);
        }
    }
}

/// The app: a message every 1/RATE s into its outbox, handed to the SDK while the SDK reports
/// itself connected (as real apps do: the SDK itself keeps and resends what it was given and
/// has not seen acknowledged). Returns the client and the texts written.
pub fn sender(
    mut alice: JsClient,
    to: String,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(JsClient, Vec<String>)> {
    std::thread::spawn(move || {
        let mut written = Vec::new();
        let mut outbox = std::collections::VecDeque::new();
        let every = Duration::from_millis(1000 / RATE);
        let mut next = Instant::now();
        let connected = |a: &mut JsClient| {
            a.mark();
            a.seen
                .iter()
                .rev()
                .find(|v| v["ev"] == "status")
                .is_some_and(|v| v["status"] == 1)
        };
        let mut give_up = None;
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            if stopping && *give_up.get_or_insert_with(|| Instant::now() + T) < Instant::now() {
                // Never reconnected: return; the acknowledgement check reports it.
                return (alice, written);
            }
            if !stopping {
                let text = format!("{prefix}-{}", written.len());
                outbox.push_back(text.clone());
                written.push(text);
            }
            while !outbox.is_empty() && connected(&mut alice) {
                let text = outbox.pop_front().unwrap();
                alice.send_text(&to, 1, &text);
            }
            if stopping && outbox.is_empty() {
                return (alice, written);
            }
            next += every;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    })
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The text of a stored message: its base64 payload is the SDK's JSON (`{"content": …}`).
pub fn base64_text(payload: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v["content"].as_str().map(str::to_string)
}
