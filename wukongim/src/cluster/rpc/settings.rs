//! Transport settings derived from the `cluster.*` keys: timeouts, pool size, TCP keep-alive,
//! the largest message, the cluster token (read from `auth.tokenFile`) and the TLS configurations.
//! Every error names the config key and, for files, the path.

use super::tls::TlsSettings;
use super::RpcError;
use crate::config::Cluster;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Default largest request/response body (snapshots travel in chunks far below it).
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 30;

/// Test knob: an environment variable that, when set to a byte count, replaces the largest
/// message (so a test can prove large state moves in chunks). Not for production use.
pub const TEST_MAX_MESSAGE_ENV: &str = "WUKONGIM_TEST_RPC_MAX_MESSAGE";

fn test_max_message() -> Option<usize> {
    let v = std::env::var(TEST_MAX_MESSAGE_ENV).ok()?;
    match v.trim().parse::<usize>() {
        Ok(n) if n >= 64 << 10 => Some(n),
        _ => {
            tracing::warn!(value = %v, "{TEST_MAX_MESSAGE_ENV} ignored: not a byte count >= 65536");
            None
        }
    }
}

/// The cluster tokens in force, replaceable while running: SIGHUP re-reads `auth.tokenFile`
/// ([`reload_on_sighup`]); the token it replaces stays accepted (and is tried second when
/// dialing) until the next reload, so replacing the file on each node in turn never cuts a link.
#[derive(Clone, Default)]
pub struct TokenRing(Arc<RwLock<Vec<Vec<u8>>>>);

impl TokenRing {
    pub fn new(token: Option<Vec<u8>>) -> TokenRing {
        TokenRing(Arc::new(RwLock::new(token.into_iter().collect())))
    }

    /// Current token first, then the previous one.
    pub fn tokens(&self) -> Vec<Vec<u8>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes `new` current and keeps the one it replaces as previous; false if unchanged.
    pub fn replace(&self, new: Vec<u8>) -> bool {
        let mut g = self.0.write().unwrap_or_else(|e| e.into_inner());
        if g.first() == Some(&new) {
            return false;
        }
        let previous = g.first().cloned();
        *g = std::iter::once(new).chain(previous).collect();
        true
    }
}

/// Re-reads `auth.tokenFile` on every SIGHUP until `stop`; a file that cannot be used (missing,
/// empty, readable by others) is logged and the tokens in force stay.
pub async fn reload_on_sighup(
    ring: TokenRing,
    path: std::path::PathBuf,
    stop: tokio_util::sync::CancellationToken,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    loop {
        tokio::select! {
            r = hup.recv() => if r.is_none() { return },
            _ = stop.cancelled() => return,
        }
        match crate::secret::read_private(&path, "cluster.auth.tokenFile") {
            Ok(t) if t.is_empty() => {
                tracing::error!(path = %path.display(), "cluster token file is empty; tokens unchanged")
            }
            Ok(t) => {
                if ring.replace(t) {
                    tracing::info!(
                        path = %path.display(),
                        "cluster token reloaded (SIGHUP); the previous one stays accepted"
                    );
                }
            }
            Err(e) => tracing::error!("cannot reload the cluster token: {e}; tokens unchanged"),
        }
    }
}

/// Everything both sides of the cluster RPC need.
#[derive(Clone)]
pub struct RpcSettings {
    /// The cluster token; `None` = no token authentication (the magic/version check remains).
    /// Used when `ring` is empty (settings built by hand).
    pub token: Option<Vec<u8>>,
    /// The tokens in force when built from the configuration (reloadable).
    pub ring: TokenRing,
    /// TLS for both sides, when `cluster.tls.enabled`.
    pub tls: Option<TlsSettings>,
    /// Bounds connect + TLS + handshake of a new connection.
    pub dial_timeout: Duration,
    /// Default bound of one call (see [`super::RpcClient::call_timeout`] for another).
    pub request_timeout: Duration,
    /// Connections per peer address (at least 1); each carries many concurrent calls.
    pub max_connections: usize,
    pub keep_alive: bool,
    pub keep_alive_period: Duration,
    /// Largest request or response body in bytes.
    pub max_frame: usize,
}

impl Default for RpcSettings {
    /// The defaults of the `cluster:` section, without TLS or token.
    fn default() -> Self {
        RpcSettings {
            token: None,
            ring: TokenRing::default(),
            tls: None,
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_connections: 100,
            keep_alive: true,
            keep_alive_period: Duration::from_secs(30),
            max_frame: DEFAULT_MAX_MESSAGE,
        }
    }
}

impl fmt::Debug for RpcSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcSettings")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("dial_timeout", &self.dial_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_connections", &self.max_connections)
            .field("keep_alive", &self.keep_alive)
            .field("keep_alive_period", &self.keep_alive_period)
            .field("max_frame", &self.max_frame)
            .finish()
    }
}

pub(super) fn config_error(key: &str, message: impl Into<String>) -> RpcError {
    RpcError::Config {
        key: key.into(),
        message: message.into(),
    }
}

