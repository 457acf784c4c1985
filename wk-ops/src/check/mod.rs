//! `wk-ops check`: the cluster guide's troubleshooting (ping, `telnet 11110`, `ssh date`, disk
//! and permission checks) as one preflight. Every check runs on every node (over SSH where it
//! must run on the node) and ends pass, fail or skipped; the result is one table.

pub mod probes;
pub mod table;

use crate::inventory::Inventory;
use crate::rolling::fleet::Fleet;
use std::time::Duration;

/// The checks, in table order.
pub const CHECKS: [&str; 6] = [
    "ssh",
    "cluster-port",
    "clock",
    "data-dir",
    "config",
    "service",
];

/// Limits the checks compare against.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest clock difference to this machine.
    pub max_clock_skew: Duration,
    /// Least free space in a data directory's file system, in bytes.
    pub min_free_bytes: u64,
    /// Each command on a node.
    pub command_timeout: Duration,
}

/// How one check ended on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass(String),
    Fail(String),
    Skipped(String),
}

impl Outcome {
    pub fn failed(&self) -> bool {
        matches!(self, Outcome::Fail(_))
    }
    fn word(&self) -> &'static str {
        match self {
            Outcome::Pass(_) => "pass",
            Outcome::Fail(_) => "FAIL",
            Outcome::Skipped(_) => "skip",
        }
    }
    fn detail(&self) -> &str {
        match self {
            Outcome::Pass(d) | Outcome::Fail(d) | Outcome::Skipped(d) => d,
        }
    }
}

/// Every check of one node.
#[derive(Debug, Clone)]
pub struct NodeReport {
    pub node: u64,
    pub host: String,
    /// In [`CHECKS`] order.
    pub outcomes: Vec<(&'static str, Outcome)>,
}

/// Runs every check on every node (nodes in parallel).
pub async fn run(
    inv: &Inventory,
    fleet: &Fleet,
    rendered: &[(u64, String)],
    limits: Limits,
) -> Vec<NodeReport> {
    let futs = fleet.nodes().iter().map(|node| async move {
        let expected = rendered
            .iter()
            .find(|(id, _)| *id == node.id)
            .map(|(_, text)| text.as_str());
        probes::node(inv, fleet, node, expected, limits).await
    });
    futures::future::join_all(futs).await
}
