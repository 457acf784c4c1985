//! A `wukongim` server process under test: its own data dir, free loopback ports, a config file
//! written from options (or an existing one, e.g. rendered by `wk-ops`), start / kill -9 /
//! SIGTERM / restart, and its output for failure messages.
//!
//! Liveness is part of every test: stdout and stderr go to `stdout.log` / `stderr.log` in the
//! node's scratch directory; a node whose process exits without the test stopping it
//! ([`Node::kill9`], [`Node::terminate`], [`Node::wait_exit`]) or whose output contains a panic
//! fails the test when the node is dropped (or earlier, in [`Node::check`] / [`Node::alive`]).
//! When the test is failing anyway, dropping the node prints its output and keeps the directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A free TCP port on `ip`, claimed for this test process ([`wk_testkit::ports::reserve`]).
pub fn free_port(ip: &str) -> u16 {
    wk_testkit::ports::reserve(ip).expect("reserve a free port")
}

/// How to configure a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub ip: String,
    pub node_id: u64,
    /// Extra top-level YAML appended to the generated config.
    pub extra_yaml: String,
    /// Extra lines inside `cluster:` (indented by the caller with two spaces).
    pub cluster_yaml: String,
    pub env: Vec<(String, String)>,
    /// Extra command-line arguments.
    pub args: Vec<String>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            ip: "127.0.0.1".into(),
            node_id: 1,
            extra_yaml: String::new(),
            cluster_yaml: String::new(),
            env: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// Ports of one node.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub api: u16,
    pub tcp: u16,
    pub ws: u16,
    pub manager: u16,
    pub cluster: u16,
}

pub struct Node {
    pub opts: NodeOptions,
    pub ports: Ports,
    /// Scratch directory: the generated config, the data dir and `stderr.log` (for a node from
    /// an existing config only `stderr.log`).
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    /// The node's log file (`logFile` of its config).
    pub log_file: Option<PathBuf>,
    /// The config was written by [`Node::write_config`] (not given by the caller).
    generated: bool,
    /// Command prefix the server runs under (e.g. `ip netns exec NS`); empty: run directly.
    launcher: Vec<String>,
    child: Option<Child>,
}

impl Node {
    /// Writes the config and starts the process; returns once /health answers.
    pub async fn start(opts: NodeOptions) -> Node {
        let mut n = Node::prepare(opts);
        n.spawn();
        n.wait_healthy(Duration::from_secs(30)).await;
        n
    }

    /// Writes the config without starting.
    pub fn prepare(opts: NodeOptions) -> Node {
        let ip = opts.ip.clone();
        let ports = Ports {
            api: free_port(&ip),
            tcp: free_port(&ip),
            ws: free_port(&ip),
            manager: free_port(&ip),
            cluster: free_port(&ip),
        };
        Node::prepare_with_ports(opts, ports)
    }

    /// Writes the config with the given ports (e.g. a node alone in its network namespace,
    /// where every port is free) without starting.
    pub fn prepare_with_ports(opts: NodeOptions, ports: Ports) -> Node {
        let dir = tempfile::Builder::new()
            .prefix("wk-node")
            .tempdir()
            .expect("tempdir");
        let config_path = dir.path().join("wk.yaml");
        // Beside the data directory, not in it: a power-cut test's data lives on a FUSE mount
        // that is gone when the failure is reported.
        let log_file = Some(dir.path().join("wukongim.log"));
        let mut n = Node {
            opts,
            ports,
            dir,
            config_path,
            log_file,
            generated: true,
            launcher: Vec::new(),
            child: None,
        };
        n.write_config();
        n
    }

    /// A node run from an existing config file (not started). Its id, address, ports and log
    /// file are read from the file with the server's own loader; the file is never rewritten.
    pub fn from_config(path: &Path) -> Node {
        let loaded = wukongim::config::load(Some(path), std::iter::empty())
            .unwrap_or_else(|e| panic!("{e}"));
        let c = loaded.config;
        let port = |hostport: &str| -> u16 {
            hostport
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or_else(|| panic!("{}: no port in `{hostport}`", path.display()))
        };
        let http = c.http_listen();
        let ip = http.rsplit_once(':').map(|(h, _)| h).unwrap_or(&http);
        let ports = Ports {
            api: port(&http),
            tcp: port(&c.tcp_listen()),
            ws: port(&c.ws_listen()),
            manager: port(&c.manager.addr),
            cluster: port(&c.cluster.server_addr),
        };
        let dir = tempfile::Builder::new()
            .prefix("wk-node")
            .tempdir()
            .expect("tempdir");
        Node {
            opts: NodeOptions {
                ip: ip.to_string(),
                node_id: c.cluster.node_id,
                ..NodeOptions::default()
            },
            ports,
            dir,
            config_path: path.to_path_buf(),
            log_file: c.log_file.clone(),
            generated: false,
            launcher: Vec::new(),
            child: None,
        }
    }

