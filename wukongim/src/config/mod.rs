//! Node configuration: the cluster guide's keys, loaded from YAML and `WK_*` environment
//! variables, validated with every problem reported at once (file, key path, reason).

mod exposure;
mod go_keys;
mod load;
mod model;
mod units;
mod validate;

pub use exposure::{ineffective_keys, is_loopback, open_doors, OpenDoor};
pub use load::{load, Loaded};
pub use model::{Auth, Cluster, Config, Conn, External, Intranet, Manager, Mode, Tls, Webhook};
pub use units::{
    check_tick, duration_unit_secs, format_duration, parse_duration, parse_size, read_duration,
    read_size, read_tick, size_unit_bytes, ByteSize, Dur, NodeSpec, Parse, Tick, Written,
};
pub use validate::strip_scheme;

use std::fmt;
use std::time::Duration;

/// TLS cipher suites the cluster RPC accepts by their Go/IANA names.
pub const KNOWN_CIPHER_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where the value came from (file path or environment); empty = the file being loaded.
    pub origin: String,
    /// Key path such as `cluster.tls.certFile` (empty for whole-document problems).
    pub path: String,
    pub message: String,
}

/// Every problem found while loading one configuration.
#[derive(Debug, Clone)]
pub struct ConfigError {
    /// The file (or `<defaults>`) being loaded.
    pub source: String,
    pub problems: Vec<Problem>,
}

impl ConfigError {
    fn single(source: &str, path: &str, message: String) -> Self {
        ConfigError {
            source: source.to_string(),
            problems: vec![Problem {
                origin: String::new(),
                path: path.into(),
                message,
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid configuration {} ({n} problem{}):",
            self.source,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            let origin = if p.origin.is_empty() {
                &self.source
            } else {
                &p.origin
            };
            if p.path.is_empty() {
                write!(f, "\n  {origin}: {}", p.message)?;
            } else {
                write!(f, "\n  {origin}: {}: {}", p.path, p.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Address the TCP gateway binds: `addr`, else the port of `external.tcpAddr` on all
    /// interfaces, else `0.0.0.0:5100`.
    pub fn tcp_listen(&self) -> String {
        listen(
            self.addr.as_deref(),
            "tcp://",
            self.external.tcp_addr.as_deref(),
            "0.0.0.0:5100",
        )
    }

    /// Address the WebSocket gateway binds (see [`Config::tcp_listen`]).
    pub fn ws_listen(&self) -> String {
        listen(
            self.ws_addr.as_deref(),
            "ws://",
            self.external.ws_addr.as_deref(),
            "0.0.0.0:5200",
        )
    }

    /// Address the HTTP API binds (see [`Config::tcp_listen`]).
    pub fn http_listen(&self) -> String {
        listen(
            self.http_addr.as_deref(),
            "http://",
            self.external.api_url.as_deref(),
            "0.0.0.0:5001",
        )
    }

    /// The heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        self.cluster.heartbeat_tick.0
    }

    /// The election timeout: `electionTick` heartbeats.
    pub fn election_timeout(&self) -> Duration {
        self.cluster.heartbeat_tick.0 * self.cluster.election_tick
    }

    /// The initial members; a node with no `initNodes` is a cluster of itself.
    pub fn init_members(&self) -> Vec<NodeSpec> {
        if self.cluster.init_nodes.is_empty() {
            vec![NodeSpec {
                id: self.cluster.node_id,
                addr: self.cluster.server_addr.clone(),
            }]
        } else {
            self.cluster.init_nodes.clone()
        }
    }

    /// The manager token in force: `managerToken`, or the trimmed contents of `managerTokenFile`
    /// (refused when group or others can access the file).
    pub fn resolve_manager_token(&self) -> std::io::Result<Option<String>> {
        if let Some(path) = &self.manager_token_file {
            let t = crate::secret::read_token_file(path, "managerTokenFile")
                .map_err(std::io::Error::other)?;
            return Ok((!t.is_empty()).then_some(t));
        }
        Ok((!self.manager_token.is_empty()).then(|| self.manager_token.clone()))
    }

    /// The configuration as YAML with secrets replaced, for `--check` and logs.
    pub fn redacted_yaml(&self) -> String {
        let mut c = self.clone();
        if !c.manager_token.is_empty() {
            c.manager_token = "<redacted>".into();
        }
        serde_yaml::to_string(&c).unwrap_or_else(|e| format!("# cannot print configuration: {e}\n"))
    }
}

/// Bind address from an explicit listen key, else the external address's port on all interfaces.
fn listen(explicit: Option<&str>, scheme: &str, external: Option<&str>, default: &str) -> String {
    if let Some(a) = explicit {
        return strip_path(strip_scheme(a, scheme)).to_string();
    }
    if let Some(e) = external {
        let hostport = strip_path(e.split_once("://").map(|x| x.1).unwrap_or(e));
        if let Some((_, port)) = hostport.rsplit_once(':') {
            return format!("0.0.0.0:{port}");
        }
    }
    default.to_string()
}

fn strip_path(s: &str) -> &str {
    s.split('/').next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_follow_external_ports_when_not_set() {
        let mut c = Config::default();
        assert_eq!(
            (c.tcp_listen(), c.ws_listen(), c.http_listen()),
            (
                "0.0.0.0:5100".into(),
                "0.0.0.0:5200".into(),
                "0.0.0.0:5001".into()
            )
        );
        c.external.tcp_addr = Some("192.168.1.101:6100".into());
        c.external.ws_addr = Some("ws://192.168.1.101:6200".into());
        c.external.api_url = Some("http://192.168.1.101:6001".into());
        assert_eq!(
            (c.tcp_listen(), c.ws_listen(), c.http_listen()),
            (
                "0.0.0.0:6100".into(),
                "0.0.0.0:6200".into(),
                "0.0.0.0:6001".into()
            )
        );
        c.addr = Some("tcp://127.0.0.1:7100".into());
        c.ws_addr = Some("ws://127.0.0.1:7200/path".into());
        c.http_addr = Some("127.0.0.1:7001".into());
        assert_eq!(
            (c.tcp_listen(), c.ws_listen(), c.http_listen()),
            (
                "127.0.0.1:7100".into(),
                "127.0.0.1:7200".into(),
                "127.0.0.1:7001".into()
            )
        );
    }

    #[test]
    fn election_timeout_is_ticks_times_heartbeat() {
        let mut c = Config::default();
        c.cluster.heartbeat_tick = Tick(std::time::Duration::from_millis(100));
        c.cluster.election_tick = 10;
        assert_eq!(c.election_timeout(), std::time::Duration::from_secs(1));
    }
}
