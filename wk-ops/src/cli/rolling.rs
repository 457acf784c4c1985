//! `wk-ops rolling-restart`: SCAFFOLD — replaced by the issue that builds it.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct RollingArgs {
    /// The inventory file (YAML) describing the fleet.
    pub inventory: PathBuf,
}

pub async fn run(_args: RollingArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`wk-ops rolling-restart` is not built yet")
}
