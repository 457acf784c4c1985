//! systemd integration: READY=1 once serving, STATUS= lines, WATCHDOG=1 while the event loop
//! and the write path respond, STOPPING=1 on shutdown. All calls are no-ops outside systemd.

use crate::app::App;
use sd_notify::NotifyState;
use std::sync::Arc;
use std::time::Duration;

/// Tells systemd the node is serving.
pub fn notify_ready(app: &App) {
    let status = format!("node {} serving", app.node_id);
    let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// Tells systemd the node is stopping.
pub fn notify_stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// Pings the watchdog at half its interval while the write path answers within the interval.
pub async fn watchdog(app: Arc<App>) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let period = interval / 2;
    loop {
        tokio::time::sleep(period).await;
        if app.shutdown.is_cancelled() {
            return;
        }
        // A probe that goes through the event loop and the writer queue: if the writer is wedged
        // the queue stays full and we stop pinging, so systemd restarts us.
        let healthy = app.core.proposer.pending() < app.config.cluster.queue_size as usize
            && tokio::time::timeout(Duration::from_millis(100), tokio::task::yield_now()).await.is_ok();
        if healthy {
            let _ = sd_notify::notify(&[NotifyState::Watchdog]);
        } else {
            tracing::warn!("watchdog: write path stuck, not pinging");
        }
    }
}
