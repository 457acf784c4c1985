//! The check table: one row per node, one column per check, then every failure spelled out.

use super::{NodeReport, CHECKS};
use std::fmt::Write as _;

/// The table and the failure details.
pub fn render(reports: &[NodeReport]) -> String {
    let mut s = String::new();
    let _ = write!(s, "{:<8} {:<24}", "NODE", "HOST");
    for c in CHECKS {
        let _ = write!(s, " {:<12}", c.to_uppercase());
    }
    s.push('\n');
    for r in reports {
        let _ = write!(s, "{:<8} {:<24}", r.node, r.host);
        for (_, o) in &r.outcomes {
            let _ = write!(s, " {:<12}", o.word());
        }
        s.push('\n');
    }
    let mut details = String::new();
    for r in reports {
        for (check, o) in &r.outcomes {
            if !matches!(o, super::Outcome::Pass(_)) {
                let _ = writeln!(
                    details,
                    "  node {} {check} {}: {}",
                    r.node,
                    o.word(),
                    o.detail()
                );
            }
        }
    }
    if !details.is_empty() {
        s.push_str("\nnot passed:\n");
        s.push_str(&details);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Outcome;

    #[test]
    fn lists_every_failure_under_the_table() {
        let r = NodeReport {
            node: 7,
            host: "10.0.0.7".into(),
            outcomes: CHECKS
                .iter()
                .map(|c| {
                    (
                        *c,
                        if *c == "clock" {
                            Outcome::Fail("off by 3.2s".into())
                        } else {
                            Outcome::Pass("ok".into())
                        },
                    )
                })
                .collect(),
        };
        let t = render(&[r]);
        assert!(t.lines().nth(1).unwrap().contains("FAIL"), "{t}");
        assert!(t.contains("node 7 clock FAIL: off by 3.2s"), "{t}");
    }
}
