//! A history checker for the write path (Jepsen/elle style, on our own protocol client as the
//! oracle). Clients record every invocation and its outcome; [`check_sends`] and
//! [`check_register`] judge the histories against what every node serves afterwards:
//! no acknowledged send lost, none stored twice, per-connection order equal to messageSeq order,
//! identical seqs on every node, and a metadata register whose final state is its last
//! acknowledged write (or a later write whose outcome was unknown).
//!
//! Order is judged per connection as the server received it: a send acknowledged on its first
//! attempt was applied before anything its client sent after it, so its seq must be below theirs.
//! A send that failed or whose connection dropped before its SENDACK is in doubt; its later
//! successful retry constrains nothing before it.

use crate::client::WkClient;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wukongim::proto::{Packet, ReasonCode};

/// One send as its client saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendOp {
    pub client_msg_no: String,
    /// Position of its first SEND among all this client's SENDs.
    pub first_send: u64,
    pub attempts: u32,
    /// The messageSeq of the acknowledging SENDACK.
    pub acked: Option<u64>,
    /// Acknowledged on its first attempt, never in doubt.
    pub clean: bool,
}

/// Everything one sending client did.
#[derive(Debug, Clone, Default)]
pub struct SendHistory {
    pub uid: String,
    pub to: String,
    pub ops: Vec<SendOp>,
    pub reconnects: u64,
    pub refusals: u64,
}

impl SendHistory {
    pub fn acked(&self) -> usize {
        self.ops.iter().filter(|o| o.acked.is_some()).count()
    }
}

/// A client pipelining up to `window` SENDs on one TCP connection to a person channel, moving
/// to the next node when its connection drops and re-sending what was in doubt (same
/// clientMsgNo, original order).
pub struct SendClient {
    stop: Arc<AtomicBool>,
    pub acked: Arc<AtomicU64>,
    handle: tokio::task::JoinHandle<SendHistory>,
}

impl SendClient {
    pub fn start(uid: &str, to: &str, addrs: Vec<String>, window: usize) -> SendClient {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let h = SendHistory {
            uid: uid.into(),
            to: to.into(),
            ..Default::default()
        };
        let handle = tokio::spawn(run_sends(h, addrs, window, stop.clone(), acked.clone()));
        SendClient {
            stop,
            acked,
            handle,
        }
    }

    /// Waits until `n` more sends were acknowledged (bounded).
    pub async fn wait_progress(&self, n: u64, timeout: Duration) {
        let target = self.acked.load(Ordering::Relaxed) + n;
        crate::poll(timeout, &format!("{target} acknowledged sends"), || async {
            (self.acked.load(Ordering::Relaxed) >= target).then_some(())
        })
        .await;
    }

    /// Stops sending new messages, settles those in doubt (bounded), returns the history.
    pub async fn finish(self) -> SendHistory {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.expect("send client task")
    }
}

async fn connect(addr: &str, uid: &str) -> Option<WkClient> {
    let (a, u) = (addr.to_string(), uid.to_string());
    // WkClient::connect panics when the node is down: contain it in a task.
    let t = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(3), WkClient::connect(&a, &u, "", 5)).await
    });
    match t.await {
        Ok(Ok((c, ReasonCode::Success))) => Some(c),
        _ => None,
    }
}

