//! wk-ops: the operator tool for wukongim clusters. One inventory file describes the fleet;
//! `render` compiles it into node configs, systemd units, load balancer and monitoring configs.
//! The binary (`main.rs`) only calls [`cli::run`].

pub mod backup;
pub mod check;
pub mod cli;
pub mod health;
pub mod inventory;
pub mod node_api;
pub mod remote;
pub mod render;
pub mod rolling;
pub mod scale;
pub mod secrets;
pub mod ssh;
pub mod status;
pub mod upgrade;
pub mod wait;
pub mod yaml;
