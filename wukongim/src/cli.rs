//! Command line of the `wukongim` binary: parse, load config, then check it, run the server, or
//! run an offline subcommand (`restore`). Exit codes: 0 ok, 1 runtime failure, 2 invalid usage
//! or configuration.

use crate::config;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// WuKongIM-compatible IM server (Raft cluster node).
#[derive(Debug, Parser)]
#[command(name = "wukongim", version, about)]
pub struct Args {
    /// Node configuration file (YAML). Without it the node runs on embedded defaults.
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Validate the configuration, print the effective values (secrets redacted) and exit.
    #[arg(long)]
    pub check: bool,
    /// Run in the background (daemonize) and write a pid file (default `<rootDir>/wukongim.pid`).
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,
    /// Pid file written when running with -d.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Log format: `text` (default; human) or `json`.
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Offline operations on a stopped node.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Restore a snapshot file (from `GET /cluster/snapshot/download`) as this node's state,
    /// with the membership of `cluster.initNodes`. Prints one line of JSON.
    Restore {
        /// The snapshot file.
        #[arg(long, value_name = "FILE")]
        snapshot: PathBuf,
        /// Replace the data already in rootDir (by default that is refused).
        #[arg(long)]
        force: bool,
    },
}

/// Entry point used by `main`: never panics on bad input, maps errors to exit codes.
pub fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let loaded = match config::load(args.config.as_deref(), std::env::vars()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(Command::Restore { snapshot, force }) = &args.command {
        return restore(&loaded.config, snapshot, *force);
    }
    if args.check {
        let name = loaded.file.as_ref().map(|p| p.display().to_string());
        println!(
            "# {}: configuration OK",
            name.as_deref().unwrap_or("<defaults>")
        );
        for d in config::open_doors(&loaded.config) {
            println!("# WARNING insecure setting {}: {}", d.setting, d.message);
        }
        for k in config::ineffective_keys(&loaded.config) {
            println!("# WARNING {k}");
        }
        for u in &loaded.unsupported {
            println!("# WARNING unsupported: {u}");
        }
        print!("{}", loaded.config.redacted_yaml());
        return ExitCode::SUCCESS;
    }
    match crate::server::main(args, loaded) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn restore(config: &config::Config, snapshot: &std::path::Path, force: bool) -> ExitCode {
    match crate::restore::restore(config, snapshot, force) {
        Ok(r) => {
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
