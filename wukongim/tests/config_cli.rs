//! `wukongim --config FILE --check`: the guide's files pass, every kind of mistake is reported
//! with file, key path and reason, exit code 2, never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn check(config: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wukongim"));
    cmd.arg("--config").arg(config).arg("--check");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Keep the developer's own WK_* variables out of the test.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("WK_")) {
        cmd.env_remove(k);
    }
    cmd.output().expect("run wukongim")
}

fn write(dir: &tempfile::TempDir, body: &str) -> PathBuf {
    let p = dir.path().join("wk.yaml");
    std::fs::write(&p, body).unwrap();
    p
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn guide_node_files_pass_check() {
    for n in 1..=3 {
        let f = fixture(&format!("guide/wk-node{n}.yaml"));
        let out = check(&f, &[]);
        assert!(out.status.success(), "wk-node{n}.yaml: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("nodeId: 100{n}")), "{text}");
        assert!(text.contains("1003@192.168.1.103:11110"), "{text}");
    }
}

#[test]
fn every_advanced_key_of_the_guide_is_accepted_with_its_meaning() {
    let out = check(&fixture("guide-advanced.yaml"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "maxSizePerMsg: 1MiB",
        "maxInflightMsgs: 256",
        "checkQuorum: true",
        "preVote: true",
        "maxLogSize: 1GiB",
        "logCompactThreshold: 10000",
        "snapshotEntries: 10000",
        "compactionOverhead: 5000",
        "dialTimeout: 5s",
        "requestTimeout: 10s",
        "keepAlivePeriod: 30s",
        "clientAuth: true",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "batchTimeout: 10ms",
        "maxMemoryUsage: 2GiB",
        "gcInterval: 5m",
        "tokenRotationInterval: 24h",
        "tokenFile: /etc/wukongim/cluster-token",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
}

#[test]
fn defaults_run_without_a_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_wukongim"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rootDir: ./wukongimdata"), "{text}");
}

#[test]
fn all_problems_are_reported_at_once_with_file_and_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        &dir,
        "mode: fast\ncluster:\n  nodeId: 5\n  initNodes: [\"1@a:1\", \"1@b:2\", \"x\"]\n  electionTick: 1\n  \
         dialTimeout: soon\n  tls: {enabled: true}\n  bogus: 1\n",
    );
    let out = check(&f, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let file = f.display().to_string();
    for needle in [
        "cluster.bogus: unknown key `bogus`",
        "mode: unknown variant",
        "cluster.initNodes[2]: `x` is not of the form",
        "cluster.initNodes[1]: duplicate node id 1",
        "cluster.initNodes: does not contain this node's id 5",
        "cluster.electionTick: must be greater than 1",
        "cluster.dialTimeout: `soon` is not a duration",
        "cluster.tls.certFile: required when cluster.tls.enabled is true",
        "cluster.tls.keyFile: required",
    ] {
        assert!(
            err.contains(&format!("{file}: {needle}")),
            "missing `{needle}` in:\n{err}"
        );
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn wrong_types_and_yaml_syntax_errors_name_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let out = check(
        &write(&dir, "cluster:\n  nodeId: one\n  heartbeatTick: [1]\n"),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("cluster.nodeId: invalid type"), "{err}");
    assert!(err.contains("cluster.heartbeatTick: invalid type"), "{err}");

    let out = check(&write(&dir, "cluster:\n  nodeId: [\n"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("line"), "{}", stderr(&out));

    let out = check(&dir.path().join("missing.yaml"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read config file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn environment_overrides_use_wukongim_names() {
    let out = check(
        &fixture("guide/wk-node1.yaml"),
        &[
            ("WK_CLUSTER_NODEID", "1002"),
            ("WK_CLUSTER_SERVERADDR", "192.168.1.102:11110"),
            ("WK_EXTERNAL_IP", "10.0.0.5"),
            ("wk_cluster_heartbeattick", "100ms"),
            ("WK_CLUSTER_TLS_ENABLED", "false"),
            ("WK_MANAGERTOKEN", "12345"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("nodeId: 1002"), "{text}");
    assert!(text.contains("ip: 10.0.0.5"), "{text}");
    assert!(text.contains("heartbeatTick: 100ms"), "{text}");
    assert!(
        text.contains("managerToken: <redacted>"),
        "secret must be redacted:\n{text}"
    );
    assert!(!text.contains("12345"), "secret leaked:\n{text}");

    let out = check(
        &fixture("guide/wk-node1.yaml"),
        &[("WK_CLUSTER_ELECTIONTICK", "zero")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("cluster.electionTick") && err.contains("WK_"),
        "env errors name the variable:\n{err}"
    );
}

#[test]
fn heartbeat_accepts_seconds_or_a_duration() {
    let dir = tempfile::tempdir().unwrap();
    for (v, ok) in [
        ("1", true),
        ("\"100ms\"", true),
        ("\"2s\"", true),
        ("0", false),
        ("\"1ms\"", false),
        ("-3", false),
    ] {
        let out = check(
            &write(&dir, &format!("cluster:\n  heartbeatTick: {v}\n")),
            &[],
        );
        assert_eq!(
            out.status.success(),
            ok,
            "heartbeatTick {v}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn webhook_keys_as_go_spells_them_with_go_defaults_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        &dir,
        "webhook:\n  httpAddr: http://127.0.0.1:8080/hook\n  grpcAddr: 127.0.0.1:9000\n  \
         focusEvents: [msg.offline]\n",
    );
    let out = check(&f, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "httpAddr: http://127.0.0.1:8080/hook",
        "msgNotifyEventPushInterval: 500ms",
        "msgNotifyEventCountPerPush: 100",
        "msgNotifyEventRetryMaxCount: 5",
        "- msg.offline",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    let all = format!("{text}{}", stderr(&out));
    assert!(
        all.contains("webhook.grpcAddr is not supported"),
        "grpcAddr is warned about:\n{all}"
    );

    let f = write(
        &dir,
        "webhook:\n  httpAddr: https://hooks.example/x\n  msgNotifyEventCountPerPush: 0\n  \
         msgNotifyEventRetryMaxCount: 0\n  focusEvents: [msg.sent]\n  bogus: 1\n",
    );
    let out = check(&f, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for needle in [
        "webhook.httpAddr: `https://hooks.example/x`: https is not supported",
        "webhook.msgNotifyEventCountPerPush: must be at least 1",
        "webhook.msgNotifyEventRetryMaxCount: must be at least 1",
        "webhook.focusEvents: unknown event `msg.sent`",
        "webhook.bogus: unknown key `bogus`",
    ] {
        assert!(err.contains(needle), "missing `{needle}` in:\n{err}");
    }
}

/// A `WK_*` variable naming a Go server key this server does not implement is named as that
/// unsupported key; one naming no key of either server is reported as such. Neither stops `--check`.
#[test]
fn environment_variables_for_go_only_keys_are_named_as_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(&dir, "mode: test\n");
    let out = check(
        &f,
        &[("WK_LOGGER_DIR", "/tmp/x"), ("WK_LOGGER_DIRR", "/tmp/x")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("config key logger.dir (environment variable WK_LOGGER_DIR) is a WuKongIM (Go) setting this server does not support"),
        "{err}"
    );
    assert!(
        err.contains("environment variable WK_LOGGER_DIRR names no config key"),
        "{err}"
    );
}
