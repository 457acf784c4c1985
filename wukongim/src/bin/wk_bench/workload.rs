//! The protocol workloads: who connects, who sends to which channel, and the per-client loop.
//!
//! Timeline: create the groups (HTTP API), connect every client (`--connect-parallel` at a
//! time), then all senders start together; the first `--warmup` is not measured, the next
//! `--duration` is. A SEND's clientMsgNo starts with its send instant (µs since the benchmark
//! started, same process for all clients), so each receiver measures send→RECV without decrypting
//! anything; with verification on (the default) it still checks the msgKey and decrypts as the
//! SDK does, and acknowledges every RECV with a RECVACK. Counters and latencies only count
//! SENDACKs and RECVs that *arrive* inside the window, so a server falling behind shows as lower
//! throughput, not as an inflated one.

use anyhow::{bail, Context};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::time::{interval_at, sleep_until, Interval};
use wukongim::proto::client::{recvack_for, text_payload};
use wukongim::proto::{Packet, ReasonCode, RecvPacket, SendackPacket};

use crate::args::{Args, Workload};
use crate::stats::{cpu_seconds, micros, Local, Percentiles};
use crate::wire::Conn;

const CHANNEL_PERSON: u8 = 1;
const CHANNEL_GROUP: u8 = 2;

/// One client of the workload.
#[derive(Debug, Clone)]
struct Role {
    uid: String,
    /// The channel this client sends to, if it is a sender.
    target: Option<(String, u8)>,
}

fn plan(a: &Args, prefix: &str) -> Vec<Role> {
    match a.workload {
        Workload::Person => (0..a.clients)
            .map(|i| Role {
                uid: format!("{prefix}u{i}"),
                target: ((i ^ 1) < a.clients)
                    .then(|| (format!("{prefix}u{}", i ^ 1), CHANNEL_PERSON)),
            })
            .collect(),
        Workload::Idle => (0..a.clients)
            .map(|i| Role {
                uid: format!("{prefix}u{i}"),
                target: None,
            })
            .collect(),
        Workload::Group => (0..a.groups)
            .flat_map(|g| {
                (0..a.online.min(a.members)).map(move |j| Role {
                    uid: member(prefix, g, j),
                    target: (j < a.senders).then(|| (group(prefix, g), CHANNEL_GROUP)),
                })
            })
            .collect(),
    }
}

fn member(prefix: &str, g: usize, j: usize) -> String {
    format!("{prefix}g{g}m{j}")
}

fn group(prefix: &str, g: usize) -> String {
    format!("{prefix}g{g}")
}

