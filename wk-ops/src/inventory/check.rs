//! Cross-key checks serde cannot express: unique ids and addresses, combinations that cannot
//! work (TLS on without certificates), secrets written inline, fleet shape. Each check adds to
//! the shared problem list and never stops the others.

use super::model::{LoadBalancer, Node};
use super::schema::{
    AlertsSection, BackupSection, ClusterSection, LoadBalancerSection, NodeEntry, SystemdSection,
};
use super::Problems;
use std::collections::BTreeMap;
use std::time::Duration;

const SECRET_HINT: &str = "secrets are not accepted in the inventory (it is copied around and \
     rendered into world-readable files): write the secret to a file readable only by the \
     service user and set";

/// Checks the `cluster:` section.
pub fn cluster(c: &ClusterSection, p: &mut Problems) {
    if c.open_api == Some(true) && c.manager_token_file.is_some() {
        p.error(
            "cluster.openApi",
            "openApi: true leaves the HTTP API without a manager token; it contradicts \
             cluster.managerTokenFile (remove one of them)"
                .into(),
        );
    }
    if c.manager_token.is_some() {
        p.error(
            "cluster.managerToken",
            format!("{SECRET_HINT} cluster.managerTokenFile"),
        );
    }
    let r = &c.raft;
    let tick = r
        .heartbeat_tick
        .as_ref()
        .map_or(Duration::from_secs(1), |t| t.duration());
    let election = r.election_tick.unwrap_or(10);
    if election <= 1 {
        p.error(
            "cluster.raft.electionTick",
            format!("must be greater than 1 (got {election}): the election timeout is electionTick heartbeats"),
        );
    } else if tick * election > Duration::from_secs(3600) {
        p.error(
            "cluster.raft.electionTick",
            "the election timeout would be longer than one hour".into(),
        );
    }
    if let Some(s) = &r.max_size_per_msg {
        if s.bytes() < 4096 {
            p.error(
                "cluster.raft.maxSizePerMsg",
                "must be at least 4096 bytes".into(),
            );
        }
    }
    for (key, v) in [
        ("maxInflightMsgs", r.max_inflight_msgs.map(u64::from)),
        ("logCompactThreshold", r.log_compact_threshold),
        ("snapshotEntries", r.snapshot_entries),
        ("maxConnections", r.max_connections.map(u64::from)),
        ("batchSize", r.batch_size.map(u64::from)),
        ("workerCount", r.worker_count.map(u64::from)),
        ("queueSize", r.queue_size.map(u64::from)),
    ] {
        if v == Some(0) {
            p.error(
                &format!("cluster.raft.{key}"),
                "must be greater than 0".into(),
            );
        }
    }
    for (key, d) in [
        ("dialTimeout", &r.dial_timeout),
        ("requestTimeout", &r.request_timeout),
        ("keepAlivePeriod", &r.keep_alive_period),
        ("gcInterval", &r.gc_interval),
    ] {
        if d.as_ref().is_some_and(|d| d.value.is_zero()) {
            p.error(
                &format!("cluster.raft.{key}"),
                "must be longer than 0".into(),
            );
        }
    }
    if let Some(t) = &c.tls {
        let files = [
            ("certFile", &t.cert_file),
            ("keyFile", &t.key_file),
            ("caFile", &t.ca_file),
        ];
        if t.enabled {
            for (key, f) in &files[..2] {
                if f.is_none() {
                    p.error(
                        &format!("cluster.tls.{key}"),
                        "required when cluster.tls.enabled is true (TLS cannot start without it)"
                            .into(),
                    );
                }
            }
            if t.client_auth && t.ca_file.is_none() {
                p.error(
                    "cluster.tls.caFile",
                    "required when cluster.tls.clientAuth is true (peer certificates are checked against it)"
                        .into(),
                );
            }
        } else if files.iter().any(|(_, f)| f.is_some()) {
            p.warn(
                "cluster.tls.enabled",
                "is false: the certificate files given are not used".into(),
            );
        }
    }
    if let Some(a) = &c.auth {
        if a.token.is_some() {
            p.error(
                "cluster.auth.token",
                format!("{SECRET_HINT} cluster.auth.tokenFile"),
            );
        }
        if a.enabled && a.token_file.is_none() {
            p.error(
                "cluster.auth.tokenFile",
                "required when cluster.auth.enabled is true".into(),
            );
        }
        if a.token_rotation_interval
            .as_ref()
            .is_some_and(|d| d.value.is_zero())
        {
            p.error(
                "cluster.auth.tokenRotationInterval",
                "must be longer than 0".into(),
            );
        }
    }
}

