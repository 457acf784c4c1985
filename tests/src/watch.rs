//! Split-brain detection from every node's own view: a background task samples each node's
//! `/cluster/raft/status` and records which nodes claimed leadership in which term. Two nodes
//! claiming leadership of the same term is a split brain; the watch fails the test on it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the watch saw.
#[derive(Debug, Default, Clone)]
pub struct LeaderHistory {
    /// term → nodes that reported `state: leader` in that term.
    pub leaders: BTreeMap<u64, BTreeSet<u64>>,
    /// Status samples taken (answers from any node).
    pub samples: u64,
}

impl LeaderHistory {
    /// Terms in which more than one node claimed leadership.
    pub fn split_terms(&self) -> Vec<(u64, BTreeSet<u64>)> {
        self.leaders
            .iter()
            .filter(|(_, ids)| ids.len() > 1)
            .map(|(t, ids)| (*t, ids.clone()))
            .collect()
    }
}

/// A running watch over some nodes' raft status URLs.
pub struct RaftWatch {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<LeaderHistory>,
}

impl RaftWatch {
    /// Samples `urls` (each a node's `/cluster/raft/status`) every 10 ms until finished. A node
    /// that does not answer (frozen, partitioned, down) is simply not sampled that round.
    pub fn start(urls: Vec<String>) -> RaftWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut h = LeaderHistory::default();
            while !s.load(Ordering::Relaxed) {
                let probes = urls
                    .iter()
                    .map(|u| client.get(u).timeout(Duration::from_millis(300)).send());
                for resp in futures::future::join_all(probes)
                    .await
                    .into_iter()
                    .flatten()
                {
                    let Ok(v) = resp.json::<serde_json::Value>().await else {
                        continue;
                    };
                    h.samples += 1;
                    if v["state"] == "leader" {
                        if let (Some(t), Some(id)) = (v["term"].as_u64(), v["node_id"].as_u64()) {
                            h.leaders.entry(t).or_default().insert(id);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            h
        });
        RaftWatch { stop, handle }
    }

    /// Stops the watch; panics if two nodes led the same term or nothing was sampled.
    pub async fn finish(self) -> LeaderHistory {
        self.stop.store(true, Ordering::Relaxed);
        let h = self.handle.await.expect("raft watch task");
        assert!(h.samples > 0, "the raft watch never got an answer");
        assert!(
            h.split_terms().is_empty(),
            "split brain: two leaders in one term: {:?} (all: {:?})",
            h.split_terms(),
            h.leaders
        );
        h
    }
}
