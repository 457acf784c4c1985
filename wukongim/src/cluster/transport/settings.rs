//! Transport settings from the `cluster.*` keys: timeouts, pool size, keep-alive, the cluster
//! token (read from `auth.tokenFile`) and TLS configurations (ring provider; mTLS with
//! `clientAuth`). Errors name the key and the file.

use super::RpcError;
use crate::config::Cluster;
use rustls::crypto::ring as provider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Everything the client and server sides need.
pub struct RpcSettings {
    pub token: Option<Vec<u8>>,
    pub tls_server: Option<Arc<rustls::ServerConfig>>,
    pub tls_client: Option<Arc<rustls::ClientConfig>>,
    pub dial_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub keep_alive: Option<Duration>,
    pub max_frame: usize,
}

fn cfg_err(key: &str, message: impl Into<String>) -> RpcError {
    RpcError::Config {
        key: key.into(),
        message: message.into(),
    }
}

fn certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, RpcError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| cfg_err(key, format!("{}: {e}", path.display())))?
        .collect();
    let certs = certs.map_err(|e| cfg_err(key, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(cfg_err(
            key,
            format!("{}: no certificate found", path.display()),
        ));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, RpcError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| cfg_err("cluster.tls.keyFile", format!("{}: {e}", path.display())))
}

/// The rustls provider restricted to the configured cipher suites.
fn crypto(c: &Cluster) -> Result<Arc<rustls::crypto::CryptoProvider>, RpcError> {
    let mut p = provider::default_provider();
    if !c.tls.cipher_suites.is_empty() {
        let wanted: Vec<String> = c
            .tls
            .cipher_suites
            .iter()
            .map(|s| s.to_ascii_uppercase())
            .collect();
        p.cipher_suites.retain(|s| {
            let name = format!("{:?}", s.suite());
            // TLS 1.3 suites are always allowed (Go does not make them configurable either).
            name.starts_with("TLS13_") || wanted.contains(&name)
        });
    }
    Ok(Arc::new(p))
}

static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
static TLS12_UP: [&rustls::SupportedProtocolVersion; 2] =
    [&rustls::version::TLS13, &rustls::version::TLS12];

fn versions(c: &Cluster) -> &'static [&'static rustls::SupportedProtocolVersion] {
    if c.tls.min_version == "1.3" {
        &TLS13_ONLY
    } else {
        &TLS12_UP
    }
}

impl RpcSettings {
    /// Builds the settings, reading the token and certificate files.
    pub fn from_config(c: &Cluster) -> Result<RpcSettings, RpcError> {
        let token = match (&c.auth.enabled, &c.auth.token_file) {
            (true, Some(path)) => {
                let t = std::fs::read_to_string(path).map_err(|e| {
                    cfg_err("cluster.auth.tokenFile", format!("{}: {e}", path.display()))
                })?;
                let t = t.trim().to_string();
                if t.is_empty() {
                    return Err(cfg_err(
                        "cluster.auth.tokenFile",
                        format!("{} is empty", path.display()),
                    ));
                }
                Some(t.into_bytes())
            }
            _ => None,
        };
        let (tls_server, tls_client) = if c.tls.enabled { tls(c)? } else { (None, None) };
        Ok(RpcSettings {
            token,
            tls_server,
            tls_client,
            dial_timeout: c.dial_timeout.0,
            request_timeout: c.request_timeout.0,
            max_connections: c.max_connections.max(1) as usize,
            keep_alive: c.keep_alive.then_some(c.keep_alive_period.0),
            // Snapshots travel in one frame; peers are authenticated before any large frame.
            max_frame: (c.max_size_per_msg.0 as usize).max(1 << 30),
        })
    }
}

#[allow(clippy::type_complexity)]
fn tls(
    c: &Cluster,
) -> Result<
    (
        Option<Arc<rustls::ServerConfig>>,
        Option<Arc<rustls::ClientConfig>>,
    ),
    RpcError,
> {
    let t = &c.tls;
    let cert_path = t
        .cert_file
        .as_deref()
        .ok_or_else(|| cfg_err("cluster.tls.certFile", "required"))?;
    let key_path = t
        .key_file
        .as_deref()
        .ok_or_else(|| cfg_err("cluster.tls.keyFile", "required"))?;
    let ca_path = t
        .ca_file
        .as_deref()
        .ok_or_else(|| cfg_err("cluster.tls.caFile", "required to verify peers"))?;
    let chain = certs("cluster.tls.certFile", cert_path)?;
    let key = private_key(key_path)?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in certs("cluster.tls.caFile", ca_path)? {
        roots
            .add(ca)
            .map_err(|e| cfg_err("cluster.tls.caFile", e.to_string()))?;
    }
    let roots = Arc::new(roots);
    let provider = crypto(c)?;
    let tls_err = |e: rustls::Error| RpcError::Tls(e.to_string());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(c))
        .map_err(tls_err)?;
    let server = if t.client_auth {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.clone(),
            provider.clone(),
        )
        .build()
        .map_err(|e| RpcError::Tls(e.to_string()))?;
        server.with_client_cert_verifier(verifier)
    } else {
        server.with_no_client_auth()
    };
    let server = server
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(tls_err)?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions(c))
        .map_err(tls_err)?
        .with_root_certificates(roots);
    let client = if t.client_auth {
        client.with_client_auth_cert(chain, key).map_err(tls_err)?
    } else {
        client.with_no_client_auth()
    };
    Ok((Some(Arc::new(server)), Some(Arc::new(client))))
}