    pub fn write_config(&mut self) {
        assert!(
            self.generated,
            "{} was not written by the harness; edit it yourself",
            self.config_path.display()
        );
        let (o, p) = (&self.opts, &self.ports);
        let ip = &o.ip;
        let yaml = format!(
            "mode: test\nrootDir: {root}\naddr: tcp://{ip}:{tcp}\nwsAddr: ws://{ip}:{ws}\nhttpAddr: {ip}:{api}\n\
             manager:\n  on: true\n  addr: {ip}:{mgr}\nlogLevel: info,openraft=warn\nlogFile: {log}\n\
             external:\n  ip: {ip}\n\
             cluster:\n  nodeId: {id}\n  serverAddr: {ip}:{cl}\n  heartbeatTick: 100ms\n{ticks}{cluster}\n{extra}\n",
            root = self.dir.path().join("data").display(),
            log = self.dir.path().join("wukongim.log").display(),
            tcp = p.tcp,
            ws = p.ws,
            api = p.api,
            mgr = p.manager,
            cl = p.cluster,
            id = o.node_id,
            cluster = o.cluster_yaml,
            extra = o.extra_yaml,
            // 10 ticks unless the node's cluster block sets its own.
            ticks = if o.cluster_yaml.contains("electionTick:") {
                ""
            } else {
                "  electionTick: 10\n"
            },
        );
        std::fs::write(&self.config_path, yaml).expect("write config");
    }

    /// Puts the node's data directory (config `rootDir`, which holds its database and log file)
    /// on `fs` (e.g. a [`LazyFs`](crate::LazyFs) mount) as a fresh subdirectory: `data` in the
    /// node's scratch directory becomes a symlink to it. Call before the first start.
    pub fn put_data_on(&self, fs: &Path) {
        let target = fs.join(format!("node-{}", self.opts.node_id));
        std::fs::create_dir_all(&target)
            .unwrap_or_else(|e| panic!("create {}: {e}", target.display()));
        let link = self.dir.path().join("data");
        assert!(
            !link.exists(),
            "{} exists: put_data_on before the first start",
            link.display()
        );
        std::os::unix::fs::symlink(&target, &link)
            .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
    }

    /// Runs the server under a command prefix that `exec`s it (so the child's pid is the
    /// server's), e.g. `ip netns exec NS`.
    pub fn set_launcher(&mut self, prefix: Vec<String>) {
        self.launcher = prefix;
    }

