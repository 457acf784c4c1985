//! The order of a rolling restart, as a pure function of the cluster's state: followers first
//! (in id order), the leader last, so leadership moves at most once.

/// Orders `selected` nodes: every non-leader in id order, then the leader if selected.
pub fn order(selected: &[u64], leader: Option<u64>) -> Vec<u64> {
    let mut ids: Vec<u64> = selected.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids.sort_by_key(|id| Some(*id) == leader);
    ids
}

/// The node to hand leadership to: the voter (other than `leader` and `avoid`) with the highest
/// matched log index, ties to the lowest id.
pub fn successor(
    leader: u64,
    matched: &[(u64, Option<u64>)],
    voters: &[u64],
    avoid: &[u64],
) -> Option<u64> {
    matched
        .iter()
        .filter(|(id, _)| *id != leader && voters.contains(id) && !avoid.contains(id))
        .max_by_key(|(id, m)| (m.unwrap_or(0), std::cmp::Reverse(*id)))
        .map(|(id, _)| *id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_goes_last() {
        assert_eq!(order(&[3, 1, 2], Some(1)), vec![2, 3, 1]);
        assert_eq!(order(&[3, 2], Some(1)), vec![2, 3]);
        assert_eq!(order(&[2, 2, 1], None), vec![1, 2]);
    }

    #[test]
    fn successor_is_the_most_caught_up_voter() {
        let m = [(2, Some(10)), (3, Some(12)), (4, Some(99))];
        assert_eq!(successor(1, &m, &[1, 2, 3], &[]), Some(3));
        assert_eq!(successor(1, &m, &[1, 2, 3], &[3]), Some(2));
        assert_eq!(
            successor(1, &[(2, Some(5)), (3, Some(5))], &[1, 2, 3], &[]),
            Some(2)
        );
        assert_eq!(successor(1, &[], &[1], &[]), None);
    }
}
