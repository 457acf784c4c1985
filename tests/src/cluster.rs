//! A multi-node cluster under test: N `wukongim` processes on 127.0.0.11, .12, … with the same
//! `initNodes`, short Raft timeouts, and helpers to find the leader, kill and restart nodes and
//! compare what every node holds. A cluster can also be run from config files written elsewhere
//! ([`TestCluster::from_configs`]).

use crate::netns::NetLab;
use crate::node::{free_port, Node, NodeOptions, Ports};
use crate::writer::WriterLog;
use crate::{get, post};
use serde_json::json;
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

pub struct TestCluster {
    pub nodes: Vec<Node>,
    /// How many of `nodes` (the first ones) form the cluster; the others join later.
    pub initial: usize,
}

/// Node ids start at 1001 like the guide.
pub fn node_id(i: usize) -> u64 {
    1001 + i as u64
}

impl TestCluster {
    /// Starts `n` nodes and waits until they agree on a leader.
    pub async fn start(n: usize, extra_yaml: &str) -> TestCluster {
        let mut c = TestCluster::prepare(n, extra_yaml);
        for node in &mut c.nodes {
            node.spawn();
        }
        c.wait_leader(Duration::from_secs(30)).await;
        c.wait_voters(Duration::from_secs(30)).await;
        c
    }

    /// Writes every node's config without starting them.
    pub fn prepare(n: usize, extra_yaml: &str) -> TestCluster {
        Self::prepare_with(n, n, extra_yaml)
    }

    /// `total` nodes of which the first `initial` form the cluster; the others list the initial
    /// members and themselves in `initNodes`, so they wait to be added (online scaling).
    pub fn prepare_with(initial: usize, n: usize, extra_yaml: &str) -> TestCluster {
        let ips: Vec<String> = (0..n).map(|i| format!("127.0.0.{}", 11 + i)).collect();
        let cluster_ports: Vec<u16> = ips.iter().map(|ip| free_port(ip)).collect();
        Self::prepare_nodes(initial, &ips, extra_yaml, |i, opts| {
            let mut node = Node::prepare(opts);
            node.ports.cluster = cluster_ports[i];
            node
        })
    }

    /// `n` nodes, each alone in its network namespace of `lab` (not started): the same fixed
    /// ports on every node's own address, the server run through `ip netns exec`. Call
    /// [`NetLab::enter_hub`] first so the test reaches them.
    pub fn prepare_in(lab: &NetLab, n: usize, extra_yaml: &str) -> TestCluster {
        let ips: Vec<String> = (0..n).map(|i| lab.ip(i)).collect();
        let ports = Ports {
            api: 5001,
            tcp: 5100,
            ws: 5200,
            manager: 5300,
            cluster: 11110,
        };
        Self::prepare_nodes(n, &ips, extra_yaml, |i, opts| {
            let mut node = Node::prepare_with_ports(opts, ports);
            node.set_launcher(lab.launcher(i));
            node
        })
    }

    /// Configs for nodes on `ips`, the first `initial` of them the initial voters; `make`
    /// creates node `i` from its options (its cluster port is then the one in the specs).
    fn prepare_nodes(
        initial: usize,
        ips: &[String],
        extra_yaml: &str,
        mut make: impl FnMut(usize, NodeOptions) -> Node,
    ) -> TestCluster {
        let mut nodes: Vec<Node> = Vec::new();
        for (i, ip) in ips.iter().enumerate() {
            nodes.push(make(
                i,
                NodeOptions {
                    ip: ip.clone(),
                    node_id: node_id(i),
                    extra_yaml: extra_yaml.to_string(),
                    ..NodeOptions::default()
                },
            ));
        }
        let cluster_ports: Vec<u16> = nodes.iter().map(|n| n.ports.cluster).collect();
        let spec = |i: usize| format!("    - \"{}@{}:{}\"", node_id(i), ips[i], cluster_ports[i]);
        for (i, node) in nodes.iter_mut().enumerate() {
            let mut init: Vec<String> = (0..initial).map(spec).collect();
            if i >= initial {
                init.push(spec(i));
            }
            node.opts.cluster_yaml = format!("  initNodes:\n{}\n", init.join("\n"));
            node.write_config();
        }
        TestCluster { nodes, initial }
    }

