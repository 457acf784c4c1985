//! The SSH options every command that reaches nodes shares (`--known-hosts`,
//! `--accept-new-host-keys`, `--connect-timeout`).

use crate::remote::RemoteOptions;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// known_hosts file for SSH host keys (default: OpenSSH's, ~/.ssh/known_hosts).
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Trust and record host keys of hosts seen for the first time (changed keys are still
    /// refused).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Seconds to connect and authenticate over SSH.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub connect_timeout: u64,
}

impl RemoteArgs {
    pub fn options(&self) -> RemoteOptions {
        RemoteOptions {
            known_hosts: self.known_hosts.clone(),
            accept_new_host_keys: self.accept_new_host_keys,
            connect_timeout: Duration::from_secs(self.connect_timeout.max(1)),
            ..RemoteOptions::default()
        }
    }
}
