//! Command line: clap definitions (stage one), then each command turns its raw arguments into
//! validated settings (stage two) before doing anything. Exit codes: 0 ok, 1 check failed or
//! some target failed, 2 usage or configuration error.

mod render;

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
    };
    match result {
        // A closed stdout (`wk-ops render … | head`) is not a failure.
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        other => other,
    }
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
