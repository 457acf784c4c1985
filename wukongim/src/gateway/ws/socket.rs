//! A WebSocket connection after the handshake, as a session [`Transport`]: the TCP stream is
//! shared (one `Arc`) by the reading half, which takes frames off a buffer allocated only while
//! bytes are waiting (as TCP does), and the writing half, which writes each packet as one binary
//! frame straight from the session's buffer. Pongs go out on a short task of their own (one at
//! most per connection); the close frame (1000, the client's code echoed, or 1002/1009 after a
//! protocol error) is written by [`Outbound::close`] without waiting for the client: one that
//! stopped reading does not hold it up.

use super::frame::{self, code, op, Event, Reader};
use crate::gateway::transport::{Inbound, Outbound, Transport};
use bytes::{Bytes, BytesMut};
use std::io::{ErrorKind, IoSlice};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Bytes reserved for one read when no longer frame is pending.
const READ_CHUNK: usize = 4096;

/// What both halves share.
#[derive(Debug)]
struct Socket {
    stream: TcpStream,
    /// Held while a frame is written: frames never interleave.
    write: tokio::sync::Mutex<WriteState>,
    /// The close code to send (0: 1000, or the client's close was empty).
    close_code: AtomicU16,
    /// The payload of the latest ping not yet answered; a pong task is under way while set
    /// (one at most: a ping flood costs one task, and the pong answers the latest ping, as
    /// RFC 6455 §5.5.3 allows).
    ping: std::sync::Mutex<Option<Vec<u8>>>,
}

#[derive(Debug, Default)]
struct WriteState {
    /// A frame was cut mid-way (its write cancelled or failed): nothing more may be framed.
    broken: bool,
    /// The close frame went out.
    closed: bool,
}

/// How long the close frame waits for a frame being written to finish.
const CLOSE_LOCK_WAIT: Duration = Duration::from_millis(100);

/// Echo an empty close (the client's own close carried no code).
const EMPTY_CLOSE: u16 = u16::MAX;

impl Socket {
    /// Writes one whole frame, header and payload in one vectored write when they fit.
    async fn write_frame(&self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        let mut st = self.write.lock().await;
        self.write_locked(&mut st, opcode, payload).await
    }

