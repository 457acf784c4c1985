//! The one way wk-ops talks to a node's HTTP API: every request carries the manager token
//! (read once from the inventory's `cluster.managerTokenFile`), has a deadline, and fails with
//! a typed [`NodeError`] that says which node and what went wrong. `status`, `health`,
//! `backup`, `restore`, `rolling-restart`, scaling and `check` all build on [`NodeApi`].

use crate::inventory::{Inventory, Node};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// Why a request to a node failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("node {node} ({url}) is unreachable: {source}")]
    Unreachable {
        node: u64,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("node {node} refused the manager token (HTTP 401 on {path}); check cluster.managerTokenFile")]
    Unauthorized { node: u64, path: String },
    #[error("node {node} answered HTTP {status} on {path}: {body}")]
    Status {
        node: u64,
        path: String,
        status: u16,
        body: String,
    },
    #[error("node {node} sent an unexpected answer on {path}: {reason}")]
    BadAnswer {
        node: u64,
        path: String,
        reason: String,
    },
}

impl NodeError {
    /// The node this error is about.
    pub fn node(&self) -> u64 {
        match self {
            NodeError::Unreachable { node, .. }
            | NodeError::Unauthorized { node, .. }
            | NodeError::Status { node, .. }
            | NodeError::BadAnswer { node, .. } => *node,
        }
    }

    /// A short reason for tables and alert lines: "timed out", "connection refused",
    /// "HTTP 500: no raft leader known".
    pub fn brief(&self) -> String {
        match self {
            NodeError::Unreachable { source, .. } if source.is_timeout() => "timed out".into(),
            NodeError::Unreachable { source, .. } => {
                let mut last: &dyn std::error::Error = source;
                while let Some(next) = last.source() {
                    last = next;
                }
                last.to_string()
            }
            NodeError::Unauthorized { .. } => "manager token refused (HTTP 401)".into(),
            NodeError::Status { status, body, .. } => {
                let msg = serde_json::from_str::<Value>(body)
                    .ok()
                    .and_then(|v| {
                        v["message"]
                            .as_str()
                            .or(v["msg"].as_str())
                            .map(String::from)
                    })
                    .unwrap_or_else(|| body.clone());
                format!("HTTP {status}: {msg}")
            }
            NodeError::BadAnswer { path, reason, .. } => format!("bad answer on {path}: {reason}"),
        }
    }
}

/// Reading the manager token file failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the manager token file {file}: {source}")]
pub struct TokenFileError {
    pub file: String,
    #[source]
    pub source: std::io::Error,
}

/// A client for every node of one inventory.
#[derive(Clone)]
pub struct NodeApi {
    http: reqwest::Client,
    token: Option<String>,
}

/// `GET /cluster/raft/status` of one node.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct RaftStatus {
    pub node_id: u64,
    pub state: String,
    pub term: u64,
    pub leader: Option<u64>,
    pub commit_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub last_log_index: Option<u64>,
    #[serde(default)]
    pub replication: Vec<Replication>,
    pub membership: Membership,
}

/// One follower's replication progress as the leader sees it.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Replication {
    pub node_id: u64,
    pub matched_index: Option<u64>,
    pub lag: u64,
}

/// Voters and learners.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Membership {
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
}

/// `GET /cluster/data/version`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct DataVersion {
    pub node_id: u64,
    pub applied_index: u64,
    pub hash: String,
    #[serde(default)]
    pub counts: Option<Counts>,
}

/// Message, channel and user counts of a node's IM state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Counts {
    pub messages: u64,
    pub channels: u64,
    pub users: u64,
}

/// `POST /cluster/snapshot`'s answer.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct SnapshotBuilt {
    pub index: Option<u64>,
    pub term: Option<u64>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub duration_ms: Option<u64>,
}

/// `GET /cluster/status`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct ClusterStatus {
    pub status: String,
    pub leader: Option<u64>,
    pub term: u64,
    pub quorum: usize,
    pub members: Vec<u64>,
    pub online: usize,
    #[serde(default)]
    pub lagging: Vec<Value>,
}

impl NodeApi {
    /// A client for `inv`, with the manager token from `cluster.managerTokenFile` when set.
    pub fn new(inv: &Inventory, timeout: Duration) -> Result<NodeApi, TokenFileError> {
        let token = match &inv.cluster.manager_token_file {
            Some(file) => Some(read_token(file)?),
            None => None,
        };
        Ok(NodeApi::with_token(token, timeout))
    }

