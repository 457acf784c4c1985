//! Open doors: settings that leave a port or an account reachable without a secret (the
//! cluster port without authentication on any address, the API without a manager token on a
//! non-loopback address, clients without token checks). A node may
//! run with them (the cluster guide's node files do), but never silently: each one is logged as
//! a WARN at startup, listed by `--check` and exported as `wukongim_insecure_setting{setting}`.

use super::model::Config;
use std::net::IpAddr;

/// One insecure setting in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenDoor {
    /// Stable name, the metric's `setting` label: `cluster_auth`, `manager_token`, `token_auth`.
    pub setting: &'static str,
    /// What is open and which key closes it.
    pub message: String,
}

/// Every open door of `c` (empty = none).
pub fn open_doors(c: &Config) -> Vec<OpenDoor> {
    let mut out = Vec::new();
    let cl = &c.cluster;
    let mutual_tls = cl.tls.enabled && cl.tls.client_auth;
    // Reported on loopback too: every local process (any user of the host) reaches it there.
    if !cl.auth.enabled && !mutual_tls {
        let who = if is_loopback(&cl.server_addr) {
            "any process on this host"
        } else {
            "anyone who reaches it"
        };
        out.push(OpenDoor {
            setting: "cluster_auth",
            message: format!(
                "cluster port {} is not authenticated (cluster.auth.enabled is false and no \
                 cluster.tls.clientAuth): {who} can vote, install snapshots, change membership \
                 and write any command",
                cl.server_addr
            ),
        });
    }
    let has_manager_token = !c.manager_token.is_empty() || c.manager_token_file.is_some();
    let http = c.http_listen();
    if !has_manager_token && !is_loopback(&http) {
        out.push(OpenDoor {
            setting: "manager_token",
            message: format!(
                "HTTP API {http} has no manager token (managerToken/managerTokenFile unset): \
                 anyone who reaches it can change membership, take snapshots and send as any user"
            ),
        });
    }
    if !c.token_auth_on {
        out.push(OpenDoor {
            setting: "token_auth",
            message: "tokenAuthOn is false: any client can CONNECT as any uid and receive that \
                      user's messages"
                .into(),
        });
    }
    out
}

/// Keys accepted for compatibility whose value is not acted on yet: each is named when it differs
/// from the default, so a tuning value never silently does nothing.
pub fn ineffective_keys(c: &Config) -> Vec<String> {
    let d = super::model::Cluster::default();
    let cl = &c.cluster;
    let mut out = Vec::new();
    if cl.gc_interval != d.gc_interval {
        out.push("cluster.gcInterval has no effect (this server has no garbage collector)".into());
    }
    if !c.webhook.grpc_addr.trim().is_empty() {
        out.push(
            "webhook.grpcAddr is not supported by this server (gRPC webhooks): set \
             webhook.httpAddr instead"
                .into(),
        );
    }
    out
}

/// True for `127.0.0.1:p`, `[::1]:p`, `localhost:p`; false for wildcards, other addresses and
/// names (which might resolve anywhere).
pub fn is_loopback(host_port: &str) -> bool {
    let host = host_port
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(host_port);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(c: &Config) -> Vec<&'static str> {
        open_doors(c).into_iter().map(|d| d.setting).collect()
    }

    #[test]
    fn defaults_on_public_addresses_are_all_reported() {
        let mut c = Config::default();
        c.cluster.server_addr = "0.0.0.0:11110".into();
        assert_eq!(
            settings(&c),
            ["cluster_auth", "manager_token", "token_auth"]
        );
    }

    #[test]
    fn loopback_and_secrets_close_the_doors() {
        let mut c = Config::default();
        c.cluster.server_addr = "127.0.0.1:11110".into();
        c.http_addr = Some("[::1]:5001".into());
        c.token_auth_on = true;
        assert_eq!(
            settings(&c),
            ["cluster_auth"],
            "local processes reach loopback"
        );
        c.cluster.auth.enabled = true;
        assert!(settings(&c).is_empty());
        c.cluster.auth.enabled = false;
        c.cluster.server_addr = "10.0.0.1:11110".into();
        c.http_addr = Some("10.0.0.1:5001".into());
        c.manager_token_file = Some("/etc/wk/manager.token".into());
        c.cluster.tls.enabled = true;
        c.cluster.tls.client_auth = true;
        assert!(settings(&c).is_empty());
        c.cluster.tls.client_auth = false;
        assert_eq!(settings(&c), ["cluster_auth"]);
        c.cluster.auth.enabled = true;
        assert!(settings(&c).is_empty());
    }

    #[test]
    fn loopback_detection() {
        for a in ["127.0.0.1:1", "127.9.9.9:1", "[::1]:1", "localhost:1"] {
            assert!(is_loopback(a), "{a}");
        }
        for a in [
            "0.0.0.0:1",
            "[::]:1",
            "10.0.0.1:1",
            "example.org:1",
            "garbage",
        ] {
            assert!(!is_loopback(a), "{a}");
        }
    }
}
