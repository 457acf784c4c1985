//! `wk-ops secrets INVENTORY [--out DIR] [--tls] [--replace]`: generate the token files (and a
//! CA with per-node certificates) the inventory names; prints one line per file.

use crate::secrets::{self, Plan};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct SecretsArgs {
    /// The inventory file (YAML).
    pub inventory: PathBuf,
    /// Write every file into this directory (by file name) instead of the paths the inventory
    /// names; per-node certificates go to DIR/node-<id>/.
    #[arg(long, short, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also generate a CA and one certificate per node for cluster.tls (needs --out).
    #[arg(long)]
    pub tls: bool,
    /// Replace files that exist (a new token must reach every node before they restart).
    #[arg(long)]
    pub replace: bool,
}

pub fn run(a: SecretsArgs) -> anyhow::Result<ExitCode> {
    let inventory = super::load_inventory(&a.inventory)?;
    let written = secrets::generate(&Plan {
        inventory: &inventory,
        out: a.out.as_deref(),
        tls: a.tls,
        replace: a.replace,
    })
    .map_err(|e| match e {
        secrets::SecretsError::Inventory(m) => anyhow::Error::new(super::ConfigError(m)),
        other => other.into(),
    })?;
    for w in written {
        let what = if w.created { "wrote" } else { "kept " };
        println!("{what} {} ({:04o})", w.path.display(), w.mode);
    }
    Ok(ExitCode::SUCCESS)
}
