//! `wk-ops backup INVENTORY` (take a backup, then apply retention), `wk-ops backup INVENTORY
//! --dry-run` (list what retention would remove) and `wk-ops backup verify ARCHIVE
//! [--restore-test]`. The logic lives in [`crate::backup`].

use super::ConfigError;
use crate::backup::archive::Compression;
use crate::backup::retention::{self, Policy};
use crate::backup::{drill, take, verify};
use crate::inventory::Inventory;
use crate::node_api::NodeApi;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    /// The inventory file (YAML) describing the fleet.
    pub inventory: Option<PathBuf>,
    /// The inventory, as older rendered units pass it.
    #[arg(long = "inventory", value_name = "INVENTORY", hide = true)]
    pub inventory_flag: Option<PathBuf>,
    /// Directory for the archive (default: the inventory's `backup.dir`).
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    /// Back up this node instead of the best caught-up follower.
    #[arg(long, value_name = "ID")]
    pub node: Option<u64>,
    /// zstd compression level (1–19; negative is faster).
    #[arg(long, default_value_t = 3, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-7..=19))]
    pub level: i32,
    /// zstd worker threads (0: compress on one thread; default: one per CPU).
    #[arg(long, value_name = "N")]
    pub threads: Option<u32>,
    /// Retention: keep the newest N archives (default: `backup.keep.last`).
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Retention: keep the newest archive of each of the last N days (default: `backup.keep.daily`).
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Retention: keep the newest archive of each of the last N ISO weeks (default: `backup.keep.weekly`).
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Take no backup; list which archives retention would keep and remove.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Check an archive: detached checksum, zstd and tar integrity, manifest, member digests.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The archive (`<cluster>-<time>-<index>.tar.zst`, with its `.sha256` beside it).
    pub archive: PathBuf,
    /// Also restore it into a throw-away single-node server on loopback and compare the counts
    /// and data version it serves with the manifest.
    #[arg(long)]
    pub restore_test: bool,
    /// The wukongim binary for --restore-test (default: beside wk-ops, then PATH).
    #[arg(long, value_name = "PATH")]
    pub wukongim: Option<PathBuf>,
    /// How long the test server may take to serve the data.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub timeout: u64,
}