/// Checks the nodes: count, unique ids, no shared `host:port`, files and services that two
/// nodes on one host would fight over.
pub fn nodes(count: usize, entries: &[(usize, NodeEntry)], nodes: &[Node], p: &mut Problems) {
    if count == 0 {
        p.error("nodes", "at least one node is required".into());
        return;
    }
    let mut ids: BTreeMap<u64, usize> = BTreeMap::new();
    for n in nodes {
        if let Some(first) = ids.get(&n.id) {
            p.error(
                &format!("nodes[{}].id", n.index),
                format!("duplicate node id {} (also used by nodes[{first}])", n.id),
            );
        } else {
            ids.insert(n.id, n.index);
        }
    }
    let explicit: BTreeMap<usize, &NodeEntry> = entries.iter().map(|(i, e)| (*i, e)).collect();
    let mut used: BTreeMap<(String, u16), (&Node, &str)> = BTreeMap::new();
    for n in nodes {
        // Clashes of this node, grouped by the node clashed with (itself included).
        let mut clashes: BTreeMap<usize, (&Node, Vec<String>)> = BTreeMap::new();
        let mut first_label = None;
        for (label, port) in n.ports.named() {
            let key = (n.host.to_ascii_lowercase(), port.0);
            match used.get(&key) {
                Some((other, other_label)) => {
                    let what = if *other_label == label {
                        format!("{label} {port}")
                    } else {
                        format!("{label} {port} (its {other_label} port)")
                    };
                    first_label.get_or_insert(label);
                    clashes
                        .entry(other.index)
                        .or_insert((other, Vec::new()))
                        .1
                        .push(what);
                }
                None => {
                    used.insert(key, (n, label));
                }
            }
        }
        for (other, shared) in clashes.into_values() {
            let path = match (shared.len(), first_label) {
                (1, Some(label)) if explicit_port(explicit.get(&n.index), label) => {
                    format!("nodes[{}].ports.{label}", n.index)
                }
                _ => format!("nodes[{}].host", n.index),
            };
            let message = if other.index == n.index {
                format!("uses one port twice on {}: {}", n.host, shared.join(", "))
            } else {
                format!(
                    "is on host {} like nodes[{}] (id {}) and uses the same port{}: {}; nodes on \
                     one host must not share a port",
                    n.host,
                    other.index,
                    other.id,
                    if shared.len() == 1 { "" } else { "s" },
                    shared.join(", ")
                )
            };
            p.error(&path, message);
        }
    }
    shared_per_host(nodes, "logFile", |n| n.log_file.clone(), p);
    shared_per_host(nodes, "service.name", |n| Some(n.service.name.clone()), p);
    let voters = nodes.iter().filter(|n| !n.joins).count();
    if voters == 0 && !nodes.is_empty() {
        p.error(
            "nodes",
            "every node has `joins: true`: at least one node must form the cluster".into(),
        );
    }
    // A joining node lists itself in its own initNodes; with the smallest id there it would be
    // the one to initialize a cluster (a second one, if it started before the others formed).
    if let Some(first) = nodes.iter().filter(|n| !n.joins).map(|n| n.id).min() {
        for n in nodes.iter().filter(|n| n.joins && n.id < first) {
            p.error(
                &format!("nodes[{}].joins", n.index),
                format!(
                    "node {} joins but its id is smaller than every forming node's (smallest {first}):                      give joining nodes larger ids",
                    n.id
                ),
            );
        }
    }
    if nodes.len() == count && voters % 2 == 0 && voters > 0 {
        p.warn(
            "nodes",
            format!(
                "{voters} voters: an even number tolerates no more failures than {} voters \
                 (quorum is {}); add or remove one node",
                voters - 1,
                voters / 2 + 1
            ),
        );
    }
}

fn explicit_port(e: Option<&&NodeEntry>, label: &str) -> bool {
    let Some(e) = e else { return false };
    let p = &e.ports;
    match label {
        "cluster" => p.cluster.is_some(),
        "tcp" => p.tcp.is_some(),
        "ws" => p.ws.is_some(),
        "api" => p.api.is_some(),
        _ => p.metrics.is_some(),
    }
}

/// Two nodes on one host must not share `what` (a log file, a service name).
fn shared_per_host(
    nodes: &[Node],
    what: &str,
    get: impl Fn(&Node) -> Option<String>,
    p: &mut Problems,
) {
    let mut seen: BTreeMap<(String, String), &Node> = BTreeMap::new();
    for n in nodes {
        let Some(v) = get(n) else { continue };
        let key = (n.host.to_ascii_lowercase(), v.clone());
        if let Some(first) = seen.get(&key) {
            p.error(
                &format!("nodes[{}].{what}", n.index),
                format!(
                    "`{v}` is also used by nodes[{}] (id {}) on host {}; use {{id}} to tell nodes apart",
                    first.index, first.id, n.host
                ),
            );
        } else {
            seen.insert(key, n);
        }
    }
}

