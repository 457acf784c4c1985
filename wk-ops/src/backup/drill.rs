//! Restore drills on this machine: `wukongim restore` of an archive's snapshot into a scratch
//! directory (what it reports — index, term, data version, counts — must match the manifest),
//! and for `backup verify --restore-test` a throw-away single-node server on loopback started
//! from that directory, whose `GET /cluster/data/version` must match the manifest too. Restore
//! runs the first half before touching any node, so an archive whose manifest lies about its
//! contents is refused.

use super::manifest::Manifest;
use crate::inventory::values::Port;
use crate::inventory::{Node, Ports, Service, Ssh};
use crate::node_api::{Counts, NodeApi};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why a drill failed.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("no wukongim binary found (looked for {looked}); pass --wukongim PATH")]
    NoBinary { looked: String },
    #[error("drill setup failed: {0}")]
    Setup(String),
    #[error("`wukongim restore` of the archive's snapshot failed ({status}):\n{output}")]
    Restore { status: String, output: String },
    #[error("the snapshot does not match manifest.json: {what} is {actual} in the snapshot, the manifest says {expected}")]
    Mismatch {
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("the restored test server did not serve the data within {timeout:?}: {reason}\n--- server log ---\n{log}")]
    Serve {
        timeout: Duration,
        reason: String,
        log: String,
    },
}

/// What `wukongim restore` reports (one JSON line).
#[derive(Debug, Clone, Deserialize)]
pub struct Restored {
    pub index: u64,
    pub term: u64,
    pub data_version: String,
    pub counts: Counts,
}

/// The wukongim binary for drills: `flag`, else beside this wk-ops binary, else
/// `inventory_binary` when it exists on this machine, else `wukongim` on PATH.
pub fn find_wukongim(
    flag: Option<&Path>,
    inventory_binary: Option<&str>,
) -> Result<PathBuf, DrillError> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    let mut looked = Vec::new();
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("wukongim")));
    let path_dirs = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("wukongim"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let candidates = beside
        .into_iter()
        .chain(inventory_binary.map(PathBuf::from))
        .chain(path_dirs);
    for c in candidates {
        if c.is_file() {
            return Ok(c);
        }
        looked.push(c.display().to_string());
    }
    Err(DrillError::NoBinary {
        looked: looked.join(", "),
    })
}

/// A scratch single-node setup on loopback: config, data dir and log in a temp directory.
pub struct Scratch {
    dir: tempfile::TempDir,
    api: u16,
}

impl Scratch {
    /// A fresh scratch directory (under `parent` when given and writable) with a config on
    /// free ports.
    pub fn new(parent: Option<&Path>) -> Result<Scratch, DrillError> {
        let setup = |e: std::io::Error| DrillError::Setup(e.to_string());
        let mut b = tempfile::Builder::new();
        b.prefix("wk-ops-drill-");
        // Beside the archive (where there is room for a second copy), else the temp dir.
        let dir = match parent.map(|p| b.tempdir_in(p)) {
            Some(Ok(d)) => d,
            _ => b.tempdir().map_err(setup)?,
        };
        let free = || -> Result<u16, DrillError> {
            Ok(std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(setup)?
                .port())
        };
        let (tcp, ws, api, manager, cluster) = (free()?, free()?, free()?, free()?, free()?);
        let d = dir.path().display();
        let config = format!(
            "mode: release\nrootDir: {d}/data\nlogFile: {d}/wukongim.log\n\
             addr: tcp://127.0.0.1:{tcp}\nwsAddr: ws://127.0.0.1:{ws}\nhttpAddr: 127.0.0.1:{api}\n\
             manager: {{ on: true, addr: \"127.0.0.1:{manager}\" }}\n\
             cluster:\n  nodeId: 1\n  serverAddr: \"127.0.0.1:{cluster}\"\n  \
             initNodes: [\"1@127.0.0.1:{cluster}\"]\n  heartbeatTick: 100ms\n  electionTick: 10\n"
        );
        std::fs::write(dir.path().join("wk.yaml"), config).map_err(setup)?;
        Ok(Scratch { dir, api })
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("wk.yaml")
    }

