//! Command line of wk-bench. The HTTP mode (`--target wukongim|etcd`) keeps the flags
//! bench/run.sh uses; `--target wkproto` drives the WuKongIM binary protocol with the extra flags
//! below (those the HTTP mode ignores).

use clap::{Parser, ValueEnum};
use std::time::Duration;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "wk-bench",
    about = "Load generator for wukongim: HTTP writes (vs etcd) or WuKongIM protocol clients"
)]
pub struct Args {
    /// `wukongim` (HTTP /message/send), `etcd` (v3 JSON gateway put) or `wkproto` (WuKongIM
    /// protocol clients over TCP or WebSocket, DH + AES on).
    #[arg(long, value_parser = ["wukongim", "etcd", "wkproto"])]
    pub target: String,
    /// host:port endpoints (comma separated); workers/clients are spread over them round-robin.
    /// For wkproto: the TCP or WebSocket listeners (`addr` / `wsAddr`).
    #[arg(long, value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// HTTP mode: concurrent closed-loop workers.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// HTTP mode: requests in all.
    #[arg(long, default_value_t = 20000)]
    pub total: u64,
    /// Payload bytes per message/value.
    #[arg(long, default_value_t = 256)]
    pub size: usize,

    /// wkproto: `tcp` or `ws`.
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    pub transport: Transport,
    /// wkproto: the HTTP API (host:port) used to create the groups.
    #[arg(long, default_value = "127.0.0.1:5001")]
    pub api: String,
    /// wkproto: `person` (client 2k and 2k+1 message each other), `group` (`--groups` groups of
    /// `--members`, `--online` of them connected, `--senders` of those sending) or `idle`
    /// (connections only, held for `--duration`).
    #[arg(long, value_enum, default_value_t = Workload::Person)]
    pub workload: Workload,
    /// wkproto person/idle: connections.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// wkproto group: number of groups.
    #[arg(long, default_value_t = 1)]
    pub groups: usize,
    /// wkproto group: subscribers per group.
    #[arg(long, default_value_t = 100)]
    pub members: usize,
    /// wkproto group: members per group that connect (the first ones).
    #[arg(long, default_value_t = 100)]
    pub online: usize,
    /// wkproto group: online members per group that send (the first ones).
    #[arg(long, default_value_t = 1)]
    pub senders: usize,
    /// wkproto: messages per second over all senders (fixed rate, open loop); 0 = closed loop
    /// with `--inflight` unacknowledged SENDs per sender.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// wkproto closed loop: SENDs each sender keeps in flight.
    #[arg(long, default_value_t = 1)]
    pub inflight: usize,
    /// wkproto: seconds of load before measuring.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// wkproto: measured window (for `idle`: how long the connections are held).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// wkproto: connections opened at once while connecting.
    #[arg(long, default_value_t = 200)]
    pub connect_parallel: usize,
    /// wkproto: skip msgKey check + AES decryption of RECVs (latency comes from clientMsgNo
    /// either way).
    #[arg(long)]
    pub no_verify: bool,
    /// wkproto: protocol version announced in CONNECT.
    #[arg(long, default_value_t = 4)]
    pub proto_version: u8,
    /// wkproto: prefix of uids and group ids (defaults to a random one, so runs never collide).
    #[arg(long)]
    pub prefix: Option<String>,
    /// wkproto: file created once every client is connected (scripts sample the server then).
    #[arg(long)]
    pub ready_file: Option<std::path::PathBuf>,
    /// wkproto: pids of the server processes (same machine) whose CPU time (user + system, from
    /// /proc) is read at the start and end of the window, so rates can be given per CPU-second
    /// the servers actually got (the machine may be shared).
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// wkproto: print one JSON line instead of the text summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Ws,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Person,
    Group,
    Idle,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Ws => "ws",
        }
    }
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Person => "person",
            Workload::Group => "group",
            Workload::Idle => "idle",
        }
    }
}