    /// Starts the process (config must exist).
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "node already running");
        let mut cmd = match self.launcher.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(crate::bin("wukongim"));
                c
            }
            None => Command::new(crate::bin("wukongim")),
        };
        let output = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join(name))
                .unwrap_or_else(|e| panic!("open {name}: {e}"))
        };
        cmd.arg("--config")
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(output("stdout.log"))
            .stderr(output("stderr.log"));
        // Debug servers check their incrementally kept data version against a full walk after
        // each apply while the store is small (store/digest.rs); a test's env may override it.
        cmd.env("WUKONGIM_CHECK_DATA_VERSION", "3000");
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        cmd.args(&self.opts.args);
        self.child = Some(cmd.spawn().expect("spawn wukongim"));
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Sends SIGHUP (reload secrets, reopen the log file); the node must be running.
    pub fn hup(&self) {
        let pid = self.pid().expect("node running").to_string();
        let ok = Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -HUP {pid}");
    }

    /// kill -9, and reap. Fails the test if the process had already exited on its own (a
    /// crash must not pass as the next victim of a kill).
    pub fn kill9(&mut self) {
        if let Some(status) = self.exited() {
            panic!(
                "node {} had already exited ({status}) before the test killed it\n{}",
                self.opts.node_id,
                self.log_tail()
            );
        }
        self.reap_kill();
    }

    fn reap_kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The exit status when the process was started and has exited without the test stopping
    /// it; None while it runs or after the test stopped it.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits (bounded) for a process the test expects to exit on its own; returns its exit
    /// code and marks the exit as intended.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(st) = self.exited() {
                self.child = None;
                return st.code();
            }
            assert!(
                self.child.is_some(),
                "node {} is not running",
                self.opts.node_id
            );
            if std::time::Instant::now() > deadline {
                panic!(
                    "node {} did not exit within {timeout:?}\n{}",
                    self.opts.node_id,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Should this node be up? True while its process runs; false when the test stopped it
    /// (never started, killed, terminated). Panics with the node's output when the process
    /// exited on its own: a crashed node must not silently drop out of a check.
    pub fn alive(&mut self) -> bool {
        if let Err(e) = self.check() {
            panic!("{e}");
        }
        self.child.is_some()
    }

    /// Every panic line in the node's stdout, stderr and log file.
    pub fn panics(&self) -> Vec<String> {
        let mut files = vec![
            self.dir.path().join("stderr.log"),
            self.dir.path().join("stdout.log"),
        ];
        files.extend(self.log_file.clone());
        files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .flat_map(|text| {
                text.lines()
                    .filter(|l| l.contains("panicked at") || l.contains("RUST_BACKTRACE"))
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Ok while the node is running (or was stopped by the test) and has not panicked.
    pub fn check(&mut self) -> Result<(), String> {
        let id = self.opts.node_id;
        if let Some(status) = self.exited() {
            return Err(format!(
                "node {id} exited on its own ({status})\n{}",
                self.log_tail()
            ));
        }
        let panics = self.panics();
        if !panics.is_empty() {
            return Err(format!(
                "node {id} panicked: {panics:?}\n{}",
                self.log_tail()
            ));
        }
        Ok(())
    }

    /// SIGTERM and wait for exit (bounded); returns the exit status code.
    pub async fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            if std::time::Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "node did not exit within {timeout:?} after SIGTERM\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Is the process still running? (A crashed node is simply not running here; checks that
    /// must not skip a crash use [`Node::alive`].)
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub async fn wait_healthy(&mut self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let (st, _) = crate::get(&self.url("/health")).await;
            if st == 200 {
                return;
            }
            if !self.running() {
                panic!("wukongim exited during start-up\n{}", self.log_tail());
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "wukongim not healthy within {timeout:?}\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.opts.ip, self.ports.api)
    }

    pub fn ws_addr(&self) -> String {
        format!("ws://{}:{}", self.opts.ip, self.ports.ws)
    }

    pub fn tcp_addr(&self) -> String {
        format!("{}:{}", self.opts.ip, self.ports.tcp)
    }

    pub fn metrics_url(&self) -> String {
        format!("http://{}:{}/metrics", self.opts.ip, self.ports.manager)
    }

    /// Path of the node's log file.
    pub fn log_path(&self) -> PathBuf {
        self.log_file
            .clone()
            .expect("this node's config has no logFile")
    }

    /// Last lines of the node's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self
            .log_file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(40);
        let mut stderr =
            std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default();
        stderr += &std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default();
        let stderr: Vec<&str> = stderr
            .lines()
            .filter(|l| {
                !l.trim_start().starts_with("at ")
                    && !l
                        .trim_start()
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_digit())
            })
            .collect();
        let from = stderr.len().saturating_sub(20);
        format!(
            "--- node {} log ---\n{}\n--- node {} stderr+stdout ---\n{}",
            self.opts.node_id,
            lines[start..].join("\n"),
            self.opts.node_id,
            stderr[from..].join("\n")
        )
    }
}

impl Drop for Node {
    /// Stops the process. A passing test fails here when the node crashed or panicked; a
    /// failing test gets the node's output printed and its directory kept for inspection.
    fn drop(&mut self) {
        let verdict = self.check();
        self.reap_kill();
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "kept node {} directory {} (config, data, stdout.log, stderr.log)\n{}",
                self.opts.node_id,
                self.dir.path().display(),
                self.log_tail()
            );
        } else if let Err(e) = verdict {
            self.dir.disable_cleanup(true);
            panic!("{e}\n(kept {})", self.dir.path().display());
        }
    }
}