async fn run_sends(
    mut h: SendHistory,
    addrs: Vec<String>,
    window: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
) -> SendHistory {
    let mut conn: Option<WkClient> = None;
    let mut which = 0usize;
    let mut sends = 0u64;
    // Ops to (re)send, in order; ops sent on this connection awaiting their SENDACK.
    let mut todo: VecDeque<usize> = VecDeque::new();
    let mut inflight: HashMap<u32, usize> = HashMap::new();
    let mut order: VecDeque<u32> = VecDeque::new();
    // After stop: settle what is in doubt for at most this long.
    let mut settle_by: Option<tokio::time::Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed) && settle_by.is_none() {
            settle_by = Some(tokio::time::Instant::now() + Duration::from_secs(20));
        }
        let settling = settle_by.is_some();
        if settling && todo.is_empty() && inflight.is_empty() {
            break;
        }
        if settle_by.is_some_and(|d| tokio::time::Instant::now() > d) {
            break;
        }
        if conn.is_none() {
            let addr = &addrs[which % addrs.len()];
            which += 1;
            match connect(addr, &h.uid).await {
                Some(c) => {
                    conn = Some(c);
                    h.reconnects += 1;
                }
                None => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected");
        while inflight.len() < window {
            let idx = match todo.pop_front() {
                Some(i) => i,
                None if !settling => {
                    let n = h.ops.len();
                    h.ops.push(SendOp {
                        client_msg_no: format!("{}-{n}", h.uid),
                        first_send: sends,
                        ..Default::default()
                    });
                    n
                }
                None => break,
            };
            let op = &mut h.ops[idx];
            op.attempts += 1;
            sends += 1;
            let p = c.text_packet(&h.to, 1, &op.client_msg_no.clone(), &op.client_msg_no);
            let seq = p.client_seq;
            c.write(&Packet::Send(p)).await;
            inflight.insert(seq, idx);
            order.push_back(seq);
        }
        if inflight.is_empty() {
            continue;
        }
        match c.next(Duration::from_secs(15)).await {
            Some(Packet::Sendack(a)) => {
                let Some(idx) = inflight.remove(&a.client_seq) else {
                    continue;
                };
                order.retain(|s| *s != a.client_seq);
                let op = &mut h.ops[idx];
                if a.reason_code == ReasonCode::Success {
                    op.acked = Some(a.message_seq);
                    op.clean = op.attempts == 1;
                    acked.fetch_add(1, Ordering::Relaxed);
                } else {
                    h.refusals += 1;
                    todo.push_back(idx);
                }
            }
            Some(_) => {}
            None => {
                // Connection lost or silent: everything in flight is in doubt; re-send it first,
                // in its original order.
                let mut doubt: Vec<usize> = order
                    .drain(..)
                    .filter_map(|s| inflight.remove(&s))
                    .collect();
                doubt.extend(todo.drain(..));
                todo.extend(doubt);
                inflight.clear();
                conn = None;
            }
        }
    }
    h
}

/// Judges send histories against what each node serves (`served[node][uid]` = (clientMsgNo,
/// messageSeq) of the client's channel in seq order). Returns every violation found.
pub fn check_sends(
    histories: &[SendHistory],
    served: &[BTreeMap<String, Vec<(String, u64)>>],
) -> Vec<String> {
    let mut bad = Vec::new();
    for h in histories {
        let Some(reference) = served.first().and_then(|s| s.get(&h.uid)) else {
            bad.push(format!("{}: no history served", h.uid));
            continue;
        };
        for (i, s) in served.iter().enumerate().skip(1) {
            if s.get(&h.uid) != Some(reference) {
                bad.push(format!(
                    "{}: node {i} serves different seqs than node 0",
                    h.uid
                ));
            }
        }
        let mut stored: HashMap<&str, u64> = HashMap::new();
        for (no, seq) in reference {
            if stored.insert(no.as_str(), *seq).is_some() {
                bad.push(format!("{}: {no} stored twice (duplicate)", h.uid));
            }
        }
        let sent: HashSet<&str> = h.ops.iter().map(|o| o.client_msg_no.as_str()).collect();
        for no in stored.keys() {
            if !sent.contains(no) {
                bad.push(format!("{}: {no} stored but never sent", h.uid));
            }
        }
        for op in &h.ops {
            if let Some(seq) = op.acked {
                match stored.get(op.client_msg_no.as_str()) {
                    None => bad.push(format!("{}: acknowledged {} lost", h.uid, op.client_msg_no)),
                    Some(s) if *s != seq => bad.push(format!(
                        "{}: {} acknowledged with seq {seq}, stored at {s}",
                        h.uid, op.client_msg_no
                    )),
                    _ => {}
                }
            }
        }
        // Order: a send acknowledged on its first attempt precedes, in seq, every send its
        // client first sent after it.
        let mut by_send: Vec<&SendOp> = h.ops.iter().collect();
        by_send.sort_by_key(|o| o.first_send);
        let mut clean_max: Option<(u64, &str)> = None;
        for op in by_send {
            let Some(seq) = op.acked else { continue };
            if let Some((m, who)) = clean_max {
                if seq <= m {
                    bad.push(format!(
                        "{}: reordered: {} (seq {seq}) was sent after {who} (seq {m})",
                        h.uid, op.client_msg_no
                    ));
                }
            }
            if op.clean && clean_max.is_none_or(|(m, _)| seq > m) {
                clean_max = Some((seq, op.client_msg_no.as_str()));
            }
        }
    }
    bad
}

/// A register written by one client in sequence: write `n` either acknowledged, refused, or
/// of unknown outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Acked,
    Refused,
    Unknown,
}

