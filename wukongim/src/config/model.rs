//! The configuration file's shape: every key of the cluster guide with the guide's spelling,
//! plus WuKongIM's listen keys. Serde does the typing; `validate` does the cross-key checks.

use super::units::{ByteSize, Dur, NodeSpec, Tick};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Run mode, as WuKongIM spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Debug,
    #[default]
    Release,
    Bench,
    Test,
}

/// The whole node configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Config {
    pub mode: Mode,
    /// Data directory (raft log, state machine, snapshots).
    pub root_dir: PathBuf,
    /// TCP client listener, "tcp://0.0.0.0:5100".
    pub addr: Option<String>,
    /// WebSocket client listener, "ws://0.0.0.0:5200".
    pub ws_addr: Option<String>,
    /// HTTP API listener, "0.0.0.0:5001".
    pub http_addr: Option<String>,
    pub manager: Manager,
    /// Admin/API token; empty = API open.
    pub manager_token: String,
    /// File holding the manager token (kept out of the YAML so it can be 0600).
    pub manager_token_file: Option<PathBuf>,
    /// Check client tokens registered through POST /user/token.
    pub token_auth_on: bool,
    /// Log level filter ("info", "debug", "wukongim=debug,openraft=info").
    pub log_level: String,
    /// Optional log file (reopened on SIGHUP for logrotate).
    pub log_file: Option<PathBuf>,
    pub conn: Conn,
    pub external: External,
    pub intranet: Intranet,
    pub cluster: Cluster,
    pub webhook: Webhook,
}

/// Webhooks to the app server (Go's `webhook.*` keys): `msg.notify`, `msg.offline` and
/// `user.onlinestatus` are POSTed as JSON to `httpAddr?event=<name>`. Unset `httpAddr` = off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Webhook {
    /// `http://host:port/path` of the app server; empty = no webhooks.
    pub http_addr: String,
    /// Go's gRPC webhook; not supported here (a warning at startup and in `--check`).
    pub grpc_addr: String,
    /// How often queued `msg.notify` messages are pushed (Go: 500ms).
    pub msg_notify_event_push_interval: Dur,
    /// Most messages in one `msg.notify` request (Go: 100).
    pub msg_notify_event_count_per_push: u32,
    /// Failed attempts after which a push is given up (Go: 5).
    pub msg_notify_event_retry_max_count: u32,
    /// Events to send (`msg.notify`, `msg.offline`, `user.onlinestatus`); empty = all.
    pub focus_events: Vec<String>,
}

impl Default for Webhook {
    fn default() -> Self {
        Webhook {
            http_addr: String::new(),
            grpc_addr: String::new(),
            msg_notify_event_push_interval: Dur::millis(500),
            msg_notify_event_count_per_push: 100,
            msg_notify_event_retry_max_count: 5,
            focus_events: Vec::new(),
        }
    }
}

impl Webhook {
    /// Whether `event` is posted: an address is set and the event is focused (or none are).
    pub fn on(&self, event: &str) -> bool {
        !self.http_addr.trim().is_empty()
            && (self.focus_events.is_empty() || self.focus_events.iter().any(|e| e == event))
    }
}

/// Manager port: Prometheus `/metrics` and admin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Manager {
    pub on: bool,
    pub addr: String,
}

/// Client connection limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Conn {
    /// Largest client packet accepted; a bigger one gets DISCONNECT.
    pub max_packet_size: ByteSize,
    /// A connection that sends nothing (not even PING) this long is closed.
    pub idle_timeout: Dur,
    /// Time allowed between accept and a valid CONNECT.
    pub connect_timeout: Dur,
    /// A write to a client that makes no progress this long drops the client (slow reader).
    pub write_timeout: Dur,
    /// Most client connections (TCP and WebSocket together) open at once; more are refused.
    pub max_connections: u32,
    /// Bound of the messages kept in memory for redelivery to their recipients (all users of
    /// this node together); past it the oldest are dropped (clients get them by message sync).
    pub max_pending_bytes: ByteSize,
    /// Payload bytes of one /channel/messagesync page (at least one message; `more` says the rest).
    pub max_sync_bytes: ByteSize,
}

