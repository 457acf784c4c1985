//! Whether a membership change leaves a cluster that can serve and tolerate failures: the
//! refusals of `scale-out` and `scale-in`, as a pure function of voter counts.

/// The voter counts around one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Voters now.
    pub before: usize,
    /// Voters after the change.
    pub after: usize,
    /// Voters after the change that answer /health now (for scale-out, the new node counts:
    /// it must be caught up before it votes).
    pub healthy_after: usize,
}

/// Why a change is refused, and whether `--force` overrides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    pub forceable: bool,
}

/// The quorum of `voters` voters.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// The refusals of `change` (empty: go ahead). With `force`, only those `--force` cannot
/// override remain.
pub fn refusals(change: Change, force: bool) -> Vec<Refusal> {
    let Change {
        before,
        after,
        healthy_after,
    } = change;
    let mut out = Vec::new();
    if after == 0 {
        out.push(Refusal {
            reason: "it is the last voter: a cluster cannot remove all of its voters".into(),
            forceable: false,
        });
        return out;
    }
    if healthy_after < quorum(after) {
        out.push(Refusal {
            reason: format!(
                "only {healthy_after} of the {after} voters it would leave answer /health: below \
                 a quorum of {}, the membership change could not commit and the cluster would \
                 stop serving; bring the down voters back first",
                quorum(after)
            ),
            forceable: true,
        });
    }
    if after % 2 == 0 {
        let (fewer, more) = (after - 1, after + 1);
        let next = if after > before {
            format!("scale out to {more} next")
        } else if fewer >= 3 {
            format!("scale in to {fewer} next")
        } else {
            format!("keep {before} voters")
        };
        out.push(Refusal {
            reason: format!(
                "{before} → {after} voters: an even number tolerates no more failures than {fewer} \
                 (quorum {} of {after}); {next}, or pass --force to accept {after} voters",
                quorum(after)
            ),
            forceable: true,
        });
    }
    out.retain(|r| !force || !r.forceable);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(before: usize, after: usize, healthy_after: usize) -> Change {
        Change {
            before,
            after,
            healthy_after,
        }
    }

    #[test]
    fn odd_and_healthy_is_fine() {
        assert!(refusals(c(4, 5, 5), false).is_empty());
        assert!(refusals(c(4, 3, 3), false).is_empty());
        assert!(refusals(c(2, 3, 2), false).is_empty());
        assert!(refusals(c(2, 1, 1), false).is_empty());
    }

    #[test]
    fn even_needs_force() {
        let r = refusals(c(3, 4, 4), false);
        assert_eq!(r.len(), 1);
        assert!(r[0].reason.contains("scale out to 5 next"), "{:?}", r);
        assert!(refusals(c(3, 4, 4), true).is_empty());
        let r = refusals(c(3, 2, 2), false);
        assert!(r[0].reason.contains("3 → 2 voters"), "{:?}", r);
        assert!(r[0].reason.contains("keep 3 voters"), "{:?}", r);
        assert!(refusals(c(5, 4, 4), false)[0]
            .reason
            .contains("scale in to 3 next"));
        assert!(refusals(c(3, 2, 2), true).is_empty());
    }

    #[test]
    fn below_quorum_needs_force() {
        let r = refusals(c(5, 4, 2), false);
        assert_eq!(r.len(), 2);
        assert!(r[0].reason.contains("below a quorum of 3"), "{:?}", r);
        assert!(refusals(c(3, 4, 2), false)
            .iter()
            .any(|r| r.reason.contains("only 2 of the 4")));
        assert!(refusals(c(5, 4, 2), true).is_empty());
    }

    #[test]
    fn the_last_voter_stays_even_with_force() {
        let r = refusals(c(1, 0, 0), true);
        assert_eq!(r.len(), 1);
        assert!(!r[0].forceable);
    }
}