    /// A cluster run from existing node config files (e.g. `wk-ops render`'s
    /// `nodes/<id>/wk.yaml`), not started: see [`Node::from_config`].
    pub fn from_configs<P: AsRef<std::path::Path>>(paths: &[P]) -> TestCluster {
        TestCluster {
            nodes: paths
                .iter()
                .map(|p| Node::from_config(p.as_ref()))
                .collect(),
            initial: paths.len(),
        }
    }

    /// Starts every node that is not running, waits until each answers /health (failing with
    /// its log if it exits) and until they agree on a leader; returns the leader id.
    pub async fn spawn_all(&mut self, timeout: Duration) -> u64 {
        for node in &mut self.nodes {
            if !node.alive() {
                node.spawn();
            }
        }
        for node in &mut self.nodes {
            node.wait_healthy(timeout).await;
        }
        let leader = self.wait_leader(timeout).await;
        self.wait_voters(timeout).await;
        leader
    }

    /// Waits until every running initial member votes (follower or leader). A member that came
    /// up after the others formed the cluster — or that lost its state — rejoins as a learner
    /// first; a test that stops a node before the promotion would leave one voter of two.
    pub async fn wait_voters(&mut self, timeout: Duration) {
        let urls: Vec<String> = self
            .up()
            .into_iter()
            .filter(|i| *i < self.initial)
            .map(|i| self.nodes[i].url("/cluster/raft/status"))
            .collect();
        crate::poll(timeout, "every initial member to be a voter", || {
            let urls = urls.clone();
            async move {
                for u in urls {
                    let (_, v) = get(&u).await;
                    if !matches!(v["state"].as_str(), Some("follower" | "leader")) {
                        return None;
                    }
                }
                Some(())
            }
        })
        .await;
    }

    /// Index of the node with `id`.
    pub fn index_of(&self, id: u64) -> usize {
        self.nodes
            .iter()
            .position(|n| n.opts.node_id == id)
            .expect("known node id")
    }

    /// The leader id that every node that should be up reports, once they agree (a node the
    /// test stopped is left out; one that crashed fails the test, see [`Node::alive`]).
    pub async fn wait_leader(&mut self, timeout: Duration) -> u64 {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let mut leader = None;
            let mut agreed = true;
            for url in self.up_urls("/cluster/raft/status") {
                let (st, v) = get(&url).await;
                let l = v["leader"].as_u64();
                if st != 200 || l.is_none() || (leader.is_some() && leader != l) {
                    agreed = false;
                    break;
                }
                leader = l;
            }
            match leader {
                Some(l) if agreed => return l,
                _ => {}
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "no leader agreed by every node within {timeout:?}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `path` on every node that should be up; panics if one crashed.
    fn up_urls(&mut self, path: &str) -> Vec<String> {
        self.nodes
            .iter_mut()
            .filter_map(|n| n.alive().then(|| n.url(path)))
            .collect()
    }

    /// Indexes of the nodes that should be up; panics if one crashed (see [`Node::alive`]).
    pub fn up(&mut self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].alive())
            .collect()
    }

