//! A multi-node cluster under test: N `wukongim` processes on 127.0.0.11, .12, … with the same
//! `initNodes`, short Raft timeouts, and helpers to find the leader, kill and restart nodes and
//! compare what every node holds. A cluster can also be run from config files written elsewhere
//! ([`TestCluster::from_configs`]).

use crate::node::{free_port, Node, NodeOptions};
use crate::{get, poll};
use serde_json::Value;
use std::time::Duration;

pub struct TestCluster {
    pub nodes: Vec<Node>,
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
        let spec = |i: usize| format!("    - \"{}@{}:{}\"", node_id(i), ips[i], cluster_ports[i]);
        let mut nodes = Vec::new();
        for i in 0..n {
            let mut node = Node::prepare(NodeOptions {
                ip: ips[i].clone(),
                node_id: node_id(i),
                extra_yaml: extra_yaml.to_string(),
                cluster_yaml: {
                    let mut init: Vec<String> = (0..initial).map(spec).collect();
                    if i >= initial {
                        init.push(spec(i));
                    }
                    format!("  initNodes:\n{}\n", init.join("\n"))
                },
                env: Vec::new(),
                args: Vec::new(),
            });
            node.ports.cluster = cluster_ports[i];
            node.write_config();
            nodes.push(node);
        }
        TestCluster { nodes }
    }

    /// A cluster run from existing node config files (e.g. `wk-ops render`'s
    /// `nodes/<id>/wk.yaml`), not started: see [`Node::from_config`].
    pub fn from_configs<P: AsRef<std::path::Path>>(paths: &[P]) -> TestCluster {
        TestCluster {
            nodes: paths
                .iter()
                .map(|p| Node::from_config(p.as_ref()))
                .collect(),
        }
    }

    /// Starts every node that is not running, waits until each answers /health (failing with
    /// its log if it exits) and until they agree on a leader; returns the leader id.
    pub async fn spawn_all(&mut self, timeout: Duration) -> u64 {
        for node in &mut self.nodes {
            if !node.running() {
                node.spawn();
            }
        }
        for node in &mut self.nodes {
            node.wait_healthy(timeout).await;
        }
        self.wait_leader(timeout).await
    }

    /// Index of the node with `id`.
    pub fn index_of(&self, id: u64) -> usize {
        self.nodes
            .iter()
            .position(|n| n.opts.node_id == id)
            .expect("known node id")
    }

    /// The leader id that every running node reports, once they agree.
    pub async fn wait_leader(&mut self, timeout: Duration) -> u64 {
        let urls: Vec<Option<String>> = self
            .nodes
            .iter_mut()
            .map(|n| {
                if n.running() {
                    Some(n.url("/cluster/raft/status"))
                } else {
                    None
                }
            })
            .collect();
        poll(timeout, "all running nodes to agree on a leader", || {
            let urls = urls.clone();
            async move {
                let mut leader = None;
                for url in urls.iter().flatten() {
                    let (st, v) = get(url).await;
                    let l = v["leader"].as_u64();
                    if st != 200 || l.is_none() || (leader.is_some() && leader != l) {
                        return None;
                    }
                    leader = l;
                }
                // The leader itself must say so.
                leader
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

    /// Waits until every running node reports the same applied index and content hash.
    pub async fn wait_converged(&mut self, timeout: Duration) -> Value {
        let urls: Vec<String> = self
            .nodes
            .iter_mut()
            .filter_map(|n| {
                if n.running() {
                    Some(n.url("/cluster/data/version"))
                } else {
                    None
                }
            })
            .collect();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let mut seen = Vec::new();
            for url in &urls {
                seen.push(get(url).await.1);
            }
            let same = seen.windows(2).all(|w| {
                w[0]["hash"] == w[1]["hash"] && w[0]["applied_index"] == w[1]["applied_index"]
            });
            if same && seen.iter().all(|v| v["hash"].is_string()) {
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

    /// Log tails of all nodes, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.log_tail())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