    /// A client for long transfers (snapshot downloads): no overall deadline, but each read
    /// must make progress within `idle`.
    pub fn for_transfers(inv: &Inventory, idle: Duration) -> Result<NodeApi, TokenFileError> {
        let mut api = NodeApi::new(inv, idle)?;
        api.http = reqwest::Client::builder()
            .read_timeout(idle)
            .connect_timeout(idle.min(Duration::from_secs(5)))
            .no_proxy()
            .build()
            .expect("a reqwest client with timeouts builds");
        Ok(api)
    }

    /// A client with an explicit token (or none).
    pub fn with_token(token: Option<String>, timeout: Duration) -> NodeApi {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .no_proxy()
            .build()
            .expect("a reqwest client with timeouts builds");
        NodeApi { http, token }
    }

    fn url(node: &Node, path: &str) -> String {
        format!("{}{}", node.api_url(), path)
    }

    async fn send(
        &self,
        node: &Node,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, NodeError> {
        self.send_to(node, Self::url(node, path), method, path, body)
            .await
    }

    async fn send_to(
        &self,
        node: &Node,
        url: String,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, NodeError> {
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.header("token", t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|source| NodeError::Unreachable {
            node: node.id,
            url: url.clone(),
            source,
        })?;
        let status = resp.status().as_u16();
        if status == 401 {
            return Err(NodeError::Unauthorized {
                node: node.id,
                path: path.into(),
            });
        }
        if !(200..300).contains(&status) {
            let body = resp.text().await.unwrap_or_default();
            return Err(NodeError::Status {
                node: node.id,
                path: path.into(),
                status,
                body: body.chars().take(500).collect(),
            });
        }
        Ok(resp)
    }

    async fn json<T: DeserializeOwned>(
        &self,
        node: &Node,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, NodeError> {
        let resp = self.send(node, method, path, body).await?;
        Self::parse(node, path, resp).await
    }

    /// Reads a JSON answer.
    async fn parse<T: DeserializeOwned>(
        node: &Node,
        path: &str,
        resp: reqwest::Response,
    ) -> Result<T, NodeError> {
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| NodeError::Unreachable {
                node: node.id,
                url: Self::url(node, path),
                source,
            })?;
        serde_json::from_slice(&bytes).map_err(|e| NodeError::BadAnswer {
            node: node.id,
            path: path.into(),
            reason: e.to_string(),
        })
    }

    /// GET `path` as JSON.
    pub async fn get<T: DeserializeOwned>(&self, node: &Node, path: &str) -> Result<T, NodeError> {
        self.json(node, reqwest::Method::GET, path, None).await
    }

    /// POST `body` to `path`, JSON answer.
    pub async fn post<T: DeserializeOwned>(
        &self,
        node: &Node,
        path: &str,
        body: &Value,
    ) -> Result<T, NodeError> {
        self.json(node, reqwest::Method::POST, path, Some(body))
            .await
    }

    /// DELETE `path`, JSON answer.
    pub async fn delete<T: DeserializeOwned>(
        &self,
        node: &Node,
        path: &str,
    ) -> Result<T, NodeError> {
        self.json(node, reqwest::Method::DELETE, path, None).await
    }

    /// GET `path` as a raw response (for streaming downloads).
    pub async fn get_raw(&self, node: &Node, path: &str) -> Result<reqwest::Response, NodeError> {
        self.send(node, reqwest::Method::GET, path, None).await
    }

    /// `GET /health`: Ok when the node answers 200.
    pub async fn health(&self, node: &Node) -> Result<Value, NodeError> {
        self.get(node, "/health").await
    }

    /// `GET /cluster/raft/status`.
    pub async fn raft_status(&self, node: &Node) -> Result<RaftStatus, NodeError> {
        self.get(node, "/cluster/raft/status").await
    }

    /// `GET /cluster/status`.
    pub async fn cluster_status(&self, node: &Node) -> Result<ClusterStatus, NodeError> {
        self.get(node, "/cluster/status").await
    }

    /// `GET /cluster/nodes`.
    pub async fn nodes(&self, node: &Node) -> Result<Value, NodeError> {
        self.get(node, "/cluster/nodes").await
    }

    /// `POST /cluster/transfer-leadership {target_node}`.
    pub async fn transfer_leadership(&self, via: &Node, target: u64) -> Result<Value, NodeError> {
        self.post(
            via,
            "/cluster/transfer-leadership",
            &serde_json::json!({ "target_node": target }),
        )
        .await
    }

    /// `GET /cluster/nodes`, typed: the members as the leader (or this node) sees them.
    pub async fn nodes_view(&self, node: &Node) -> Result<NodesView, NodeError> {
        self.get(node, "/cluster/nodes").await
    }

    /// `GET /varz` with the node's clock: the HTTP `Date` header against this machine's
    /// clock at the request's midpoint.
    pub async fn varz(&self, node: &Node) -> Result<Dated<Varz>, NodeError> {
        let path = "/varz";
        let sent = SystemTime::now();
        let resp = self.send(node, reqwest::Method::GET, path, None).await?;
        let server_date = resp
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        let value = Self::parse(node, path, resp).await?;
        let received = SystemTime::now();
        let midpoint = sent + received.duration_since(sent).unwrap_or_default() / 2;
        Ok(Dated {
            value,
            server_date,
            local_midpoint: midpoint,
        })
    }

    /// `GET /cluster/data/version`: the IM state's hash, applied index and counts.
    pub async fn data_version(&self, node: &Node) -> Result<DataVersion, NodeError> {
        self.get(node, "/cluster/data/version").await
    }

    /// `GET /metrics` on the node's metrics port, as Prometheus text.
    pub async fn metrics_text(&self, node: &Node) -> Result<String, NodeError> {
        let path = "/metrics";
        let url = format!("http://{}{path}", node.metrics_target());
        let resp = self
            .send_to(node, url.clone(), reqwest::Method::GET, path, None)
            .await?;
        resp.text().await.map_err(|source| NodeError::Unreachable {
            node: node.id,
            url,
            source,
        })
    }

    /// `POST /cluster/sync/force`: returns once the node has applied the leader's commit index.
    pub async fn sync_force(&self, node: &Node) -> Result<Value, NodeError> {
        self.post(node, "/cluster/sync/force", &serde_json::json!({}))
            .await
    }

    /// `POST /cluster/snapshot`: builds a fresh snapshot on the node.
    pub async fn snapshot(&self, node: &Node) -> Result<SnapshotBuilt, NodeError> {
        let v: Value = self
            .post(node, "/cluster/snapshot", &serde_json::json!({}))
            .await?;
        serde_json::from_value(v.get("data").cloned().unwrap_or(v)).map_err(|e| {
            NodeError::BadAnswer {
                node: node.id,
                path: "/cluster/snapshot".into(),
                reason: e.to_string(),
            }
        })
    }

    /// `GET /cluster/snapshot/download`: the node's latest snapshot as a streaming response
    /// (metadata in its `x-wk-*` headers).
    pub async fn snapshot_download(&self, node: &Node) -> Result<reqwest::Response, NodeError> {
        self.get_raw(node, "/cluster/snapshot/download").await
    }

    /// Raft status of every node, in inventory order, errors kept per node.
    pub async fn raft_status_all<'a>(
        &self,
        nodes: &'a [Node],
    ) -> Vec<(&'a Node, Result<RaftStatus, NodeError>)> {
        let futs = nodes
            .iter()
            .map(|n| async move { (n, self.raft_status(n).await) });
        futures::future::join_all(futs).await
    }
}

/// `GET /cluster/nodes`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct NodesView {
    pub leader: Option<u64>,
    pub nodes: Vec<MemberView>,
}

