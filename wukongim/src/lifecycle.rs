//! systemd integration and graceful drain. READY=1 once listeners are bound and the node sees a
//! leader (or, without a quorum yet, after a bounded wait with STATUS saying so); STATUS= lines
//! with role, term and leader; WATCHDOG=1 only while the event loop and the Raft core both
//! answer; STOPPING=1 on shutdown. All notifications are no-ops outside systemd.

use crate::app::App;
use openraft::type_config::async_runtime::WatchReceiver;
use sd_notify::NotifyState;
use std::sync::Arc;
use std::time::Duration;

/// One-line status: role, term, leader.
pub fn status_line(app: &App) -> String {
    let m = app.core.cluster.raft.metrics().borrow_watched().clone();
    match m.current_leader {
        Some(l) => format!(
            "node {}: {:?}, term {}, leader {l}",
            app.node_id, m.state, m.current_term
        )
        .to_lowercase(),
        None => format!(
            "node {}: {:?}, term {}, no leader yet (waiting for a raft quorum)",
            app.node_id, m.state, m.current_term
        )
        .to_lowercase(),
    }
}

/// Sends READY=1 once the node has joined or formed the cluster, or after `3 × election timeout`
/// with a STATUS explaining that there is no quorum yet; then keeps STATUS current.
pub async fn notify_ready(app: Arc<App>) {
    let cluster = &app.core.cluster;
    crate::core::wait_until(app.config.election_timeout() * 3, || {
        cluster.leader().is_some()
    })
    .await;
    let mut status = status_line(&app);
    let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
    tracing::info!(status = %status, "ready");
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = app.shutdown.cancelled() => return,
        }
        let now = status_line(&app);
        if now != status {
            let _ = sd_notify::notify(&[NotifyState::Status(&now)]);
            status = now;
        }
    }
}

/// Tells systemd the node is stopping.
pub fn notify_stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// Pings the watchdog at half its interval while the event loop and the Raft core respond.
pub async fn watchdog(app: Arc<App>) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let period = interval / 2;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = app.shutdown.cancelled() => return,
        }
        // The Raft core answers a state query, and the write queue is not wedged full.
        let core_alive =
            tokio::time::timeout(period, app.core.cluster.raft.with_raft_state(|_| ()))
                .await
                .is_ok_and(|r| r.is_ok());
        let queue_ok = app.core.proposer.pending() < app.config.cluster.queue_size as usize;
        if core_alive && queue_ok {
            let _ = sd_notify::notify(&[NotifyState::Watchdog]);
        } else {
            tracing::warn!(
                core_alive,
                queue_ok,
                "watchdog: node unhealthy, not pinging"
            );
        }
    }
}
