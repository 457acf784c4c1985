//! The fleet as rolling actions see it: the inventory's nodes with their HTTP API and command
//! runners, and the few questions a roll asks — who leads, is everyone else healthy and caught
//! up, has leadership moved, is the restarted node back and caught up.

use super::plan;
use crate::inventory::Node;
use crate::node_api::{NodeApi, RaftStatus};
use crate::remote::{self, Output, RemoteError, RemoteOptions, Runner};
use crate::wait;
use std::collections::BTreeMap;
use std::time::Duration;

/// Nodes, their API and their runners.
pub struct Fleet {
    nodes: Vec<Node>,
    api: NodeApi,
    runners: BTreeMap<u64, Box<dyn Runner>>,
}

/// The cluster as its leader sees it.
#[derive(Debug, Clone)]
pub struct View {
    pub leader: u64,
    pub term: u64,
    pub commit_index: u64,
    pub voters: Vec<u64>,
    /// Each follower's matched log index, as the leader reports it.
    pub matched: Vec<(u64, Option<u64>)>,
}

impl View {
    fn of(s: &RaftStatus) -> View {
        View {
            leader: s.node_id,
            term: s.term,
            commit_index: s.commit_index.unwrap_or(0),
            voters: s.membership.voters.clone(),
            matched: s
                .replication
                .iter()
                .map(|r| (r.node_id, r.matched_index))
                .collect(),
        }
    }

    /// The voter leadership should move to when `leader` must step down.
    pub fn successor(&self, leader: u64) -> Option<u64> {
        plan::successor(leader, &self.matched, &self.voters, &[])
    }

    /// The voters that may be down at once without losing the quorum.
    pub fn spare(&self) -> usize {
        self.voters.len() - (self.voters.len() / 2 + 1)
    }
}

impl Fleet {
    /// A fleet of `nodes`, with a runner (SSH or local) for each.
    pub fn new(nodes: Vec<Node>, api: NodeApi, opts: &RemoteOptions) -> Result<Fleet, RemoteError> {
        let mut runners = BTreeMap::new();
        for n in &nodes {
            runners.insert(n.id, remote::for_node_with(n, opts)?);
        }
        Ok(Fleet {
            nodes,
            api,
            runners,
        })
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn api(&self) -> &NodeApi {
        &self.api
    }

    /// The inventory node `id` (the caller checked that it exists).
    pub fn node(&self, id: u64) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .expect("a node of the inventory")
    }

    /// The runner of node `id`.
    pub fn runner(&self, id: u64) -> &dyn Runner {
        self.runners[&id].as_ref()
    }

    /// Runs `true` on every node in `ids` (SSH reachable and authenticated); every failure.
    pub async fn reach(&self, ids: &[u64], timeout: Duration) -> Vec<RemoteError> {
        let futs = ids.iter().map(|id| self.runner(*id).check("true", timeout));
        futures::future::join_all(futs)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect()
    }

    /// The current view, from the node that says it leads (the highest term wins).
    pub async fn view(&self) -> Result<View, String> {
        let all = self.api.raft_status_all(&self.nodes).await;
        let mut down = Vec::new();
        let mut best: Option<&RaftStatus> = None;
        for (node, r) in &all {
            match r {
                Ok(s) if s.state == "leader" => {
                    if best.is_none_or(|b| s.term > b.term) {
                        best = Some(s);
                    }
                }
                Ok(_) => {}
                Err(_) => down.push(node.id),
            }
        }
        match best {
            Some(s) => Ok(View::of(s)),
            None => Err(format!("no node leads (unreachable: {down:?})")),
        }
    }

    /// The current leader.
    pub async fn leader(&self) -> Result<u64, String> {
        self.view().await.map(|v| v.leader)
    }

    /// Waits until there is a leader and every voter but `except` answers /health and has
    /// applied the leader's commit index as of the first look.
    pub async fn wait_ready(
        &self,
        except: u64,
        timeout: Duration,
        every: Duration,
    ) -> Result<View, String> {
        let first = wait::until(timeout, every, || self.view()).await?;
        let target = first.commit_index;
        wait::until(timeout, every, || async move {
            let v = self.view().await?;
            for voter in v.voters.iter().filter(|id| **id != except) {
                let node = self
                    .nodes
                    .iter()
                    .find(|n| n.id == *voter)
                    .ok_or_else(|| format!("voter {voter} is not in the inventory"))?;
                self.api
                    .health(node)
                    .await
                    .map_err(|e| format!("voter {voter} is not healthy: {e}"))?;
                let s = self
                    .api
                    .raft_status(node)
                    .await
                    .map_err(|e| e.to_string())?;
                let applied = s.applied_index.unwrap_or(0);
                if applied < target {
                    return Err(format!(
                        "voter {voter} has applied {applied}, the leader had committed {target}"
                    ));
                }
            }
            Ok(v)
        })
        .await
    }

    /// Moves leadership from `from` to `to` and waits until `to` leads.
    pub async fn transfer(
        &self,
        from: u64,
        to: u64,
        timeout: Duration,
        every: Duration,
    ) -> Result<(), String> {
        if let Err(e) = self.api.transfer_leadership(self.node(from), to).await {
            tracing::warn!(from, to, error = %e, "transfer-leadership answered with an error; checking who leads");
        }
        wait::until(timeout, every, || async move {
            match self.leader().await? {
                l if l == to => Ok(()),
                l => Err(format!("node {l} leads, not node {to}")),
            }
        })
        .await
    }

    /// Runs the inventory's restart command for node `id`.
    pub async fn restart(&self, id: u64, timeout: Duration) -> Result<Output, RemoteError> {
        let cmd = &self.node(id).service.restart;
        self.runner(id).check(cmd, timeout).await
    }

    /// Waits until node `id` answers /health, is a voter in its own view, knows a leader and
    /// has applied at least `target`; returns its applied index.
    pub async fn wait_back(
        &self,
        id: u64,
        target: u64,
        timeout: Duration,
        every: Duration,
    ) -> Result<u64, String> {
        let node = self.node(id);
        wait::until(timeout, every, || async move {
            self.api
                .health(node)
                .await
                .map_err(|e| format!("not healthy: {e}"))?;
            let s = self
                .api
                .raft_status(node)
                .await
                .map_err(|e| e.to_string())?;
            if !s.membership.voters.contains(&id) {
                return Err(format!("not a voter (voters {:?})", s.membership.voters));
            }
            if s.leader.is_none() {
                return Err("knows no leader".into());
            }
            let applied = s.applied_index.unwrap_or(0);
            if applied < target {
                return Err(format!("applied {applied} of {target}"));
            }
            Ok(applied)
        })
        .await
    }
}
