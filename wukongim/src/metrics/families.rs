//! The metric families a node exports, read off the registry itself (the contract the rendered
//! dashboards and alert rules are checked against), and the Prometheus text format 0.0.4 for
//! scrapers that do not ask for OpenMetrics.

use super::{registry, Sources};
use prometheus_client::encoding::text::encode;
use std::collections::HashSet;

/// Every family name as Prometheus stores it (counters end in `_total`), in registry order.
pub fn families() -> Vec<String> {
    let (raft, peers, writes, snapshots, store, hub, traffic) = Default::default();
    let r = registry(Sources {
        node_id: 0,
        raft: &raft,
        peers: &peers,
        writes: &writes,
        snapshots: &snapshots,
        store: &store,
        hub: &hub,
        traffic: &traffic,
        config: &crate::config::Config::default(),
        memory: &Default::default(),
        webhook: &Default::default(),
    });
    let mut open_metrics = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut open_metrics, &r);
    to_text_format(&open_metrics)
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .map(str::to_string)
        .collect()
}

/// OpenMetrics → text format 0.0.4: a counter's HELP and TYPE name its `_total` samples, and
/// the `# UNIT` and `# EOF` lines go. Samples are the same in both formats.
pub fn to_text_format(open_metrics: &str) -> String {
    let counters: HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 8 * counters.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match descriptor {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let total = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{total} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_by_their_total_samples() {
        let om = "# HELP a_x Xs.\n# TYPE a_x counter\na_x_total 3\n\
                  # HELP b Bs.\n# TYPE b gauge\n# UNIT b seconds\nb 1\n# EOF\n";
        assert_eq!(
            to_text_format(om),
            "# HELP a_x_total Xs.\n# TYPE a_x_total counter\na_x_total 3\n\
             # HELP b Bs.\n# TYPE b gauge\nb 1\n"
        );
    }

    #[test]
    fn families_come_from_the_registry() {
        let f = families();
        for name in [
            "wukongim_info",
            "wukongim_raft_proposals_total",
            "wukongim_raft_rpc_duration_seconds",
            "wukongim_send_ack_duration_seconds",
            "process_cpu_seconds_total",
            "wukongim_insecure_setting",
        ] {
            assert!(f.iter().any(|n| n == name), "{name} missing from {f:?}");
        }
        let unique: HashSet<&String> = f.iter().collect();
        assert_eq!(unique.len(), f.len(), "no family twice");
    }
}
