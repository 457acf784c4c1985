//! Transport settings derived from the `cluster.*` keys: timeouts, pool size, TCP keep-alive,
//! the largest message, the cluster token (read from `auth.tokenFile`) and the TLS configurations.
//! Every error names the config key and, for files, the path.

use super::tls::{TlsLive, TlsSettings};
use super::RpcError;
use crate::config::Cluster;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Largest request/response body when nothing else is known (tests of the transport alone).
pub const DEFAULT_MAX_MESSAGE: usize = 16 << 20;

/// Payload bytes per snapshot chunk, at most: small enough to interleave with heartbeats,
/// large enough to keep a link busy.
pub const SNAPSHOT_CHUNK: usize = 1 << 20;

/// Room in every message above its payload bound: one snapshot chunk's worth plus envelopes.
pub const FRAME_HEADROOM: usize = SNAPSHOT_CHUNK + (64 << 10);

/// The largest message of the cluster RPC, from `cluster.maxSizePerMsg` and the largest single
/// command the node accepts (`largest_command`: one client message or one HTTP body).
///
/// `maxSizePerMsg` bounds what the node puts in one message: the write batches
/// (`cluster/writer.rs` closes a batch before it grows past it) and the entries of one
/// AppendEntries (`cluster/network.rs` sends the prefix that fits and reports a partial
/// success). A single command larger than `maxSizePerMsg` still travels alone, so the limit is
/// the larger of the two plus [`FRAME_HEADROOM`]. Keep `maxSizePerMsg` and `conn.maxPacketSize`
/// equal on every node, as the rendered files do: the receiver enforces its own limit.
pub fn frame_limit(max_size_per_msg: u64, largest_command: usize) -> usize {
    (max_size_per_msg as usize).max(largest_command) + FRAME_HEADROOM
}

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

/// The cluster tokens in force, replaceable while running. `auth.tokenFile` holds one secret per
/// line: the first is used to dial, every one is accepted (so a file holding the current and the
/// next secret lets the nodes be switched one by one). The file is re-read on SIGHUP and every
/// `tokenRotationInterval` ([`reload_tokens`]); the secret that was first before a change stays
/// accepted (and is tried last when dialing) until the next change, so replacing the file on each
/// node in turn never cuts a link.
#[derive(Clone, Default)]
pub struct TokenRing(Arc<RwLock<Ring>>);

#[derive(Default)]
struct Ring {
    /// The file's secrets, in file order.
    file: Vec<Vec<u8>>,
    /// The first secret before the last change, unless the file still lists it.
    previous: Option<Vec<u8>>,
}

impl TokenRing {
    pub fn new(secrets: Vec<Vec<u8>>) -> TokenRing {
        TokenRing(Arc::new(RwLock::new(Ring {
            file: secrets,
            previous: None,
        })))
    }

    /// The file's secrets in order, then the previous first one.
    pub fn tokens(&self) -> Vec<Vec<u8>> {
        let g = self.0.read().unwrap_or_else(|e| e.into_inner());
        g.file.iter().chain(&g.previous).cloned().collect()
    }

    /// Takes the secrets of a re-read file; false if the file did not change.
    pub fn replace(&self, secrets: Vec<Vec<u8>>) -> bool {
        let mut g = self.0.write().unwrap_or_else(|e| e.into_inner());
        if g.file == secrets {
            return false;
        }
        let first = g.file.first().cloned();
        g.previous = first.filter(|f| !secrets.contains(f));
        g.file = secrets;
        true
    }
}

/// The secrets of a token file: one per line, blank lines and `#` comments skipped, the file
/// private to its owner. Errors name the key and the path.
pub fn read_tokens(path: &std::path::Path) -> Result<Vec<Vec<u8>>, String> {
    const KEY: &str = "cluster.auth.tokenFile";
    let raw = crate::secret::read_private(path, KEY)?;
    let secrets: Vec<Vec<u8>> = raw
        .split(|b| *b == b'\n')
        .map(|l| l.trim_ascii())
        .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
        .map(<[u8]>::to_vec)
        .collect();
    if secrets.is_empty() {
        return Err(format!("{KEY} {} holds no token", path.display()));
    }
    Ok(secrets)
}

/// What [`reload_secrets`] re-reads: the token file into the ring, the `cluster.tls` files into
/// the live TLS configurations.
pub struct Reloadable {
    pub tokens: Option<(TokenRing, std::path::PathBuf)>,
    pub tls: Option<(TlsLive, crate::config::Tls)>,
}

