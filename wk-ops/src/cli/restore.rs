//! `wk-ops restore INVENTORY ARCHIVE [--yes] [--dry-run]`: verify the archive (and restore it
//! into a scratch directory here) before touching any node, print the plan, then restore every
//! node. The logic lives in [`crate::backup::restore`].

use super::ConfigError;
use crate::backup::{drill, restore, verify};
use crate::node_api::NodeApi;
use anyhow::Context;
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The inventory file (YAML) describing the fleet.
    pub inventory: PathBuf,
    /// The archive to restore (its `.sha256` beside it).
    pub archive: PathBuf,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Verify the archive and print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// wukongim on this machine, for the pre-restore check (default: beside wk-ops, the
    /// inventory's `systemd.binary`, then PATH).
    #[arg(long, value_name = "PATH")]
    pub wukongim: Option<PathBuf>,
    /// wukongim's path on the nodes (default: the inventory's `systemd.binary`).
    #[arg(long, value_name = "PATH")]
    pub node_binary: Option<String>,
    /// How long the restored cluster may take to become healthy.
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    pub timeout: u64,
}

pub async fn run(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let inv = super::load_inventory(&args.inventory)?;
    if !args.yes && !args.dry_run && !std::io::stdin().is_terminal() {
        return Err(ConfigError(
            "restore replaces the data of every node: pass --yes to confirm (stdin is not a terminal)".into(),
        )
        .into());
    }
    let local_bin = drill::find_wukongim(args.wukongim.as_deref(), Some(&inv.systemd.binary))
        .map_err(|e| ConfigError(e.to_string()))?;
    let node_bin = args
        .node_binary
        .clone()
        .unwrap_or_else(|| inv.systemd.binary.clone());
    let parent = args
        .archive
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf);
    let scratch = drill::Scratch::new(parent.as_deref())?;
    let snapshot = scratch.config().with_file_name("snapshot.bin");

    // 1. Verify before touching anything.
    let refused = || {
        format!(
            "archive {} refused; no node was touched",
            args.archive.display()
        )
    };
    let (a, x) = (args.archive.clone(), snapshot.clone());
    let verified = tokio::task::spawn_blocking(move || verify::verify(&a, Some(&x)))
        .await?
        .with_context(refused)?;
    let m = verified.manifest;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let plan = restore::plan(&inv, &m, &snapshot, &node_bin, &stamp).with_context(refused)?;
    // The snapshot must restore here, and report what the manifest says, before any node.
    let probe = drill::Scratch::new(parent.as_deref())?;
    drill::offline_restore(&local_bin, &probe, &snapshot, &m)
        .await
        .with_context(refused)?;
    drop(probe);
    println!("archive {} verified", args.archive.display());
    print!("{}", plan.describe(&m));
    if args.dry_run {
        println!("dry run: nothing was changed");
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes && !confirm(&inv.cluster.name)? {
        println!("restore cancelled; nothing was changed");
        return Ok(ExitCode::from(1));
    }
    let api = NodeApi::new(&inv, Duration::from_secs(10))?;
    let (took, moved) = restore::execute(
        &plan,
        &inv,
        &api,
        &snapshot,
        &m,
        Duration::from_secs(args.timeout),
    )
    .await
    .with_context(|| format!("restore of {} failed", args.archive.display()))?;
    println!(
        "restored cluster {} to raft index {} (data version {}) on {} nodes in {:.1}s",
        m.cluster,
        m.raft.index,
        m.data_version,
        plan.steps.len(),
        took.as_secs_f64()
    );
    for st in plan.steps.iter().filter(|st| moved.contains(&st.id)) {
        println!("node {}: the old data is kept in {}", st.id, st.aside);
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks on the terminal for the cluster name.
fn confirm(cluster: &str) -> anyhow::Result<bool> {
    print!("This replaces the data of every node of cluster {cluster}. Type the cluster name to continue: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == cluster)
}
