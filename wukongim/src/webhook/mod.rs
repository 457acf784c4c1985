//! Webhooks to the app server, as WuKongIM (Go) sends them: each event is a POST of JSON to
//! `webhook.httpAddr?event=<name>`.
//!
//! - `msg.notify`: every stored message, batched (`msgNotifyEventCountPerPush` per request,
//!   every `msgNotifyEventPushInterval`), from the Raft leader only (`notify.rs`).
//! - `msg.offline`: one request per message whose recipients include users connected to no node,
//!   naming them in `to_uids`; also from the leader only, after a cluster-wide presence query.
//! - `user.onlinestatus`: connects and disconnects, from the node that holds the connection
//!   (`presence.rs`).
//!
//! Every node keeps the messages it applied in a bounded [`Feed`]; the leader posts from it and
//! proposes a replicated cursor (the Raft index posted up to), so a new leader resumes after the
//! old one's cursor: at-least-once, duplicates only around a leader change.

mod body;
mod feed;
mod metrics;
mod notify;
mod post;
mod presence;
mod replay;

pub use feed::Feed;
pub use metrics::WebhookMetrics;
pub use presence::PresenceQueue;

use crate::config::Webhook as Config;
use crate::core::Core;
use std::sync::Arc;

/// Event names, as Go spells them.
pub const MSG_NOTIFY: &str = "msg.notify";
pub const MSG_OFFLINE: &str = "msg.offline";
pub const ONLINE_STATUS: &str = "user.onlinestatus";
const EVENTS: [&str; 3] = [MSG_NOTIFY, MSG_OFFLINE, ONLINE_STATUS];

/// Bytes of applied messages a node keeps for the webhooks before dropping the oldest.
pub const FEED_MAX_BYTES: usize = 64 << 20;

/// Problems in the `webhook` section (key path, message).
pub fn config_problems(c: &Config) -> Vec<(&'static str, String)> {
    let mut p = Vec::new();
    let addr = c.http_addr.trim();
    if !addr.is_empty() {
        match addr.strip_prefix("http://") {
            None if addr.starts_with("https://") => p.push((
                "webhook.httpAddr",
                format!(
                    "`{addr}`: https is not supported; use http:// (e.g. through a local proxy)"
                ),
            )),
            None => p.push((
                "webhook.httpAddr",
                format!("`{addr}` must start with http://"),
            )),
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                p.push(("webhook.httpAddr", format!("`{addr}` names no host")))
            }
            Some(_) => {}
        }
        if addr.contains('?') || addr.contains('#') {
            p.push((
                "webhook.httpAddr",
                format!("`{addr}` must not hold a query or fragment (`?event=` is appended)"),
            ));
        }
    }
    if c.msg_notify_event_push_interval.0.is_zero() {
        p.push((
            "webhook.msgNotifyEventPushInterval",
            "must be positive".into(),
        ));
    }
    if c.msg_notify_event_count_per_push == 0 {
        p.push((
            "webhook.msgNotifyEventCountPerPush",
            "must be at least 1".into(),
        ));
    }
    if c.msg_notify_event_retry_max_count == 0 {
        p.push((
            "webhook.msgNotifyEventRetryMaxCount",
            "must be at least 1".into(),
        ));
    }
    for e in &c.focus_events {
        if !EVENTS.contains(&e.as_str()) {
            p.push((
                "webhook.focusEvents",
                format!("unknown event `{e}` (known: {})", EVENTS.join(", ")),
            ));
        }
    }
    p
}

/// The webhook side of a node, created before the cluster starts (the state machine fills the
/// feed) and started once the write path runs.
pub struct Webhooks {
    pub config: Config,
    pub feed: Option<Arc<Feed>>,
    pub presence: Option<Arc<PresenceQueue>>,
    pub metrics: Arc<WebhookMetrics>,
}

impl Webhooks {
    /// What `config` turns on (nothing when `httpAddr` is unset).
    pub fn new(config: &Config) -> Webhooks {
        let metrics = Arc::new(WebhookMetrics::default());
        let msgs = config.on(MSG_NOTIFY) || config.on(MSG_OFFLINE);
        Webhooks {
            config: config.clone(),
            feed: msgs.then(|| Arc::new(Feed::new(FEED_MAX_BYTES, metrics.clone()))),
            presence: config
                .on(ONLINE_STATUS)
                .then(|| Arc::new(PresenceQueue::new(metrics.clone()))),
            metrics,
        }
    }

    /// Starts the posting tasks; they end with `shutdown`.
    pub fn start(
        &self,
        core: &Core,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<()> {
        if self.feed.is_none() && self.presence.is_none() {
            return Ok(());
        }
        let poster = Arc::new(post::Poster::new(&self.config, self.metrics.clone())?);
        tracing::info!(url = %self.config.http_addr.trim(), "webhooks on");
        if let Some(feed) = &self.feed {
            // What this node applied before it started is read back from the log (`replay.rs`).
            let applied = *core.cluster.applied.borrow();
            let store = &core.cluster.store;
            let refilled = store
                .webhook_cursor()
                .map_err(anyhow::Error::from)
                .and_then(|cursor| replay::refill(store, feed, cursor, applied));
            match refilled {
                Ok(n) => tracing::info!(messages = n, "webhook queue refilled from the log"),
                Err(e) => {
                    tracing::error!(error = %e, "webhook queue not refilled: messages applied before the start are a gap");
                    feed.mark_gap(applied);
                }
            }
            tokio::spawn(notify::run(
                notify::Loop {
                    core: core.clone(),
                    feed: feed.clone(),
                    poster: poster.clone(),
                    config: self.config.clone(),
                    metrics: self.metrics.clone(),
                },
                shutdown.clone(),
            ));
        }
        if let Some(q) = &self.presence {
            core.hub.watch_presence(q.clone());
            tokio::spawn(presence::run(q.clone(), poster, shutdown));
        }
        Ok(())
    }
}
