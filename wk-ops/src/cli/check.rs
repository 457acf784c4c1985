//! `wk-ops check`: the preflight table of `crate::check`; exit 1 when any check fails.

use super::remote_args::RemoteArgs;
use crate::check::{self, table, Limits};
use crate::node_api::NodeApi;
use crate::render::{self, Kind, Templates};
use crate::rolling::fleet::Fleet;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The inventory file (YAML) describing the fleet.
    pub inventory: PathBuf,
    /// Largest tolerated clock difference between a node and this machine, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub max_clock_skew_ms: u64,
    /// Least free space in each data directory's file system, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub min_free_mib: u64,
    /// Directory of templates overriding the built-in ones (as for `render`), for comparing
    /// the installed wk.yaml.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub async fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let inv = super::load_inventory(&args.inventory)?;
    let templates = match &args.templates {
        Some(dir) => Templates::with_overrides(dir)?,
        None => Templates::embedded()?,
    };
    let rendered: Vec<(u64, String)> = render::render(&inv, &templates, &[Kind::Nodes])?
        .into_iter()
        .filter_map(|f| {
            let id = f
                .path
                .strip_prefix("nodes/")?
                .split('/')
                .next()?
                .parse()
                .ok()?;
            Some((id, f.contents))
        })
        .collect();
    let api = NodeApi::new(&inv, Duration::from_secs(5))?;
    let fleet = Fleet::new(inv.nodes.clone(), api, &args.remote.options())?;
    let limits = Limits {
        max_clock_skew: Duration::from_millis(args.max_clock_skew_ms),
        min_free_bytes: args.min_free_mib << 20,
        command_timeout: Duration::from_secs(args.remote.connect_timeout.max(1) + 20),
    };
    println!(
        "check of cluster `{}` ({} nodes)",
        inv.cluster.name,
        inv.nodes.len()
    );
    let reports = check::run(&inv, &fleet, &rendered, limits).await;
    print!("{}", table::render(&reports));
    let failed = reports
        .iter()
        .flat_map(|r| &r.outcomes)
        .filter(|(_, o)| o.failed())
        .count();
    if failed == 0 {
        println!("all checks passed");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{failed} check(s) failed");
        Ok(ExitCode::from(1))
    }
}
