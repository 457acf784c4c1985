//! `wk-ops scale-out` / `wk-ops scale-in`: check the node against the inventory and the
//! running cluster, print the plan, refuse changes that leave the cluster below a quorum or
//! with an even number of voters (unless `--force`), ask, then change the membership one node
//! at a time (`crate::scale`).

use super::remote_args::{ActionArgs, RemoteArgs};
use super::rolling::confirm;
use super::ConfigError;
use crate::inventory::{Inventory, Node};
use crate::node_api::NodeApi;
use crate::render::Templates;
use crate::rolling::fleet::{Fleet, View};
use crate::rolling::progress::Progress;
use crate::scale::{self, install, size};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The inventory file (YAML) describing the fleet; it must list the node.
    pub inventory: PathBuf,
    /// The node to add or remove (its id in the inventory).
    #[arg(long, value_name = "ID")]
    pub node: u64,
    /// Go ahead although the cluster is left with an even number of voters, or with fewer
    /// healthy voters than a quorum.
    #[arg(long)]
    pub force: bool,
    /// Directory of templates overriding the built-in ones (as for `render`; scale-out only).
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    #[command(flatten)]
    pub action: ActionArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Out,
    In,
}

impl Direction {
    fn command(self) -> &'static str {
        match self {
            Direction::Out => "scale-out",
            Direction::In => "scale-in",
        }
    }
}

/// What the run starts from.
struct Start {
    inv: Inventory,
    fleet: Fleet,
    node: Node,
    view: View,
    /// Voters answering /health.
    healthy: Vec<u64>,
}

async fn start(args: &ScaleArgs, dir: Direction) -> anyhow::Result<Result<Start, String>> {
    let inv = super::load_inventory(&args.inventory)?;
    let Some(node) = inv.nodes.iter().find(|n| n.id == args.node).cloned() else {
        return Err(ConfigError(format!(
            "--node {}: not in the inventory {} (add it there first: {} works from the inventory)",
            args.node,
            args.inventory.display(),
            dir.command()
        ))
        .into());
    };
    let api = NodeApi::new(&inv, Duration::from_secs(5))?;
    let fleet = Fleet::new(inv.nodes.clone(), api, &args.remote.options())?;
    let view = match fleet.view().await {
        Ok(v) => v,
        Err(e) => {
            return Ok(Err(format!(
                "the cluster is not serving ({e}); {} needs a leader",
                dir.command()
            )))
        }
    };
    let mut healthy = Vec::new();
    for id in &view.voters {
        if let Some(n) = inv.nodes.iter().find(|n| n.id == *id) {
            if fleet.api().health(n).await.is_ok() {
                healthy.push(*id);
            }
        }
    }
    Ok(Ok(Start {
        inv,
        fleet,
        node,
        view,
        healthy,
    }))
}

