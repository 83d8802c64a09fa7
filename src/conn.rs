//! One connection's state machine (TCP or Unix socket) and its socket pumps.
//!
//! ```text
//! accept -> Reading --marker/IN EOF--> (reply queued) Closing --flushed--> shutdown, closed
//!             |  WAIT: ids parsed, header block sent, nothing pending      ^
//!             v                                                            | data pushed
//!           Parked ----------------------------------------------------------+
//!             +-- WAIT_TIMEOUT / peer closed / error --> closed (unsubscribed via storage)
//! ```
//!
//! Structure: `Conn` is what a connection costs while it lives in the reactor's slab: the
//! socket, a generation, the unparsed input (freed when parked), a write tail only while a
//! write is partial, its timer and its storage listener. IN-only state is boxed.
//! Knows nothing of channels. Uses: types, timers, in_line (Parsed), transport (the tag),
//! net (the socket), sys.

use crate::in_line::Parsed;
use crate::net::Stream;
use crate::timers::TimerKey;
use crate::transport::Transport;
use crate::types::{Line, ListenerId};
use std::fmt;
use std::io::{self, Read};
use std::net::{SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::Arc;

/// The peer address for log lines, kept compact (accept() gives it for free; asking the
/// socket later fails once the peer has reset it).
#[derive(Clone, Debug)]
pub enum Peer {
    V4([u8; 4], u16),
    V6(Box<SocketAddrV6>),
    /// A Unix socket client, named by the listener's path (its own address is unnamed).
    Unix(Arc<String>),
}

impl From<SocketAddr> for Peer {
    fn from(a: SocketAddr) -> Peer {
        match a {
            SocketAddr::V4(v4) => Peer::V4(v4.ip().octets(), v4.port()),
            SocketAddr::V6(v6) => Peer::V6(Box::new(v6)),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::V4([a, b, c, d], port) => {
                // On every logged line of a connection: built on the stack, written once.
                let mut l = crate::logging::Line::default();
                for (i, o) in [a, b, c, d].into_iter().enumerate() {
                    if i > 0 {
                        l.push(b".");
                    }
                    l.num(u64::from(*o));
                }
                l.push(b":");
                l.num(u64::from(*port));
                f.write_str(l.as_str())
            }
            Peer::V6(a) => write!(f, "{a}"),
            Peer::Unix(path) => write!(f, "unix:{path}"),
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Accumulating the request.
    Reading,
    /// WAIT: registered and waiting for data; input is read and thrown away.
    Parked,
    /// IN: the request went over IN_MAXLEN: read to EOF and throw it away, then reply 413.
    Draining,
    /// WAIT, WebSocket: registered and parked, and reading client frames (commands, pings,
    /// the close handshake) into `buf`, which is freed whenever no partial frame is left.
    WsOpen,
    /// IN: a large command reply is being written a slice at a time (see
    /// `reactor::reply_job`); neither EOF nor a flushed write closes it.
    Streaming,
    /// IN, cluster mode: the push is being appended to the cluster log, or ONLINE is being
    /// asked of Redis; answered once Redis replied (or could not). An HTTP API connection
    /// keeps reading meanwhile: the requests pipelined behind it are served after it.
    Awaiting,
    /// A final reply is queued; close once it is flushed.
    Closing,
}

impl State {
    /// Whether bytes read in this state are kept for a handler (else they are discarded).
    pub fn keeps_input(self) -> bool {
        matches!(self, State::Reading | State::WsOpen)
    }
}

/// Which protocol an IN connection speaks (see `api::route`); WAIT connections stay
/// `Undecided`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Proto {
    /// Its request line has not said yet.
    #[default]
    Undecided,
    /// The original protocol: one push, processed at half-close.
    Legacy,
    /// The HTTP API: Content-Length requests, keep-alive (see `reactor::http_api`).
    Api,
}

pub struct Conn {
    pub sock: Stream,
    pub peer: Peer,
    pub gen: u32,
    pub line: Line,
    pub state: State,
    /// Where the next marker scan may start (see `ident::Scan::NotYet`).
    pub scan_from: u32,
    /// Bytes received and not yet handled (empty, with no allocation, once parked).
    pub buf: Vec<u8>,
    /// The unsent tail of a partial write.
    pub out: Option<Box<OutBuf>>,
    pub timer: Option<TimerKey>,
    pub listener: Option<ListenerId>,
    /// IN: the parsed marker, once found.
    pub parsed: Option<Box<Parsed>>,
    /// WAIT: how deliveries are written (see `transport`).
    pub transport: Transport,
    /// WAIT, WebSocket: the message assembler while a fragmented client message is in
    /// progress (None between messages: an idle WebSocket holds no buffer).
    pub ws: Option<Box<crate::websocket::message::Assembler>>,
    /// IN: the original protocol or the HTTP API.
    pub proto: Proto,
}

// A parked socket's footprint is this struct plus its subscriptions: keep it small (the
// issue's budget is 128 bytes; today it is 96).
const _: () = assert!(std::mem::size_of::<Conn>() <= 112);

/// Bytes still to write, and how many of them already went out (advancing an offset
/// instead of draining keeps a large reply, such as ONLINE for 1M ids, linear).
pub struct OutBuf {
    data: Vec<u8>,
    sent: usize,
}

/// Most bytes thrown away from a parked or closing socket in one readable event.
const MAX_DISCARD_PER_EVENT: usize = 1 << 20;

/// What one readable event gave.
pub struct ReadResult {
    /// Bytes read in this event.
    pub bytes: usize,
    /// The peer closed (or the socket failed).
    pub eof: bool,
}

impl Conn {
    pub fn new(sock: Stream, peer: Peer, gen: u32, line: Line) -> Conn {
        Conn {
            sock,
            peer,
            gen,
            line,
            state: State::Reading,
            scan_from: 0,
            buf: Vec::new(),
            out: None,
            timer: None,
            listener: None,
            parsed: None,
            transport: Transport::default(),
            ws: None,
            proto: Proto::Undecided,
        }
    }

    /// Reads until the socket would block, through the shared `scratch` buffer. Bytes are
    /// kept only while Reading (or WsOpen, or Awaiting on an HTTP API connection), and at
    /// most `keep_max` of them (the caller reports overflow).
    /// A read shorter than the buffer drained the socket: unless the event also said the
    /// peer closed (`closed`: then EOF is still to be read), the next arriving byte raises a
    /// new edge, so the extra read that would only say WouldBlock is skipped.
    pub fn read_all(&mut self, scratch: &mut [u8], keep_max: usize, closed: bool) -> ReadResult {
        let mut r = ReadResult {
            bytes: 0,
            eof: false,
        };
        // An HTTP API connection awaiting Redis keeps what follows its push: requests
        // pipelined behind it, served once it is answered (they used to be thrown away).
        // It reads no more than it can keep: the rest stays in the socket until the
        // requests before it are served (`serve_api` then asks for the readiness again).
        let api_awaiting = self.state == State::Awaiting && self.proto == Proto::Api;
        let keep = self.state.keeps_input() || api_awaiting;
        loop {
            let limit = if api_awaiting {
                keep_max.saturating_sub(self.buf.len()).min(scratch.len())
            } else {
                scratch.len()
            };
            if limit == 0 {
                return r;
            }
            match self.sock.read(scratch.get_mut(..limit).unwrap_or_default()) {
                Ok(0) => {
                    r.eof = true;
                    return r;
                }
                Ok(n) => {
                    r.bytes += n;
                    if keep {
                        let room = keep_max.saturating_sub(self.buf.len());
                        let take = n.min(room);
                        self.buf
                            .extend_from_slice(scratch.get(..take).unwrap_or_default());
                        if take < n {
                            // Over the limit: stop reading; the caller closes.
                            return r;
                        }
                    }
                    if n < limit && !closed {
                        return r;
                    }
                    // A parked client that floods: stop after a bounded amount so one
                    // socket cannot hold the loop (the next arriving bytes raise a new
                    // edge; the bytes are thrown away anyway).
                    if self.state != State::Reading
                        && !api_awaiting
                        && r.bytes >= MAX_DISCARD_PER_EVENT
                    {
                        return r;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return r,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    r.eof = true;
                    return r;
                }
            }
        }
    }

    /// Writes `bytes` (after any pending tail). Returns Ok(true) when everything is out.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<bool> {
        if let Some(out) = &mut self.out {
            out.data.extend_from_slice(bytes);
            return Ok(false);
        }
        let last = self.state == State::Closing;
        let n = write_some(&self.sock, bytes, last)?;
        if n < bytes.len() {
            self.out = Some(Box::new(OutBuf {
                data: bytes.get(n..).unwrap_or_default().to_vec(),
                sent: 0,
            }));
            return Ok(false);
        }
        Ok(true)
    }

    /// A registered SSE or WebSocket listener: its timer is the ping timer and its
    /// deliveries leave it parked.
    pub fn is_streaming_listener(&self) -> bool {
        self.listener.is_some() && self.transport.is_streaming()
    }

    /// Bytes written but not yet taken by the socket.
    pub fn pending(&self) -> usize {
        self.out
            .as_ref()
            .map_or(0, |o| o.data.len().saturating_sub(o.sent))
    }

    /// Flushes the pending tail. Returns Ok(true) when nothing is left.
    pub fn flush(&mut self) -> io::Result<bool> {
        let Some(out) = &mut self.out else {
            return Ok(true);
        };
        let last = self.state == State::Closing;
        let n = write_some(
            &self.sock,
            out.data.get(out.sent..).unwrap_or_default(),
            last,
        )?;
        out.sent += n;
        if out.sent >= out.data.len() {
            self.out = None;
            return Ok(true);
        }
        Ok(false)
    }
}

/// Writes until done or the socket would block; returns how much went out. `last`: the
/// connection closes right after these bytes (see `sys::send`).
fn write_some(sock: &Stream, bytes: &[u8], last: bool) -> io::Result<usize> {
    let fd = sock.as_raw_fd();
    let mut off = 0;
    while off < bytes.len() {
        match crate::sys::send(fd, bytes.get(off..).unwrap_or_default(), last) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(off)
}
