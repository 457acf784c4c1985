//! `wk-ops upgrade`: stage the new (or, with `--rollback`, the previous) binary on every node
//! and check it there (`crate::upgrade`), swap it in only when every node passed, then roll
//! exactly like `rolling-restart` (same plan, progress, stop and `--resume`).

use super::remote_args::{ActionArgs, RemoteArgs};
use super::rolling::{confirm, execute, fleet_and_state_file, Setup};
use super::ConfigError;
use crate::upgrade::{self, Source};
use anyhow::Context as _;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

const OPERATION: &str = "upgrade";

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// The inventory file (YAML) describing the fleet.
    pub inventory: PathBuf,
    /// The new wukongim binary (installed at the inventory's systemd.binary on every node).
    #[arg(long, value_name = "PATH", required_unless_present_any = ["rollback", "resume"])]
    pub binary: Option<PathBuf>,
    /// Put back the previous binary each node kept at the last upgrade, then roll.
    #[arg(long, conflicts_with = "binary")]
    pub rollback: bool,
    /// Continue an upgrade whose roll stopped (the binaries are already swapped).
    #[arg(long, conflicts_with_all = ["binary", "rollback"])]
    pub resume: bool,
    /// The resume file (default: .wk-ops-upgrade.json beside the inventory).
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,
    #[command(flatten)]
    pub action: ActionArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub async fn run(args: UpgradeArgs) -> anyhow::Result<ExitCode> {
    let inv = super::load_inventory(&args.inventory)?;
    let bytes = match &args.binary {
        Some(p) => Some(
            std::fs::read(p)
                .map_err(|e| ConfigError(format!("--binary: cannot read {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let source = match &bytes {
        Some(b) => Source::Binary(b),
        None => Source::Previous,
    };
    let (fleet, state_file) = fleet_and_state_file(
        &inv,
        &args.inventory,
        args.state_file.as_deref(),
        &args.remote,
        OPERATION,
    )?;
    let setup = Setup {
        inventory: &args.inventory,
        state_file: &state_file,
        operation: OPERATION,
        selected: &[],
        resume: args.resume,
    };
    let Some(mut st) = setup.state(&inv, &fleet).await? else {
        return Ok(ExitCode::from(1));
    };
    if !args.resume {
        match (&args.binary, &bytes) {
            (Some(p), Some(b)) => println!(
                "binary: {} ({} bytes, sha256 {}) → {} on every node (the installed one kept as {}.prev)",
                p.display(),
                b.len(),
                upgrade::sha256_hex(b),
                inv.systemd.binary,
                inv.systemd.binary
            ),
            _ => println!(
                "rollback: {}.prev → {} on every node",
                inv.systemd.binary, inv.systemd.binary
            ),
        }
        println!("the binary must pass `--version` and `--config <wk.yaml> --check` on every node before anything is swapped or restarted");
    }
    if args.action.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if !confirm(args.action.yes, "Upgrade these nodes?")? {
        eprintln!("nothing changed");
        return Ok(ExitCode::from(1));
    }
    let timing = args.action.timing();
    if !args.resume {
        let nodes: Vec<_> = st.nodes.iter().map(|id| fleet.node(*id).clone()).collect();
        let staged = futures::future::join_all(
            nodes
                .iter()
                .map(|n| upgrade::stage(&inv, &fleet, n, &source, timing.command)),
        )
        .await;
        let mut failed = false;
        for (n, r) in nodes.iter().zip(&staged) {
            match r {
                Ok(version) => println!("node {}: staged and checked: {version}", n.id),
                Err(e) => {
                    failed = true;
                    eprintln!("error: {e}");
                }
            }
        }
        if failed {
            for n in &nodes {
                if let Err(e) = upgrade::unstage(&inv, &fleet, n, timing.command).await {
                    eprintln!("warning: {e}");
                }
            }
            eprintln!("nothing was swapped or restarted");
            return Ok(ExitCode::from(1));
        }
        for n in &nodes {
            upgrade::swap(&inv, &fleet, n, &source, timing.command)
                .await
                .with_context(|| format!("swapping the binary on node {} (nodes before it are swapped; run the upgrade again)", n.id))?;
            println!("node {}: binary swapped in", n.id);
        }
    }
    // Rolling restart of the swapped nodes.
    st.operation = OPERATION.into();
    execute(&fleet, &mut st, &setup, timing).await
}
