//! `wk-ops backup`: SCAFFOLD — replaced by the issue that builds it.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The inventory file (YAML) describing the fleet.
    pub inventory: PathBuf,
}

pub async fn run(_args: BackupArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`wk-ops backup` is not built yet")
}