/// Checks `loadBalancer:`.
pub fn load_balancer(raw: &LoadBalancerSection, lb: &LoadBalancer, p: &mut Problems) {
    if raw.kinds.is_empty() {
        p.error(
            "loadBalancer.kinds",
            "list at least one of: nginx, haproxy".into(),
        );
    }
    if lb.kinds.len() != raw.kinds.len() {
        p.error("loadBalancer.kinds", "lists the same kind twice".into());
    }
    let l = lb.listen;
    for (a, b, pa, pb) in [
        ("api", "ws", l.api, l.ws),
        ("api", "tcp", l.api, l.tcp),
        ("ws", "tcp", l.ws, l.tcp),
    ] {
        if pa == pb {
            p.error(
                &format!("loadBalancer.listen.{b}"),
                format!("port {pb} is also the {a} listen port"),
            );
        }
    }
    if raw.max_fails == Some(0) {
        p.error("loadBalancer.maxFails", "must be at least 1".into());
    }
    if raw
        .fail_timeout
        .as_ref()
        .is_some_and(|d| d.value < Duration::from_secs(1))
    {
        p.error("loadBalancer.failTimeout", "must be at least 1s".into());
    }
    if raw.nginx.worker_connections == Some(0) {
        p.error(
            "loadBalancer.nginx.workerConnections",
            "must be greater than 0".into(),
        );
    }
    if raw.haproxy.maxconn == Some(0) {
        p.error(
            "loadBalancer.haproxy.maxconn",
            "must be greater than 0".into(),
        );
    }
}

/// Checks `alerts:`.
pub fn alerts(a: &AlertsSection, p: &mut Problems) {
    if let Some(e) = &a.email {
        if e.to.is_empty() {
            p.error("alerts.email.to", "list at least one recipient".into());
        }
        if e.smtp.password.is_some() {
            p.error(
                "alerts.email.smtp.password",
                format!("{SECRET_HINT} alerts.email.smtp.passwordFile"),
            );
        }
        if e.smtp.starttls == Some(true) && e.smtp.implicit_tls == Some(true) {
            p.error(
                "alerts.email.smtp.implicitTls",
                "choose one of starttls and implicitTls".into(),
            );
        }
        if e.smtp.password_file.is_some() && e.smtp.username.is_none() {
            p.error(
                "alerts.email.smtp.username",
                "required when passwordFile is set".into(),
            );
        }
    }
    if a.repeat_interval
        .as_ref()
        .is_some_and(|d| d.value < Duration::from_secs(60))
    {
        p.error("alerts.repeatInterval", "must be at least 1m".into());
    }
    let t = &a.thresholds;
    for (key, d) in [
        ("nodeDownFor", &t.node_down_for),
        ("noLeaderFor", &t.no_leader_for),
    ] {
        if d.as_ref().is_some_and(|d| d.value.as_millis() % 1000 != 0) {
            p.error(
                &format!("alerts.thresholds.{key}"),
                "must be whole seconds".into(),
            );
        }
    }
    for (key, d) in [("clockSkew", &t.clock_skew), ("backupAge", &t.backup_age)] {
        if d.as_ref().is_some_and(|d| d.value.is_zero()) {
            p.error(
                &format!("alerts.thresholds.{key}"),
                "must be greater than 0".into(),
            );
        }
    }
    if t.elections_per_hour == Some(0) {
        p.error(
            "alerts.thresholds.electionsPerHour",
            "must be at least 1".into(),
        );
    }
}

/// Checks `backup:`.
pub fn backup(b: &BackupSection, p: &mut Problems) {
    let k = &b.keep;
    if k.last.unwrap_or(3) == 0 && k.daily.unwrap_or(7) == 0 && k.weekly.unwrap_or(4) == 0 {
        p.error(
            "backup.keep",
            "keeps no archive at all (set last, daily or weekly above 0)".into(),
        );
    }
}

/// Checks durations that end up in Prometheus, which only takes whole milliseconds.
pub fn prometheus_durations(keys: &[(&str, Option<Duration>)], p: &mut Problems) {
    for (key, d) in keys {
        if let Some(d) = d {
            if d.subsec_nanos() % 1_000_000 != 0 || d.is_zero() {
                p.error(
                    key,
                    "must be a positive whole number of milliseconds".into(),
                );
            }
        }
    }
}

/// The ops units (health, backup) read `managerTokenFile`, which the server requires to be 0600:
/// they must run as the account that owns it, the node's service user.
pub fn ops_account(c: &ClusterSection, s: Option<&SystemdSection>, p: &mut Problems) {
    let Some(s) = s else { return };
    if c.open_api == Some(true) {
        return;
    }
    let user = s
        .user
        .as_ref()
        .map_or("wukongim".to_string(), |u| u.to_string());
    if let Some(ops) = &s.ops_user {
        if ops.to_string() != user {
            p.warn(
                "systemd.opsUser",
                format!(
                    "the ops units run as `{ops}` but the manager token file must be mode 0600 \
                     owned by the node user `{user}`: wk-ops health and backup cannot read it \
                     (leave opsUser unset to run them as `{user}`)"
                ),
            );
        }
    }
}