impl RpcSettings {
    /// The tokens to accept and to try, current first (empty = no authentication).
    pub fn tokens(&self) -> Vec<Vec<u8>> {
        let ring = self.ring.tokens();
        if ring.is_empty() {
            self.token.clone().into_iter().collect()
        } else {
            ring
        }
    }

    /// Builds the settings from the `cluster:` section, reading the token and certificate files.
    ///
    /// `max_frame` is the larger of `maxSizePerMsg` and [`DEFAULT_MAX_MESSAGE`]: `maxSizePerMsg`
    /// bounds Raft append batches, while snapshots need room of their own.
    pub fn from_config(c: &Cluster) -> Result<RpcSettings, RpcError> {
        let token = if c.auth.enabled {
            if c.auth.method != "token" {
                return Err(config_error(
                    "cluster.auth.method",
                    format!("`{}` is not supported (only \"token\")", c.auth.method),
                ));
            }
            let path = c.auth.token_file.as_deref().ok_or_else(|| {
                config_error(
                    "cluster.auth.tokenFile",
                    "required when cluster.auth.enabled is true",
                )
            })?;
            let token = crate::secret::read_private(path, "cluster.auth.tokenFile")
                .map_err(|e| config_error("cluster.auth.tokenFile", e))?;
            if token.is_empty() {
                return Err(config_error(
                    "cluster.auth.tokenFile",
                    format!("{} is empty", path.display()),
                ));
            }
            Some(token)
        } else {
            None
        };
        let tls = if c.tls.enabled {
            Some(TlsSettings::from_config(&c.tls)?)
        } else {
            None
        };
        Ok(RpcSettings {
            ring: TokenRing::new(token.clone()),
            token,
            tls,
            dial_timeout: c.dial_timeout.0,
            request_timeout: c.request_timeout.0,
            max_connections: (c.max_connections as usize).max(1),
            keep_alive: c.keep_alive,
            keep_alive_period: c.keep_alive_period.0,
            max_frame: test_max_message()
                .unwrap_or((c.max_size_per_msg.0 as usize).max(DEFAULT_MAX_MESSAGE)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;
    use std::os::unix::fs::PermissionsExt;

    fn private(p: &std::path::Path) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn reads_timeouts_pool_and_token() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "  s3cret\n").unwrap();
        private(&token);
        let mut c = Cluster {
            dial_timeout: Dur::millis(700),
            request_timeout: Dur::secs(3),
            max_connections: 0,
            keep_alive: false,
            ..Cluster::default()
        };
        c.auth.enabled = true;
        c.auth.token_file = Some(token);
        let s = RpcSettings::from_config(&c).unwrap();
        assert_eq!(s.token.as_deref(), Some(&b"s3cret"[..]));
        assert_eq!(s.dial_timeout, Duration::from_millis(700));
        assert_eq!(s.request_timeout, Duration::from_secs(3));
        assert_eq!(s.max_connections, 1);
        assert!(!s.keep_alive);
        assert!(s.tls.is_none());
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn token_errors_name_key_and_path() {
        let mut c = Cluster::default();
        c.auth.enabled = true;
        let e = RpcSettings::from_config(&c).unwrap_err().to_string();
        assert!(e.starts_with("cluster.auth.tokenFile:"), "{e}");
        c.auth.token_file = Some("/nonexistent/wk-token".into());
        let e = RpcSettings::from_config(&c).unwrap_err().to_string();
        assert!(e.contains("cluster.auth.tokenFile") && e.contains("/nonexistent/wk-token"));
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        private(&empty);
        c.auth.token_file = Some(empty);
        let e = RpcSettings::from_config(&c).unwrap_err().to_string();
        assert!(e.contains("is empty"), "{e}");
        c.auth.method = "password".into();
        let e = RpcSettings::from_config(&c).unwrap_err().to_string();
        assert!(e.starts_with("cluster.auth.method:"), "{e}");
    }

    #[test]
    fn the_ring_keeps_one_previous_token() {
        let r = TokenRing::new(Some(b"a".to_vec()));
        assert!(r.replace(b"b".to_vec()));
        assert_eq!(r.tokens(), [b"b".to_vec(), b"a".to_vec()]);
        assert!(!r.replace(b"b".to_vec()), "unchanged file");
        assert!(r.replace(b"c".to_vec()));
        assert_eq!(r.tokens(), [b"c".to_vec(), b"b".to_vec()]);
        let s = RpcSettings {
            token: Some(b"x".to_vec()),
            ..RpcSettings::default()
        };
        assert_eq!(
            s.tokens(),
            [b"x".to_vec()],
            "hand-built settings use `token`"
        );
    }

    #[test]
    fn auth_disabled_means_no_token() {
        let mut c = Cluster::default();
        c.auth.token_file = Some("/nonexistent".into());
        assert!(RpcSettings::from_config(&c).unwrap().token.is_none());
    }
}