    /// Fails with every node's output if a node crashed or panicked (a node the test stopped
    /// is fine). Dropping the cluster runs the same check.
    pub fn check_nodes(&mut self) {
        let errors: Vec<String> = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.check().err())
            .collect();
        assert!(errors.is_empty(), "{}", errors.join("\n"));
    }

    /// The leader that the nodes `among` agree on once it is not `not` (e.g. a frozen or
    /// isolated old leader, whose own view is ignored).
    pub async fn wait_leader_among(&self, among: &[usize], not: u64, timeout: Duration) -> u64 {
        let urls: Vec<String> = among
            .iter()
            .map(|i| self.nodes[*i].url("/cluster/raft/status"))
            .collect();
        crate::poll(timeout, &format!("a leader other than {not}"), || {
            let urls = urls.clone();
            async move {
                let mut seen = None;
                for u in urls {
                    let (_, v) = get(&u).await;
                    let l = v["leader"].as_u64()?;
                    if l == not || seen.is_some_and(|s| s != l) {
                        return None;
                    }
                    seen = Some(l);
                }
                seen
            }
        })
        .await
    }

    /// Current leader as node index (waits for agreement).
    pub async fn leader_index(&mut self) -> usize {
        let id = self.wait_leader(Duration::from_secs(30)).await;
        self.index_of(id)
    }

    /// GET /cluster/data/version of node `i`.
    pub async fn data_version(&self, i: usize) -> Value {
        get(&self.nodes[i].url("/cluster/data/version")).await.1
    }

    /// Waits until every node that should be up reports the same applied index and content
    /// hash (a crashed node fails the test instead of being left out).
    pub async fn wait_converged(&mut self, timeout: Duration) -> Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let mut seen = Vec::new();
            for url in self.up_urls("/cluster/data/version") {
                seen.push(get(&url).await.1);
            }
            let same = seen.windows(2).all(|w| {
                w[0]["hash"] == w[1]["hash"] && w[0]["applied_index"] == w[1]["applied_index"]
            });
            if !seen.is_empty() && same && seen.iter().all(|v| v["hash"].is_string()) {
                return seen.remove(0);
            }
            if std::time::Instant::now() > deadline {
                let mut raft = Vec::new();
                for n in &self.nodes {
                    raft.push(get(&n.url("/cluster/raft/status")).await.1);
                }
                panic!(
                    "nodes did not converge within {timeout:?}: {seen:#?}\nraft: {raft:#?}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Client message numbers and seqs of a person channel as `node` serves them.
    pub async fn history(&self, node: usize, login: &str, peer: &str) -> Vec<(String, u64)> {
        let (st, v) = post(
        &self.nodes[node].url("/channel/messagesync"),
        json!({"login_uid": login, "channel_id": peer, "channel_type": 1, "start_message_seq": 1, "limit": 10000, "pull_mode": 1}),
    )
    .await;
        assert_eq!(st, 200, "{v}");
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["client_msg_no"].as_str().unwrap().to_string(),
                    m["message_seq"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// Every acknowledged message is stored exactly once, seqs are 1..n without gaps, and every
    /// node serves the identical history (within 30 s).
    pub async fn check_no_loss(&mut self, logs: &[(String, String, WriterLog)]) {
        self.wait_converged(Duration::from_secs(30)).await;
        // A node that crashed fails here (it is not silently left out).
        let running = self.up();
        for (uid, to, log) in logs {
            let reference = self.history(running[0], uid, to).await;
            for &i in &running[1..] {
                assert_eq!(
                    self.history(i, uid, to).await,
                    reference,
                    "node {i} serves a different history for {uid}"
                );
            }
            let seqs: Vec<u64> = reference.iter().map(|(_, s)| *s).collect();
            assert_eq!(
                seqs,
                (1..=reference.len() as u64).collect::<Vec<_>>(),
                "{uid}: seqs gapless from 1"
            );
            let stored: HashSet<&String> = reference.iter().map(|(n, _)| n).collect();
            assert_eq!(
                stored.len(),
                reference.len(),
                "{uid}: a clientMsgNo stored twice"
            );
            // Only messages the writer sent: the acknowledged ones and at most the one in flight
            // when it stopped (resent with the same clientMsgNo, so never stored twice).
            let sent: HashSet<String> = (0..=log.acked.len())
                .map(|i| format!("{uid}-{i}"))
                .collect();
            let strangers: Vec<&&String> = stored.iter().filter(|n| !sent.contains(**n)).collect();
            assert!(
                strangers.is_empty(),
                "{uid}: stored messages it never sent or beyond the one in flight: {strangers:?}"
            );
            for (no, seq) in &log.acked {
                assert!(
                    stored.contains(no),
                    "{uid}: acknowledged {no} (seq {seq}) lost"
                );
                assert!(
                    reference.contains(&(no.clone(), *seq)),
                    "{uid}: {no} acknowledged with seq {seq} but stored elsewhere"
                );
            }
        }
    }

    /// Log tails of all nodes, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.log_tail())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
