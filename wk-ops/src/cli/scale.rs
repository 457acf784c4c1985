//! `wk-ops scale-out/scale-in`: SCAFFOLD — replaced by the issue that builds it.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The inventory file (YAML) describing the fleet.
    pub inventory: PathBuf,
}

pub async fn run_out(_args: ScaleArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`wk-ops scale-out/scale-in` is not built yet")
}

pub async fn run_in(_args: ScaleArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`wk-ops scale-out/scale-in` is not built yet")
}
