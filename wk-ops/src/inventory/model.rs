//! The fleet after defaults are applied: what every other part of wk-ops reads. Nothing here
//! is optional unless it is optional for the cluster itself (TLS, auth, a load balancer…), and
//! derived addresses are computed in one place so templates and actions agree on them.

use super::schema::{LbKind, Mode, Raft};
use super::values::{host_port, Dur, Port, Size, Tick};
use serde::Serialize;

/// A whole inventory, defaults applied, nodes sorted by id.
#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub cluster: Cluster,
    pub nodes: Vec<Node>,
    pub load_balancer: Option<LoadBalancer>,
    pub alerts: Alerts,
    pub backup: Option<Backup>,
    pub health: Health,
    pub monitoring: Monitoring,
    pub systemd: Systemd,
}

/// Settings shared by every node.
#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub name: String,
    pub mode: Mode,
    /// The guide's raft keys as given, with `heartbeatTick`/`electionTick` always present.
    pub raft: Raft,
    pub tls: Option<Tls>,
    pub auth: Option<Auth>,
    pub manager_token_file: Option<String>,
    pub token_auth_on: Option<bool>,
}

impl Cluster {
    pub fn heartbeat_tick(&self) -> Tick {
        self.raft.heartbeat_tick.clone().unwrap_or(Tick::Secs(1))
    }
    pub fn election_tick(&self) -> u32 {
        self.raft.election_tick.unwrap_or(10)
    }
}

/// Cluster RPC TLS, keys as given.
#[derive(Debug, Clone, Serialize)]
pub struct Tls {
    pub enabled: bool,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub ca_file: Option<String>,
    pub client_auth: bool,
    pub min_version: Option<String>,
    pub cipher_suites: Vec<String>,
}

/// Cluster RPC authentication, keys as given.
#[derive(Debug, Clone, Serialize)]
pub struct Auth {
    pub enabled: bool,
    pub method: String,
    pub token_file: Option<String>,
    pub token_rotation_interval: Option<String>,
}

/// One node, every value resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub id: u64,
    /// Position in the inventory's `nodes:` list (for messages: `nodes[2]`).
    pub index: usize,
    /// Address peers, the load balancer and wk-ops use to reach the node.
    pub host: String,
    /// Address the node binds its listeners to (the host unless `bindAddress` says otherwise).
    pub bind_address: String,
    /// Address clients are told to use (`external.*`).
    pub external_ip: String,
    pub ports: Ports,
    /// The node's data directory: `<rootDir>/<id>`.
    pub root_dir: String,
    pub log_level: Option<String>,
    pub log_file: Option<String>,
    pub ssh: Ssh,
    pub service: Service,
    /// Joins a running cluster (`wk-ops scale-out`) instead of forming it: left out of the
    /// other nodes' `initNodes`, never initializes a cluster.
    pub joins: bool,
}

/// The five ports of a node.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ports {
    pub cluster: Port,
    pub tcp: Port,
    pub ws: Port,
    pub api: Port,
    pub metrics: Port,
}

impl Ports {
    /// Each port with its key name, in a fixed order.
    pub fn named(&self) -> [(&'static str, Port); 5] {
        [
            ("cluster", self.cluster),
            ("tcp", self.tcp),
            ("ws", self.ws),
            ("api", self.api),
            ("metrics", self.metrics),
        ]
    }
}

/// SSH access to a node.
#[derive(Debug, Clone, Serialize)]
pub struct Ssh {
    pub user: String,
    pub port: Port,
    pub identity_file: Option<String>,
    /// Commands for this node run on this machine, without SSH.
    pub local: bool,
}

/// The node's service and the commands that drive it (placeholders already filled in).
#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub name: String,
    pub start: String,
    pub stop: String,
    pub restart: String,
    pub status: String,
}

