//! Restoring an archive onto every node of a fleet. The archive is verified (checksums,
//! manifest, the inventory's cluster name, and a `wukongim restore` into a scratch directory
//! whose report must match the manifest) before any node is touched. Then: stop every node
//! through the inventory's service commands, move each data directory aside (never delete),
//! `wukongim restore` the snapshot as each node's initial state (membership from the node's own
//! config, i.e. the inventory), start every node and wait for a healthy cluster serving the
//! archive's data version. A failure part-way stops there and prints how to roll back.

use super::manifest::Manifest;
use crate::inventory::{Inventory, Node};
use crate::node_api::NodeApi;
use crate::remote::{self, sh_quote, RemoteError, Runner};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("the archive is of cluster `{archive}`, the inventory is of cluster `{inventory}`")]
    WrongCluster { archive: String, inventory: String },
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(
        "node {node}: `wukongim restore` reported {what} {actual}, the manifest says {expected}"
    )]
    Report {
        node: u64,
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("the cluster did not come back healthy with data version {expected} within {timeout:?}: {last}")]
    NotHealthy {
        expected: String,
        timeout: Duration,
        last: String,
    },
}

/// One node's steps.
#[derive(Debug, Clone)]
pub struct NodeStep {
    pub id: u64,
    pub host: String,
    pub local: bool,
    pub stop: String,
    pub start: String,
    pub data_dir: String,
    pub aside: String,
    /// Where the snapshot file is on the node's host.
    pub snapshot: String,
    pub restore: String,
}

/// The whole restore, printed before anything happens.
#[derive(Debug, Clone)]
pub struct Plan {
    pub cluster: String,
    pub steps: Vec<NodeStep>,
}

/// Builds the plan. `snapshot` is the extracted snapshot on this machine; remote nodes get a
/// copy beside their data directory. `binary` is wukongim's path on the nodes.
pub fn plan(
    inv: &Inventory,
    m: &Manifest,
    snapshot: &Path,
    binary: &str,
    stamp: &str,
) -> Result<Plan, RestoreError> {
    if m.cluster != inv.cluster.name {
        return Err(RestoreError::WrongCluster {
            archive: m.cluster.clone(),
            inventory: inv.cluster.name.clone(),
        });
    }
    let steps = inv
        .nodes
        .iter()
        .map(|n| {
            let data_dir = n.root_dir.trim_end_matches('/').to_string();
            let snapshot = if n.ssh.local {
                snapshot.display().to_string()
            } else {
                format!("{data_dir}.restore-{stamp}.snapshot")
            };
            let config = inv.systemd.node_config_path(n.id);
            NodeStep {
                id: n.id,
                host: n.host.clone(),
                local: n.ssh.local,
                stop: n.service.stop.clone(),
                start: n.service.start.clone(),
                aside: format!("{data_dir}.pre-restore-{stamp}"),
                restore: format!(
                    "{} restore --config {} --snapshot {}",
                    sh_quote(binary),
                    sh_quote(&config),
                    sh_quote(&snapshot)
                ),
                snapshot,
                data_dir,
            }
        })
        .collect();
    Ok(Plan {
        cluster: inv.cluster.name.clone(),
        steps,
    })
}

impl Plan {
    /// The plan as the operator reads it.
    pub fn describe(&self, m: &Manifest) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "restore plan for cluster {}: raft index {} (term {}), data version {}, {} messages, {} channels, {} users, taken {} on node {}",
            self.cluster,
            m.raft.index,
            m.raft.term,
            m.data_version,
            m.counts.messages,
            m.counts.channels,
            m.counts.users,
            m.created,
            m.source_node.id
        );
        let _ = writeln!(s, "1. stop every node:");
        for st in &self.steps {
            let _ = writeln!(s, "   node {} ({}): {}", st.id, st.host, st.stop);
        }
        let _ = writeln!(s, "2. on every node, move the data directory aside (nothing is deleted) and install the snapshot:");
        for st in &self.steps {
            let _ = writeln!(s, "   node {}: mv {} {}", st.id, st.data_dir, st.aside);
            if !st.local {
                let _ = writeln!(s, "   node {}: copy the snapshot to {}", st.id, st.snapshot);
            }
            let _ = writeln!(s, "   node {}: {}", st.id, st.restore);
        }
        let _ = writeln!(s, "3. start every node:");
        for st in &self.steps {
            let _ = writeln!(s, "   node {}: {}", st.id, st.start);
        }
        let _ = writeln!(
            s,
            "4. wait for a healthy cluster serving data version {}",
            m.data_version
        );
        s
    }

    /// How to undo the restore on the nodes whose data was moved aside.
    pub fn rollback(&self, moved: &[u64]) -> String {
        let mut s = String::from(
            "The restore stopped part-way. Nothing was deleted; to roll back, on each node listed:\n",
        );
        for st in self.steps.iter().filter(|st| moved.contains(&st.id)) {
            let _ = writeln!(s, "  node {} ({}):", st.id, st.host);
            let _ = writeln!(s, "    {}", st.stop);
            let _ = writeln!(
                s,
                "    mv {} {}.failed-restore   # if it exists",
                sh_quote(&st.data_dir),
                sh_quote(&st.data_dir)
            );
            let _ = writeln!(
                s,
                "    mv {} {}",
                sh_quote(&st.aside),
                sh_quote(&st.data_dir)
            );
            let _ = writeln!(s, "    {}", st.start);
        }
        let others: Vec<String> = self
            .steps
            .iter()
            .filter(|st| !moved.contains(&st.id))
            .map(|st| format!("{}: {}", st.id, st.start))
            .collect();
        if !others.is_empty() {
            let _ = writeln!(
                s,
                "  nodes whose data was not moved only need starting: {}",
                others.join("; ")
            );
        }
        s
    }
}

