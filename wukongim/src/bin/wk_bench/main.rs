//! wk-bench: load generator for wukongim. Two modes:
//! - HTTP (`--target wukongim|etcd`, [`http`]): closed-loop POST /message/send or etcd puts, the
//!   anchor comparison of bench/run.sh;
//! - WuKongIM protocol (`--target wkproto`, [`workload`]): N clients over TCP or WebSocket doing
//!   what the SDK does (CONNECT with DH, AES payloads, SEND, RECV + RECVACK), person, group or
//!   idle workloads, fixed-rate or closed-loop senders; reports send→SENDACK and send→RECV
//!   latency percentiles and throughput ([`stats`]).

mod args;
mod http;
mod stats;
mod wire;
mod workload;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args::Args::parse();
    anyhow::ensure!(!a.endpoints.is_empty(), "--endpoints is required");
    if a.target == "wkproto" {
        workload::run(&a).await
    } else {
        http::run(&a).await
    }
}
