//! The health checks: the guide's two per node (`GET /health`, `GET /cluster/status` ==
//! healthy) and the ones it misses (split brain, no leader, replication lag, elections per
//! hour, membership, clock skew, storage, backup age). Each turns one [`Observation`] into
//! findings keyed by (check, node); the thresholds come from `alerts.thresholds`.

use super::backups::Newest;
use crate::inventory::values::Size;
use crate::inventory::Inventory;
use crate::node_api::NodeError;
use crate::status::Observation;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

/// A check, by the name alerts and the state file use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    NodeHealth,
    ClusterStatus,
    SplitBrain,
    NoLeader,
    ReplicationLag,
    Elections,
    Membership,
    ClockSkew,
    Storage,
    BackupAge,
}

impl Check {
    pub const ALL: [Check; 10] = [
        Check::NodeHealth,
        Check::ClusterStatus,
        Check::SplitBrain,
        Check::NoLeader,
        Check::ReplicationLag,
        Check::Elections,
        Check::Membership,
        Check::ClockSkew,
        Check::Storage,
        Check::BackupAge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Check::NodeHealth => "node_health",
            Check::ClusterStatus => "cluster_status",
            Check::SplitBrain => "split_brain",
            Check::NoLeader => "no_leader",
            Check::ReplicationLag => "replication_lag",
            Check::Elections => "elections",
            Check::Membership => "membership",
            Check::ClockSkew => "clock_skew",
            Check::Storage => "storage",
            Check::BackupAge => "backup_age",
        }
    }

    /// How long a failure must last before it fires.
    fn hold(self, inv: &Inventory) -> Duration {
        let t = &inv.alerts.thresholds;
        match self {
            Check::NodeHealth | Check::ClusterStatus => t.node_down_for.value,
            Check::NoLeader => t.no_leader_for.value,
            _ => Duration::ZERO,
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One failing (check, node): what an alert is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub check: Check,
    /// None for checks about the whole cluster.
    pub node: Option<u64>,
    /// Short, for the mail subject: "node 1002 down".
    pub summary: String,
    /// The evidence: "connection refused".
    pub detail: String,
    /// How long it must fail before it fires.
    pub hold: Duration,
}

impl Finding {
    /// The alert key: `check/node` or `check/cluster`.
    pub fn key(&self) -> String {
        key(self.check.name(), self.node)
    }
}

/// The alert key of (check, node).
pub fn key(check: &str, node: Option<u64>) -> String {
    match node {
        Some(n) => format!("{check}/{n}"),
        None => format!("{check}/cluster"),
    }
}

/// What one check found: its failures, and a note for the report when it passed.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub check: Check,
    pub findings: Vec<Finding>,
    pub note: String,
}

/// Inputs besides the observation.
pub struct Context<'a> {
    pub inv: &'a Inventory,
    pub now: DateTime<Utc>,
    /// Elections (term increases) seen in the last hour, from the state file's history.
    pub elections_last_hour: u64,
    /// The newest backup archive, when `backup:` is configured.
    pub backup: Option<Newest>,
}

/// Runs every check.
pub fn evaluate(obs: &Observation, cx: &Context) -> Vec<CheckResult> {
    Check::ALL
        .iter()
        .filter(|c| **c != Check::BackupAge || cx.inv.backup.is_some())
        .map(|&check| {
            let mut found = Vec::new();
            let note = {
                let mut fail = |node: Option<u64>, summary: String, detail: String| {
                    found.push(Finding {
                        check,
                        node,
                        summary,
                        detail,
                        hold: check.hold(cx.inv),
                    })
                };
                run(check, obs, cx, &mut fail)
            };
            CheckResult {
                check,
                findings: found,
                note,
            }
        })
        .collect()
}

type Fail<'f> = dyn FnMut(Option<u64>, String, String) + 'f;

fn run(check: Check, obs: &Observation, cx: &Context, fail: &mut Fail) -> String {
    match check {
        Check::NodeHealth => node_health(obs, fail),
        Check::ClusterStatus => cluster_status(obs, fail),
        Check::SplitBrain => split_brain(obs, fail),
        Check::NoLeader => no_leader(obs, fail),
        Check::ReplicationLag => replication_lag(obs, cx, fail),
        Check::Elections => elections(cx, fail),
        Check::Membership => membership(obs, cx, fail),
        Check::ClockSkew => clock_skew(obs, cx, fail),
        Check::Storage => storage(obs, cx, fail),
        Check::BackupAge => backup_age(cx, fail),
    }
}

