//! Test support for end-to-end tests of rendered files: an inventory for a small fleet on
//! loopback addresses (127.0.0.11, .12, …) whose every path lives in one scratch directory,
//! the commands that start real nginx and HAProxy from the rendered configs in the foreground
//! ([`Balancer`] runs and stops them), and the lookup of those external tools (a missing tool
//! fails the test: never a silent skip). Used by wk-ops'
//! own tests and by the load-balancer end-to-end test with a running cluster
//! (`tests/tests/load_balancer.rs`: render → start nodes from `nodes/<id>/wk.yaml` → start the
//! balancers → drive traffic through them).

pub mod mutations;
pub mod ports;

use std::fmt::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Ports of one loopback node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopbackNode {
    pub id: u64,
    /// 127.0.0.(10 + i), i from 1.
    pub host: [u8; 4],
    pub cluster: u16,
    pub tcp: u16,
    pub ws: u16,
    pub api: u16,
    pub metrics: u16,
}

impl LoopbackNode {
    pub fn ip(&self) -> String {
        let [a, b, c, d] = self.host;
        format!("{a}.{b}.{c}.{d}")
    }
}

/// A loopback fleet: nodes, balancer ports on 127.0.0.1, and a scratch directory.
#[derive(Debug, Clone)]
pub struct LoopbackFleet {
    pub dir: PathBuf,
    pub nodes: Vec<LoopbackNode>,
    pub lb_api: u16,
    pub lb_ws: u16,
    pub lb_tcp: u16,
}

/// Writes a secret (token or key) file readable only by its owner (mode 0600), as the server
/// requires of every token and key file.
pub fn write_secret(path: &Path, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// A port on 127.0.0.1 claimed for this test process ([`ports::reserve`]).
pub fn free_port() -> std::io::Result<u16> {
    ports::reserve("127.0.0.1")
}

/// A port on `ip` claimed for this test process ([`ports::reserve`]).
fn free_port_on(ip: &str) -> std::io::Result<u16> {
    ports::reserve(ip)
}

impl LoopbackFleet {
    /// `count` nodes with ids 1001… on 127.0.0.11…, each port free at the time of the call.
    pub fn new(dir: &Path, count: usize) -> std::io::Result<LoopbackFleet> {
        let mut nodes = Vec::new();
        for i in 0..count {
            let host = [127, 0, 0, 11 + i as u8];
            let ip = format!("127.0.0.{}", host[3]);
            nodes.push(LoopbackNode {
                id: 1001 + i as u64,
                host,
                cluster: free_port_on(&ip)?,
                tcp: free_port_on(&ip)?,
                ws: free_port_on(&ip)?,
                api: free_port_on(&ip)?,
                metrics: free_port_on(&ip)?,
            });
        }
        Ok(LoopbackFleet {
            dir: dir.to_path_buf(),
            nodes,
            lb_api: free_port()?,
            lb_ws: free_port()?,
            lb_tcp: free_port()?,
        })
    }

    /// The inventory text. `extra` is appended verbatim (more top-level sections).
    pub fn inventory(&self, extra: &str) -> String {
        self.inventory_with("", "", extra)
    }

    /// The inventory text with more keys: `cluster` and `defaults` are appended inside those
    /// sections (lines indented by two spaces, each ending in a newline), `extra` after the
    /// whole inventory.
    pub fn inventory_with(&self, cluster: &str, defaults: &str, extra: &str) -> String {
        let d = self.dir.display();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "cluster:\n  name: loopback\n  raft: {{ heartbeatTick: 100ms, electionTick: 10 }}"
        );
        s.push_str(cluster);
        // A loopback test fleet opts out explicitly of the secrets `wk-ops render` turns on by
        // default, except those the test configures itself.
        if !cluster.contains("managerTokenFile") {
            s.push_str("  openApi: true\n");
        }
        if !cluster.contains("auth:") {
            s.push_str("  auth: { enabled: false }\n");
        }
        if !cluster.contains("tokenAuthOn") {
            s.push_str("  tokenAuthOn: false\n");
        }
        let _ = writeln!(s, "defaults:\n  rootDir: {d}/data");
        s.push_str(defaults);
        let _ = writeln!(s, "nodes:");
        for n in &self.nodes {
            let _ = writeln!(
                s,
                "  - {{ id: {}, host: {}, ports: {{ cluster: {}, tcp: {}, ws: {}, api: {}, metrics: {} }} }}",
                n.id,
                n.ip(),
                n.cluster,
                n.tcp,
                n.ws,
                n.api,
                n.metrics
            );
        }
        let modules = nginx_stream_module()
            .map(|m| format!("[{}]", m.display()))
            .unwrap_or_else(|| "[]".into());
        let _ = writeln!(
            s,
            "loadBalancer:\n  kinds: [nginx, haproxy]\n  bindAddress: 127.0.0.1\n  \
             listen: {{ api: {}, ws: {}, tcp: {} }}\n  maxFails: 1\n  failTimeout: 2s\n  \
             nginx: {{ user: root, modules: {modules}, include: [], pidFile: {d}/nginx/nginx.pid, \
             errorLog: {d}/nginx/error.log, accessLog: {d}/nginx/access.log, tempDir: {d}/nginx/tmp, \
             workerConnections: 512 }}\n  haproxy: {{ maxconn: 512 }}",
            self.lb_api, self.lb_ws, self.lb_tcp
        );
        s.push_str(extra);
        s
    }

    /// Writes the inventory to `<dir>/inventory.yaml` and creates the nginx scratch
    /// directories; returns the inventory path.
    pub fn write_inventory(&self, extra: &str) -> std::io::Result<PathBuf> {
        self.write_inventory_text("inventory.yaml", &self.inventory(extra))
    }

    /// Writes `text` (e.g. from [`LoopbackFleet::inventory_with`]) to `<dir>/<name>` and
    /// creates the nginx scratch directories; returns the path.
    pub fn write_inventory_text(&self, name: &str, text: &str) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(self.dir.join("nginx/tmp"))?;
        let path = self.dir.join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    }
}

