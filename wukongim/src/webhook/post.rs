//! The HTTP side: `POST <httpAddr>?event=<name>` with a JSON body; anything but 200 is a
//! failure. Retries with bounded backoff, up to `msgNotifyEventRetryMaxCount` attempts (Go's
//! limit), then the request is given up and counted.

use super::WebhookMetrics;
use crate::config::Webhook as Config;
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// First wait after a failure; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Posts events to the app server.
pub struct Poster {
    client: reqwest::Client,
    base: String,
    attempts: u32,
    metrics: Arc<WebhookMetrics>,
}

impl Poster {
    pub fn new(config: &Config, metrics: Arc<WebhookMetrics>) -> anyhow::Result<Poster> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .context("creating the webhook HTTP client")?;
        Ok(Poster {
            client,
            base: config.http_addr.trim().to_string(),
            attempts: config.msg_notify_event_retry_max_count.max(1),
            metrics,
        })
    }

    /// One attempt.
    async fn once(&self, event: &str, body: &[u8]) -> Result<(), String> {
        let resp = self
            .client
            .post(format!("{}?event={event}", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match resp.status().as_u16() {
            200 => Ok(()),
            s => Err(format!("status {s}")),
        }
    }

    /// Posts with retries; false when every attempt failed (or `stop` fired).
    pub async fn post(&self, event: &'static str, body: &[u8], stop: &CancellationToken) -> bool {
        let mut wait = FIRST_BACKOFF;
        for attempt in 1..=self.attempts {
            match self.once(event, body).await {
                Ok(()) => {
                    self.metrics.delivered(event);
                    return true;
                }
                Err(e) => {
                    tracing::warn!(event, attempt, error = %e, url = %self.base, "webhook request failed");
                }
            }
            if attempt == self.attempts {
                break;
            }
            self.metrics.retried(event);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => return false,
            }
            wait = (wait * 2).min(MAX_BACKOFF);
        }
        self.metrics.failed(event);
        tracing::error!(
            event,
            attempts = self.attempts,
            "webhook request given up (webhook.msgNotifyEventRetryMaxCount)"
        );
        false
    }
}
