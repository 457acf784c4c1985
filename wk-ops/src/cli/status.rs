//! `wk-ops status`: one table of every node (or JSON); exit 0 healthy, 1 degraded,
//! 2 unavailable (and 2 for a bad inventory or a refused manager token).

use super::ConfigError;
use crate::inventory;
use crate::node_api::NodeApi;
use crate::status::{self, Report};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The inventory file (YAML) describing the fleet.
    pub inventory: PathBuf,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Deadline for each request to a node.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = super::duration_arg)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let loaded = inventory::load(&args.inventory)?;
    let inv = &loaded.inventory;
    let api = NodeApi::new(inv, args.timeout).map_err(|e| ConfigError(e.to_string()))?;
    let obs = status::observe(&api, inv).await;
    if let Some(e) = obs.token_refused() {
        return Err(ConfigError(e.to_string()).into());
    }
    let report = Report::new(inv, &obs);
    let text = match args.output {
        Output::Table => report.table(),
        Output::Json => serde_json::to_string_pretty(&report)? + "\n",
    };
    std::io::stdout().write_all(text.as_bytes())?;
    if obs.probes.iter().all(|p| !p.reachable()) {
        eprintln!(
            "error: no node of cluster {} answered (first: {})",
            inv.cluster.name,
            obs.probes
                .first()
                .and_then(|p| p.raft.as_ref().err())
                .map_or_else(String::new, |e| e.to_string())
        );
    }
    Ok(ExitCode::from(report.status.exit_code()))
}
