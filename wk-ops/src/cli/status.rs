//! `wk-ops status`: SCAFFOLD — replaced by the issue that builds it.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The inventory file (YAML) describing the fleet.
    pub inventory: PathBuf,
}

pub async fn run(_args: StatusArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`wk-ops status` is not built yet")
}
