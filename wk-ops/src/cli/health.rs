//! `wk-ops health`: the health checks with mail alerts, once (`--once`, what the systemd timer
//! runs; the default) or every INTERVAL (`--watch`). Exit 0 all checks pass and any mail is
//! out, 1 a check fails or the mail could not be sent, 2 usage or configuration error.

use super::ConfigError;
use crate::health::{self, HealthError, Settings};
use crate::inventory;
use crate::node_api::NodeApi;
use anyhow::Context as _;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The inventory file (YAML) describing the fleet.
    pub inventory: PathBuf,
    /// Run the checks once and exit (the default).
    #[arg(long, conflicts_with = "watch")]
    pub once: bool,
    /// Run the checks every INTERVAL (e.g. "30s") until interrupted.
    #[arg(long, value_name = "INTERVAL", value_parser = super::duration_arg)]
    pub watch: Option<Duration>,
    /// Alert state file [default: $STATE_DIRECTORY/health-<cluster>.json, else
    /// /var/lib/wk-ops/health-<cluster>.json].
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Print the mail instead of sending it; the state file is not changed.
    #[arg(long)]
    pub dry_run: bool,
    /// Deadline for each request to a node.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = super::duration_arg)]
    pub timeout: Duration,
}

pub async fn run(args: HealthArgs) -> anyhow::Result<ExitCode> {
    let loaded = inventory::load(&args.inventory)?;
    let inv = &loaded.inventory;
    let api = NodeApi::new(inv, args.timeout).map_err(|e| ConfigError(e.to_string()))?;
    let settings = Settings {
        state_file: args
            .state
            .clone()
            .unwrap_or_else(|| health::default_state_file(&inv.cluster.name)),
        dry_run: args.dry_run,
        timeout: args.timeout,
        mail_timeout: Duration::from_secs(30),
    };
    let Some(every) = args.watch else {
        return once(inv, &api, &settings).await;
    };
    loop {
        let code = once(inv, &api, &settings).await?;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(code),
        }
    }
}

async fn once(
    inv: &inventory::Inventory,
    api: &NodeApi,
    settings: &Settings,
) -> anyhow::Result<ExitCode> {
    let report = match health::run_once(inv, api, settings).await {
        Ok(r) => r,
        Err(HealthError::TokenRefused(e)) => return Err(ConfigError(e.to_string()).into()),
        Err(HealthError::State(e)) => return Err(ConfigError(e.to_string()).into()),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(report.text().as_bytes())
        .and_then(|()| out.flush())
        .context("write the report")?;
    if let health::MailOutcome::Failed(e) = &report.mail {
        eprintln!("error: {e}");
    }
    Ok(ExitCode::from(report.exit_code()))
}