/// Re-reads the cluster token file and the TLS files on every SIGHUP and, when `every` is set
/// (`tokenRotationInterval`), on that period, until `stop`. A file that cannot be used (missing,
/// empty, readable by others, not a certificate) is logged and what is in force stays.
pub async fn reload_secrets(
    what: Reloadable,
    every: Option<Duration>,
    stop: tokio_util::sync::CancellationToken,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    let mut tick = every.map(|p| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + p, p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        let why = tokio::select! {
            r = hup.recv() => match r { Some(()) => "SIGHUP", None => return },
            _ = async {
                match tick.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending().await,
                }
            } => "tokenRotationInterval",
            _ = stop.cancelled() => return,
        };
        if let Some((ring, path)) = &what.tokens {
            match read_tokens(path) {
                Ok(t) => {
                    if ring.replace(t) {
                        tracing::info!(
                            path = %path.display(),
                            why,
                            "cluster token reloaded; the previous one stays accepted"
                        );
                    }
                }
                Err(e) => {
                    tracing::error!(
                        why,
                        "cannot reload the cluster token: {e}; tokens unchanged"
                    )
                }
            }
        }
        if let (Some((live, cfg)), "SIGHUP") = (&what.tls, why) {
            match TlsSettings::from_config(cfg) {
                Ok(t) => {
                    live.replace(t);
                    tracing::info!(why, "cluster TLS certificates reloaded for new connections");
                }
                Err(e) => tracing::error!(
                    why,
                    "cannot reload the cluster TLS files: {e}; certificates unchanged"
                ),
            }
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
    /// TLS for both sides, when `cluster.tls.enabled` (reloadable).
    pub tls: Option<TlsLive>,
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
    /// `max_frame` is [`frame_limit`] of `maxSizePerMsg` and `largest_command` (the test knob
    /// [`TEST_MAX_MESSAGE_ENV`] replaces it).
    pub fn from_config(c: &Cluster, largest_command: usize) -> Result<RpcSettings, RpcError> {
        let secrets = if c.auth.enabled {
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
            read_tokens(path).map_err(|e| config_error("cluster.auth.tokenFile", e))?
        } else {
            Vec::new()
        };
        let tls = if c.tls.enabled {
            Some(TlsSettings::from_config(&c.tls)?.into())
        } else {
            None
        };
        Ok(RpcSettings {
            token: secrets.first().cloned(),
            ring: TokenRing::new(secrets),
            tls,
            dial_timeout: c.dial_timeout.0,
            request_timeout: c.request_timeout.0,
            max_connections: (c.max_connections as usize).max(1),
            keep_alive: c.keep_alive,
            keep_alive_period: c.keep_alive_period.0,
            max_frame: test_max_message()
                .unwrap_or_else(|| frame_limit(c.max_size_per_msg.0, largest_command)),
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
        let s = RpcSettings::from_config(&c, 1 << 20).unwrap();
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
        let e = RpcSettings::from_config(&c, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cluster.auth.tokenFile:"), "{e}");
        c.auth.token_file = Some("/nonexistent/wk-token".into());
        let e = RpcSettings::from_config(&c, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cluster.auth.tokenFile") && e.contains("/nonexistent/wk-token"));
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        private(&empty);
        c.auth.token_file = Some(empty);
        let e = RpcSettings::from_config(&c, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds no token"), "{e}");
        c.auth.method = "password".into();
        let e = RpcSettings::from_config(&c, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cluster.auth.method:"), "{e}");
    }

    #[test]
    fn the_ring_keeps_one_previous_token() {
        let v = |s: &[&str]| s.iter().map(|t| t.as_bytes().to_vec()).collect::<Vec<_>>();
        let r = TokenRing::new(v(&["a"]));
        assert!(r.replace(v(&["b"])));
        assert_eq!(r.tokens(), v(&["b", "a"]));
        assert!(!r.replace(v(&["b"])), "unchanged file");
        assert!(r.replace(v(&["c"])));
        assert_eq!(r.tokens(), v(&["c", "b"]));
        // Current and next in the file: both accepted, the current one dials.
        assert!(r.replace(v(&["c", "d"])));
        assert_eq!(r.tokens(), v(&["c", "d"]));
        assert!(r.replace(v(&["d", "c"])));
        assert_eq!(r.tokens(), v(&["d", "c"]));
        assert!(r.replace(v(&["d"])));
        assert_eq!(
            r.tokens(),
            v(&["d"]),
            "the previous first one is still listed: no extra"
        );
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
    fn a_token_file_holds_secrets_one_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "# rotated 2026-12-02\n  current \n\nnext\n").unwrap();
        private(&f);
        assert_eq!(
            read_tokens(&f).unwrap(),
            [b"current".to_vec(), b"next".to_vec()]
        );
        std::fs::write(&f, "# only a comment\n\n").unwrap();
        let e = read_tokens(&f).unwrap_err();
        assert!(
            e.contains("cluster.auth.tokenFile") && e.contains("holds no token"),
            "{e}"
        );
    }

    #[test]
    fn auth_disabled_means_no_token() {
        let mut c = Cluster::default();
        c.auth.token_file = Some("/nonexistent".into());
        assert!(RpcSettings::from_config(&c, 1 << 20)
            .unwrap()
            .token
            .is_none());
    }
}
