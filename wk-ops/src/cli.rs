//! Command line: clap definitions (stage one), then each command turns its raw arguments into
//! validated settings (stage two) before doing anything. Exit codes: 0 ok, 1 check failed or
//! some target failed, 2 usage or configuration error.

mod backup;
mod check;
mod health;
mod remote_args;
mod render;
mod restore;
mod rolling;
mod scale;
mod secrets;
mod status;
mod upgrade;

use clap::{Parser, Subcommand, ValueEnum};
use std::io;
use std::process::ExitCode;

/// Operator tool for wukongim clusters.
#[derive(Debug, Parser)]
#[command(name = "wk-ops", version, about)]
pub struct Cli {
    /// Log format on stderr (log level from WK_OPS_LOG, e.g. "debug"; default "warn").
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compile an inventory into node configs, systemd units, nginx/haproxy, Prometheus,
    /// Ansible and Grafana files.
    Render(render::RenderArgs),
    /// One table of every node: role, term, indexes, lag, heartbeat, version, up/down.
    Status(status::StatusArgs),
    /// Health checks with mail alerts (firing, reminders, resolved); run by wk-ops-health.timer.
    Health(health::HealthArgs),
    /// Consistent zstd backup of the replicated state; `backup verify ARCHIVE` checks one.
    Backup(backup::BackupArgs),
    /// Restore a backup archive onto every node of the inventory.
    Restore(restore::RestoreArgs),
    /// Leader-aware rolling restart: followers first, leader last, each caught up before the next.
    RollingRestart(rolling::RollingArgs),
    /// Upload a new wukongim binary to every node, check it, swap it in and roll.
    Upgrade(upgrade::UpgradeArgs),
    /// Generate the token files (0600) the inventory names and, with --tls, a CA and per-node
    /// certificates for cluster.tls.
    Secrets(secrets::SecretsArgs),
    /// Preflight: SSH, cluster ports between nodes, clocks, data directories, installed files.
    Check(check::CheckArgs),
    /// Add an inventory node to the running cluster: install its wk.yaml, start it, add it,
    /// wait until it is a caught-up voter.
    ScaleOut(scale::ScaleArgs),
    /// Remove a node from the running cluster (leadership moved away first) and stop it; its
    /// data directory stays.
    ScaleIn(scale::ScaleArgs),
}

/// An error the user must fix in the command line, the inventory or the templates (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Parses the command line and runs the command.
pub fn run() -> anyhow::Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return Ok(ExitCode::from(code));
        }
    };
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Render(args) => render::run(args),
        Command::Status(args) => block_on(status::run(args)),
        Command::Health(args) => block_on(health::run(args)),
        Command::Backup(args) => block_on(backup::run(args)),
        Command::Restore(args) => block_on(restore::run(args)),
        Command::RollingRestart(args) => block_on(rolling::run(args)),
        Command::Upgrade(args) => block_on(upgrade::run(args)),
        Command::Check(args) => block_on(check::run(args)),
        Command::ScaleOut(args) => block_on(scale::run(args, scale::Direction::Out)),
        Command::ScaleIn(args) => block_on(scale::run(args, scale::Direction::In)),
        Command::Secrets(args) => secrets::run(args),
    };
    match result {
        // A closed stdout (`wk-ops render … | head`) is not a failure.
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        other => other,
    }
}

/// Loads the inventory at `path`, printing its warnings on stderr.
fn load_inventory(path: &std::path::Path) -> anyhow::Result<crate::inventory::Inventory> {
    let loaded = crate::inventory::load(path)?;
    for w in loaded.warning_lines() {
        eprintln!("warning: {w}");
    }
    Ok(loaded.inventory)
}

/// Runs an async command on a fresh multi-threaded runtime.
fn block_on<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(
    f: F,
) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(f)
}

/// The exit code for an error returned by [`run`].
pub fn exit_code_for(e: &anyhow::Error) -> ExitCode {
    let config = e.chain().any(|c| {
        c.is::<ConfigError>()
            || c.is::<crate::inventory::InventoryError>()
            || c.is::<crate::render::RenderError>()
            || c.is::<crate::render::TemplateError>()
    });
    ExitCode::from(if config { 2 } else { 1 })
}

/// A `--timeout`/`--watch` value: "500ms", "3s", "1m".
fn duration_arg(s: &str) -> Result<std::time::Duration, String> {
    let d = crate::inventory::values::parse_duration(s)?;
    if d.is_zero() {
        return Err("must be greater than 0".into());
    }
    Ok(d)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .any(|io| io.kind() == io::ErrorKind::BrokenPipe)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WK_OPS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
