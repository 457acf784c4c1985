//! HTTP mode: a closed-loop load generator. `N` workers each keep one HTTP/1.1 keep-alive
//! connection and send requests back to back until `total` requests are done; it reports
//! throughput and latency percentiles as one JSON line. Targets: wukongim's POST /message/send
//! (`--target wukongim`) and etcd's v3 JSON gateway PUT (`--target etcd`), so both replicated
//! stores are driven by the same client code.

use crate::args::Args;
use base64::Engine;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// `run` tells this process's sends apart from an earlier run's against the same cluster: a
/// repeated (sender, clientMsgNo) would be answered from the dedup record, not stored again.
fn request(target: &str, host: &str, run: u64, worker: usize, i: u64, payload: &str) -> Vec<u8> {
    let (path, body) = if target == "etcd" {
        let key = base64::engine::general_purpose::STANDARD.encode(format!("bench/{worker}/{i}"));
        (
            "/v3/kv/put",
            format!("{{\"key\":\"{key}\",\"value\":\"{payload}\"}}"),
        )
    } else {
        (
            "/message/send",
            format!(
                "{{\"from_uid\":\"bench{worker}\",\"channel_id\":\"sink{worker}\",\"channel_type\":1,\"client_msg_no\":\"b{run:x}-{worker}-{i}\",\"payload\":\"{payload}\"}}"
            ),
        )
    };
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one HTTP/1.1 response (Content-Length or chunked); returns the status code.
async fn response(r: &mut BufReader<TcpStream>) -> std::io::Result<u16> {
    let mut line = String::new();
    r.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (mut len, mut chunked) = (0usize, false);
    loop {
        line.clear();
        r.read_line(&mut line).await?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).await?;
            let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            let mut buf = vec![0u8; n + 2];
            r.read_exact(&mut buf).await?;
            if n == 0 {
                break;
            }
        }
    } else {
        let mut buf = vec![0u8; len];
        r.read_exact(&mut buf).await?;
    }
    Ok(status)
}

/// Runs the HTTP benchmark and prints its one JSON line.
pub async fn run(a: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(!a.endpoints.is_empty(), "--endpoints is required");
    let payload = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; a.size]);
    let next = Arc::new(AtomicU64::new(0));
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..a.concurrency {
        let (ep, target, payload, next, errors, total) = (
            a.endpoints[w % a.endpoints.len()].clone(),
            a.target.clone(),
            payload.clone(),
            next.clone(),
            errors.clone(),
            a.total,
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut conn = BufReader::new(TcpStream::connect(&ep).await?);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, std::io::Error>(lat);
                }
                let t = Instant::now();
                conn.get_mut()
                    .write_all(&request(&target, &ep, run, w, i, &payload))
                    .await?;
                if response(&mut conn).await? != 200 {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all: Vec<Duration> = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    println!(
        "{{\"target\":\"{}\",\"requests\":{},\"errors\":{},\"seconds\":{secs:.3},\"rps\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        a.target,
        all.len(),
        errors.load(Ordering::Relaxed),
        all.len() as f64 / secs,
        pct(0.50),
        pct(0.99)
    );
    Ok(())
}
