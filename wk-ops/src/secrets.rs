//! `wk-ops secrets`: the secret files an inventory names, generated. The manager token
//! (`cluster.managerTokenFile`) and the cluster token (`cluster.auth.tokenFile`) are 32 random
//! bytes in hex; with TLS, a CA and one certificate per node (its host and bind address as
//! subject alternative names) for `cluster.tls`. Every file is written whole (temp file, fsync,
//! rename) with mode 0600 (certificates 0644); an existing file is kept unless replacing is asked.

use crate::inventory::Inventory;
use rand::RngCore;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::path::{Path, PathBuf};

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub path: PathBuf,
    pub mode: u32,
    /// False when the file existed and was kept.
    pub created: bool,
}

/// Where the files go and what to generate.
pub struct Plan<'a> {
    pub inventory: &'a Inventory,
    /// Directory for every file (by file name); `None` = the paths the inventory names.
    pub out: Option<&'a Path>,
    pub tls: bool,
    pub replace: bool,
}

/// Errors name the inventory key or the file.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{0}")]
    Inventory(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generating certificates: {0}")]
    Cert(#[from] rcgen::Error),
}

/// A fresh token: 32 random bytes from the OS, hex.
pub fn token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Generates every secret file of the plan.
pub fn generate(plan: &Plan) -> Result<Vec<Written>, SecretsError> {
    if plan.tls && plan.out.is_none() {
        return Err(needs_out());
    }
    let c = &plan.inventory.cluster;
    let place = |path: &str| -> PathBuf {
        match plan.out {
            Some(dir) => dir.join(Path::new(path).file_name().unwrap_or_default()),
            None => PathBuf::from(path),
        }
    };
    let mut out = Vec::new();
    let mut tokens = Vec::new();
    if let Some(p) = &c.manager_token_file {
        tokens.push(place(p));
    }
    if let Some(p) = c.auth.as_ref().and_then(|a| a.token_file.as_ref()) {
        tokens.push(place(p));
    }
    if tokens.is_empty() && !plan.tls {
        return Err(SecretsError::Inventory(
            "the inventory names no secret file (cluster.managerTokenFile, \
             cluster.auth.tokenFile); nothing to generate"
                .into(),
        ));
    }
    for path in tokens {
        out.push(write(
            &path,
            format!("{}\n", token()).as_bytes(),
            0o600,
            plan.replace,
        )?);
    }
    if plan.tls {
        out.extend(certificates(plan, &place)?);
    }
    Ok(out)
}

fn needs_out() -> SecretsError {
    SecretsError::Inventory(
        "--tls writes one certificate per node: give --out DIR (node N's files go to \
         DIR/node-N/)"
            .into(),
    )
}

fn certificates(
    plan: &Plan,
    place: &dyn Fn(&str) -> PathBuf,
) -> Result<Vec<Written>, SecretsError> {
    let missing = |key: &str| {
        SecretsError::Inventory(format!(
            "--tls needs cluster.tls.{key} in the inventory (where the nodes read it)"
        ))
    };
    let tls = plan
        .inventory
        .cluster
        .tls
        .as_ref()
        .ok_or_else(|| missing("enabled"))?;
    let ca_file = tls.ca_file.as_deref().ok_or_else(|| missing("caFile"))?;
    let cert_file = tls
        .cert_file
        .as_deref()
        .ok_or_else(|| missing("certFile"))?;
    let key_file = tls.key_file.as_deref().ok_or_else(|| missing("keyFile"))?;
    let Some(dir) = plan.out else {
        return Err(needs_out());
    };
    let ca_path = place(ca_file);
    let ca_key_path = ca_path.with_extension("key");
    if !plan.replace && ca_path.exists() {
        return Err(SecretsError::Inventory(format!(
            "{} exists: certificates are issued only with a new CA here (use --replace)",
            ca_path.display()
        )));
    }
    let ca_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(
        DnType::CommonName,
        format!("wukongim cluster {} CA", plan.inventory.cluster.name),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = params.self_signed(&ca_key)?;
    let mut out = vec![
        write(&ca_key_path, ca_key.serialize_pem().as_bytes(), 0o600, true)?,
        write(&ca_path, ca_cert.pem().as_bytes(), 0o644, true)?,
    ];
    let issuer = Issuer::new(params, ca_key);
    for n in &plan.inventory.nodes {
        let mut sans = vec![n.host.clone()];
        if n.bind_address != n.host && !matches!(n.bind_address.as_str(), "0.0.0.0" | "::") {
            sans.push(n.bind_address.clone());
        }
        let mut p = CertificateParams::new(sans)?;
        p.distinguished_name
            .push(DnType::CommonName, format!("wukongim node {}", n.id));
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &issuer)?;
        let node_dir = dir.join(format!("node-{}", n.id));
        let name = |f: &str| node_dir.join(Path::new(f).file_name().unwrap_or_default());
        out.push(write(
            &name(key_file),
            key.serialize_pem().as_bytes(),
            0o600,
            true,
        )?);
        out.push(write(&name(cert_file), cert.pem().as_bytes(), 0o644, true)?);
        out.push(write(
            &name(ca_file),
            ca_cert.pem().as_bytes(),
            0o644,
            true,
        )?);
    }
    Ok(out)
}

/// Writes one file whole with `mode`; keeps an existing one unless `replace`.
fn write(path: &Path, data: &[u8], mode: u32, replace: bool) -> Result<Written, SecretsError> {
    let io = |source| SecretsError::Io {
        path: path.to_path_buf(),
        source,
    };
    if !replace && path.exists() {
        return Ok(Written {
            path: path.to_path_buf(),
            mode,
            created: false,
        });
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    wukongim::fsutil::write_atomic(path, data, mode).map_err(io)?;
    Ok(Written {
        path: path.to_path_buf(),
        mode,
        created: true,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_fresh_hex() {
        let (a, b) = (super::token(), super::token());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
