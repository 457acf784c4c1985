//! The individual checks of one node. Each runs one short shell command on the node (through
//! its [`Runner`]) and judges the output here, so the commands stay POSIX `sh` plus coreutils.

use super::{Limits, NodeReport, Outcome};
use crate::inventory::{Inventory, Node};
use crate::remote::Runner;
use crate::rolling::fleet::Fleet;
use crate::ssh::shell_quote;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Every check of `node`; all but `ssh` are skipped when SSH fails.
pub async fn node(
    inv: &Inventory,
    fleet: &Fleet,
    node: &Node,
    expected: Option<&str>,
    limits: Limits,
) -> NodeReport {
    let runner = fleet.runner(node.id);
    let t = limits.command_timeout;
    let started = Instant::now();
    let ssh = match runner.check("true", t).await {
        Ok(_) => Outcome::Pass(format!("{} ms", started.elapsed().as_millis())),
        Err(e) => Outcome::Fail(e.to_string()),
    };
    let mut outcomes = vec![("ssh", ssh.clone())];
    if ssh.failed() {
        for c in &super::CHECKS[1..] {
            outcomes.push((c, Outcome::Skipped("no SSH".into())));
        }
    } else {
        outcomes.push(("cluster-port", cluster_ports(fleet, node, runner, t).await));
        outcomes.push(("clock", clock(runner, limits).await));
        outcomes.push(("data-dir", data_dir(inv, node, runner, limits).await));
        outcomes.push(("config", config(inv, node, runner, expected, t).await));
        outcomes.push(("service", service(node, runner, t).await));
    }
    NodeReport {
        node: node.id,
        host: node.host.clone(),
        outcomes,
    }
}

