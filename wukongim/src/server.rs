//! Starting and stopping a node: logging, storage, write path, the four listeners (TCP, WS,
//! HTTP API, manager), systemd notification and signal-driven graceful shutdown.

use crate::app::App;
use crate::cli::Args;
use crate::config::Loaded;
use crate::core::{Core, Hub};
use crate::gateway::Traffic;
use crate::metrics::NodeMetrics;
use crate::store::Store;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Runs a node until SIGTERM/SIGINT (blocking).
pub fn main(args: Args, loaded: Loaded) -> Result<()> {
    if args.daemon {
        return crate::daemon::spawn_background(&args, &loaded.config);
    }
    crate::logging::init(&loaded.config, &args.log_format)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    for d in crate::config::open_doors(&loaded.config) {
        tracing::warn!(setting = d.setting, "insecure setting: {}", d.message);
    }
    for k in crate::config::ineffective_keys(&loaded.config) {
        tracing::warn!("{k}");
    }
    for u in &loaded.unsupported {
        tracing::warn!("{u}");
    }
    // `cluster.workerCount` is the number of async worker threads.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(loaded.config.cluster.worker_count.max(1) as usize)
        .enable_all()
        .thread_name("wukongim")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let node = Node::start(loaded).await?;
        node.wait_for_signal().await;
        node.shutdown().await;
        Ok(())
    })
}

/// Handles of a started node.
pub struct Node {
    pub app: Arc<App>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Node {
    /// Opens storage, binds every listener and starts serving.
    pub async fn start(loaded: Loaded) -> Result<Node> {
        let config = loaded.config;
        let manager_token = config
            .resolve_manager_token()
            .context("reading the manager token")?;
        let manager_token = Arc::new(crate::manager_token::ManagerToken::new(
            manager_token,
            config.manager_token_file.clone(),
        ));
        let root = config.root_dir.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&root))
            .await?
            .with_context(|| format!("opening storage in rootDir {}", config.root_dir.display()))?;
        let shutdown = tokio_util::sync::CancellationToken::new();
        let hub = Hub::with_pending_limit(config.conn.max_pending_bytes.0 as usize);
        let webhooks = crate::webhook::Webhooks::new(&config.webhook);
        let cluster = crate::cluster::Cluster::start(
            config.clone(),
            store.clone(),
            hub.clone(),
            webhooks.feed.clone(),
            shutdown.clone(),
        )
        .await?;
        let proposer = crate::cluster::Proposer::start(cluster.clone());
        let acks =
            crate::core::acks::AckRelay::start(proposer.clone(), cluster.clone(), shutdown.clone());
        let core = Core {
            hub,
            cluster,
            proposer,
            acks,
        };
        webhooks.start(&core, shutdown.clone())?;
        let bind = |key: &'static str, addr: String| async move {
            TcpListener::bind(&addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (config key `{key}`)"))
        };
        let tcp = bind("addr", config.tcp_listen()).await?;
        let ws = bind("wsAddr", config.ws_listen()).await?;
        let http = bind("httpAddr", config.http_listen()).await?;
        let manager = if config.manager.on {
            Some(bind("manager.addr", config.manager.addr.clone()).await?)
        } else {
            None
        };
        let traffic = Traffic::default();
        let raft_gauges = crate::cluster::RaftGauges::default();
        let memory = crate::memguard::MemoryGuard::new(config.cluster.max_memory_usage.0);
        let registry = crate::metrics::registry(crate::metrics::Sources {
            node_id: config.cluster.node_id,
            raft: &raft_gauges,
            peers: &core.cluster.peer_latency,
            writes: &core.proposer.stats,
            snapshots: &core.cluster.snapshots,
            store: &store.metrics,
            hub: &core.hub.metrics,
            traffic: &traffic,
            config: &config,
            memory: &memory,
            webhook: &webhooks.metrics,
        });
        let app = Arc::new(App {
            node_id: config.cluster.node_id,
            config,
            store,
            core,
            manager_token,
            traffic,
            metrics: NodeMetrics {
                registry,
                raft: raft_gauges,
            },
            started: Instant::now(),
            draining: Default::default(),
            memory,
            shutdown,
        });
        let mut tasks = Vec::new();
        tracing::info!(
            node_id = app.node_id,
            tcp = %tcp.local_addr()?, ws = %ws.local_addr()?, http = %http.local_addr()?,
            "wukongim listening"
        );
        tasks.push(tokio::spawn(crate::gateway::serve_tcp(app.clone(), tcp)));
        tasks.push(tokio::spawn(crate::gateway::serve_ws(app.clone(), ws)));
        tasks.push(tokio::spawn(serve_http(
            app.clone(),
            http,
            crate::api::router(app.clone()),
        )));
        if let Some(m) = manager {
            tasks.push(tokio::spawn(serve_http(
                app.clone(),
                m,
                crate::metrics::router(app.clone()),
            )));
        }
        tasks.push(tokio::spawn(crate::lifecycle::notify_ready(app.clone())));
        tasks.push(tokio::spawn(crate::lifecycle::watchdog(app.clone())));
        tasks.push(tokio::spawn(crate::logging::reopen_on_sighup()));
        tasks.push(tokio::spawn(
            app.manager_token
                .clone()
                .reload_on_sighup(app.shutdown.clone()),
        ));
        tasks.push(tokio::spawn(app.memory.clone().run(app.shutdown.clone())));
        Ok(Node { app, tasks })
    }

    /// Waits for SIGTERM or SIGINT.
    pub async fn wait_for_signal(&self) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        tokio::select! {
            _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {
                tracing::info!("SIGTERM received, draining");
            }
            _ = async { match int.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {
                tracing::info!("SIGINT received, draining");
            }
            _ = self.app.shutdown.cancelled() => {}
        }
    }

    /// Graceful drain: hand leadership away, let queued writes finish, stop Raft, then close
    /// client connections (no DISCONNECT: SDKs would take it as a kick and not reconnect).
    /// Raft stops before clients go so that every message this node applies is pushed to a
    /// client still connected; what it has not applied yet is applied after the restart and
    /// kept pending for its recipients. SENDs arriving meanwhile go unanswered (the SDK
    /// resends them after reconnecting; clientMsgNo deduplicates). Storage is flushed at every
    /// commit. Bounded in time.
    pub async fn shutdown(self) {
        crate::lifecycle::notify_stopping();
        let app = &self.app;
        let cluster = &app.core.cluster;
        cluster.hand_over_leadership().await;
        app.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        // Writes already queued finish before Raft stops.
        crate::core::wait_until(Duration::from_secs(5), || app.core.proposer.pending() == 0).await;
        cluster.shutdown().await;
        // Applies commit without their own fsync (store/raft.rs): make them durable now, so a
        // clean restart re-applies nothing.
        let store = app.store.clone();
        match tokio::task::spawn_blocking(move || store.sync()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "final store sync failed"),
            Err(e) => tracing::warn!(error = %e, "final store sync failed"),
        }
        app.core.hub.close_all();
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.shutdown.cancel();
        for t in self.tasks {
            t.abort();
        }
        tracing::info!(node_id = app.node_id, "stopped");
    }
}

async fn serve_http(app: Arc<App>, listener: TcpListener, router: axum::Router) {
    let stop = app.shutdown.clone();
    let res = axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = res {
        tracing::error!(error = %e, "http listener failed");
    }
}
