//! Changing the cluster's membership from the inventory: `scale-out` adds a node the inventory
//! lists (usually with `joins: true`), `scale-in` removes one. One node per run, each step
//! checked before the next, the cluster serving throughout.
//!
//! Scale-out: the node's `wk.yaml` is rendered and installed on its host ([`install`]), its
//! service started with the inventory's start command, and only when it answers (as a fresh
//! node, not a member of anything) is it added through `POST /cluster/nodes` on the leader — a
//! learner first, caught up, then promoted to voter by the server — and waited for until it is
//! a voter that knows the leader and has applied the leader's commit index. The joining node's
//! own config lists the forming nodes plus itself in `initNodes`; as it never has the smallest
//! id there (the inventory refuses that), it never initializes a cluster of its own.
//!
//! Scale-in: if the node leads, leadership moves to the most caught-up other voter first; then
//! `DELETE /cluster/nodes/{id}` on the leader, a wait until the leader's membership no longer
//! has the node, and its stop command. Its data directory stays where it is.
//!
//! The other nodes' installed `wk.yaml` do not change either way: `initNodes` only matters the
//! first time a cluster forms (a joining node is never in the others' list), and a node that
//! restarts takes its peers from the membership stored in its data directory.
//!
//! [`size`] decides which changes are refused (below a quorum, an even voter count).

pub mod install;
pub mod size;

use crate::inventory::Node;
use crate::node_api::NodeApi;
use crate::rolling::fleet::{Fleet, View};
use crate::rolling::progress::Progress;
use crate::rolling::Timing;
use crate::wait;
use serde_json::json;

/// Why a scale-out or scale-in stopped.
#[derive(Debug, thiserror::Error)]
#[error("node {node}: {step}: {reason}")]
pub struct ScaleError {
    pub node: u64,
    pub step: &'static str,
    pub reason: String,
}

fn err(node: u64, step: &'static str) -> impl Fn(String) -> ScaleError {
    move |reason| ScaleError { node, step, reason }
}

/// The inventory node `id`, if the inventory has it.
fn find(fleet: &Fleet, id: u64) -> Option<&Node> {
    fleet.nodes().iter().find(|n| n.id == id)
}

/// The leader as an inventory node.
fn leader_node(fleet: &Fleet, view: &View) -> Result<Node, String> {
    find(fleet, view.leader)
        .cloned()
        .ok_or_else(|| format!("the leader, node {}, is not in the inventory", view.leader))
}