/// Creates the groups with all their members through POST /channel.
async fn setup_groups(a: &Args, prefix: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let url = format!("http://{}/channel", a.api);
    for g in 0..a.groups {
        let subscribers: Vec<String> = (0..a.members).map(|j| member(prefix, g, j)).collect();
        let body = serde_json::json!({
            "channel_id": group(prefix, g),
            "channel_type": CHANNEL_GROUP,
            "subscribers": subscribers,
        });
        let r = http
            .post(&url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = r.status();
        if !status.is_success() {
            bail!(
                "POST {url} for group {g}: {status}: {}",
                r.text().await.unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// Shared, read-only schedule of the run.
struct Ctx {
    epoch: Instant,
    load_start: Instant,
    window_start: Instant,
    window_end: Instant,
    /// Fixed rate: time between two SENDs of one sender; `None` = closed loop.
    period: Option<Duration>,
    inflight: usize,
    payload: Vec<u8>,
    verify: bool,
    senders: usize,
}

impl Ctx {
    fn in_window(&self, t: Instant) -> bool {
        t >= self.window_start && t < self.window_end
    }
}

/// One client's state while the load runs.
struct Client {
    conn: Conn,
    target: Option<(String, u8)>,
    ctx: Arc<Ctx>,
    local: Local,
    /// clientSeq → send instant of SENDs not yet acknowledged.
    pending: HashMap<u32, Instant>,
    sent: u64,
    index: usize,
}

impl Client {
    fn send_one(&mut self) -> anyhow::Result<()> {
        let Some((channel, channel_type)) = &self.target else {
            return Ok(());
        };
        let now = Instant::now();
        let no = format!(
            "{}-{}-{}",
            (now - self.ctx.epoch).as_micros(),
            self.index,
            self.sent
        );
        self.sent += 1;
        let p = self
            .conn
            .session
            .send_packet(channel, *channel_type, &self.ctx.payload, &no);
        self.pending.insert(p.client_seq, now);
        if self.ctx.in_window(now) {
            self.local.sends += 1;
        }
        self.conn.link.queue(&Packet::Send(p))
    }

    fn on_sendack(&mut self, a: &SendackPacket) -> anyhow::Result<()> {
        let now = Instant::now();
        if let Some(sent) = self.pending.remove(&a.client_seq) {
            if self.ctx.in_window(now) {
                self.local.sendacks += 1;
                if a.reason_code != ReasonCode::Success {
                    self.local.send_errors += 1;
                }
                self.local.ack_us.push(micros(now - sent));
            }
        }
        if self.ctx.period.is_none() && now < self.ctx.window_end {
            self.send_one()?;
        }
        Ok(())
    }

    fn on_recv(&mut self, r: &RecvPacket) -> anyhow::Result<()> {
        let now = Instant::now();
        if self.ctx.verify && self.conn.session.open_recv(r).is_err() {
            self.local.recv_errors += 1;
        }
        if self.ctx.in_window(now) {
            self.local.recvs += 1;
            let sent_us = r
                .client_msg_no
                .split('-')
                .next()
                .and_then(|s| s.parse::<u64>().ok());
            if let Some(us) = sent_us {
                let sent = self.ctx.epoch + Duration::from_micros(us);
                self.local
                    .recv_us
                    .push(micros(now.saturating_duration_since(sent)));
            }
        }
        self.conn.link.queue(&recvack_for(r))
    }

    fn on_packet(&mut self, p: Packet) -> anyhow::Result<()> {
        match p {
            Packet::Sendack(a) => self.on_sendack(&a),
            Packet::Recv(r) => self.on_recv(&r),
            Packet::Ping => self.conn.link.queue(&Packet::Pong),
            Packet::Disconnect(d) => bail!("DISCONNECT {:?}: {}", d.reason_code, d.reason),
            _ => Ok(()),
        }
    }

    async fn drive(&mut self) -> anyhow::Result<()> {
        let ctx = self.ctx.clone();
        let mut ticker: Option<Interval> = match (ctx.period, &self.target) {
            (Some(period), Some(_)) => {
                // Spread the senders' first SENDs over one period.
                let offset = period.mul_f64((self.index % ctx.senders.max(1)) as f64)
                    / ctx.senders.max(1) as u32;
                Some(interval_at((ctx.load_start + offset).into(), period))
            }
            _ => None,
        };
        let mut started = ctx.period.is_some() || self.target.is_none();
        loop {
            // Lives one loop turn on the stack; boxing the packet would cost an allocation each.
            #[allow(clippy::large_enum_variant)]
            enum Ev {
                Stop,
                Start,
                Packet(Option<Packet>),
                Tick,
            }
            let ev = tokio::select! {
                biased;
                _ = sleep_until(ctx.window_end.into()) => Ev::Stop,
                _ = sleep_until(ctx.load_start.into()), if !started => Ev::Start,
                r = self.conn.link.next() => Ev::Packet(r?),
                _ = tick(&mut ticker) => Ev::Tick,
            };
            match ev {
                Ev::Stop => return Ok(()),
                Ev::Start => {
                    started = true;
                    for _ in 0..ctx.inflight.max(1) {
                        self.send_one()?;
                    }
                }
                Ev::Packet(None) => bail!("the server closed the connection"),
                Ev::Packet(Some(p)) => {
                    self.on_packet(p)?;
                    while let Some(p) = self.conn.link.try_next()? {
                        self.on_packet(p)?;
                    }
                }
                Ev::Tick => self.send_one()?,
            }
            self.conn.link.flush().await?;
        }
    }
}

async fn tick(t: &mut Option<Interval>) {
    match t {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Runs the protocol benchmark and prints its summary.
pub async fn run(a: &Args) -> anyhow::Result<()> {
    let prefix = a
        .prefix
        .clone()
        .unwrap_or_else(|| format!("b{:06x}", rand::random::<u32>() & 0xff_ffff));
    let roles = plan(a, &prefix);
    anyhow::ensure!(!roles.is_empty(), "the workload has no clients");
    if a.workload == Workload::Group {
        setup_groups(a, &prefix).await?;
    }
    let connect_started = Instant::now();
    let results: Vec<anyhow::Result<Conn>> = futures::stream::iter(roles.iter().enumerate())
        .map(|(i, r)| {
            let ep = &a.endpoints[i % a.endpoints.len()];
            Conn::connect(a.transport, ep, &r.uid, a.proto_version)
        })
        .buffered(a.connect_parallel.max(1))
        .collect()
        .await;
    let connect_seconds = connect_started.elapsed().as_secs_f64();
    let mut connect_errors = 0usize;
    let mut first_error = None;
    let mut clients = Vec::new();
    for (i, (r, role)) in results.into_iter().zip(roles).enumerate() {
        match r {
            Ok(conn) => clients.push((i, conn, role)),
            Err(e) => {
                connect_errors += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    if let Some(path) = &a.ready_file {
        std::fs::write(path, format!("{}\n", clients.len()))
            .with_context(|| format!("write {}", path.display()))?;
    }
    let senders = clients
        .iter()
        .filter(|(_, _, r)| r.target.is_some())
        .count();
    let load_start = Instant::now() + Duration::from_millis(100);
    let window_start = load_start + a.warmup;
    let ctx = Arc::new(Ctx {
        epoch: connect_started,
        load_start,
        window_start,
        window_end: window_start + a.duration,
        period: (a.rate > 0.0 && senders > 0)
            .then(|| Duration::from_secs_f64(senders as f64 / a.rate)),
        inflight: a.inflight,
        payload: text_payload(&"x".repeat(a.size)),
        verify: !a.no_verify,
        senders,
    });
    let n = clients.len();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|(index, conn, role)| {
            let uid = role.uid;
            let mut c = Client {
                conn,
                target: role.target,
                ctx: ctx.clone(),
                local: Local::default(),
                pending: HashMap::new(),
                sent: 0,
                index,
            };
            tokio::spawn(async move {
                let r = c.drive().await;
                (c.local, r.err().map(|e| format!("{uid}: {e:#}")))
            })
        })
        .collect();
    let server_cpu = if a.server_pid.is_empty() {
        None
    } else {
        sleep_until(ctx.window_start.into()).await;
        let c0 = cpu_seconds(&a.server_pid);
        sleep_until(ctx.window_end.into()).await;
        c0.zip(cpu_seconds(&a.server_pid)).map(|(c0, c1)| c1 - c0)
    };
    let mut total = Local::default();
    let mut dropped = 0usize;
    for t in tasks {
        let (local, err) = t.await.context("client task")?;
        total.merge(local);
        if let Some(e) = err {
            dropped += 1;
            first_error.get_or_insert(e);
        }
    }
    let run = Run {
        clients: n,
        senders,
        connect_seconds,
        connect_errors,
        dropped,
        first_error,
        server_cpu,
    };
    report(a, run, total);
    Ok(())
}

/// What the run observed besides the clients' counters.
struct Run {
    clients: usize,
    senders: usize,
    connect_seconds: f64,
    connect_errors: usize,
    dropped: usize,
    first_error: Option<String>,
    /// CPU seconds the `--server-pid` processes used during the window.
    server_cpu: Option<f64>,
}

fn report(a: &Args, r: Run, mut t: Local) {
    let Run {
        clients,
        senders,
        connect_seconds,
        connect_errors,
        dropped,
        first_error,
        server_cpu,
    } = r;
    let secs = a.duration.as_secs_f64();
    let per_cpu = |n: u64| server_cpu.filter(|c| *c > 0.0).map(|c| n as f64 / c);
    let ack = Percentiles::of(&mut t.ack_us);
    let recv = Percentiles::of(&mut t.recv_us);
    let ok = t.sendacks - t.send_errors;
    let v = serde_json::json!({
        "target": "wkproto",
        "transport": a.transport.name(),
        "workload": a.workload.name(),
        "clients": clients,
        "senders": senders,
        "rate": a.rate,
        "inflight": a.inflight,
        "size": a.size,
        "seconds": secs,
        "connect_seconds": connect_seconds,
        "connect_errors": connect_errors,
        "dropped": dropped,
        "sends": t.sends,
        "sendacks": t.sendacks,
        "send_errors": t.send_errors,
        "sends_per_s": ok as f64 / secs,
        "sendack": ack,
        "recvs": t.recvs,
        "recv_errors": t.recv_errors,
        "recvs_per_s": t.recvs as f64 / secs,
        "recv": recv,
        "server_cpu_s": server_cpu,
        "sends_per_server_cpu_s": per_cpu(ok),
        "recvs_per_server_cpu_s": per_cpu(t.recvs),
        "error": first_error,
    });
    if a.json {
        println!("{v}");
        return;
    }
    println!(
        "wkproto {} {}: {clients} clients ({senders} senders) connected in {connect_seconds:.2} s, {connect_errors} failed, {dropped} dropped",
        a.transport.name(),
        a.workload.name()
    );
    println!(
        "  SEND→SENDACK: {:.0}/s ({ok} ok, {} errors of {} sent)  p50 {:.2} ms  p99 {:.2} ms  p999 {:.2} ms",
        ok as f64 / secs,
        t.send_errors,
        t.sends,
        ack.p50_ms,
        ack.p99_ms,
        ack.p999_ms
    );
    println!(
        "  SEND→RECV:    {:.0}/s ({} received, {} failed to verify)  p50 {:.2} ms  p99 {:.2} ms  p999 {:.2} ms",
        t.recvs as f64 / secs,
        t.recvs,
        t.recv_errors,
        recv.p50_ms,
        recv.p99_ms,
        recv.p999_ms
    );
    if let Some(c) = server_cpu {
        println!(
            "  server CPU {c:.2} s in {secs:.1} s: {:.0} sends and {:.0} deliveries per server CPU-second",
            per_cpu(ok).unwrap_or(0.0),
            per_cpu(t.recvs).unwrap_or(0.0)
        );
    }
    if let Some(e) = first_error {
        println!("  first error: {e}");
    }
}