impl Node {
    /// Cluster RPC address peers dial: `host:cluster`.
    pub fn server_addr(&self) -> String {
        host_port(&self.host, self.ports.cluster)
    }
    /// `id@host:port`, as `cluster.initNodes` lists it.
    pub fn init_node(&self) -> String {
        format!("{}@{}", self.id, self.server_addr())
    }
    /// A listen address on the bind address.
    pub fn listen(&self, port: Port) -> String {
        host_port(&self.bind_address, port)
    }
    /// `host:port` on the node's own host.
    pub fn at(&self, port: Port) -> String {
        host_port(&self.host, port)
    }
    /// `external.tcpAddr`.
    pub fn external_tcp(&self) -> String {
        host_port(&self.external_ip, self.ports.tcp)
    }
    /// `external.wsAddr`.
    pub fn external_ws(&self) -> String {
        format!("ws://{}", host_port(&self.external_ip, self.ports.ws))
    }
    /// `external.apiUrl`.
    pub fn external_api(&self) -> String {
        format!("http://{}", host_port(&self.external_ip, self.ports.api))
    }
    /// The node's HTTP API as wk-ops reaches it.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.at(self.ports.api))
    }
    /// Prometheus target: `host:metrics`.
    pub fn metrics_target(&self) -> String {
        self.at(self.ports.metrics)
    }
}

/// nginx and/or HAProxy in front of the nodes.
#[derive(Debug, Clone, Serialize)]
pub struct LoadBalancer {
    pub kinds: Vec<LbKind>,
    pub listen: LbListen,
    pub bind_address: Option<String>,
    pub hosts: Vec<String>,
    pub max_fails: u32,
    pub fail_timeout: Dur,
    pub nginx: Nginx,
    pub haproxy: Haproxy,
}

/// Load balancer listen ports.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LbListen {
    pub api: Port,
    pub ws: Port,
    pub tcp: Port,
}

/// nginx process settings.
#[derive(Debug, Clone, Serialize)]
pub struct Nginx {
    pub user: String,
    pub modules: Vec<String>,
    pub include: Vec<String>,
    pub pid_file: String,
    pub error_log: String,
    pub access_log: String,
    pub temp_dir: String,
    pub worker_connections: u32,
}

/// HAProxy process settings.
#[derive(Debug, Clone, Serialize)]
pub struct Haproxy {
    pub maxconn: u32,
}

/// Alert delivery and thresholds.
#[derive(Debug, Clone, Serialize)]
pub struct Alerts {
    pub email: Option<Email>,
    pub repeat_interval: Dur,
    pub thresholds: Thresholds,
}

/// Alert mail.
#[derive(Debug, Clone, Serialize)]
pub struct Email {
    pub to: Vec<String>,
    pub from: String,
    pub smtp: Smtp,
}

/// SMTP relay.
#[derive(Debug, Clone, Serialize)]
pub struct Smtp {
    pub host: String,
    pub port: Port,
    pub starttls: bool,
    pub implicit_tls: bool,
    pub username: Option<String>,
    pub password_file: Option<String>,
}

/// When a metric is a problem.
#[derive(Debug, Clone, Serialize)]
pub struct Thresholds {
    pub replication_lag_entries: u64,
    pub storage_bytes: Size,
    pub node_down_for: Dur,
    pub no_leader_for: Dur,
    pub elections_per_hour: u32,
    /// Largest difference between a node's clock and wk-ops' clock.
    pub clock_skew: Dur,
    /// Oldest the newest backup archive may be.
    pub backup_age: Dur,
}

/// Backup schedule and retention.
#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    pub dir: String,
    pub on_calendar: String,
    pub randomized_delay: Dur,
    pub keep: Keep,
}

/// Retention counts.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Keep {
    pub last: u32,
    pub daily: u32,
    pub weekly: u32,
}

/// Health check schedule.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub on_calendar: String,
    pub randomized_delay: Dur,
}

/// Prometheus settings.
#[derive(Debug, Clone, Serialize)]
pub struct Monitoring {
    pub job_name: String,
    pub scrape_interval: Dur,
    pub evaluation_interval: Dur,
    pub alertmanagers: Vec<String>,
}

/// How the units run things.
#[derive(Debug, Clone, Serialize)]
pub struct Systemd {
    pub user: String,
    pub group: String,
    pub binary: String,
    pub config_dir: String,
    pub limit_nofile: u64,
    pub watchdog_sec: Dur,
    pub ops_binary: String,
    pub ops_user: String,
    pub ops_group: String,
    pub inventory_path: String,
}

impl Systemd {
    /// Where a node's rendered `wk.yaml` is installed.
    pub fn node_config_path(&self, id: u64) -> String {
        format!("{}/{id}/wk.yaml", self.config_dir.trim_end_matches('/'))
    }
}