/// The values the register may hold at the end: the last acknowledged write, and any write
/// whose outcome is unknown (it never completed, so it may take effect at any point after it was
/// invoked — even after a later acknowledged write). A refused write did not happen.
pub fn register_candidates(writes: &[(u64, WriteOutcome)]) -> Vec<u64> {
    let last = writes
        .iter()
        .rev()
        .find(|(_, o)| *o == WriteOutcome::Acked)
        .map(|(n, _)| *n);
    let mut c: Vec<u64> = writes
        .iter()
        .filter(|(n, o)| Some(*n) == last || *o == WriteOutcome::Unknown)
        .map(|(n, _)| *n)
        .collect();
    c.dedup();
    c
}

/// Judges a register: `holds` = the values the cluster holds at the end (it must hold exactly
/// one, and one of the candidates).
pub fn check_register(writes: &[(u64, WriteOutcome)], holds: &[u64]) -> Vec<String> {
    let cand = register_candidates(writes);
    match holds {
        [v] if cand.contains(v) => Vec::new(),
        _ => vec![format!(
            "register holds {holds:?}; the last acknowledged write (or a later unknown one) \
             is one of {cand:?}"
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(no: &str, first: u64, acked: Option<u64>, clean: bool) -> SendOp {
        SendOp {
            client_msg_no: no.into(),
            first_send: first,
            attempts: if clean { 1 } else { 2 },
            acked,
            clean,
        }
    }

    fn served(rows: &[(&str, u64)]) -> Vec<BTreeMap<String, Vec<(String, u64)>>> {
        let v: Vec<(String, u64)> = rows.iter().map(|(n, s)| (n.to_string(), *s)).collect();
        vec![BTreeMap::from([("u".to_string(), v)])]
    }

    fn hist(ops: Vec<SendOp>) -> Vec<SendHistory> {
        vec![SendHistory {
            uid: "u".into(),
            to: "t".into(),
            ops,
            ..Default::default()
        }]
    }

    #[test]
    fn a_clean_history_passes() {
        let h = hist(vec![op("a", 0, Some(1), true), op("b", 1, Some(2), true)]);
        assert!(check_sends(&h, &served(&[("a", 1), ("b", 2)])).is_empty());
    }

    #[test]
    fn loss_duplication_reordering_and_divergence_are_caught() {
        let h = hist(vec![op("a", 0, Some(1), true), op("b", 1, Some(2), true)]);
        let lost = check_sends(&h, &served(&[("a", 1)]));
        assert!(lost.iter().any(|e| e.contains("b lost")), "{lost:?}");
        let dup = check_sends(&h, &served(&[("a", 1), ("b", 2), ("b", 3)]));
        assert!(dup.iter().any(|e| e.contains("twice")), "{dup:?}");
        let h2 = hist(vec![op("a", 0, Some(2), true), op("b", 1, Some(1), true)]);
        let re = check_sends(&h2, &served(&[("b", 1), ("a", 2)]));
        assert!(re.iter().any(|e| e.contains("reordered")), "{re:?}");
        let mut two = served(&[("a", 1), ("b", 2)]);
        two.extend(served(&[("a", 1)]));
        let div = check_sends(&h, &two);
        assert!(div.iter().any(|e| e.contains("node 1")), "{div:?}");
    }

    #[test]
    fn a_send_in_doubt_may_land_after_later_ones() {
        // `a` failed first and was retried after `b`: no order between them.
        let h = hist(vec![op("a", 0, Some(2), false), op("b", 1, Some(1), true)]);
        assert!(check_sends(&h, &served(&[("b", 1), ("a", 2)])).is_empty());
    }

    #[test]
    fn the_register_holds_the_last_acknowledged_or_a_later_unknown_write() {
        use WriteOutcome::*;
        let w = [(1, Acked), (2, Acked), (3, Refused), (4, Unknown)];
        assert_eq!(register_candidates(&w), vec![2, 4]);
        let w2 = [(1, Unknown), (2, Acked)];
        assert_eq!(register_candidates(&w2), vec![1, 2]);
        assert!(check_register(&w, &[2]).is_empty());
        assert!(check_register(&w, &[4]).is_empty());
        assert!(!check_register(&w, &[1]).is_empty());
        assert!(!check_register(&w, &[3]).is_empty());
        assert!(!check_register(&w, &[2, 4]).is_empty());
    }
}
