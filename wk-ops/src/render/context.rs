//! What templates see: the resolved inventory plus every derived value (addresses, listen
//! keys, paths on the target machines, durations in each tool's syntax), computed here once so
//! templates only lay text out and customised templates cannot get an address wrong.

use crate::inventory::values::{host_port, plain_duration, Port};
use crate::inventory::{Cluster, Inventory, Node};
use serde::Serialize;
use std::collections::BTreeSet;

/// The rendered Alertmanager's address when `monitoring.alertmanagers` names none: on the
/// Prometheus host, Alertmanager's default port.
pub const DEFAULT_ALERTMANAGER: &str = "127.0.0.1:9093";

/// The root object of every template.
#[derive(Debug, Clone, Serialize)]
pub struct Context {
    pub cluster: ClusterCtx,
    pub nodes: Vec<NodeCtx>,
    /// `id@host:port` of every node that forms the cluster (every node without `joins`), by id.
    pub init_nodes: Vec<String>,
    pub load_balancer: Option<LbCtx>,
    pub alerts: AlertsCtx,
    pub backup: Option<crate::inventory::Backup>,
    pub health: crate::inventory::Health,
    pub monitoring: MonitoringCtx,
    pub systemd: SystemdCtx,
    /// The node being rendered (node templates only; `none` elsewhere).
    pub node: Option<NodeCtx>,
}

