//! `wk-ops rolling-restart`: print the plan (followers first, leader last), ask, check SSH to
//! every node, then roll one node at a time (`crate::rolling`). A stop leaves the cluster
//! serving and says how to `--resume`.

use super::remote_args::{ActionArgs, RemoteArgs};
use super::ConfigError;
use crate::inventory::Inventory;
use crate::node_api::NodeApi;
use crate::rolling::fleet::{Fleet, View};
use crate::rolling::progress::Progress;
use crate::rolling::state::{self, RollState};
use crate::rolling::{self, plan, Timing};
use anyhow::Context as _;
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const OPERATION: &str = "rolling-restart";

#[derive(Debug, Args)]
pub struct RollingArgs {
    /// The inventory file (YAML) describing the fleet.
    pub inventory: PathBuf,
    /// Restart only these node ids (comma-separated; default: every node of the inventory that
    /// is a voter of the running cluster).
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub nodes: Vec<u64>,
    /// Continue a roll that stopped, skipping the nodes it finished.
    #[arg(long)]
    pub resume: bool,
    /// The resume file (default: .wk-ops-rolling-restart.json beside the inventory).
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,
    #[command(flatten)]
    pub action: ActionArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub async fn run(args: RollingArgs) -> anyhow::Result<ExitCode> {
    let inv = super::load_inventory(&args.inventory)?;
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
        selected: &args.nodes,
        resume: args.resume,
    };
    let Some(mut st) = setup.state(&inv, &fleet).await? else {
        return Ok(ExitCode::from(1));
    };
    if args.action.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if !confirm(args.action.yes, "Restart these nodes?")? {
        eprintln!("nothing restarted");
        return Ok(ExitCode::from(1));
    }
    let timing = args.action.timing();
    execute(&fleet, &mut st, &setup, timing).await
}

/// The nodes of `inv` as a roll drives them, and the roll's resume file (`state_file`, or the
/// default for `operation` beside the inventory).
pub fn fleet_and_state_file(
    inv: &Inventory,
    inventory: &Path,
    state_file: Option<&Path>,
    remote: &RemoteArgs,
    operation: &str,
) -> anyhow::Result<(Fleet, PathBuf)> {
    let state_file = state_file
        .map(Path::to_path_buf)
        .unwrap_or_else(|| state::default_path(inventory, operation));
    let api = NodeApi::new(inv, Duration::from_secs(5))?;
    let fleet = Fleet::new(inv.nodes.clone(), api, &remote.options())?;
    Ok((fleet, state_file))
}

/// What a roll is about: the files it reads and writes, and which nodes.
pub struct Setup<'a> {
    pub inventory: &'a Path,
    pub state_file: &'a Path,
    pub operation: &'a str,
    pub selected: &'a [u64],
    pub resume: bool,
}

impl Setup<'_> {
    /// Checks the selection against the inventory and the running cluster, prints the plan and
    /// returns the roll's state (None when the cluster cannot be rolled: reason printed).
    pub async fn state(&self, inv: &Inventory, fleet: &Fleet) -> anyhow::Result<Option<RollState>> {
        let mut st = self.initial(inv)?;
        let view = match fleet.view().await {
            Ok(v) => v,
            Err(e) => {
                eprintln!(
                    "error: the cluster is not serving ({e}); a rolling restart needs a leader"
                );
                return Ok(None);
            }
        };
        // Without --nodes: the inventory's nodes that are members (a node listed for a later
        // scale-out, or removed by scale-in, is not restarted).
        if self.selected.is_empty() && !self.resume {
            let (members, others): (Vec<u64>, Vec<u64>) =
                st.nodes.iter().partition(|id| view.voters.contains(id));
            if !others.is_empty() {
                println!("not members of the running cluster, left alone: {others:?}");
            }
            st.nodes = members;
        }
        if let Some(id) = st.nodes.iter().find(|id| !view.voters.contains(id)) {
            eprintln!(
                "error: node {id} is not a voter of the running cluster (voters {:?})",
                view.voters
            );
            return Ok(None);
        }
        if view.spare() == 0 {
            eprintln!(
                "error: a cluster of {} voter(s) loses its quorum when one restarts; a rolling \
                 restart needs at least 3 voters",
                view.voters.len()
            );
            return Ok(None);
        }
        print_plan(inv, fleet, &st, &view);
        Ok(Some(st))
    }

    fn initial(&self, inv: &Inventory) -> anyhow::Result<RollState> {
        let saved = state::load(self.state_file)?;
        if self.resume {
            let st = saved.ok_or_else(|| {
                ConfigError(format!(
                    "--resume: no resume file {} (nothing to resume)",
                    self.state_file.display()
                ))
            })?;
            if st.cluster != inv.cluster.name || st.operation != self.operation {
                return Err(ConfigError(format!(
                    "--resume: {} belongs to `{}` of cluster `{}`, not `{}` of `{}`",
                    self.state_file.display(),
                    st.operation,
                    st.cluster,
                    self.operation,
                    inv.cluster.name
                ))
                .into());
            }
            if !self.selected.is_empty() {
                return Err(ConfigError(
                    "--resume continues the saved node list; drop --nodes".into(),
                )
                .into());
            }
            return Ok(st);
        }
        if let Some(st) = saved {
            return Err(ConfigError(format!(
                "an unfinished {} is recorded in {} (done: {:?} of {:?}); continue it with --resume \
                 or remove that file to start over",
                st.operation,
                self.state_file.display(),
                st.done,
                st.nodes
            ))
            .into());
        }
        let mut nodes = if self.selected.is_empty() {
            inv.nodes.iter().map(|n| n.id).collect()
        } else {
            self.selected.to_vec()
        };
        nodes.sort_unstable();
        nodes.dedup();
        if let Some(id) = nodes
            .iter()
            .find(|id| !inv.nodes.iter().any(|n| n.id == **id))
        {
            return Err(ConfigError(format!("--nodes: node {id} is not in the inventory")).into());
        }
        Ok(RollState {
            cluster: inv.cluster.name.clone(),
            operation: self.operation.into(),
            nodes,
            done: Vec::new(),
            stopped: None,
        })
    }
}

