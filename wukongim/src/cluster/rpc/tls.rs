//! TLS for the cluster RPC from the `cluster.tls` keys, on rustls' `ring` provider.
//!
//! The server presents `certFile`/`keyFile`; with `clientAuth` it requires a client certificate
//! signed by `caFile` (mutual TLS). The client presents the same `certFile`/`keyFile` (so one
//! node config serves both roles) and verifies the server against `caFile` — or, when no CA is
//! given, against the certificates in `certFile` itself (a cluster sharing one self-signed
//! certificate). The server name checked is the host part of the peer's address: peers are
//! usually dialled by IP, so their certificates need IP subject alternative names
//! (`IP:10.0.0.1`); a DNS name in the address is checked against DNS SANs.
//!
//! `minVersion` "1.2" or "1.3". `cipherSuites` takes Go/IANA names; TLS 1.2 suites listed there
//! are the only 1.2 suites offered. As in Go, TLS 1.3 suites stay enabled unless the list names
//! some TLS 1.3 suites, which then restrict 1.3 to those.

use super::settings::config_error;
use super::RpcError;
use crate::config::Tls;
use rustls::crypto::ring::{cipher_suite as cs, default_provider};
use rustls::crypto::CryptoProvider;
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};

/// The configurations in force, replaceable while running: SIGHUP re-reads the certificate, key
/// and CA files ([`super::reload_secrets`]); connections already open keep theirs.
#[derive(Clone, Debug)]
pub struct TlsLive(Arc<RwLock<TlsSettings>>);

impl TlsLive {
    /// The configurations for a new connection.
    pub fn get(&self) -> TlsSettings {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, t: TlsSettings) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = t;
    }
}

impl From<TlsSettings> for TlsLive {
    fn from(t: TlsSettings) -> Self {
        TlsLive(Arc::new(RwLock::new(t)))
    }
}

/// Ready rustls configurations for both sides.
#[derive(Clone)]
pub struct TlsSettings {
    pub server: Arc<rustls::ServerConfig>,
    pub client: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server", &self.server)
            .field("client", &self.client)
            .finish()
    }
}

/// Go/IANA names of the suites ring offers (Go's short ChaCha aliases included).
fn suite(name: &str) -> Option<SupportedCipherSuite> {
    Some(match name.to_ascii_uppercase().as_str() {
        "TLS_AES_128_GCM_SHA256" => cs::TLS13_AES_128_GCM_SHA256,
        "TLS_AES_256_GCM_SHA384" => cs::TLS13_AES_256_GCM_SHA384,
        "TLS_CHACHA20_POLY1305_SHA256" => cs::TLS13_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return None,
    })
}

fn is_tls13(s: &SupportedCipherSuite) -> bool {
    matches!(s, SupportedCipherSuite::Tls13(_))
}

/// The ring provider restricted to the configured suites.
fn provider(t: &Tls) -> Result<Arc<CryptoProvider>, RpcError> {
    let mut p = default_provider();
    if t.cipher_suites.is_empty() {
        return Ok(Arc::new(p));
    }
    let mut listed = Vec::new();
    for (i, name) in t.cipher_suites.iter().enumerate() {
        let s = suite(name).ok_or_else(|| {
            let why = if name.contains("_CBC_") || name.starts_with("TLS_RSA_") {
                format!(
                    "`{name}` is not offered (only AEAD suites with ECDHE key exchange are \
                     supported)"
                )
            } else {
                format!("unknown cipher suite `{name}`")
            };
            config_error(&format!("cluster.tls.cipherSuites[{i}]"), why)
        })?;
        listed.push(s);
    }
    let names_tls13 = listed.iter().any(is_tls13);
    p.cipher_suites
        .retain(|s| (is_tls13(s) && !names_tls13) || listed.iter().any(|l| l.suite() == s.suite()));
    Ok(Arc::new(p))
}

static TLS13_ONLY: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
static TLS12_UP: [&SupportedProtocolVersion; 2] =
    [&rustls::version::TLS13, &rustls::version::TLS12];

fn versions(t: &Tls) -> Result<&'static [&'static SupportedProtocolVersion], RpcError> {
    match t.min_version.trim() {
        "1.2" | "" => Ok(&TLS12_UP),
        "1.3" => Ok(&TLS13_ONLY),
        other => Err(config_error(
            "cluster.tls.minVersion",
            format!("`{other}` is not \"1.2\" or \"1.3\""),
        )),
    }
}

fn certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, RpcError> {
    let bad = |e: &dyn fmt::Display| config_error(key, format!("{}: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    if certs.is_empty() {
        return Err(bad(&"no PEM certificate found"));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, RpcError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| config_error("cluster.tls.keyFile", format!("{}: {e}", path.display())))
}

fn required<'a>(value: &'a Option<std::path::PathBuf>, key: &str) -> Result<&'a Path, RpcError> {
    value
        .as_deref()
        .ok_or_else(|| config_error(key, "required when cluster.tls.enabled is true"))
}