/// Installs, starts and adds node `id` (rendered config `config`); returns its applied index
/// once it is a caught-up voter. `long` is the API client for the add call, which answers only
/// once the new node has caught up as a learner.
pub async fn out(
    fleet: &Fleet,
    inv: &crate::inventory::Inventory,
    id: u64,
    config: &str,
    long: &NodeApi,
    timing: Timing,
    progress: &Progress,
) -> Result<u64, ScaleError> {
    let node = fleet.node(id).clone();
    let runner = fleet.runner(id);
    progress.step(id, "installing its wk.yaml");
    let path = install::install(inv, runner, &node, config, timing.command)
        .await
        .map_err(|e| err(id, "installing its files")(e.to_string()))?;
    progress.line(&format!(
        "node {id}: installed {path} (checked with --check)"
    ));
    progress.step(id, "starting its service");
    runner
        .check(&node.service.start, timing.command)
        .await
        .map_err(|e| err(id, "starting its service")(e.to_string()))?;
    progress.step(id, "waiting until it answers");
    let before = wait::until(timing.wait, timing.poll, || async {
        fleet
            .api()
            .raft_status(&node)
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(err(id, "waiting for its HTTP API after the start"))?;
    let view = fleet.view().await.map_err(err(id, "finding the leader"))?;
    // A fresh node knows no members; one that already has some must be of this cluster.
    let theirs = &before.membership.voters;
    if before.state == "leader"
        || (!theirs.is_empty() && !theirs.iter().any(|v| view.voters.contains(v)))
    {
        return Err(err(id, "checking it is a fresh node")(format!(
            "it is {} of another cluster (voters {theirs:?}, ours {:?}): stop it and move its data \
             directory {} away before adding it",
            before.state, view.voters, node.root_dir
        )));
    }
    progress.line(&format!(
        "node {id}: started; answers as a {} that is not a member",
        before.state
    ));
    if !view.voters.contains(&id) {
        progress.step(
            id,
            &format!(
                "adding it through node {} (learner, catch-up, voter)",
                view.leader
            ),
        );
        let leader = leader_node(fleet, &view).map_err(err(id, "adding it"))?;
        let body = json!({ "id": id, "addr": node.server_addr() });
        if let Err(e) = long
            .post::<serde_json::Value>(&leader, "/cluster/nodes", &body)
            .await
        {
            // A refusal is final; a lost answer is not: membership says what happened.
            if matches!(e, crate::node_api::NodeError::Status { status, .. } if status < 500) {
                return Err(err(id, "adding it")(e.to_string()));
            }
            tracing::warn!(node_id = id, error = %e, "POST /cluster/nodes failed; watching membership");
        }
    }
    progress.step(id, "waiting until it is a caught-up voter");
    let target = wait::until(timing.wait, timing.poll, || async {
        let v = fleet.view().await?;
        if v.voters.contains(&id) {
            Ok(v.commit_index)
        } else {
            Err(format!("not a voter yet (voters {:?})", v.voters))
        }
    })
    .await
    .map_err(err(id, "waiting until it is a voter"))?;
    fleet
        .wait_back(id, target, timing.wait, timing.poll)
        .await
        .map_err(err(id, "waiting until it has caught up"))
}

/// Moves leadership away from node `id` if it leads, removes it from the membership and
/// stops it. `member` says whether it is still in the membership (a re-run after the removal
/// only stops it).
pub async fn r#in(
    fleet: &Fleet,
    id: u64,
    member: bool,
    timing: Timing,
    progress: &Progress,
) -> Result<(), ScaleError> {
    let node = fleet.node(id).clone();
    if member {
        let view = fleet.view().await.map_err(err(id, "finding the leader"))?;
        if view.leader == id {
            let to = view.successor(id).ok_or_else(|| {
                err(id, "moving leadership away")("no other voter can take over".into())
            })?;
            progress.step(id, &format!("leads: moving leadership to node {to}"));
            fleet
                .transfer(id, to, timing.wait, timing.poll)
                .await
                .map_err(err(id, "moving leadership away"))?;
            progress.line(&format!("node {id}: leadership moved to node {to}"));
        }
        let view = fleet.view().await.map_err(err(id, "finding the leader"))?;
        if view.leader == id {
            return Err(err(id, "moving leadership away")(
                "it leads again; run scale-in again".into(),
            ));
        }
        let leader = leader_node(fleet, &view).map_err(err(id, "removing it"))?;
        progress.step(id, &format!("removing it through node {}", view.leader));
        if let Err(e) = fleet
            .api()
            .delete::<serde_json::Value>(&leader, &format!("/cluster/nodes/{id}"))
            .await
        {
            if matches!(e, crate::node_api::NodeError::Status { status, .. } if status < 500 && status != 404)
            {
                return Err(err(id, "removing it")(e.to_string()));
            }
            tracing::warn!(node_id = id, error = %e, "DELETE /cluster/nodes failed; watching membership");
        }
        progress.step(id, "waiting until the membership no longer has it");
        wait::until(timing.wait, timing.poll, || async {
            let v = fleet.view().await?;
            let leader = leader_node(fleet, &v)?;
            let s = fleet
                .api()
                .raft_status(&leader)
                .await
                .map_err(|e| e.to_string())?;
            if s.membership.voters.contains(&id) || s.membership.learners.contains(&id) {
                return Err(format!(
                    "still a member (voters {:?}, learners {:?})",
                    s.membership.voters, s.membership.learners
                ));
            }
            Ok(())
        })
        .await
        .map_err(err(id, "waiting for the removal"))?;
        progress.line(&format!("node {id}: removed from the membership"));
    }
    progress.step(id, "stopping its service");
    fleet
        .runner(id)
        .check(&node.service.stop, timing.command)
        .await
        .map_err(|e| err(id, "stopping its service")(e.to_string()))?;
    Ok(())
}