/// The nginx stream module when this nginx loads it dynamically (Debian's
/// libnginx-mod-stream), so a standalone nginx.conf must `load_module` it.
pub fn nginx_stream_module() -> Option<PathBuf> {
    [
        "/usr/lib/nginx/modules/ngx_stream_module.so",
        "/usr/lib64/nginx/modules/ngx_stream_module.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// `nginx -t` on a rendered config: startup errors to stderr instead of the built-in log path.
pub fn nginx_test_command(conf: &Path) -> Command {
    let mut c = Command::new("nginx");
    c.arg("-t").arg("-e").arg("stderr").arg("-c").arg(conf);
    c
}

/// nginx in the foreground on a rendered config (stop it by killing the child).
pub fn nginx_run_command(conf: &Path) -> Command {
    let mut c = Command::new("nginx");
    c.arg("-e")
        .arg("stderr")
        .arg("-c")
        .arg(conf)
        .arg("-g")
        .arg("daemon off;");
    c
}

/// `haproxy -c` on a rendered config.
pub fn haproxy_test_command(cfg: &Path) -> Command {
    let mut c = Command::new("haproxy");
    c.arg("-c").arg("-f").arg(cfg);
    c
}

/// HAProxy in the foreground (`-db` overrides the config's `daemon`).
pub fn haproxy_run_command(cfg: &Path) -> Command {
    let mut c = Command::new("haproxy");
    c.arg("-db").arg("-f").arg(cfg);
    c
}

/// Finds an external tool; a missing one fails the test, naming the Debian package
/// (`scripts/test` installs them all). Never returns None: the `Option` only keeps old call
/// sites (`let Some(p) = tool(..) else { return }`) compiling; see [`require`].
pub fn tool(name: &str, package: &str) -> Option<PathBuf> {
    Some(require(name, package))
}

/// The path of an external tool, or a test failure naming its Debian package.
pub fn require(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs =
        std::env::split_paths(&path).chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from));
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    missing(&format!(
        "`{name}` not found: install the Debian package `{package}` (scripts/test installs it)"
    ))
}

/// nginx with its stream module available (Debian builds it as a dynamic module, shipped in
/// `libnginx-mod-stream`); a failure otherwise. Never None (see [`tool`]).
pub fn nginx_with_stream() -> Option<PathBuf> {
    let nginx = require("nginx", "nginx");
    let out = Command::new(&nginx)
        .arg("-V")
        .output()
        .unwrap_or_else(|e| panic!("run {} -V: {e}", nginx.display()));
    let version = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if version.contains("--with-stream=dynamic") && nginx_stream_module().is_none() {
        missing::<()>(
            "nginx's stream module not found: install the Debian package `libnginx-mod-stream` (scripts/test installs it)",
        );
    }
    Some(nginx)
}

/// A missing prerequisite: always a test failure (never a silent pass). A test that truly
/// cannot run in some environment is marked `#[ignore = "why"]` instead, so the runner counts
/// it as skipped.
pub fn missing<T>(what: &str) -> T {
    panic!("missing prerequisite: {what}");
}

/// A load balancer (nginx or HAProxy) running in the foreground on a rendered config, its
/// output in a log file. Dropping it stops it: SIGTERM first (nginx's master then stops its
/// workers; SIGKILL would orphan them), SIGKILL if it is still running after 5 s.
pub struct Balancer {
    pub kind: &'static str,
    child: Child,
    log: PathBuf,
}

impl Balancer {
    /// Starts `kind` ("nginx" or "haproxy") on `conf`, stdout and stderr to `log`.
    pub fn start(kind: &'static str, conf: &Path, log: &Path) -> std::io::Result<Balancer> {
        let mut cmd = match kind {
            "nginx" => nginx_run_command(conf),
            "haproxy" => haproxy_run_command(conf),
            other => panic!("unknown balancer kind {other}"),
        };
        let file = std::fs::File::create(log)?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        Ok(Balancer {
            kind,
            child: cmd.spawn()?,
            log: log.to_path_buf(),
        })
    }

    /// Waits until every port accepts connections on 127.0.0.1; an error (with the log) if
    /// the balancer exits or `timeout` passes first.
    pub fn wait_listening(&mut self, ports: &[u16], timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        for port in ports {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], *port));
            while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Err(format!("{} exited ({status}):\n{}", self.kind, self.log()));
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "{} does not listen on {port} after {timeout:?}:\n{}",
                        self.kind,
                        self.log()
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// The balancer's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Is the balancer still running?
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