impl TlsSettings {
    /// Builds both configurations from the `cluster.tls` keys (reads the files).
    pub fn from_config(t: &Tls) -> Result<TlsSettings, RpcError> {
        let cert_path = required(&t.cert_file, "cluster.tls.certFile")?;
        let key_path = required(&t.key_file, "cluster.tls.keyFile")?;
        let chain = certs("cluster.tls.certFile", cert_path)?;
        crate::secret::check_private(key_path, "cluster.tls.keyFile")
            .map_err(|e| config_error("cluster.tls.keyFile", e))?;
        let key = private_key(key_path)?;
        let (anchors, anchor_key) = match t.ca_file.as_deref() {
            Some(ca) => (certs("cluster.tls.caFile", ca)?, "cluster.tls.caFile"),
            None if t.client_auth => {
                return Err(config_error(
                    "cluster.tls.caFile",
                    "required when cluster.tls.clientAuth is true",
                ))
            }
            None => (chain.clone(), "cluster.tls.certFile"),
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in anchors {
            roots.add(c).map_err(|e| {
                config_error(anchor_key, format!("unusable as a trust anchor: {e}"))
            })?;
        }
        let roots = Arc::new(roots);
        let provider = provider(t)?;
        let versions = versions(t)?;
        let suites_err = |e: rustls::Error| config_error("cluster.tls.cipherSuites", e.to_string());
        let key_err = |e: rustls::Error| {
            config_error(
                "cluster.tls.keyFile",
                format!("{}: {e}", key_path.display()),
            )
        };

        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(suites_err)?;
        let server = if t.client_auth {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.clone(),
                provider.clone(),
            )
            .build()
            .map_err(|e| config_error("cluster.tls.caFile", e.to_string()))?;
            server.with_client_cert_verifier(verifier)
        } else {
            server.with_no_client_auth()
        };
        let server = server
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(key_err)?;

        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(suites_err)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(key_err)?;
        Ok(TlsSettings {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }
}

/// The name a peer's certificate must carry: the host part of `host:port` (IP or DNS name).
pub(super) fn server_name(addr: &str) -> Result<ServerName<'static>, RpcError> {
    let host = match addr.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| RpcError::Tls(format!("{addr}: `{host}` is not a valid server name: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_onto_ring_suites() {
        for name in crate::config::KNOWN_CIPHER_SUITES {
            assert!(suite(name).is_some(), "{name}");
        }
        assert!(suite("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305").is_some());
        assert!(suite("TLS_RSA_WITH_AES_128_CBC_SHA").is_none());
    }

    #[test]
    fn suite_list_restricts_tls12_and_keeps_tls13_unless_named() {
        let t = Tls {
            cipher_suites: vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()],
            ..Tls::default()
        };
        let p = provider(&t).unwrap();
        let tls12: Vec<_> = p.cipher_suites.iter().filter(|s| !is_tls13(s)).collect();
        assert_eq!(tls12.len(), 1);
        assert_eq!(p.cipher_suites.iter().filter(|s| is_tls13(s)).count(), 3);

        let t = Tls {
            cipher_suites: vec!["TLS_AES_256_GCM_SHA384".into()],
            ..Tls::default()
        };
        let p = provider(&t).unwrap();
        assert_eq!(p.cipher_suites.len(), 1);
    }

    #[test]
    fn unknown_suites_and_versions_are_config_errors() {
        let t = Tls {
            cipher_suites: vec!["TLS_AES_128_GCM_SHA256".into(), "TLS_FANCY".into()],
            ..Tls::default()
        };
        let e = provider(&t).unwrap_err().to_string();
        assert!(e.starts_with("cluster.tls.cipherSuites[1]:"), "{e}");
        let t = Tls {
            cipher_suites: vec!["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA".into()],
            ..Tls::default()
        };
        assert!(provider(&t)
            .unwrap_err()
            .to_string()
            .contains("not offered"));
        let t = Tls {
            min_version: "1.1".into(),
            ..Tls::default()
        };
        let e = versions(&t).unwrap_err().to_string();
        assert!(e.starts_with("cluster.tls.minVersion:"), "{e}");
    }

    #[test]
    fn missing_files_name_key_and_path() {
        let t = Tls {
            enabled: true,
            ..Tls::default()
        };
        let e = TlsSettings::from_config(&t).unwrap_err().to_string();
        assert!(e.starts_with("cluster.tls.certFile:"), "{e}");
        let t = Tls {
            enabled: true,
            cert_file: Some("/nonexistent/node.crt".into()),
            key_file: Some("/nonexistent/node.key".into()),
            ..Tls::default()
        };
        let e = TlsSettings::from_config(&t).unwrap_err().to_string();
        assert!(
            e.contains("cluster.tls.certFile") && e.contains("/nonexistent/node.crt"),
            "{e}"
        );
    }

    #[test]
    fn server_names_come_from_the_address() {
        assert!(matches!(
            server_name("10.0.0.1:11110").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]:11110").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("node1.example:11110").unwrap(),
            ServerName::DnsName(_)
        ));
    }
}
