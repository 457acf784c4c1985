//! Cross-key checks that serde cannot express. Every problem is collected, none stops the rest.

use super::model::Config;
use super::units::check_host_port;
use super::Problem;
use std::collections::BTreeSet;
use std::time::Duration;

/// Returns every problem found in `c` (empty = valid).
pub fn validate(c: &Config) -> Vec<Problem> {
    let mut p = Vec::new();
    let mut bad = |path: &str, message: String| {
        p.push(Problem {
            origin: String::new(),
            path: path.to_string(),
            message,
        })
    };
    let cl = &c.cluster;
    if cl.node_id == 0 {
        bad("cluster.nodeId", "must be a positive integer".into());
    }
    if let Err(e) = check_host_port(&cl.server_addr) {
        bad("cluster.serverAddr", e);
    }
    let mut ids = BTreeSet::new();
    let mut addrs = BTreeSet::new();
    for (i, n) in cl.init_nodes.iter().enumerate() {
        if !ids.insert(n.id) {
            bad(
                &format!("cluster.initNodes[{i}]"),
                format!("duplicate node id {}", n.id),
            );
        }
        if !addrs.insert(n.addr.clone()) {
            bad(
                &format!("cluster.initNodes[{i}]"),
                format!("duplicate address {}", n.addr),
            );
        }
    }
    if !cl.init_nodes.is_empty() && !ids.contains(&cl.node_id) {
        bad(
            "cluster.initNodes",
            format!(
                "does not contain this node's id {} (cluster.nodeId)",
                cl.node_id
            ),
        );
    }
    if let Some(me) = cl.init_nodes.iter().find(|n| n.id == cl.node_id) {
        if me.addr != cl.server_addr && !same_port(&me.addr, &cl.server_addr) {
            bad(
                "cluster.serverAddr",
                format!(
                    "`{}` differs from this node's initNodes entry `{me}`",
                    cl.server_addr
                ),
            );
        }
    }
    if cl.election_tick <= 1 {
        bad(
            "cluster.electionTick",
            format!("must be greater than 1 (got {})", cl.election_tick),
        );
    }
    if cl.heartbeat_tick.0 * cl.election_tick > Duration::from_secs(3600) {
        bad(
            "cluster.electionTick",
            "election timeout longer than one hour".into(),
        );
    }
    if cl.max_size_per_msg.0 < 4096 {
        bad(
            "cluster.maxSizePerMsg",
            "must be at least 4096 bytes".into(),
        );
    }
    for (key, v) in [
        ("cluster.maxInflightMsgs", cl.max_inflight_msgs as u64),
        ("cluster.batchSize", cl.batch_size as u64),
        ("cluster.maxConnections", cl.max_connections as u64),
        ("conn.maxConnections", c.conn.max_connections as u64),
        ("cluster.workerCount", cl.worker_count as u64),
        ("cluster.queueSize", cl.queue_size as u64),
        ("cluster.snapshotEntries", cl.snapshot_entries),
        ("cluster.logCompactThreshold", cl.log_compact_threshold),
    ] {
        if v == 0 {
            bad(key, "must be greater than 0".into());
        }
    }
    for (key, d) in [
        ("cluster.dialTimeout", cl.dial_timeout.0),
        ("cluster.requestTimeout", cl.request_timeout.0),
        ("cluster.keepAlivePeriod", cl.keep_alive_period.0),
        ("conn.idleTimeout", c.conn.idle_timeout.0),
        ("conn.connectTimeout", c.conn.connect_timeout.0),
        ("conn.writeTimeout", c.conn.write_timeout.0),
    ] {
        if d.is_zero() {
            bad(key, "must be longer than 0".into());
        }
    }
    if c.conn.max_packet_size.0 < 1024 || c.conn.max_packet_size.0 > 256 << 20 {
        bad(
            "conn.maxPacketSize",
            "must be between 1KiB and 256MiB".into(),
        );
    }
    if c.conn.max_sync_bytes.0 < 1024 {
        bad("conn.maxSyncBytes", "must be at least 1KiB".into());
    }
    if c.conn.max_pending_bytes.0 < 1 << 20 {
        bad("conn.maxPendingBytes", "must be at least 1MiB".into());
    }
    let tls = &cl.tls;
    if tls.enabled {
        if tls.cert_file.is_none() {
            bad(
                "cluster.tls.certFile",
                "required when cluster.tls.enabled is true".into(),
            );
        }
        if tls.key_file.is_none() {
            bad(
                "cluster.tls.keyFile",
                "required when cluster.tls.enabled is true".into(),
            );
        }
        if tls.client_auth && tls.ca_file.is_none() {
            bad(
                "cluster.tls.caFile",
                "required when cluster.tls.clientAuth is true".into(),
            );
        }
    }
    if !matches!(tls.min_version.as_str(), "1.2" | "1.3") {
        bad(
            "cluster.tls.minVersion",
            format!("`{}` is not \"1.2\" or \"1.3\"", tls.min_version),
        );
    }
    for (i, s) in tls.cipher_suites.iter().enumerate() {
        if !crate::config::KNOWN_CIPHER_SUITES.contains(&s.as_str()) {
            bad(
                &format!("cluster.tls.cipherSuites[{i}]"),
                format!("unknown cipher suite `{s}`"),
            );
        }
    }
    let auth = &cl.auth;
    if auth.enabled {
        if auth.method != "token" {
            bad(
                "cluster.auth.method",
                format!("`{}` is not supported (only \"token\")", auth.method),
            );
        }
        if auth.token_file.is_none() {
            bad(
                "cluster.auth.tokenFile",
                "required when cluster.auth.enabled is true".into(),
            );
        }
        let every = auth.token_rotation_interval.0;
        if !every.is_zero() && every < Duration::from_secs(1) {
            bad(
                "cluster.auth.tokenRotationInterval",
                "must be at least 1s (or 0s: the token file is then re-read on SIGHUP only)".into(),
            );
        }
    }
    for (key, v) in [
        ("addr", c.addr.as_deref().map(|a| strip_scheme(a, "tcp://"))),
        (
            "wsAddr",
            c.ws_addr.as_deref().map(|a| strip_scheme(a, "ws://")),
        ),
        (
            "httpAddr",
            c.http_addr.as_deref().map(|a| strip_scheme(a, "http://")),
        ),
        ("manager.addr", Some(c.manager.addr.as_str())),
    ] {
        if let Some(v) = v {
            if let Err(e) = check_host_port(v) {
                bad(key, e);
            }
        }
    }
    if let Some(a) = &c.external.tcp_addr {
        if let Err(e) = check_host_port(strip_scheme(a, "tcp://")) {
            bad("external.tcpAddr", e);
        }
    }
    for (key, v, schemes) in [
        ("external.wsAddr", &c.external.ws_addr, &["ws://"][..]),
        ("external.wssAddr", &c.external.wss_addr, &["wss://"][..]),
        (
            "external.apiUrl",
            &c.external.api_url,
            &["http://", "https://"][..],
        ),
    ] {
        if let Some(v) = v {
            if !schemes.iter().any(|s| v.starts_with(s)) {
                bad(
                    key,
                    format!("`{v}` must start with {}", schemes.join(" or ")),
                );
            }
        }
    }
    if c.manager_token_file.is_some() && !c.manager_token.is_empty() {
        bad(
            "managerTokenFile",
            "set either managerToken or managerTokenFile, not both".into(),
        );
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&c.log_level) {
        bad(
            "logLevel",
            format!("`{}` is not a log filter: {e}", c.log_level),
        );
    }
    for (path, message) in crate::webhook::config_problems(&c.webhook) {
        bad(path, message);
    }
    p
}

/// `"tcp://0.0.0.0:5100"` → `"0.0.0.0:5100"`; other strings unchanged.
pub fn strip_scheme<'a>(s: &'a str, scheme: &str) -> &'a str {
    s.strip_prefix(scheme).unwrap_or(s)
}

fn same_port(a: &str, b: &str) -> bool {
    // A node may bind 0.0.0.0:11110 while peers dial it at its public address.
    let host_b = b.rsplit_once(':').map(|x| x.0);
    a.rsplit_once(':').map(|x| x.1) == b.rsplit_once(':').map(|x| x.1)
        && matches!(host_b, Some("0.0.0.0") | Some("[::]") | Some("::"))
}
