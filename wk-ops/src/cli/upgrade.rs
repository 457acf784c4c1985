//! `wk-ops upgrade`: SCAFFOLD — replaced by the issue that builds it.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// The inventory file (YAML) describing the fleet.
    pub inventory: PathBuf,
}

pub async fn run(_args: UpgradeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`wk-ops upgrade` is not built yet")
}