/// What clients are told to dial (GET /route) and what nodes advertise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct External {
    pub ip: Option<String>,
    pub tcp_addr: Option<String>,
    pub ws_addr: Option<String>,
    pub wss_addr: Option<String>,
    pub api_url: Option<String>,
}

/// What clients inside the network are told to dial (GET /route?intranet=1), as in WuKongIM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Intranet {
    /// TCP address for clients on the internal network; unset = the external TCP address.
    pub tcp_addr: Option<String>,
}

/// The `cluster:` section of the guide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Cluster {
    pub node_id: u64,
    pub server_addr: String,
    pub init_nodes: Vec<NodeSpec>,
    pub heartbeat_tick: Tick,
    pub election_tick: u32,
    pub max_size_per_msg: ByteSize,
    pub max_inflight_msgs: u32,
    pub check_quorum: bool,
    pub pre_vote: bool,
    pub max_log_size: ByteSize,
    pub log_compact_threshold: u64,
    pub snapshot_entries: u64,
    pub compaction_overhead: u64,
    pub dial_timeout: Dur,
    pub request_timeout: Dur,
    pub max_connections: u32,
    pub keep_alive: bool,
    pub keep_alive_period: Dur,
    pub tls: Tls,
    pub batch_size: u32,
    pub batch_timeout: Dur,
    pub worker_count: u32,
    pub queue_size: u32,
    pub max_memory_usage: ByteSize,
    pub gc_interval: Dur,
    pub auth: Auth,
}

/// Cluster RPC TLS (optional mTLS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Tls {
    pub enabled: bool,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub client_auth: bool,
    pub min_version: String,
    pub cipher_suites: Vec<String>,
}

/// Cluster RPC authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Auth {
    pub enabled: bool,
    pub method: String,
    pub token_file: Option<PathBuf>,
    pub token_rotation_interval: Dur,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Release,
            root_dir: PathBuf::from("./wukongimdata"),
            addr: None,
            ws_addr: None,
            http_addr: None,
            manager: Manager::default(),
            manager_token: String::new(),
            manager_token_file: None,
            token_auth_on: false,
            log_level: "info,openraft=warn".into(),
            log_file: None,
            conn: Conn::default(),
            external: External::default(),
            intranet: Intranet::default(),
            cluster: Cluster::default(),
            webhook: Webhook::default(),
        }
    }
}

impl Default for Manager {
    fn default() -> Self {
        Manager {
            on: true,
            addr: "0.0.0.0:5300".into(),
        }
    }
}

impl Default for Conn {
    fn default() -> Self {
        Conn {
            max_packet_size: ByteSize(1 << 20),
            idle_timeout: Dur::secs(180),
            connect_timeout: Dur::secs(10),
            write_timeout: Dur::secs(10),
            max_connections: 100_000,
            max_pending_bytes: ByteSize(256 << 20),
            max_sync_bytes: ByteSize(8 << 20),
        }
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            node_id: 1,
            server_addr: "127.0.0.1:11110".into(),
            init_nodes: Vec::new(),
            heartbeat_tick: Tick(std::time::Duration::from_secs(1)),
            election_tick: 10,
            max_size_per_msg: ByteSize(1 << 20),
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            max_log_size: ByteSize(1 << 30),
            log_compact_threshold: 10_000,
            snapshot_entries: 10_000,
            compaction_overhead: 5_000,
            dial_timeout: Dur::secs(5),
            request_timeout: Dur::secs(10),
            max_connections: 100,
            keep_alive: true,
            keep_alive_period: Dur::secs(30),
            tls: Tls::default(),
            batch_size: 100,
            batch_timeout: Dur::millis(10),
            worker_count: 4,
            queue_size: 1000,
            max_memory_usage: ByteSize(2 << 30),
            gc_interval: Dur::secs(300),
            auth: Auth::default(),
        }
    }
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            enabled: false,
            cert_file: None,
            key_file: None,
            ca_file: None,
            client_auth: false,
            min_version: "1.2".into(),
            cipher_suites: Vec::new(),
        }
    }
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            enabled: false,
            method: "token".into(),
            token_file: None,
            token_rotation_interval: Dur::secs(24 * 3600),
        }
    }
}
