//! Every rendered node file is accepted by the real server: `wukongim --config FILE --check`
//! on the example fleet, on an inventory that sets every key the inventory can pass through,
//! and on a loopback fleet. The server binary is target/<profile>/wukongim (built here when
//! missing); without it the test fails.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// target/<profile>/wukongim, building it if needed.
fn server_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join("wukongim");
    if !path.exists() {
        let built = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "wukongim", "--bin", "wukongim"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            built && path.exists(),
            "{} is missing and `cargo build -p wukongim` failed",
            path.display()
        );
    }
    Some(path)
}

/// Renders `inventory` and runs `--check` on every node file; returns (node file, effective
/// configuration printed by the server).
fn check_all(inventory: &str) -> Vec<(String, serde_yaml::Value)> {
    let Some(server) = server_binary() else {
        return Vec::new();
    };
    let t = tempfile::tempdir().unwrap();
    write(t.path(), "inventory.yaml", inventory);
    wk_ops(
        t.path(),
        &[
            "render",
            "inventory.yaml",
            "--out",
            "out",
            "--only",
            "nodes",
        ],
    )
    .expect(0);
    let out = t.path().join("out");
    let mut checked = Vec::new();
    for f in files_under(&out) {
        let run = Command::new(&server)
            .arg("--config")
            .arg(out.join(&f))
            .arg("--check")
            .env_clear()
            .output()
            .expect("run wukongim --check");
        let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
        assert!(
            run.status.success(),
            "wukongim --check rejected {f}:\n{}\n--- {f}\n{}",
            String::from_utf8_lossy(&run.stderr),
            read(&out, &f)
        );
        let effective: serde_yaml::Value =
            serde_yaml::from_str(&stdout).unwrap_or(serde_yaml::Value::Null);
        checked.push((f, effective));
    }
    checked
}

#[test]
fn server_accepts_example_node_files() {
    let inv = std::fs::read_to_string(example_inventory()).unwrap();
    let checked = check_all(&inv);
    if checked.is_empty() {
        return;
    }
    assert_eq!(checked.len(), 3);
    for (f, eff) in &checked {
        let id: u64 = f.split('/').nth(1).unwrap().parse().unwrap();
        assert_eq!(eff["cluster"]["nodeId"], id, "{f}");
        assert_eq!(eff["cluster"]["tls"]["enabled"], true, "{f}");
        assert_eq!(
            eff["managerTokenFile"], "/etc/wukongim/manager-token",
            "{f}"
        );
    }
}

#[test]
fn server_accepts_every_passthrough_key() {
    let inv = "\
cluster:
  name: full
  mode: debug
  tokenAuthOn: true
  managerTokenFile: /etc/wukongim/manager-token
  raft:
    heartbeatTick: 200ms
    electionTick: 5
    maxSizePerMsg: 2MB
    maxInflightMsgs: 512
    checkQuorum: true
    preVote: false
    maxLogSize: 1073741824
    logCompactThreshold: 5000
    snapshotEntries: 5000
    compactionOverhead: 2500
    dialTimeout: 3s
    requestTimeout: 1.5s
    maxConnections: 200
    keepAlive: true
    keepAlivePeriod: 15s
    batchSize: 500
    batchTimeout: 5ms
    workerCount: 8
    queueSize: 2000
    maxMemoryUsage: 4GB
    gcInterval: 2m
  tls:
    enabled: true
    certFile: /etc/wukongim/certs/cluster.crt
    keyFile: /etc/wukongim/certs/cluster.key
    caFile: /etc/wukongim/certs/ca.crt
    clientAuth: true
    minVersion: 1.3
    cipherSuites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
  auth: { enabled: true, method: token, tokenFile: /etc/wukongim/cluster-token, tokenRotationInterval: 12h }
defaults:
  logLevel: debug
  logFile: /var/log/wukongim/node-{id}.log
  bindAddress: 0.0.0.0
nodes:
  - { id: 1, host: 10.1.0.1 }
  - { id: 2, host: node2.example.com, externalIp: 198.51.100.2 }
  - { id: 3, host: '::1', ports: { cluster: 21110 } }
";
    let checked = check_all(inv);
    if checked.is_empty() {
        return;
    }
    let (_, eff) = checked
        .iter()
        .find(|(f, _)| f == "nodes/3/wk.yaml")
        .unwrap();
    let c = &eff["cluster"];
    assert_eq!(c["serverAddr"], "[::1]:21110");
    assert_eq!(c["electionTick"], 5);
    assert_eq!(c["maxInflightMsgs"], 512);
    assert_eq!(c["preVote"], false);
    assert_eq!(c["tls"]["minVersion"], "1.3");
    assert_eq!(c["auth"]["tokenRotationInterval"], "12h");
    assert_eq!(eff["mode"], "debug");
    assert_eq!(eff["logFile"], "/var/log/wukongim/node-3.log");
    assert_eq!(eff["httpAddr"], "0.0.0.0:5001");
}

#[test]
fn server_accepts_loopback_fleet_node_files() {
    let t = tempfile::tempdir().unwrap();
    let fleet = wk_testkit::LoopbackFleet::new(t.path(), 3).unwrap();
    let checked = check_all(&fleet.inventory(""));
    if checked.is_empty() {
        return;
    }
    for ((_, eff), node) in checked.iter().zip(&fleet.nodes) {
        assert_eq!(eff["addr"], format!("tcp://{}:{}", node.ip(), node.tcp));
        assert_eq!(
            eff["cluster"]["serverAddr"],
            format!("{}:{}", node.ip(), node.cluster)
        );
    }
}
