//! The inventory file's shape, section by section, as the operator writes it: every field
//! optional unless the fleet cannot be described without it, unknown keys refused. Defaults
//! are applied later (`resolve`), so these types say exactly what was written.

use super::values::{
    AbsGlob, AbsPath, Account, Calendar, CommandPattern, Dur, Email, Host, HostPort, Line, Name,
    PathPattern, Port, Size, SshPath, Tick, UnitPattern,
};
use serde::de::{self, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Top-level keys, in the order they are checked and documented.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "cluster",
    "defaults",
    "nodes",
    "loadBalancer",
    "alerts",
    "backup",
    "health",
    "monitoring",
    "systemd",
];

/// `cluster:` — settings every node shares.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSection {
    pub name: Name,
    pub mode: Option<Mode>,
    #[serde(default)]
    pub raft: Raft,
    pub tls: Option<TlsSection>,
    pub auth: Option<AuthSection>,
    pub manager_token_file: Option<AbsPath>,
    pub token_auth_on: Option<bool>,
    /// Explicit opt-out of the manager token (`openApi: true`): the HTTP API is open. Without it
    /// the nodes read `managerTokenFile`, by default `<systemd.configDir>/manager-token`.
    pub open_api: Option<bool>,
    /// Refused with a pointer to `managerTokenFile`: secrets stay out of the inventory.
    pub manager_token: Option<IgnoredAny>,
}

/// WuKongIM run mode: the server's.
pub use wukongim::config::Mode;

/// `cluster.raft:` — the guide's `cluster:` tuning keys, passed through to every node file.
/// Serialization keeps the guide's order and leaves out keys that were not given.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Raft {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_tick: Option<Tick>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub election_tick: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size_per_msg: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_inflight_msgs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_quorum: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_vote: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_log_size: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_compact_threshold: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_entries: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compaction_overhead: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dial_timeout: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive_period: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_timeout: Option<Dur>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_memory_usage: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc_interval: Option<Dur>,
}

/// `cluster.tls:` — cluster RPC TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsSection {
    #[serde(default)]
    pub enabled: bool,
    pub cert_file: Option<AbsPath>,
    pub key_file: Option<AbsPath>,
    pub ca_file: Option<AbsPath>,
    #[serde(default)]
    pub client_auth: bool,
    pub min_version: Option<TlsVersion>,
    #[serde(default)]
    pub cipher_suites: Vec<CipherSuite>,
}

/// `cluster.auth:` — cluster RPC authentication by a shared token file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthSection {
    #[serde(default)]
    pub enabled: bool,
    pub method: Option<AuthMethod>,
    pub token_file: Option<AbsPath>,
    pub token_rotation_interval: Option<Dur>,
    /// Refused with a pointer to `tokenFile`.
    pub token: Option<IgnoredAny>,
}

/// The only cluster authentication method the server knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    Token,
}

/// "1.2" or "1.3" (also accepted unquoted, as YAML numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V12,
    V13,
}

impl TlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::V12 => "1.2",
            TlsVersion::V13 => "1.3",
        }
    }
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = TlsVersion;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"1.2\" or \"1.3\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TlsVersion, E> {
                match v.trim() {
                    "1.2" => Ok(TlsVersion::V12),
                    "1.3" => Ok(TlsVersion::V13),
                    _ => Err(E::custom(format!("`{v}` is not \"1.2\" or \"1.3\""))),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TlsVersion, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for TlsVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// TLS cipher suites the server accepts, by their IANA names.
pub use wukongim::config::KNOWN_CIPHER_SUITES;

/// One of [`KNOWN_CIPHER_SUITES`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CipherSuite(pub String);

impl<'de> Deserialize<'de> for CipherSuite {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if KNOWN_CIPHER_SUITES.contains(&s.as_str()) {
            Ok(CipherSuite(s))
        } else {
            Err(de::Error::custom(format!(
                "unknown cipher suite `{s}` (known: {})",
                KNOWN_CIPHER_SUITES.join(", ")
            )))
        }
    }
}

/// `defaults:` — values every node takes unless it sets its own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultsSection {
    pub root_dir: Option<AbsPath>,
    pub bind_address: Option<Host>,
    #[serde(default)]
    pub ports: PortsPartial,
    #[serde(default)]
    pub ssh: SshPartial,
    #[serde(default)]
    pub service: ServicePartial,
    pub log_level: Option<Line>,
    pub log_file: Option<PathPattern>,
}

/// The five ports of a node; any subset may be given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortsPartial {
    pub cluster: Option<Port>,
    pub tcp: Option<Port>,
    pub ws: Option<Port>,
    pub api: Option<Port>,
    pub metrics: Option<Port>,
}

/// How wk-ops reaches a node over SSH.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SshPartial {
    pub user: Option<Account>,
    pub port: Option<Port>,
    pub identity_file: Option<SshPath>,
    /// Run this node's commands on this machine directly, without SSH (the node's host is
    /// this machine).
    pub local: Option<bool>,
}

/// How actions start, stop, restart and query a node's service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePartial {
    pub name: Option<UnitPattern>,
    pub start: Option<CommandPattern>,
    pub stop: Option<CommandPattern>,
    pub restart: Option<CommandPattern>,
    pub status: Option<CommandPattern>,
}

