//! Test support for end-to-end tests of rendered files: an inventory for a small fleet on
//! loopback addresses (127.0.0.11, .12, …) whose every path lives in one scratch directory,
//! and the commands that start real nginx and HAProxy from the rendered configs in the
//! foreground. Used by wk-ops' own tests and meant for the load-balancer end-to-end test with a
//! running cluster (render → start nodes from `nodes/<id>/wk.yaml` → start the balancers →
//! drive traffic through them).

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// A port that was free on 127.0.0.1 a moment ago (the listener is closed before returning).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A port free on `ip`.
fn free_port_on(ip: &str) -> std::io::Result<u16> {
    Ok(TcpListener::bind((ip, 0))?.local_addr()?.port())
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
        let d = self.dir.display();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "cluster:\n  name: loopback\n  raft: {{ heartbeatTick: 100ms, electionTick: 10 }}"
        );
        let _ = writeln!(s, "defaults:\n  rootDir: {d}/data");
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
        std::fs::create_dir_all(self.dir.join("nginx/tmp"))?;
        let path = self.dir.join("inventory.yaml");
        std::fs::write(&path, self.inventory(extra))?;
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
