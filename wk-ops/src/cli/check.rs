//! `wk-ops check`: SCAFFOLD — replaced by the issue that builds it.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The inventory file (YAML) describing the fleet.
    pub inventory: PathBuf,
}

pub async fn run(_args: CheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`wk-ops check` is not built yet")
}