    fn log(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("wukongim.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The scratch server as an inventory node (so [`NodeApi`] can talk to it).
    fn node(&self) -> Node {
        let port = Port(self.api);
        Node {
            id: 1,
            index: 0,
            host: "127.0.0.1".into(),
            bind_address: "127.0.0.1".into(),
            external_ip: "127.0.0.1".into(),
            ports: Ports {
                cluster: port,
                tcp: port,
                ws: port,
                api: port,
                metrics: port,
            },
            root_dir: self.dir.path().join("data").display().to_string(),
            log_level: None,
            log_file: None,
            ssh: Ssh {
                user: String::new(),
                port: Port(22),
                identity_file: None,
                local: true,
            },
            service: Service {
                name: "drill".into(),
                start: String::new(),
                stop: String::new(),
                restart: String::new(),
                status: String::new(),
            },
            joins: false,
        }
    }
}

/// `wukongim restore --config <scratch> --snapshot <snapshot>`; its report compared with `m`.
pub async fn offline_restore(
    bin: &Path,
    scratch: &Scratch,
    snapshot: &Path,
    m: &Manifest,
) -> Result<Restored, DrillError> {
    let out = tokio::process::Command::new(bin)
        .arg("restore")
        .arg("--config")
        .arg(scratch.config())
        .arg("--snapshot")
        .arg(snapshot)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| DrillError::Setup(format!("cannot run {}: {e}", bin.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let output = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(DrillError::Restore {
            status: out.status.to_string(),
            output,
        });
    }
    let restored: Restored = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| DrillError::Restore {
            status: "no JSON report".into(),
            output: output.clone(),
        })?;
    compare(
        m,
        &restored.data_version,
        Some(restored.index),
        restored.counts,
    )?;
    Ok(restored)
}

/// Starts the scratch server on the restored data and compares what it serves with `m`.
pub async fn serve_and_compare(
    bin: &Path,
    scratch: &Scratch,
    m: &Manifest,
    timeout: Duration,
) -> Result<Duration, DrillError> {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .arg("--config")
        .arg(scratch.config())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| DrillError::Setup(format!("cannot start {}: {e}", bin.display())))?;
    let api = NodeApi::with_token(None, Duration::from_secs(5));
    let node = scratch.node();
    let deadline = started + timeout;
    let serve_err = |reason: String| DrillError::Serve {
        timeout,
        reason,
        log: scratch.log(),
    };
    let result = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Err(serve_err(format!("the server exited ({status})")));
        }
        let last = match api.data_version(&node).await {
            Ok(v) => {
                let counts = v.counts.unwrap_or_default();
                match compare(m, &v.hash, None, counts) {
                    Ok(()) => break Ok(started.elapsed()),
                    // The hash is final once the state is loaded; keep polling only while the
                    // server may still be starting.
                    Err(e) => e.to_string(),
                }
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            break Err(serve_err(last));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.start_kill();
    let _ = child.wait().await;
    result
}

/// The data version, index (when known) and counts against the manifest.
fn compare(
    m: &Manifest,
    data_version: &str,
    index: Option<u64>,
    counts: Counts,
) -> Result<(), DrillError> {
    let mismatch = |what, expected: String, actual: String| {
        Err(DrillError::Mismatch {
            what,
            expected,
            actual,
        })
    };
    if data_version != m.data_version {
        return mismatch(
            "the data version",
            m.data_version.clone(),
            data_version.into(),
        );
    }
    if let Some(i) = index {
        if i != m.raft.index {
            return mismatch("the raft index", m.raft.index.to_string(), i.to_string());
        }
    }
    let c = m.counts;
    for (what, e, a) in [
        ("the message count", c.messages, counts.messages),
        ("the channel count", c.channels, counts.channels),
        ("the user count", c.users, counts.users),
    ] {
        if e != a {
            return mismatch(what, e.to_string(), a.to_string());
        }
    }
    Ok(())
}