/// The cluster port of every other node, dialled from this node (bash's /dev/tcp, or nc).
async fn cluster_ports(fleet: &Fleet, node: &Node, runner: &dyn Runner, t: Duration) -> Outcome {
    let peers: Vec<&Node> = fleet.nodes().iter().filter(|n| n.id != node.id).collect();
    if peers.is_empty() {
        return Outcome::Skipped("no other node".into());
    }
    let mut unreachable = Vec::new();
    for p in &peers {
        let (host, port) = (p.host.trim_matches(['[', ']']), p.ports.cluster.0);
        let probe = format!(
            "if command -v nc >/dev/null 2>&1; then nc -z -w 3 {h} {port}; \
             else timeout 3 bash -c {dial}; fi",
            h = shell_quote(host),
            dial = shell_quote(&format!("exec 3<>/dev/tcp/{host}/{port}")),
        );
        match runner.run(&probe, t).await {
            Ok(o) if o.success() => {}
            Ok(_) => unreachable.push(format!("{} ({})", p.id, p.server_addr())),
            Err(e) => return Outcome::Fail(e.to_string()),
        }
    }
    if unreachable.is_empty() {
        let ids: Vec<String> = peers.iter().map(|p| p.id.to_string()).collect();
        Outcome::Pass(format!("reaches {}", ids.join(", ")))
    } else {
        Outcome::Fail(format!(
            "cannot reach the cluster port of {}",
            unreachable.join(", ")
        ))
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The node's clock against this machine's (the round trip's midpoint).
async fn clock(runner: &dyn Runner, limits: Limits) -> Outcome {
    let before = now_secs();
    let out = match runner.check("date +%s.%N", limits.command_timeout).await {
        Ok(o) => o,
        Err(e) => return Outcome::Fail(e.to_string()),
    };
    let after = now_secs();
    let Ok(remote) = out.stdout.trim().parse::<f64>() else {
        return Outcome::Fail(format!("`date +%s.%N` printed {:?}", out.stdout.trim()));
    };
    let skew = remote - (before + after) / 2.0;
    let text = format!("{skew:+.3}s (round trip {:.3}s)", after - before);
    if skew.abs() > limits.max_clock_skew.as_secs_f64() {
        Outcome::Fail(format!(
            "{text}, more than {:?}: check NTP",
            limits.max_clock_skew
        ))
    } else {
        Outcome::Pass(text)
    }
}

/// Owner, mode and free space of the node's data directory.
async fn data_dir(inv: &Inventory, node: &Node, runner: &dyn Runner, limits: Limits) -> Outcome {
    let dir = shell_quote(&node.root_dir);
    let cmd = format!("stat -c '%U %a' {dir} && df -Pk {dir} | tail -n 1");
    let out = match runner.run(&cmd, limits.command_timeout).await {
        Ok(o) if o.success() => o,
        Ok(o) => return Outcome::Fail(format!("{}: {}", node.root_dir, o.stderr.trim())),
        Err(e) => return Outcome::Fail(e.to_string()),
    };
    let mut lines = out.stdout.lines();
    let stat: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let free_kib: Option<u64> = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok());
    let (Some(owner), Some(mode), Some(free_kib)) = (
        stat.first(),
        stat.get(1).and_then(|m| u32::from_str_radix(m, 8).ok()),
        free_kib,
    ) else {
        return Outcome::Fail(format!("unexpected stat/df output {:?}", out.stdout));
    };
    let free = free_kib * 1024;
    let mut problems = Vec::new();
    if *owner != inv.systemd.user {
        problems.push(format!(
            "owned by {owner}, the service runs as {}",
            inv.systemd.user
        ));
    }
    if mode & 0o002 != 0 {
        problems.push(format!("mode {mode:o} is world-writable"));
    }
    if free < limits.min_free_bytes {
        problems.push(format!(
            "{} MiB free, less than {} MiB",
            free >> 20,
            limits.min_free_bytes >> 20
        ));
    }
    let text = format!(
        "{} {owner} {mode:o}, {} MiB free",
        node.root_dir,
        free >> 20
    );
    if problems.is_empty() {
        Outcome::Pass(text)
    } else {
        Outcome::Fail(format!("{text}: {}", problems.join("; ")))
    }
}

/// The installed wk.yaml against the one rendered from the inventory.
async fn config(
    inv: &Inventory,
    node: &Node,
    runner: &dyn Runner,
    expected: Option<&str>,
    t: Duration,
) -> Outcome {
    let Some(expected) = expected else {
        return Outcome::Skipped("nothing rendered for this node".into());
    };
    let path = inv.systemd.node_config_path(node.id);
    let out = match runner.run(&format!("cat {}", shell_quote(&path)), t).await {
        Ok(o) if o.success() => o,
        Ok(o) => return Outcome::Fail(format!("{path}: {}", o.stderr.trim())),
        Err(e) => return Outcome::Fail(e.to_string()),
    };
    if out.stdout == expected {
        return Outcome::Pass(format!("{path} as rendered"));
    }
    let first = out
        .stdout
        .lines()
        .zip(expected.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| out.stdout.lines().count().min(expected.lines().count()));
    Outcome::Fail(format!(
        "{path} differs from the rendered file from line {} on (`wk-ops render --diff` shows it; \
         install the rendered one)",
        first + 1
    ))
}

/// The service is enabled (systemd), or its status command succeeds where there is no systemd.
async fn service(node: &Node, runner: &dyn Runner, t: Duration) -> Outcome {
    let name = shell_quote(&node.service.name);
    let cmd = format!(
        "if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then \
         echo systemd; systemctl is-enabled {name}; else echo no-systemd; {}; fi",
        node.service.status
    );
    match runner.run(&cmd, t).await {
        Ok(o) => {
            let mut lines = o.stdout.lines();
            let via = lines.next().unwrap_or("");
            let said: Vec<&str> = lines.collect();
            let said = said.join(" ");
            match (via, o.success()) {
                ("systemd", true) => {
                    Outcome::Pass(format!("{} {}", node.service.name, said.trim()))
                }
                ("systemd", false) => Outcome::Fail(format!(
                    "{} is not enabled ({}): systemctl enable {}",
                    node.service.name,
                    said.trim(),
                    node.service.name
                )),
                (_, true) => Outcome::Pass(format!("no systemd; status command: {}", said.trim())),
                (_, false) => Outcome::Fail(format!(
                    "no systemd; status command failed ({}): {}",
                    o.status,
                    format!("{said} {}", o.stderr).trim()
                )),
            }
        }
        Err(e) => Outcome::Fail(e.to_string()),
    }
}