/// `key: value` with the value already written as a YAML (JSON-compatible) scalar or list.
#[derive(Debug, Clone, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterCtx {
    #[serde(flatten)]
    pub cluster: Cluster,
    /// The raft keys in the guide's order, only those given plus heartbeatTick/electionTick.
    pub raft_keys: Vec<KeyValue>,
    /// Number of voters needed for a quorum.
    pub quorum: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeCtx {
    #[serde(flatten)]
    pub node: Node,
    pub server_addr: String,
    pub init_node: String,
    /// This node's `cluster.initNodes`: the nodes that form the cluster, plus itself when it
    /// joins (the server requires its own entry; not being the forming node with the smallest
    /// id, it waits to be added instead of initializing).
    pub init_nodes: Vec<String>,
    /// Listen keys of the node file (bound to the node's bind address).
    pub listen: Listen,
    pub external: External,
    /// `host:port` of each service as peers and proxies reach it.
    pub targets: Targets,
    /// Where the node file is installed on the node.
    pub config_path: String,
    /// Where the node file is in the render output.
    pub config_src: String,
    /// The node's name in the Ansible inventory.
    pub ansible_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Listen {
    pub tcp: String,
    pub ws: String,
    pub http: String,
    pub manager: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct External {
    pub ip: String,
    pub tcp_addr: String,
    pub ws_addr: String,
    pub api_url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Targets {
    pub cluster: String,
    pub tcp: String,
    pub ws: String,
    pub api: String,
    pub metrics: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LbCtx {
    #[serde(flatten)]
    pub lb: crate::inventory::LoadBalancer,
    pub nginx_enabled: bool,
    pub haproxy_enabled: bool,
    /// nginx `listen` / HAProxy `bind` arguments.
    pub nginx_listen: LbAddrs,
    pub haproxy_bind: LbAddrs,
    pub fail_timeout_secs: u64,
    /// HAProxy health check interval in whole seconds (fail timeout spread over max fails).
    pub check_inter_secs: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LbAddrs {
    pub api: String,
    pub ws: String,
    pub tcp: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertsCtx {
    #[serde(flatten)]
    pub alerts: crate::inventory::Alerts,
    pub storage_bytes: u64,
    /// Durations in Prometheus syntax.
    pub node_down_for: String,
    pub no_leader_for: String,
    /// `repeatInterval` in Prometheus/Alertmanager syntax.
    pub repeat_interval_plain: String,
    /// `host:port` of the SMTP relay (empty without `alerts.email`).
    pub smarthost: String,
    /// Alertmanager's mail subject (a Go template), shaped like wk-ops health's subjects.
    pub alertmanager_subject: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MonitoringCtx {
    #[serde(flatten)]
    pub monitoring: crate::inventory::Monitoring,
    pub scrape_interval: String,
    pub evaluation_interval: String,
    /// Where Prometheus sends alerts: `monitoring.alertmanagers`, or the rendered
    /// Alertmanager on the Prometheus host.
    pub alertmanager_targets: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SystemdCtx {
    #[serde(flatten)]
    pub systemd: crate::inventory::Systemd,
    /// `StateDirectory=` entries (data under /var/lib, created by systemd per instance).
    pub state_directories: Vec<String>,
    /// `LogsDirectory=` entries (log files under /var/log).
    pub logs_directories: Vec<String>,
    /// `ReadWritePaths=` entries (data or logs elsewhere; must exist).
    pub read_write_paths: Vec<String>,
    /// The node config path with `%i` for the instance (node id).
    pub config_path_pattern: String,
}

/// Builds the context shared by all templates.
pub fn build(inv: &Inventory) -> Context {
    let nodes: Vec<NodeCtx> = inv.nodes.iter().map(|n| node(inv, n)).collect();
    let raft_keys = yaml_keys(&inv.cluster.raft);
    Context {
        cluster: ClusterCtx {
            cluster: inv.cluster.clone(),
            raft_keys,
            quorum: inv.nodes.len() / 2 + 1,
        },
        init_nodes: forming(inv).map(Node::init_node).collect(),
        nodes,
        load_balancer: inv.load_balancer.as_ref().map(|lb| {
            let bind = lb.bind_address.as_deref();
            let nginx = |p: Port| bind.map_or_else(|| p.to_string(), |b| host_port(b, p));
            let haproxy = |p: Port| host_port(bind.unwrap_or("*"), p).replace("[*]", "*");
            let secs = lb.fail_timeout.ceil_secs(1);
            LbCtx {
                nginx_enabled: lb.kinds.contains(&crate::inventory::schema::LbKind::Nginx),
                haproxy_enabled: lb
                    .kinds
                    .contains(&crate::inventory::schema::LbKind::Haproxy),
                nginx_listen: LbAddrs {
                    api: nginx(lb.listen.api),
                    ws: nginx(lb.listen.ws),
                    tcp: nginx(lb.listen.tcp),
                },
                haproxy_bind: LbAddrs {
                    api: haproxy(lb.listen.api),
                    ws: haproxy(lb.listen.ws),
                    tcp: haproxy(lb.listen.tcp),
                },
                fail_timeout_secs: secs,
                check_inter_secs: (secs / u64::from(lb.max_fails.max(1))).max(1),
                lb: lb.clone(),
            }
        }),
        alerts: AlertsCtx {
            storage_bytes: inv.alerts.thresholds.storage_bytes.bytes(),
            node_down_for: plain_duration(inv.alerts.thresholds.node_down_for.value),
            no_leader_for: plain_duration(inv.alerts.thresholds.no_leader_for.value),
            alertmanager_subject: format!(
                "[wukongim {}] {{{{ .Status | toUpper }}}} {{{{ .Alerts | len }}}}: \
                 {{{{ range .Alerts }}}}{{{{ .Labels.alertname }}}}\
                 {{{{ with .Labels.node_id }}}} on {{{{ . }}}}{{{{ end }}}}; {{{{ end }}}}",
                inv.cluster.name
            ),
            repeat_interval_plain: plain_duration(inv.alerts.repeat_interval.value),
            smarthost: inv
                .alerts
                .email
                .as_ref()
                .map_or_else(String::new, |e| host_port(&e.smtp.host, e.smtp.port)),
            alerts: inv.alerts.clone(),
        },
        backup: inv.backup.clone(),
        health: inv.health.clone(),
        monitoring: MonitoringCtx {
            scrape_interval: plain_duration(inv.monitoring.scrape_interval.value),
            evaluation_interval: plain_duration(inv.monitoring.evaluation_interval.value),
            alertmanager_targets: if inv.monitoring.alertmanagers.is_empty() {
                vec![DEFAULT_ALERTMANAGER.to_string()]
            } else {
                inv.monitoring.alertmanagers.clone()
            },
            monitoring: inv.monitoring.clone(),
        },
        systemd: systemd(inv),
        node: None,
    }
}

/// The nodes that form the cluster at its first start: every node without `joins`.
pub fn forming(inv: &Inventory) -> impl Iterator<Item = &Node> {
    inv.nodes.iter().filter(|n| !n.joins)
}

fn node(inv: &Inventory, n: &Node) -> NodeCtx {
    NodeCtx {
        server_addr: n.server_addr(),
        init_node: n.init_node(),
        init_nodes: forming(inv)
            .chain(n.joins.then_some(n))
            .map(Node::init_node)
            .collect(),
        listen: Listen {
            tcp: format!("tcp://{}", n.listen(n.ports.tcp)),
            ws: format!("ws://{}", n.listen(n.ports.ws)),
            http: n.listen(n.ports.api),
            manager: n.listen(n.ports.metrics),
        },
        external: External {
            ip: n.external_ip.clone(),
            tcp_addr: n.external_tcp(),
            ws_addr: n.external_ws(),
            api_url: n.external_api(),
        },
        targets: Targets {
            cluster: n.at(n.ports.cluster),
            tcp: n.at(n.ports.tcp),
            ws: n.at(n.ports.ws),
            api: n.at(n.ports.api),
            metrics: n.metrics_target(),
        },
        config_path: inv.systemd.node_config_path(n.id),
        config_src: node_file(n.id),
        ansible_name: format!("wk-{}", n.id),
        node: n.clone(),
    }
}

/// Where a node's file goes in the render output.
pub fn node_file(id: u64) -> String {
    format!("nodes/{id}/wk.yaml")
}

fn systemd(inv: &Inventory) -> SystemdCtx {
    let mut state = BTreeSet::new();
    let mut logs = BTreeSet::new();
    let mut rw = BTreeSet::new();
    for n in &inv.nodes {
        let base = parent(&n.root_dir);
        match base.strip_prefix("/var/lib/") {
            Some(rel) if !rel.is_empty() => state.insert(format!("{rel}/%i")),
            _ => rw.insert(base.to_string()),
        };
        if let Some(log) = &n.log_file {
            let dir = parent(log);
            match dir.strip_prefix("/var/log/") {
                Some(rel) if !rel.is_empty() => logs.insert(rel.to_string()),
                _ => rw.insert(dir.to_string()),
            };
        }
    }
    SystemdCtx {
        state_directories: state.into_iter().collect(),
        logs_directories: logs.into_iter().collect(),
        read_write_paths: rw.into_iter().collect(),
        config_path_pattern: format!(
            "{}/%i/wk.yaml",
            inv.systemd.config_dir.trim_end_matches('/')
        ),
        systemd: inv.systemd.clone(),
    }
}

fn parent(path: &str) -> &str {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((dir, _)) => dir,
    }
}

/// A struct's fields as ordered `key: value` pairs (keys as serialized, values as YAML flow).
fn yaml_keys<T: Serialize>(v: &T) -> Vec<KeyValue> {
    let Ok(serde_yaml::Value::Mapping(map)) = serde_yaml::to_value(v) else {
        return Vec::new();
    };
    map.into_iter()
        .filter_map(|(k, v)| {
            let key = k.as_str()?.to_string();
            let value = serde_json::to_string(&v).ok()?;
            Some(KeyValue { key, value })
        })
        .collect()
}
