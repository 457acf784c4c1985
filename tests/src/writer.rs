//! A persistent test writer: sends numbered messages to one person channel through a TCP client,
//! survives node failures by reconnecting to the next node and re-sending an unacknowledged
//! message with the same clientMsgNo, and records exactly what was acknowledged.

use crate::client::WkClient;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wukongim::proto::{Packet, ReasonCode};

/// What a writer achieved.
#[derive(Debug, Default, Clone)]
pub struct WriterLog {
    /// Acknowledged (clientMsgNo, messageSeq) in order.
    pub acked: Vec<(String, u64)>,
    /// Sends that failed with a reason code (retried later).
    pub refusals: u64,
    pub reconnects: u64,
}

pub struct Writer {
    pub uid: String,
    pub to: String,
    stop: Arc<AtomicBool>,
    pub acked_count: Arc<AtomicU64>,
    handle: tokio::task::JoinHandle<WriterLog>,
}

impl Writer {
    /// Starts writing from `uid` to `to` via the TCP addresses (tried in rotation).
    pub fn start(uid: &str, to: &str, addrs: Vec<String>, max: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked_count = Arc::new(AtomicU64::new(0));
        let log = Arc::new(Mutex::new(WriterLog::default()));
        let (u, t, s, a) = (
            uid.to_string(),
            to.to_string(),
            stop.clone(),
            acked_count.clone(),
        );
        let handle = tokio::spawn(async move {
            run(u, t, addrs, max, s, a, log.clone()).await;
            let l = log.lock().unwrap().clone();
            l
        });
        Writer {
            uid: uid.into(),
            to: to.into(),
            stop,
            acked_count,
            handle,
        }
    }

    pub fn acked(&self) -> u64 {
        self.acked_count.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` more messages were acknowledged (bounded).
    pub async fn wait_progress(&self, n: u64, timeout: Duration) {
        let target = self.acked() + n;
        crate::poll(
            timeout,
            &format!("writer {} to reach {target} acks", self.uid),
            || async { (self.acked() >= target).then_some(()) },
        )
        .await;
    }

    /// Stops and returns the log.
    pub async fn finish(self) -> WriterLog {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.expect("writer task")
    }
}

async fn run(
    uid: String,
    to: String,
    addrs: Vec<String>,
    max: u64,
    stop: Arc<AtomicBool>,
    acked_count: Arc<AtomicU64>,
    log: Arc<Mutex<WriterLog>>,
) {
    let mut next = 0u64;
    let mut which = 0usize;
    let mut conn: Option<WkClient> = None;
    while !stop.load(Ordering::Relaxed) && next < max {
        if conn.is_none() {
            let (addr, u) = (addrs[which % addrs.len()].clone(), uid.clone());
            which += 1;
            // WkClient::connect panics when the node is down: contain it in a task.
            let attempt = tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(3), WkClient::connect(&addr, &u, "", 5))
                    .await
            });
            match attempt.await {
                Ok(Ok((c, ReasonCode::Success))) => {
                    conn = Some(c);
                    log.lock().unwrap().reconnects += 1;
                }
                _ => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let c = conn.as_mut().unwrap();
        let no = format!("{uid}-{next}");
        let p = c.text_packet(&to, 1, &format!("m{next}"), &no);
        c.write(&Packet::Send(p)).await;
        let mut outcome = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while tokio::time::Instant::now() < deadline {
            match c
                .next(deadline.saturating_duration_since(tokio::time::Instant::now()))
                .await
            {
                Some(Packet::Sendack(a)) => {
                    outcome = Some(a);
                    break;
                }
                Some(_) => {}
                None => break,
            }
        }
        match outcome {
            Some(a) if a.reason_code == ReasonCode::Success => {
                log.lock().unwrap().acked.push((no, a.message_seq));
                acked_count.fetch_add(1, Ordering::Relaxed);
                next += 1;
            }
            Some(_) => {
                log.lock().unwrap().refusals += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            None => conn = None, // connection lost: reconnect elsewhere, resend the same message
        }
    }
}
