//! Webhook metrics: requests delivered, requests given up, retries, messages queued and dropped,
//! ranges a new leader could not post.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type ByEvent = Family<[(&'static str, &'static str); 1], Counter>;

/// Counters of the webhook side of a node.
#[derive(Debug, Default)]
pub struct WebhookMetrics {
    delivered: ByEvent,
    failed: ByEvent,
    retries: ByEvent,
    /// Messages in the feed not yet posted (leader) or not yet covered by the cursor.
    pub queued: Gauge,
    /// Messages or presence changes dropped because their bounded queue was full.
    pub dropped: Counter,
    /// Leaderships taken over with messages after the cursor this node never queued.
    pub gaps: Counter,
}

impl WebhookMetrics {
    pub fn delivered(&self, event: &'static str) {
        self.delivered.get_or_create(&[("event", event)]).inc();
    }
    pub fn failed(&self, event: &'static str) {
        self.failed.get_or_create(&[("event", event)]).inc();
    }
    pub fn retried(&self, event: &'static str) {
        self.retries.get_or_create(&[("event", event)]).inc();
    }

    pub fn register(&self, r: &mut Registry) {
        r.register(
            "wukongim_webhook_delivered",
            "Webhook requests the app server answered with 200, by event.",
            self.delivered.clone(),
        );
        r.register(
            "wukongim_webhook_failed",
            "Webhook requests given up after webhook.msgNotifyEventRetryMaxCount attempts.",
            self.failed.clone(),
        );
        r.register(
            "wukongim_webhook_retries",
            "Webhook attempts that failed and were retried.",
            self.retries.clone(),
        );
        r.register(
            "wukongim_webhook_queued",
            "Messages waiting for their msg.notify / msg.offline webhook.",
            self.queued.clone(),
        );
        r.register(
            "wukongim_webhook_dropped",
            "Messages or presence changes dropped because the webhook queue was full.",
            self.dropped.clone(),
        );
        r.register(
            "wukongim_webhook_gaps",
            "Times this node took over webhook posting while missing messages after the cursor \
             (applied before its restart or a snapshot install); they are not posted.",
            self.gaps.clone(),
        );
    }
}
