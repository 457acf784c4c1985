//! Helpers for end-to-end tests: spawn real `wukongim` processes on loopback with free ports,
//! talk to them over HTTP, over our own TCP client and through the real `wukongimjssdk` (Node),
//! and poll with deadlines instead of sleeping.

pub mod client;
pub mod cluster;
pub mod history;
pub mod js;
pub mod netns;
pub mod node;
pub mod ops;
pub mod powercut;
pub mod watch;
pub mod writer;

pub use client::WkClient;
pub use cluster::TestCluster;
pub use js::JsClient;
pub use node::{free_port, Node, NodeOptions};
pub use powercut::LazyFs;
pub use watch::{LeaderHistory, RaftWatch};
pub use writer::{Writer, WriterLog};

use std::time::{Duration, Instant};

/// Polls `f` every 20 ms until it returns Some or `timeout` passes.
pub async fn poll<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Calls `f` every 50 ms until it returns Ok or `timeout` passes (then panics with the last
/// error); returns the value and how many calls it took.
pub async fn retry<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> (T, u32)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    let mut tries = 0;
    loop {
        tries += 1;
        match f().await {
            Ok(v) => return (v, tries),
            Err(e) if Instant::now() > deadline => {
                panic!("{what}: still failing after {timeout:?} ({tries} tries); last: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Path of a workspace binary (`wukongim`, `wk-ops`), building it if it is missing.
pub fn bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .to_path_buf();
    let path = dir.join(name);
    if !path.exists() {
        let pkg = match name {
            "wk-bench" => "wukongim",
            "wk-lazyfs" => "wk-tests",
            other => other,
        };
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", pkg, "--bin", name])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p {pkg} failed");
    }
    path
}

/// POSTs JSON and returns (status, body as JSON or {"raw": text}).
pub async fn post(url: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    post_with(url, body, None).await
}

/// POSTs JSON with an optional `token` header.
pub async fn post_with(
    url: &str,
    body: serde_json::Value,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    try_post_with(url, body, token)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// POSTs JSON; a transport error (refused, reset, timed out) is an error instead of a panic.
pub async fn try_post(
    url: &str,
    body: serde_json::Value,
) -> Result<(u16, serde_json::Value), String> {
    try_post_with(url, body, None).await
}

async fn try_post_with(
    url: &str,
    body: serde_json::Value,
    token: Option<&str>,
) -> Result<(u16, serde_json::Value), String> {
    let mut req = reqwest::Client::new()
        .post(url)
        .json(&body)
        .timeout(Duration::from_secs(30));
    if let Some(t) = token {
        req = req.header("token", t);
    }
    let resp = req.send().await.map_err(|e| format!("POST {url}: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::json!({ "raw": text })),
    ))
}

/// A channel's whole history as the node at `base_url` serves it to `login`: (clientMsgNo,
/// messageSeq) in seq order.
pub async fn message_seqs(
    base_url: &str,
    login: &str,
    channel: &str,
    ty: u8,
) -> Vec<(String, u64)> {
    let body = serde_json::json!({"login_uid": login, "channel_id": channel, "channel_type": ty,
        "start_message_seq": 1, "limit": 10000, "pull_mode": 1});
    let (st, v) = post(&format!("{base_url}/channel/messagesync"), body).await;
    assert_eq!(st, 200, "messagesync of {channel} at {base_url}: {v}");
    v["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages in {v}"))
        .iter()
        .map(|m| {
            (
                m["client_msg_no"].as_str().unwrap_or_default().to_string(),
                m["message_seq"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// GETs a URL and returns (status, body as JSON or {"raw": text}).
pub async fn get(url: &str) -> (u16, serde_json::Value) {
    match reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            (
                status,
                serde_json::from_str(&text).unwrap_or(serde_json::json!({ "raw": text })),
            )
        }
        Err(e) => (0, serde_json::json!({ "error": e.to_string() })),
    }
}
