//! `wk-ops health`: SCAFFOLD — replaced by the issue that builds it.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The inventory file (YAML) describing the fleet.
    pub inventory: PathBuf,
}

pub async fn run(_args: HealthArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`wk-ops health` is not built yet")
}