pub async fn run(args: BackupArgs) -> anyhow::Result<ExitCode> {
    if let Some(BackupCommand::Verify(v)) = args.command {
        return run_verify(v).await;
    }
    let path = args
        .inventory
        .as_ref()
        .or(args.inventory_flag.as_ref())
        .ok_or_else(|| {
            ConfigError("wk-ops backup needs an INVENTORY (or `backup verify ARCHIVE`)".into())
        })?;
    let inv = super::load_inventory(path)?;
    let dir = args
        .to
        .clone()
        .or_else(|| inv.backup.as_ref().map(|b| PathBuf::from(&b.dir)))
        .ok_or_else(|| {
            ConfigError(format!(
                "{}: no `backup.dir` in the inventory; pass --to DIR",
                path.display()
            ))
        })?;
    let policy = policy(&args, &inv);
    if args.dry_run {
        let Some(policy) = policy else {
            return Err(ConfigError("--dry-run lists what retention would remove, but no retention is set (backup.keep or --keep-*)".into()).into());
        };
        let decisions = apply_retention(&dir, &inv.cluster.name, policy, true)?;
        let gone = decisions.iter().filter(|d| !d.keep()).count();
        println!("dry run: {gone} archive(s) would be removed");
        return Ok(ExitCode::SUCCESS);
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let req = take::Request {
        dir: dir.clone(),
        node: args.node,
        compression: Compression {
            level: args.level,
            threads,
        },
    };
    let api = NodeApi::new(&inv, Duration::from_secs(90))?;
    let taken = take::take(&inv, &api, &req)
        .await
        .with_context(|| format!("backup of cluster {} failed", inv.cluster.name))?;
    let m = &taken.manifest;
    let secs = taken.elapsed.as_secs_f64();
    let snapshot = m.members.iter().map(|x| x.size).sum::<u64>();
    println!(
        "backed up cluster {} from node {} ({}): raft index {} term {}, data version {}, {} messages, {} channels, {} users",
        m.cluster, m.source_node.id, taken.source_state, m.raft.index, m.raft.term,
        m.data_version, m.counts.messages, m.counts.channels, m.counts.users
    );
    println!(
        "archive {} ({} bytes from a {} byte snapshot, sha256 {}) in {:.1}s ({:.1} MiB/s)",
        taken.written.path.display(),
        taken.written.size,
        snapshot,
        taken.written.sha256,
        secs,
        snapshot as f64 / (1 << 20) as f64 / secs.max(1e-3)
    );
    if let Some(policy) = policy {
        apply_retention(&dir, &inv.cluster.name, policy, false)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The retention policy from the flags over `backup.keep`; None when neither sets one.
fn policy(args: &BackupArgs, inv: &Inventory) -> Option<Policy> {
    let keep = inv.backup.as_ref().map(|b| b.keep);
    let any_flag = args
        .keep_last
        .or(args.keep_daily)
        .or(args.keep_weekly)
        .is_some();
    if keep.is_none() && !any_flag {
        return None;
    }
    Some(Policy {
        last: args.keep_last.or(keep.map(|k| k.last)).unwrap_or(0),
        daily: args.keep_daily.or(keep.map(|k| k.daily)).unwrap_or(0),
        weekly: args.keep_weekly.or(keep.map(|k| k.weekly)).unwrap_or(0),
    })
}

fn apply_retention(
    dir: &Path,
    cluster: &str,
    policy: Policy,
    dry_run: bool,
) -> anyhow::Result<Vec<retention::Decision>> {
    let found = retention::scan(dir, cluster)
        .with_context(|| format!("cannot list the backup directory {}", dir.display()))?;
    let decisions = retention::plan(found, policy);
    println!(
        "retention (last {}, daily {}, weekly {}) in {}:",
        policy.last,
        policy.daily,
        policy.weekly,
        dir.display()
    );
    for d in &decisions {
        let name = d.path.file_name().unwrap_or_default().to_string_lossy();
        match (d.keep(), dry_run) {
            (true, _) => println!("  keep   {name} ({})", d.reasons.join(", ")),
            (false, true) => println!("  would remove {name}"),
            (false, false) => println!("  remove {name}"),
        }
    }
    if !dry_run {
        retention::apply(&decisions).context("retention failed")?;
    }
    Ok(decisions)
}

async fn run_verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let archive = args.archive.clone();
    let scratch_parent = archive
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf);
    let bin = if args.restore_test {
        Some(
            drill::find_wukongim(args.wukongim.as_deref(), None)
                .map_err(|e| ConfigError(e.to_string()))?,
        )
    } else {
        None
    };
    let scratch = match &bin {
        Some(_) => Some(drill::Scratch::new(scratch_parent.as_deref())?),
        None => None,
    };
    let snapshot = scratch
        .as_ref()
        .map(|s| s.config().with_file_name("snapshot.bin"));
    let (a, x) = (archive.clone(), snapshot.clone());
    let verified = tokio::task::spawn_blocking(move || verify::verify(&a, x.as_deref()))
        .await?
        .with_context(|| format!("archive {} refused", archive.display()))?;
    let m = &verified.manifest;
    println!(
        "ok {}: cluster {}, node {}, raft index {} term {}, data version {}, {} messages, {} channels, {} users, created {}, {} bytes, sha256 {}",
        archive.display(), m.cluster, m.source_node.id, m.raft.index, m.raft.term, m.data_version,
        m.counts.messages, m.counts.channels, m.counts.users, m.created, verified.size, verified.sha256
    );
    if let (Some(bin), Some(scratch), Some(snapshot)) = (bin, scratch, snapshot) {
        let refused = || format!("archive {} failed the restore test", archive.display());
        drill::offline_restore(&bin, &scratch, &snapshot, m)
            .await
            .with_context(refused)?;
        let _ = std::fs::remove_file(&snapshot);
        let took = drill::serve_and_compare(&bin, &scratch, m, Duration::from_secs(args.timeout))
            .await
            .with_context(refused)?;
        println!(
            "restore test ok: a single-node server restored from the archive served data version {} with {} messages, {} channels, {} users ({:.1}s)",
            m.data_version, m.counts.messages, m.counts.channels, m.counts.users, took.as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}