/// One entry of `nodes:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeEntry {
    pub id: NodeId,
    pub host: Host,
    pub external_ip: Option<Host>,
    pub bind_address: Option<Host>,
    #[serde(default)]
    pub ports: PortsPartial,
    pub root_dir: Option<AbsPath>,
    #[serde(default)]
    pub ssh: SshPartial,
    #[serde(default)]
    pub service: ServicePartial,
    pub log_level: Option<Line>,
    pub log_file: Option<PathPattern>,
    /// Not one of the nodes that form the cluster: it joins a running cluster through
    /// `wk-ops scale-out` (left out of the other nodes' `initNodes`).
    #[serde(default)]
    pub joins: bool,
}

/// Largest node id: ids travel as JSON numbers (cluster API, dashboards), exact up to 2^53−1.
pub const MAX_NODE_ID: u64 = (1 << 53) - 1;

/// A node id: a whole number in 1..=2^53−1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        fn range<E: de::Error>(shown: String) -> E {
            E::custom(format!(
                "node id {shown} does not fit: ids are whole numbers from 1 to {MAX_NODE_ID} \
                 (2^53-1, so the cluster API and dashboards show them exactly)"
            ))
        }
        impl de::Visitor<'_> for V {
            type Value = NodeId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a whole number from 1 to {MAX_NODE_ID}")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeId, E> {
                if v == 0 || v > MAX_NODE_ID {
                    return Err(range(v.to_string()));
                }
                Ok(NodeId(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeId, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(range(v.to_string())),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NodeId, E> {
                Err(range(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `loadBalancer:` — nginx and/or HAProxy in front of the nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerSection {
    pub kinds: Vec<LbKind>,
    #[serde(default)]
    pub listen: ListenPartial,
    pub bind_address: Option<Host>,
    #[serde(default)]
    pub hosts: Vec<Host>,
    pub max_fails: Option<u32>,
    pub fail_timeout: Option<Dur>,
    #[serde(default)]
    pub nginx: NginxSection,
    #[serde(default)]
    pub haproxy: HaproxySection,
}

/// A load balancer implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LbKind {
    Nginx,
    Haproxy,
}

/// Ports the load balancer listens on.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenPartial {
    pub api: Option<Port>,
    pub ws: Option<Port>,
    pub tcp: Option<Port>,
}

/// nginx process settings (paths differ between distributions and test sandboxes).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NginxSection {
    /// Account for worker processes (`user`); ignored when nginx does not start as root.
    pub user: Option<Account>,
    /// `load_module` lines (dynamic modules, e.g. the stream module).
    pub modules: Option<Vec<AbsPath>>,
    /// Main-context `include` lines; Debian's `modules-enabled` by default.
    pub include: Option<Vec<AbsGlob>>,
    pub pid_file: Option<AbsPath>,
    pub error_log: Option<AbsPath>,
    pub access_log: Option<AbsPath>,
    pub temp_dir: Option<AbsPath>,
    pub worker_connections: Option<u32>,
}

/// HAProxy process settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HaproxySection {
    pub maxconn: Option<u32>,
}

/// `alerts:` — who hears about problems, and when a metric is a problem.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertsSection {
    pub email: Option<EmailSection>,
    pub repeat_interval: Option<Dur>,
    #[serde(default)]
    pub thresholds: ThresholdsPartial,
}

/// Alert mail.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmailSection {
    pub to: Vec<Email>,
    pub from: Email,
    pub smtp: SmtpSection,
}

/// The SMTP relay for alert mail.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SmtpSection {
    pub host: Host,
    pub port: Option<Port>,
    pub starttls: Option<bool>,
    /// TLS from the first byte (SMTPS, usually port 465) instead of STARTTLS.
    pub implicit_tls: Option<bool>,
    pub username: Option<Line>,
    pub password_file: Option<AbsPath>,
    /// Refused with a pointer to `passwordFile`.
    pub password: Option<IgnoredAny>,
}

/// Alert thresholds used by the Prometheus rules.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThresholdsPartial {
    pub replication_lag_entries: Option<u64>,
    pub storage_bytes: Option<Size>,
    pub node_down_for: Option<Dur>,
    pub no_leader_for: Option<Dur>,
    pub elections_per_hour: Option<u32>,
    pub clock_skew: Option<Dur>,
    pub backup_age: Option<Dur>,
}

/// `backup:` — where and when `wk-ops backup` runs, and what it keeps.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupSection {
    pub dir: AbsPath,
    pub on_calendar: Option<Calendar>,
    pub randomized_delay: Option<Dur>,
    #[serde(default)]
    pub keep: KeepPartial,
}

/// Retention: the newest `last` archives, plus one per day for `daily` days and one per week
/// for `weekly` weeks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeepPartial {
    pub last: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
}

/// `health:` — when the `wk-ops health` timer fires.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthSection {
    pub on_calendar: Option<Calendar>,
    pub randomized_delay: Option<Dur>,
}

/// `monitoring:` — the Prometheus side.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MonitoringSection {
    pub job_name: Option<Name>,
    pub scrape_interval: Option<Dur>,
    pub evaluation_interval: Option<Dur>,
    #[serde(default)]
    pub alertmanagers: Vec<HostPort>,
}

/// `systemd:` — how units run the server and the ops timers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SystemdSection {
    pub user: Option<Account>,
    pub group: Option<Account>,
    pub binary: Option<AbsPath>,
    pub config_dir: Option<AbsPath>,
    pub limit_nofile: Option<u64>,
    pub watchdog_sec: Option<Dur>,
    pub ops_binary: Option<AbsPath>,
    pub ops_user: Option<Account>,
    pub ops_group: Option<Account>,
    pub inventory_path: Option<AbsPath>,
}