/// One member in [`NodesView`].
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct MemberView {
    pub id: u64,
    pub addr: String,
    /// leader, follower, learner, candidate or offline.
    pub status: String,
    /// RFC 3339, when the leader last heard from it.
    pub last_heartbeat: Option<String>,
}

/// `GET /varz` (the fields wk-ops reads).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Varz {
    pub version: String,
    #[serde(default)]
    pub uptime_seconds: u64,
}

/// An answer with the node's clock reading.
#[derive(Debug, Clone)]
pub struct Dated<T> {
    pub value: T,
    /// The HTTP `Date` header (whole seconds), if the node sent one.
    pub server_date: Option<SystemTime>,
    /// This machine's clock halfway between sending and receiving.
    pub local_midpoint: SystemTime,
}

impl<T> Dated<T> {
    /// Node clock minus local clock, in seconds (None without a `Date` header). The header has
    /// whole seconds, so a reading is exact to about one second.
    pub fn skew_secs(&self) -> Option<f64> {
        let date = self.server_date?;
        Some(
            match date.duration_since(self.local_midpoint) {
                Ok(ahead) => ahead.as_secs_f64(),
                Err(behind) => -behind.duration().as_secs_f64(),
            } + 0.5,
        )
    }
}

/// Reads a secret file: its first line, trimmed.
pub fn read_token(file: &str) -> Result<String, TokenFileError> {
    let text = std::fs::read_to_string(file).map_err(|source| TokenFileError {
        file: file.into(),
        source,
    })?;
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}
