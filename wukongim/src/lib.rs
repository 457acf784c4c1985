//! wukongim: a WuKongIM-compatible IM server. The binary in `main.rs` only hands over to
//! [`cli::main`]; everything else lives here so tests can drive it.

pub mod api;
pub mod app;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod core;
pub mod daemon;
pub mod fsutil;
pub mod gateway;
pub mod lifecycle;
pub mod logging;
pub mod manager_token;
pub mod memguard;
pub mod metrics;
pub mod proto;
pub mod restore;
pub mod secret;
pub mod server;
pub mod store;
pub mod webhook;
