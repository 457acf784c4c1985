//! One benchmark client connection: TCP or WebSocket underneath, WuKongIM packets on top
//! (codec and session crypto from `wukongim::proto`). Reading is cancel-safe (bytes already read
//! stay in the buffer), so a client task can `select!` between reading and its send schedule.
//! Outgoing packets are queued and written by [`Conn::flush`]: on TCP as one write, on a
//! WebSocket one binary frame per packet (as the SDK does) and one flush.

use anyhow::{anyhow, bail, Context};
use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use wukongim::proto::client::{ClientHello, ClientSession};
use wukongim::proto::{encode_into, negotiate_version, Decoder, Packet};

use crate::args::Transport;

enum Io {
    Tcp(TcpStream),
    Ws(Box<WebSocketStream<TcpStream>>),
}

/// A connected client: its packet link and its session (cipher, clientSeq).
pub struct Conn {
    pub link: Link,
    pub session: ClientSession,
}

/// Packets over one transport, in the negotiated protocol version.
pub struct Link {
    io: Io,
    version: u8,
    inbuf: BytesMut,
    dec: Decoder,
    /// TCP: the bytes to write; WebSocket: unused.
    out: BytesMut,
    /// WebSocket: one frame per packet.
    frames: Vec<Bytes>,
}

impl Conn {
    /// Opens the transport to `endpoint` (host:port) and runs CONNECT/CONNACK as `uid`.
    pub async fn connect(
        transport: Transport,
        endpoint: &str,
        uid: &str,
        version: u8,
    ) -> anyhow::Result<Conn> {
        let tcp = TcpStream::connect(endpoint)
            .await
            .with_context(|| format!("connect {endpoint}"))?;
        tcp.set_nodelay(true)?;
        let io = match transport {
            Transport::Tcp => Io::Tcp(tcp),
            Transport::Ws => {
                let url = format!("ws://{endpoint}/");
                let (ws, _) = tokio_tungstenite::client_async(url.as_str(), tcp)
                    .await
                    .with_context(|| format!("WebSocket upgrade at {url}"))?;
                Io::Ws(Box::new(ws))
            }
        };
        let (hello, connect) = ClientHello::new(version, uid, "", 0, uid);
        let mut link = Link {
            io,
            version: negotiate_version(version),
            inbuf: BytesMut::with_capacity(4096),
            dec: Decoder::default(),
            out: BytesMut::new(),
            frames: Vec::new(),
        };
        link.queue(&connect)?;
        link.flush().await?;
        let ack = match link.next().await? {
            Some(Packet::Connack(ack)) => ack,
            other => bail!("{endpoint}: expected CONNACK for {uid}, got {other:?}"),
        };
        let session = hello
            .finish(&ack)
            .with_context(|| format!("{endpoint}: CONNECT as {uid}"))?;
        Ok(Conn { link, session })
    }
}

impl Link {
    /// Appends a packet to the outgoing queue.
    pub fn queue(&mut self, p: &Packet) -> anyhow::Result<()> {
        match self.io {
            Io::Tcp(_) => encode_into(p, self.version, &mut self.out)?,
            Io::Ws(_) => {
                let mut b = BytesMut::new();
                encode_into(p, self.version, &mut b)?;
                self.frames.push(b.freeze());
            }
        }
        Ok(())
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        match &mut self.io {
            Io::Tcp(s) => {
                if !self.out.is_empty() {
                    s.write_all(&self.out).await.context("write")?;
                    self.out.clear();
                }
            }
            Io::Ws(ws) => {
                if !self.frames.is_empty() {
                    for f in self.frames.drain(..) {
                        ws.feed(Message::Binary(f))
                            .await
                            .context("WebSocket send")?;
                    }
                    ws.flush().await.context("WebSocket flush")?;
                }
            }
        }
        Ok(())
    }

    /// A packet already in the buffer, without waiting.
    pub fn try_next(&mut self) -> anyhow::Result<Option<Packet>> {
        self.dec
            .decode(&mut self.inbuf, self.version)
            .map_err(|e| anyhow!("undecodable packet from the server: {e}"))
    }

    /// The next packet; `None` when the server closed the connection. Cancel-safe.
    pub async fn next(&mut self) -> anyhow::Result<Option<Packet>> {
        loop {
            if let Some(p) = self.try_next()? {
                return Ok(Some(p));
            }
            match &mut self.io {
                Io::Tcp(s) => {
                    self.inbuf.reserve(8192);
                    if s.read_buf(&mut self.inbuf).await.context("read")? == 0 {
                        return Ok(None);
                    }
                }
                Io::Ws(ws) => match ws.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(None),
                    Some(Ok(Message::Binary(b))) => self.inbuf.extend_from_slice(&b),
                    Some(Ok(Message::Text(t))) => self.inbuf.extend_from_slice(t.as_bytes()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e).context("WebSocket read"),
                },
            }
        }
    }
}