fn node_health(obs: &Observation, fail: &mut Fail) -> String {
    for p in &obs.probes {
        match &p.health {
            Ok(()) => {}
            Err(e @ NodeError::Unreachable { .. }) => fail(
                Some(p.node.id),
                format!("node {} down", p.node.id),
                e.brief(),
            ),
            Err(e) => fail(
                Some(p.node.id),
                format!("node {} unhealthy", p.node.id),
                e.brief(),
            ),
        }
    }
    format!("GET /health answered 200 on all {} nodes", obs.probes.len())
}

fn cluster_status(obs: &Observation, fail: &mut Fail) -> String {
    let answers: Vec<_> = obs
        .probes
        .iter()
        .filter_map(|p| p.cluster.as_ref().ok().map(|c| (p.node.id, c)))
        .collect();
    if answers.is_empty() {
        fail(
            None,
            "cluster status unknown".into(),
            "no node answered GET /cluster/status".into(),
        );
        return String::new();
    }
    let bad: Vec<_> = answers
        .iter()
        .filter(|(_, c)| c.status != "healthy")
        .collect();
    if let Some((_, worst)) = bad
        .iter()
        .find(|(_, c)| c.status == "unavailable")
        .or(bad.first())
    {
        let detail = bad
            .iter()
            .map(|(id, c)| {
                format!(
                    "{id}: {} ({}/{} voters online)",
                    c.status,
                    c.online,
                    c.members.len()
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        fail(None, format!("cluster {}", worst.status), detail);
    }
    "every answering node reports healthy".into()
}

fn split_brain(obs: &Observation, fail: &mut Fail) -> String {
    let leaders = obs.leaders();
    let claims = obs.self_leaders();
    let terms: BTreeSet<u64> = claims.iter().map(|(_, t)| *t).collect();
    let same_term_claims = claims.len() > terms.len();
    if leaders.len() > 1 || same_term_claims {
        let seen = leaders
            .iter()
            .map(|(l, t)| format!("{l} (term {t})"))
            .collect::<Vec<_>>()
            .join(", ");
        fail(
            None,
            "split brain".into(),
            format!("nodes disagree on the leader: {seen}"),
        );
    }
    match leaders.iter().next() {
        Some((l, t)) if leaders.len() == 1 => format!("leader {l}, term {t}"),
        _ => String::new(),
    }
}

fn no_leader(obs: &Observation, fail: &mut Fail) -> String {
    // A leader counts only when it answers as leader itself: followers keep naming a leader
    // that died or froze for as long as no new one is elected (and with pre-vote a lone
    // follower never becomes a candidate).
    if obs.self_leaders().is_empty() {
        let reachable = obs.probes.iter().filter(|p| p.raft.is_ok()).count();
        let named: BTreeSet<u64> = obs.leaders().iter().map(|(l, _)| *l).collect();
        let mut detail = format!("none of the {reachable} answering nodes is the raft leader");
        if !named.is_empty() {
            let named: Vec<String> = named.iter().map(u64::to_string).collect();
            detail.push_str(&format!(
                " (they still name {}, which does not answer)",
                named.join(", ")
            ));
        }
        fail(None, "no leader".into(), detail);
    }
    String::new()
}

fn replication_lag(obs: &Observation, cx: &Context, fail: &mut Fail) -> String {
    let limit = cx.inv.alerts.thresholds.replication_lag_entries;
    for p in &obs.probes {
        if let Some(lag) = obs.lag_of(p.node.id).filter(|l| *l > limit) {
            fail(
                Some(p.node.id),
                format!("lag on {}", p.node.id),
                format!("{lag} entries behind the leader (limit {limit})"),
            );
        }
    }
    format!("at most {limit} entries")
}

fn elections(cx: &Context, fail: &mut Fail) -> String {
    let limit = u64::from(cx.inv.alerts.thresholds.elections_per_hour);
    let n = cx.elections_last_hour;
    if n > limit {
        fail(
            None,
            format!("{n} elections in the last hour"),
            format!("the term rose {n} times within an hour (limit {limit})"),
        );
    }
    format!("{n} in the last hour (limit {limit})")
}

fn membership(obs: &Observation, cx: &Context, fail: &mut Fail) -> String {
    let Some(leader) = obs.leader_status() else {
        return "unknown without a leader".into();
    };
    let m = &leader.membership;
    let members: BTreeSet<u64> = m.voters.iter().chain(&m.learners).copied().collect();
    // A joining node outside the membership waits for scale-out (or was scaled in).
    let listed: BTreeSet<u64> = cx
        .inv
        .nodes
        .iter()
        .filter(|n| !n.joins || members.contains(&n.id))
        .map(|n| n.id)
        .collect();
    for id in listed.difference(&members) {
        fail(
            Some(*id),
            format!("node {id} not a member"),
            format!(
                "the inventory lists node {id}; the leader's membership is voters {:?}, learners {:?}",
                m.voters, m.learners
            ),
        );
    }
    for id in members.difference(&listed) {
        fail(
            Some(*id),
            format!("member {id} not in inventory"),
            format!("node {id} is in the cluster's membership but not in the inventory"),
        );
    }
    "inventory and membership agree".into()
}

fn clock_skew(obs: &Observation, cx: &Context, fail: &mut Fail) -> String {
    let limit = &cx.inv.alerts.thresholds.clock_skew;
    for p in &obs.probes {
        let Some(skew) = p.varz.as_ref().ok().and_then(|v| v.skew_secs()) else {
            continue;
        };
        if skew.abs() > limit.value.as_secs_f64() {
            fail(
                Some(p.node.id),
                format!("clock skew on {}", p.node.id),
                format!(
                    "node clock {skew:+.1}s from this host's (limit {})",
                    limit.text
                ),
            );
        }
    }
    format!("within {} of this host", limit.text)
}

fn storage(obs: &Observation, cx: &Context, fail: &mut Fail) -> String {
    let limit = &cx.inv.alerts.thresholds.storage_bytes;
    for p in &obs.probes {
        if let Ok(Some(bytes)) = p.storage_bytes {
            if bytes > limit.bytes() {
                fail(
                    Some(p.node.id),
                    format!("storage on {}", p.node.id),
                    format!(
                        "rootDir uses {bytes} bytes (limit {})",
                        match limit {
                            Size::Text(t, _) => t.clone(),
                            Size::Bytes(b) => b.to_string(),
                        }
                    ),
                );
            }
        }
    }
    format!("at most {} bytes", limit.bytes())
}

fn backup_age(cx: &Context, fail: &mut Fail) -> String {
    let limit = &cx.inv.alerts.thresholds.backup_age;
    match &cx.backup {
        None | Some(Newest::NoArchives) => "no archives yet".into(),
        Some(Newest::Unreadable(reason)) => {
            fail(None, "backups unreadable".into(), reason.clone());
            String::new()
        }
        Some(Newest::Archive { name, taken }) => {
            let age = (cx.now - *taken).to_std().unwrap_or_default();
            let age_text = humanize(age);
            if age > limit.value {
                fail(
                    None,
                    format!("last backup {age_text} ago"),
                    format!("newest archive {name} (limit {})", limit.text),
                );
            }
            format!("newest archive {name}, {age_text} old")
        }
    }
}

/// "3h12m", "45s".
pub fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_api::{ClusterStatus, Membership, RaftStatus, Replication};
    use crate::status::Probe;

    fn inventory() -> Inventory {
        let src = "cluster: { name: c }\nnodes:\n  - { id: 1, host: 10.0.0.1 }\n  \
                   - { id: 2, host: 10.0.0.2 }\n  - { id: 3, host: 10.0.0.3 }\n\
                   alerts: { thresholds: { replicationLagEntries: 10 } }\n";
        crate::inventory::parse(src, "inv.yaml").unwrap().inventory
    }

    fn refused(node: u64) -> NodeError {
        NodeError::Status {
            node,
            path: "/x".into(),
            status: 500,
            body: "{\"message\":\"no raft leader known\"}".into(),
        }
    }

    /// Node `id` answering: its state, term, leader, and (for a leader) lags of the others.
    fn probe(inv: &Inventory, id: u64, state: &str, term: u64, leader: Option<u64>) -> Probe {
        let node = inv.nodes.iter().find(|n| n.id == id).unwrap().clone();
        let replication = if state == "leader" {
            [1, 2, 3]
                .iter()
                .filter(|&&n| n != id)
                .map(|&n| Replication {
                    node_id: n,
                    matched_index: Some(100),
                    lag: if n == 3 { 50 } else { 0 },
                })
                .collect()
        } else {
            Vec::new()
        };
        Probe {
            node,
            health: Ok(()),
            raft: Ok(RaftStatus {
                node_id: id,
                state: state.into(),
                term,
                leader,
                commit_index: Some(100),
                applied_index: Some(100),
                last_log_index: Some(100),
                replication,
                membership: Membership {
                    voters: vec![1, 2, 3],
                    learners: vec![],
                },
            }),
            cluster: Ok(ClusterStatus {
                status: "healthy".into(),
                leader,
                term,
                quorum: 2,
                members: vec![1, 2, 3],
                online: 3,
                lagging: vec![],
            }),
            varz: Err(refused(id)),
            data: Err(refused(id)),
            storage_bytes: Ok(Some(1024)),
        }
    }

    fn failing(obs: &Observation, inv: &Inventory) -> Vec<(Check, Option<u64>, String)> {
        let cx = Context {
            inv,
            now: Utc::now(),
            elections_last_hour: 0,
            backup: None,
        };
        evaluate(obs, &cx)
            .into_iter()
            .flat_map(|r| r.findings)
            .map(|f| (f.check, f.node, f.summary))
            .collect()
    }

    #[test]
    fn two_leaders_are_split_brain_and_lag_is_per_node() {
        let inv = inventory();
        let obs = Observation {
            probes: vec![
                probe(&inv, 1, "leader", 5, Some(1)),
                probe(&inv, 2, "follower", 5, Some(1)),
                probe(&inv, 3, "leader", 6, Some(3)),
            ],
            members: None,
        };
        let f = failing(&obs, &inv);
        assert!(
            f.contains(&(Check::SplitBrain, None, "split brain".into())),
            "{f:?}"
        );
        // No agreed leader: lag cannot be judged, but a leader answers, so no no_leader.
        assert!(!f.iter().any(|(c, ..)| *c == Check::NoLeader), "{f:?}");

        let obs = Observation {
            probes: vec![
                probe(&inv, 1, "leader", 5, Some(1)),
                probe(&inv, 2, "follower", 5, Some(1)),
                probe(&inv, 3, "follower", 5, Some(1)),
            ],
            members: None,
        };
        assert_eq!(
            failing(&obs, &inv),
            [(Check::ReplicationLag, Some(3), "lag on 3".to_string())]
        );
    }

    #[test]
    fn a_joining_node_outside_the_membership_is_not_checked_until_it_is_added() {
        let src = "cluster: { name: c }\nnodes:\n  - { id: 1, host: 10.0.0.1 }\n  \
                   - { id: 2, host: 10.0.0.2 }\n  - { id: 3, host: 10.0.0.3 }\n  \
                   - { id: 4, host: 10.0.0.4, joins: true }\n";
        let inv = crate::inventory::parse(src, "inv.yaml").unwrap().inventory;
        let observe = |voters: Vec<u64>| {
            let mut leader = probe(&inv, 1, "leader", 5, Some(1));
            if let Ok(r) = &mut leader.raft {
                r.membership.voters = voters;
                for p in &mut r.replication {
                    p.lag = 0;
                }
            }
            let mut waiting = probe(&inv, 4, "learner", 0, None);
            waiting.health = Err(refused(4));
            let mut obs = Observation {
                probes: vec![
                    leader,
                    probe(&inv, 2, "follower", 5, Some(1)),
                    probe(&inv, 3, "follower", 5, Some(1)),
                    waiting,
                ],
                members: None,
            };
            obs.drop_waiting_joiners();
            obs
        };
        let obs = observe(vec![1, 2, 3]);
        assert_eq!(obs.probes.len(), 3);
        assert_eq!(failing(&obs, &inv), []);
        // Once a member, it is checked like any node.
        let obs = observe(vec![1, 2, 3, 4]);
        assert_eq!(obs.probes.len(), 4);
        let f = failing(&obs, &inv);
        assert!(
            f.contains(&(Check::NodeHealth, Some(4), "node 4 unhealthy".into())),
            "{f:?}"
        );
    }

    #[test]
    fn followers_naming_a_silent_leader_mean_no_leader_and_a_stranger_is_not_a_member() {
        let inv = inventory();
        let mut lone = probe(&inv, 2, "follower", 5, Some(1));
        lone.health = Err(refused(2));
        let obs = Observation {
            probes: vec![lone],
            members: None,
        };
        let f = failing(&obs, &inv);
        assert!(
            f.contains(&(Check::NoLeader, None, "no leader".into())),
            "{f:?}"
        );
        assert!(
            f.contains(&(Check::NodeHealth, Some(2), "node 2 unhealthy".into())),
            "{f:?}"
        );

        let mut leader = probe(&inv, 1, "leader", 5, Some(1));
        if let Ok(r) = &mut leader.raft {
            r.membership.voters = vec![1, 2, 4];
            r.replication.retain(|r| r.node_id != 3);
        }
        let obs = Observation {
            probes: vec![leader, probe(&inv, 2, "follower", 5, Some(1))],
            members: None,
        };
        let f = failing(&obs, &inv);
        assert!(
            f.contains(&(Check::Membership, Some(3), "node 3 not a member".into())),
            "{f:?}"
        );
        assert!(
            f.contains(&(
                Check::Membership,
                Some(4),
                "member 4 not in inventory".into()
            )),
            "{f:?}"
        );
    }
}