pub async fn run(args: ScaleArgs, dir: Direction) -> anyhow::Result<ExitCode> {
    if dir == Direction::In && args.templates.is_some() {
        return Err(ConfigError(
            "--templates: scale-in renders nothing (the option is for scale-out)".into(),
        )
        .into());
    }
    let templates = match &args.templates {
        Some(d) => Templates::with_overrides(d)?,
        None => Templates::embedded()?,
    };
    let s = match start(&args, dir).await? {
        Ok(s) => s,
        Err(why) => {
            eprintln!("error: {why}");
            return Ok(ExitCode::from(1));
        }
    };
    let id = s.node.id;
    let member = s.view.voters.contains(&id);
    let config = match dir {
        Direction::Out => Some(install::rendered(&s.inv, &templates, id)?),
        Direction::In => None,
    };
    if dir == Direction::Out && member {
        println!(
            "node {id} is already a voter of cluster `{}` (voters {:?}, leader {}): nothing to do",
            s.inv.cluster.name, s.view.voters, s.view.leader
        );
        return Ok(ExitCode::SUCCESS);
    }
    let after: Vec<u64> = match dir {
        Direction::Out => {
            let mut v = s.view.voters.clone();
            v.push(id);
            v.sort_unstable();
            v
        }
        Direction::In => s.view.voters.iter().copied().filter(|v| *v != id).collect(),
    };
    print_plan(&s, dir, &after);
    if dir == Direction::In && !member {
        println!(
            "node {id} is not a member of the running cluster: only its service is stopped \
             (`{}`)",
            s.node.service.stop
        );
    } else {
        let healthy_after = match dir {
            Direction::Out => s.healthy.len() + 1,
            Direction::In => s.healthy.iter().filter(|h| **h != id).count(),
        };
        let change = size::Change {
            before: s.view.voters.len(),
            after: after.len(),
            healthy_after,
        };
        let all = size::refusals(change, false);
        let left = size::refusals(change, args.force);
        for r in all.iter().filter(|r| !left.contains(r)) {
            println!("warning (--force): {}", r.reason);
        }
        if !left.is_empty() {
            for r in &left {
                eprintln!("refused: {}", r.reason);
            }
            eprintln!("nothing changed");
            return Ok(ExitCode::from(1));
        }
    }
    if args.action.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let question = match dir {
        Direction::Out => format!("Add node {id}?"),
        Direction::In => format!("Remove node {id}?"),
    };
    if !confirm(args.action.yes, &question)? {
        eprintln!("nothing changed");
        return Ok(ExitCode::from(1));
    }
    let timing = args.action.timing();
    let failures = s.fleet.reach(&[id], timing.command).await;
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("error: {f}");
        }
        eprintln!("nothing changed: node {id} must be reachable over SSH first");
        return Ok(ExitCode::from(1));
    }
    let started = Instant::now();
    let progress = Progress::new(1);
    let result = match dir {
        Direction::Out => {
            // The add call answers once the learner caught up: as long as any wait.
            let long = NodeApi::new(&s.inv, timing.wait)?;
            let config = config.as_deref().unwrap_or_default();
            scale::out(&s.fleet, &s.inv, id, config, &long, timing, &progress)
                .await
                .map(|applied| format!("a caught-up voter (applied {applied})"))
        }
        Direction::In => scale::r#in(&s.fleet, id, member, timing, &progress)
            .await
            .map(|()| {
                format!(
                    "removed and stopped; its data directory {} is left in place",
                    s.node.root_dir
                )
            }),
    };
    match &result {
        Ok(what) => progress.node_done(id, what),
        Err(_) => progress.finish(),
    }
    progress.finish();
    let now = s.fleet.view().await;
    match result {
        Ok(_) => {
            let summary = match &now {
                Ok(v) => format!("voters now {:?}, leader {}", v.voters, v.leader),
                Err(e) => format!("WARNING: the cluster is not serving now: {e}"),
            };
            println!(
                "{} finished in {:.1}s: {summary}",
                dir.command(),
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            match now {
                Ok(v) => eprintln!(
                    "the cluster is serving: leader {}, voters {:?}",
                    v.leader, v.voters
                ),
                Err(why) => eprintln!("WARNING: the cluster is not serving now: {why}"),
            }
            eprintln!(
                "{} stopped; fix the cause, then run it again (steps already done are skipped \
                 or repeated harmlessly):\n  wk-ops {} {} --node {id}",
                dir.command(),
                dir.command(),
                args.inventory.display()
            );
            Ok(ExitCode::from(1))
        }
    }
}

fn print_plan(s: &Start, dir: Direction, after: &[u64]) {
    let n = &s.node;
    let v = &s.view;
    println!(
        "{} of cluster `{}`: node {} ({}, cluster address {})",
        dir.command(),
        s.inv.cluster.name,
        n.id,
        n.host,
        n.server_addr()
    );
    println!(
        "  voters now {:?} ({} healthy), leader {}, term {}, commit index {}",
        v.voters,
        s.healthy.len(),
        v.leader,
        v.term,
        v.commit_index
    );
    println!("  voters after {after:?}");
    println!("plan:");
    let steps: Vec<String> = match dir {
        Direction::Out => vec![
            format!(
                "install {} on {} (rendered from the inventory, checked with `{} --config … --check` first)",
                s.inv.systemd.node_config_path(n.id),
                n.host,
                s.inv.systemd.binary
            ),
            format!("start it: `{}`", n.service.start),
            format!(
                "add it through the leader: POST /cluster/nodes {{\"id\": {}, \"addr\": \"{}\"}} (a learner, caught up, then a voter)",
                n.id,
                n.server_addr()
            ),
            "wait until it is a voter that knows the leader and has applied the leader's commit index".into(),
        ],
        Direction::In => {
            let mut steps = Vec::new();
            if v.leader == n.id {
                match v.successor(n.id) {
                    Some(t) => steps.push(format!("it leads: move leadership to node {t}")),
                    None => steps.push("it leads: move leadership away".into()),
                }
            }
            steps.push(format!(
                "remove it through the leader: DELETE /cluster/nodes/{}, wait until the membership no longer has it",
                n.id
            ));
            steps.push(format!(
                "stop it: `{}`; its data directory {} stays",
                n.service.stop, n.root_dir
            ));
            steps
        }
    };
    for (i, step) in steps.iter().enumerate() {
        println!("  {}. {step}", i + 1);
    }
    println!(
        "the other nodes' installed wk.yaml stay as they are: initNodes only matters when the \
         cluster first forms, and a restarted node takes its peers from the membership stored in \
         its data directory"
    );
}
