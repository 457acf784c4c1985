//! Client traffic figures the sessions update: packets by type, messages, bytes, SEND → SENDACK
//! latency. Exported on /metrics; /varz reads the same counters.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Packet type names by type number (the frame header's high nibble).
const PACKET_NAMES: [&str; 13] = [
    "",
    "connect",
    "connack",
    "send",
    "sendack",
    "recv",
    "recvack",
    "ping",
    "pong",
    "disconnect",
    "sub",
    "suback",
    "event",
];

/// Counters by packet type, one family with a `type` label.
#[derive(Debug)]
pub struct PacketCounters {
    family: Family<[(&'static str, &'static str); 1], Counter>,
    /// The family's counters indexed by type number, for the hot path.
    by_type: Vec<Counter>,
}

impl Default for PacketCounters {
    fn default() -> Self {
        let family: Family<_, Counter> = Family::default();
        let by_type = PACKET_NAMES
            .iter()
            .skip(1)
            .map(|n| family.get_or_create(&[("type", *n)]).clone())
            .collect();
        PacketCounters { family, by_type }
    }
}

impl PacketCounters {
    /// Counts one packet of type number `t`; numbers without a name are not counted.
    pub fn inc(&self, t: u8) {
        if let Some(c) = (t as usize)
            .checked_sub(1)
            .and_then(|i| self.by_type.get(i))
        {
            c.inc();
        }
    }
}

/// Traffic counters shared by the gateways, /varz and /metrics.
#[derive(Debug)]
pub struct Traffic {
    pub packets_in: PacketCounters,
    pub packets_out: PacketCounters,
    /// SEND received → SENDACK written.
    pub send_ack: Histogram,
    pub in_msgs: Counter,
    pub out_msgs: AtomicU64,
    pub in_bytes: Counter,
    pub out_bytes: Counter,
    pub connects: AtomicU64,
    /// The client connection cap.
    pub admission: super::admission::Admission,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            packets_in: PacketCounters::default(),
            packets_out: PacketCounters::default(),
            send_ack: crate::metrics::latency_histogram(),
            in_msgs: Counter::default(),
            out_msgs: AtomicU64::new(0),
            in_bytes: Counter::default(),
            out_bytes: Counter::default(),
            connects: AtomicU64::new(0),
            admission: Default::default(),
        }
    }
}

impl Traffic {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "wukongim_packets_received",
            "Client packets received by type.",
            self.packets_in.family.clone(),
        );
        r.register(
            "wukongim_packets_sent",
            "Client packets sent by type.",
            self.packets_out.family.clone(),
        );
        let counters = [
            (
                "wukongim_messages_sent",
                "Messages accepted from senders on this node.",
                &self.in_msgs,
            ),
            (
                "wukongim_received_bytes",
                "Bytes received from clients.",
                &self.in_bytes,
            ),
            (
                "wukongim_sent_bytes",
                "Bytes sent to clients.",
                &self.out_bytes,
            ),
        ];
        for (name, help, c) in counters {
            r.register(name, help, c.clone());
        }
        r.register(
            "wukongim_client_connections_refused",
            "Client connections refused because conn.maxConnections were open.",
            self.admission.refused.clone(),
        );
        r.register(
            "wukongim_send_ack_duration_seconds",
            "Time from SEND received to SENDACK sent.",
            self.send_ack.clone(),
        );
    }
}
