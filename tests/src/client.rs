//! A minimal WuKongIM TCP client built on our own codec (`wukongim::proto`), for tests that need
//! exact control over packets (versions, bad msgKeys, floods). The session logic (CONNECT keys,
//! cipher, clientSeq, sealed SENDs, RECVACKs) is `wukongim::proto::client`, shared with wk-bench.

use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wukongim::proto::client::{recvack_for, text_payload, ClientHello, ClientSession};
use wukongim::proto::{
    encode, ConnackPacket, Decoder, Packet, ReasonCode, RecvPacket, SendPacket, SendackPacket,
    SessionCipher,
};

pub struct WkClient {
    pub stream: TcpStream,
    pub version: u8,
    pub session: Option<ClientSession>,
    pub connack: Option<ConnackPacket>,
    buf: BytesMut,
    dec: Decoder,
}

impl WkClient {
    /// Opens a TCP connection (no CONNECT yet).
    pub async fn open(addr: &str, version: u8) -> WkClient {
        Self::try_open(addr, version)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn try_open(addr: &str, version: u8) -> Result<WkClient, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        Ok(WkClient {
            stream,
            version,
            session: None,
            connack: None,
            buf: BytesMut::new(),
            dec: Decoder::default(),
        })
    }

    /// Opens and CONNECTs; returns the CONNACK's reason code.
    pub async fn connect(
        addr: &str,
        uid: &str,
        token: &str,
        version: u8,
    ) -> (WkClient, ReasonCode) {
        Self::connect_device(addr, uid, token, version, 0, &format!("{uid}-dev")).await
    }

    pub async fn connect_device(
        addr: &str,
        uid: &str,
        token: &str,
        version: u8,
        device_flag: u8,
        device_id: &str,
    ) -> (WkClient, ReasonCode) {
        Self::try_connect_device(addr, uid, token, version, device_flag, device_id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`WkClient::connect`], but a refused or dropped connection (e.g. through a load
    /// balancer whose backend just died) is an error instead of a panic.
    pub async fn try_connect(
        addr: &str,
        uid: &str,
        token: &str,
        version: u8,
    ) -> Result<(WkClient, ReasonCode), String> {
        Self::try_connect_device(addr, uid, token, version, 0, &format!("{uid}-dev")).await
    }

    pub async fn try_connect_device(
        addr: &str,
        uid: &str,
        token: &str,
        version: u8,
        device_flag: u8,
        device_id: &str,
    ) -> Result<(WkClient, ReasonCode), String> {
        let mut c = Self::try_open(addr, version).await?;
        let (hello, p) = ClientHello::new(version, uid, token, device_flag, device_id);
        let b = encode(&p, version).expect("encode");
        c.stream
            .write_all(&b)
            .await
            .map_err(|e| format!("{addr}: write CONNECT: {e}"))?;
        match c.next(Duration::from_secs(10)).await {
            Some(Packet::Connack(ack)) => {
                let r = ack.reason_code;
                if r == ReasonCode::Success {
                    c.session = Some(hello.finish(&ack).expect("derive cipher"));
                }
                c.connack = Some(ack);
                Ok((c, r))
            }
            other => Err(format!("{addr}: expected CONNACK, got {other:?}")),
        }
    }

    pub async fn write(&mut self, p: &Packet) {
        let b = encode(p, self.version).expect("encode");
        self.stream.write_all(&b).await.expect("write");
    }

    pub async fn write_raw(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(b).await
    }

    /// Next packet within `timeout`; None on timeout or close.
    pub async fn next(&mut self, timeout: Duration) -> Option<Packet> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.dec.decode(&mut self.buf, self.version) {
                Ok(Some(p)) => return Some(p),
                Ok(None) => {}
                Err(e) => panic!("client failed to decode server packet: {e}"),
            }
            self.buf.reserve(4096);
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    /// The next RECV within `timeout`, skipping other packets; panics when none comes.
    pub async fn next_recv(&mut self, timeout: Duration) -> RecvPacket {
        match self
            .next_matching(timeout, |p| matches!(p, Packet::Recv(_)))
            .await
        {
            Packet::Recv(r) => r,
            _ => unreachable!("matched a RECV"),
        }
    }

    /// The next SENDACK within `timeout`, skipping other packets; panics when none comes.
    pub async fn next_sendack(&mut self, timeout: Duration) -> SendackPacket {
        match self
            .next_matching(timeout, |p| matches!(p, Packet::Sendack(_)))
            .await
        {
            Packet::Sendack(a) => a,
            _ => unreachable!("matched a SENDACK"),
        }
    }

    async fn next_matching(&mut self, timeout: Duration, want: fn(&Packet) -> bool) -> Packet {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(p) if want(&p) => return p,
                Some(_) => continue,
                None => panic!("no such packet within {timeout:?}"),
            }
        }
    }

    /// Is the connection closed by the server within `timeout` (skipping other packets)?
    pub async fn closed_within(&mut self, timeout: Duration) -> Vec<Packet> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                panic!("connection still open after {timeout:?}; got {seen:?}");
            }
            match self.next(left).await {
                Some(p) => seen.push(p),
                None => return seen,
            }
        }
    }

    /// The session cipher (panics before a successful CONNECT).
    pub fn cipher(&self) -> &SessionCipher {
        &self.session.as_ref().expect("connected").cipher
    }

    /// Builds an encrypted SEND of a text message.
    pub fn text_packet(
        &mut self,
        channel: &str,
        channel_type: u8,
        text: &str,
        client_msg_no: &str,
    ) -> SendPacket {
        self.session.as_mut().expect("connected").send_packet(
            channel,
            channel_type,
            &text_payload(text),
            client_msg_no,
        )
    }

    /// Sends a text message; returns its clientSeq.
    pub async fn send_text(&mut self, channel: &str, channel_type: u8, text: &str) -> u32 {
        let no = format!("{:032x}", rand::random::<u128>());
        let p = self.text_packet(channel, channel_type, text, &no);
        let seq = p.client_seq;
        self.write(&Packet::Send(p)).await;
        seq
    }

    /// Decrypts a RECV's payload and returns its "content" text (checks msgKey).
    pub fn recv_text(&self, r: &RecvPacket) -> String {
        let plain = self
            .cipher()
            .open_recv(r)
            .expect("RECV msgKey/payload valid");
        let v: serde_json::Value = serde_json::from_slice(&plain).expect("payload is JSON");
        v["content"].as_str().unwrap_or_default().to_string()
    }

    /// Acknowledges a RECV.
    pub async fn ack(&mut self, r: &RecvPacket) {
        self.write(&recvack_for(r)).await;
    }
}