    /// [`Socket::write_frame`] with the write lock held.
    async fn write_locked(
        &self,
        st: &mut WriteState,
        opcode: u8,
        payload: &[u8],
    ) -> std::io::Result<()> {
        if st.broken || st.closed {
            return Err(std::io::Error::new(
                ErrorKind::BrokenPipe,
                "websocket already closed",
            ));
        }
        st.broken = true; // until the whole frame is out
        let (h, n) = frame::header(opcode, payload.len());
        let (mut head, mut body) = (&h[..n], payload);
        while !head.is_empty() || !body.is_empty() {
            self.stream.writable().await?;
            match self
                .stream
                .try_write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
            {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(mut k) => {
                    let h = k.min(head.len());
                    head = &head[h..];
                    k -= h;
                    body = &body[k..];
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        st.broken = false;
        Ok(())
    }

    /// Sends the close frame if it can go at once, then shuts the writing side. A frame being
    /// written (a pong on its own task, most often) is waited for up to [`CLOSE_LOCK_WAIT`]: a
    /// client that stopped reading does not hold the close up longer.
    async fn close(&self) {
        if let Ok(mut st) = tokio::time::timeout(CLOSE_LOCK_WAIT, self.write.lock()).await {
            if !st.broken && !st.closed {
                let coded;
                let f: &[u8] = match self.close_code.load(Ordering::Acquire) {
                    EMPTY_CLOSE => &[0x80 | op::CLOSE, 0],
                    c => {
                        coded = frame::close_frame(if c == 0 { code::NORMAL } else { c });
                        &coded
                    }
                };
                let _ = self.stream.try_write(f);
            }
            st.closed = true;
        }
        let _ = socket2::SockRef::from(&self.stream).shutdown(std::net::Shutdown::Write);
    }
}

/// A WebSocket connection, split into its halves by the session.
pub struct Ws {
    r: WsRead,
    w: WsWrite,
}

impl Ws {
    /// `stream` after the 101; `rest`: bytes that came after the request head; `max`: the
    /// largest message accepted; `pong_deadline`: how long a pong may wait to be written.
    pub fn new(stream: TcpStream, rest: BytesMut, max: usize, pong_deadline: Duration) -> Self {
        let sock = Arc::new(Socket {
            stream,
            write: tokio::sync::Mutex::new(WriteState::default()),
            close_code: AtomicU16::new(0),
            ping: std::sync::Mutex::new(None),
        });
        Ws {
            r: WsRead {
                sock: sock.clone(),
                raw: rest,
                frames: Reader::new(max),
                pong_deadline,
            },
            w: WsWrite { sock },
        }
    }
}

impl Transport for Ws {
    type R = WsRead;
    type W = WsWrite;
    fn split(self) -> (WsRead, WsWrite) {
        (self.r, self.w)
    }
}

pub struct WsRead {
    sock: Arc<Socket>,
    /// Received bytes not yet a whole frame; empty (unallocated) while idle.
    raw: BytesMut,
    frames: Reader,
    pong_deadline: Duration,
}

impl WsRead {
    /// Answers a ping (the latest one, if a pong is already waiting to go out).
    fn pong(&self, payload: Vec<u8>) {
        let mut ping = self.sock.ping.lock().unwrap_or_else(|e| e.into_inner());
        if ping.replace(payload).is_some() {
            return; // the pong task under way sends the latest payload
        }
        drop(ping);
        let sock = self.sock.clone();
        let deadline = self.pong_deadline;
        tokio::spawn(async move {
            let mut taken = false;
            let _ = tokio::time::timeout(deadline, async {
                let mut st = sock.write.lock().await;
                let payload = sock.ping.lock().unwrap_or_else(|e| e.into_inner()).take();
                taken = true; // a ping from now on starts a task of its own
                match payload {
                    Some(p) => sock.write_locked(&mut st, op::PONG, &p).await,
                    None => Ok(()),
                }
            })
            .await;
            if !taken {
                // Never got to write: clear, so a later ping gets its own task.
                sock.ping.lock().unwrap_or_else(|e| e.into_inner()).take();
            }
        });
    }
}

impl Inbound for WsRead {
    /// Appends the payloads of the data frames that came; Ok(false) when the client closed
    /// (or left). Waits for readability before reserving a buffer. Cancel-safe: the only await
    /// is the readiness wait.
    async fn read_into(&mut self, buf: &mut BytesMut) -> std::io::Result<bool> {
        loop {
            let mut data = false;
            loop {
                match self.frames.next(&mut self.raw, buf) {
                    Ok(None) => break,
                    Ok(Some(Event::Data)) => data = true,
                    Ok(Some(Event::Ping(p))) => self.pong(p),
                    Ok(Some(Event::Pong)) => {}
                    Ok(Some(Event::Close(c))) => {
                        let c = c.unwrap_or(EMPTY_CLOSE);
                        self.sock.close_code.store(c, Ordering::Release);
                        return Ok(false);
                    }
                    Err(e) => {
                        self.sock.close_code.store(e.code, Ordering::Release);
                        return Err(std::io::Error::new(ErrorKind::InvalidData, e));
                    }
                }
            }
            if self.raw.is_empty() && self.raw.capacity() > 0 {
                self.raw = BytesMut::new(); // idle connections hold no read buffer
            }
            if data {
                return Ok(true);
            }
            self.sock.stream.readable().await?;
            let want = READ_CHUNK.max(self.frames.missing(&self.raw));
            self.raw.reserve(want);
            match self.sock.stream.try_read_buf(&mut self.raw) {
                Ok(0) => return Ok(false),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

pub struct WsWrite {
    sock: Arc<Socket>,
}

impl Outbound for WsWrite {
    async fn send(&mut self, packet: Bytes) -> std::io::Result<()> {
        self.sock.write_frame(op::BINARY, &packet).await
    }
    async fn close(&mut self) {
        self.sock.close().await;
    }
}