/// Carries out `plan`; returns how long it took and the nodes whose data was moved aside. On an
/// error part-way the rollback instructions are printed to stderr before the error returns.
pub async fn execute(
    plan: &Plan,
    inv: &Inventory,
    api: &NodeApi,
    local_snapshot: &Path,
    m: &Manifest,
    timeout: Duration,
) -> Result<(Duration, Vec<u64>), anyhow::Error> {
    let started = Instant::now();
    let mut runners: Vec<Box<dyn Runner>> = Vec::new();
    for n in &inv.nodes {
        runners.push(remote::for_node(n)?);
    }
    let mut moved: Vec<u64> = Vec::new();
    let res = run_steps(plan, &runners, local_snapshot, m, &mut moved).await;
    let res = match res {
        Ok(()) => wait_healthy(api, &inv.nodes, &m.data_version, timeout)
            .await
            .map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    match res {
        Ok(()) => Ok((started.elapsed(), moved)),
        Err(e) => {
            eprintln!("{}", plan.rollback(&moved));
            Err(e)
        }
    }
}

const STOP_TIMEOUT: Duration = Duration::from_secs(120);
const RESTORE_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

async fn run_steps(
    plan: &Plan,
    runners: &[Box<dyn Runner>],
    local_snapshot: &Path,
    m: &Manifest,
    moved: &mut Vec<u64>,
) -> anyhow::Result<()> {
    for (st, r) in plan.steps.iter().zip(runners) {
        eprintln!("node {}: stopping", st.id);
        r.check(&st.stop, STOP_TIMEOUT).await?;
    }
    for (st, r) in plan.steps.iter().zip(runners) {
        let d = sh_quote(&st.data_dir);
        let a = sh_quote(&st.aside);
        let out = r
            .check(
                &format!("if [ -e {d} ]; then mv {d} {a} && echo moved; fi"),
                STOP_TIMEOUT,
            )
            .await?;
        if out.stdout.trim() == "moved" {
            moved.push(st.id);
            eprintln!("node {}: moved {} to {}", st.id, st.data_dir, st.aside);
        }
        if !st.local {
            eprintln!("node {}: copying the snapshot", st.id);
            r.upload(local_snapshot, &st.snapshot).await?;
        }
        eprintln!("node {}: installing the snapshot", st.id);
        let out = r.check(&st.restore, RESTORE_TIMEOUT).await?;
        if !st.local {
            let _ = r
                .run(&format!("rm -f {}", sh_quote(&st.snapshot)), STOP_TIMEOUT)
                .await;
        }
        check_report(st.id, &out.stdout, m)?;
    }
    for (st, r) in plan.steps.iter().zip(runners) {
        eprintln!("node {}: starting", st.id);
        r.check(&st.start, STOP_TIMEOUT).await?;
    }
    Ok(())
}

fn check_report(node: u64, stdout: &str, m: &Manifest) -> Result<(), RestoreError> {
    let report: Option<super::drill::Restored> = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok());
    let mismatch = |what, expected: String, actual: String| RestoreError::Report {
        node,
        what,
        expected,
        actual,
    };
    let Some(r) = report else {
        return Err(mismatch(
            "no JSON report; it printed",
            String::new(),
            stdout.into(),
        ));
    };
    if r.data_version != m.data_version {
        return Err(mismatch(
            "data version",
            m.data_version.clone(),
            r.data_version,
        ));
    }
    if r.index != m.raft.index {
        return Err(mismatch(
            "raft index",
            m.raft.index.to_string(),
            r.index.to_string(),
        ));
    }
    Ok(())
}

/// Polls until some node reports a healthy cluster and every node serves `hash`.
pub async fn wait_healthy(
    api: &NodeApi,
    nodes: &[Node],
    hash: &str,
    timeout: Duration,
) -> Result<(), RestoreError> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check_healthy(api, nodes, hash).await {
            Ok(()) => return Ok(()),
            Err(why) => why,
        };
        if Instant::now() > deadline {
            return Err(RestoreError::NotHealthy {
                expected: hash.into(),
                timeout,
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn check_healthy(api: &NodeApi, nodes: &[Node], hash: &str) -> Result<(), String> {
    let first = nodes.first().ok_or("no nodes")?;
    let st = api.cluster_status(first).await.map_err(|e| e.to_string())?;
    if st.status != "healthy" {
        return Err(format!(
            "node {} reports the cluster {}",
            first.id, st.status
        ));
    }
    for n in nodes {
        let v = api.data_version(n).await.map_err(|e| e.to_string())?;
        if v.hash != hash {
            return Err(format!("node {} serves data version {}", n.id, v.hash));
        }
        // Serving: a node answers /health 200 only once it caught up after its start.
        api.health(n)
            .await
            .map_err(|e| format!("node {} not serving yet: {e}", n.id))?;
    }
    Ok(())
}
