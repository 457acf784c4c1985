//! Running under systemd and logrotate: READY/STATUS/WATCHDOG/STOPPING over a real
//! NOTIFY_SOCKET, JSON logs, log reopening on SIGHUP, and SIGTERM drain with exit code 0.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};
use wk_tests::{get, Node, NodeOptions};

fn recv_all(
    sock: &UnixDatagram,
    until: Instant,
    mut stop: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            if stop(&got) {
                break;
            }
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_notify_watchdog_json_logs_sighup_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let mut node = Node::prepare(NodeOptions {
        env: vec![
            ("NOTIFY_SOCKET".into(), sock_path.display().to_string()),
            ("WATCHDOG_USEC".into(), "400000".into()),
        ],
        args: vec!["--log-format".into(), "json".into()],
        ..Default::default()
    });
    node.spawn();
    let msgs = recv_all(&sock, Instant::now() + Duration::from_secs(20), |m| {
        m.iter().any(|x| x.contains("READY=1"))
            && m.iter().filter(|x| x.contains("WATCHDOG=1")).count() >= 3
    });
    let ready = msgs
        .iter()
        .find(|m| m.contains("READY=1"))
        .unwrap_or_else(|| panic!("no READY=1 in {msgs:?}"));
    assert!(
        ready.contains("STATUS=") && ready.contains("leader 1"),
        "READY carries the raft status: {ready}"
    );
    assert!(
        msgs.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 3,
        "watchdog pings: {msgs:?}"
    );
    // /health answers once READY was sent.
    assert_eq!(get(&node.url("/health")).await.0, 200);

    // JSON log lines, with raft events greppable.
    let log = std::fs::read_to_string(node.log_path()).unwrap();
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert!(
        log.to_lowercase().contains("raft"),
        "raft events logged:\n{log}"
    );

    // logrotate: move the file away, SIGHUP, the node writes a fresh file.
    let rotated = node.log_path().with_extension("log.1");
    std::fs::rename(node.log_path(), &rotated).unwrap();
    node.hup();
    wk_tests::poll(
        Duration::from_secs(10),
        "a new log file after SIGHUP",
        || async {
            std::fs::read_to_string(node.log_path())
                .ok()
                .filter(|s| s.contains("reopened"))
                .map(|_| ())
        },
    )
    .await;

    // SIGTERM: STOPPING=1, exit 0.
    let code = node.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0), "{}", node.log_tail());
    let msgs = recv_all(&sock, Instant::now() + Duration::from_secs(2), |m| {
        m.iter().any(|x| x.contains("STOPPING=1"))
    });
    assert!(msgs.iter().any(|m| m.contains("STOPPING=1")), "{msgs:?}");
}

#[tokio::test]
async fn daemon_flag_runs_in_the_background_with_a_pid_file() {
    let node = Node::prepare(NodeOptions::default());
    let pid_file = node.dir.path().join("wk.pid");
    let out = std::process::Command::new(wk_tests::bin("wukongim"))
        .arg("--config")
        .arg(&node.config_path)
        .arg("-d")
        .arg("--pid-file")
        .arg(&pid_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wk_tests::poll(
        Duration::from_secs(20),
        "daemonized node healthy",
        || async { (get(&node.url("/health")).await.0 == 200).then_some(()) },
    )
    .await;
    std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
    wk_tests::poll(Duration::from_secs(20), "daemonized node gone", || async {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")))
        .then_some(())
    })
    .await;
}