fn print_plan(inv: &Inventory, fleet: &Fleet, st: &RollState, view: &View) {
    println!(
        "{} of cluster `{}`: {} voters {:?}, leader {}, term {}, commit index {}",
        st.operation,
        inv.cluster.name,
        view.voters.len(),
        view.voters,
        view.leader,
        view.term,
        view.commit_index
    );
    if !st.done.is_empty() {
        println!("resuming: already done {:?}", st.done);
    }
    let remaining: Vec<u64> = st.remaining();
    println!("plan (followers first, leader last):");
    for (i, id) in plan::order(&remaining, Some(view.leader))
        .iter()
        .enumerate()
    {
        let n = fleet.node(*id);
        let role = if *id == view.leader {
            match view.successor(*id) {
                Some(t) => format!("leader: leadership moves to node {t} first"),
                None => "leader".into(),
            }
        } else {
            "follower".into()
        };
        println!(
            "  {}. node {:<6} {:<22} {:<44} `{}`",
            i + 1,
            id,
            n.host,
            role,
            n.service.restart
        );
    }
    println!(
        "each node: other voters healthy and caught up → restart → /health ok, voter again, \
         applied index ≥ the leader's commit index at restart"
    );
}

/// Asks on a terminal; without one, `--yes` is required.
pub fn confirm(yes: bool, question: &str) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(ConfigError("stdin is not a terminal: pass --yes to proceed".into()).into());
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// SSH to every remaining node, then the roll; the summary or where it stopped.
pub async fn execute(
    fleet: &Fleet,
    st: &mut RollState,
    setup: &Setup<'_>,
    timing: Timing,
) -> anyhow::Result<ExitCode> {
    let remaining: Vec<u64> = st.remaining();
    let failures = fleet.reach(&remaining, timing.command).await;
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("error: {f}");
        }
        eprintln!("nothing was restarted: every node must be reachable over SSH first");
        return Ok(ExitCode::from(1));
    }
    state::save(setup.state_file, st)?;
    let started = Instant::now();
    let progress = Progress::new(remaining.len());
    let result = rolling::roll(fleet, st, setup.state_file, timing, &progress).await;
    progress.finish();
    match result {
        Ok(()) => {
            state::clear(setup.state_file)?;
            let leader = fleet
                .leader()
                .await
                .map_or_else(|e| e, |l| format!("node {l}"));
            println!(
                "{} finished: {} node(s) restarted in {:.1}s; leader now {leader}",
                st.operation,
                remaining.len(),
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ rolling::RollError::State(_)) => Err(e).context("the roll stopped"),
        Err(e) => {
            eprintln!("error: {e}");
            match fleet.view().await {
                Ok(v) => eprintln!(
                    "the cluster is serving: leader {}, voters {:?}",
                    v.leader, v.voters
                ),
                Err(why) => eprintln!("WARNING: the cluster is not serving now: {why}"),
            }
            let left: Vec<u64> = st.remaining();
            eprintln!(
                "stopped at node {}; done {:?}, left {:?}. Fix the node, then continue with:\n  wk-ops {} {} --resume",
                e.node().map_or("?".into(), |n| n.to_string()),
                st.done,
                left,
                st.operation,
                setup.inventory.display()
            );
            Ok(ExitCode::from(1))
        }
    }
}
