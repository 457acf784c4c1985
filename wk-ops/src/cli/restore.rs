//! `wk-ops restore`: SCAFFOLD — replaced by the issue that builds it.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The inventory file (YAML) describing the fleet.
    pub inventory: PathBuf,
}

pub async fn run(_args: RestoreArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`wk-ops restore` is not built yet")
}
