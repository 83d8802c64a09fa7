//! The client engine: one mio `Poll` over a slab of raw TCP connections, protocol-agnostic.
//!
//! Structure: `Net { poll, conns: Slab<Conn { sock, out, inbuf, dec, .. }> }`. A scenario
//! opens a connection with the bytes to send (`open`; `open_listen` for any WAIT
//! transport, `open_http` for a keep-alive publisher, `send` to write more on it), then
//! turns `poll` and reacts to the events it returns: `Parked` (a WAIT connection received
//! the header block, spec 4.4, or its SSE/WebSocket head), `Message` (one SSE event or
//! WebSocket message), `Response` (one keep-alive HTTP reply), `Done` (the peer closed;
//! the bytes received come with it) or `Failed`. Streaming connections are read through a
//! `wire::Decoder`; long-poll ones as before. The engine never reads the clock for
//! decisions and has no timers: scenarios bound every loop themselves.
//!
//! Client sockets are created with libc so that each one can be bound to its own
//! 127.x.y.z source address (`IP_BIND_ADDRESS_NO_PORT`: the port is chosen at connect
//! time, per 4-tuple), which lifts the ~28k ephemeral-port limit of one source address.
//!
//! Uses: `proto::HEADER_END`, `wire` (decoders), `clock`.

use crate::clock::now_ns;
use crate::proto::HEADER_END;
use crate::wire::{self, Decoder, Out};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::os::fd::FromRawFd;
use std::time::Duration;

/// What happened to a connection during one `poll` turn.
#[derive(Debug)]
pub enum Ev {
    /// A WAIT connection got its header block: it is registered (parked) at the server.
    Parked { key: usize, user: u64, t: u64 },
    /// The peer closed the connection. `t_data` is when the first byte after the header
    /// block (WAIT) or the first byte at all (IN) arrived, 0 if none did.
    Done {
        key: usize,
        user: u64,
        t_data: u64,
        data: Vec<u8>,
    },
    /// One SSE event's data or WebSocket message on a streaming connection, read at `t`.
    Message {
        key: usize,
        user: u64,
        t: u64,
        data: Vec<u8>,
    },
    /// One reply on a keep-alive HTTP connection (`open_http`), read at `t`.
    Response {
        key: usize,
        user: u64,
        t: u64,
        resp: wire::http::Response,
    },
    /// Connect, read or write failed (or a decoder refused the bytes); the connection is
    /// gone.
    Failed {
        key: usize,
        user: u64,
        err: io::Error,
    },
}

struct Conn {
    sock: TcpStream,
    out: Vec<u8>,
    written: usize,
    inbuf: Vec<u8>,
    /// Shut down the write side once `out` is flushed (IN pushes, as the PHP client does).
    half_close: bool,
    /// Report `Parked` when the header block has arrived (WAIT connections).
    wait: bool,
    parked: bool,
    connected: bool,
    t_data: u64,
    user: u64,
    /// Streaming or keep-alive connections: what reads their bytes.
    dec: Option<Decoder>,
}

/// Source addresses 127.a.b.c, c in 2..=254, handed out round-robin from a base.
#[derive(Debug, Clone, Copy)]
pub struct Sources {
    next: u32,
}

impl Sources {
    /// `base` separates workers (each starts at its own address block).
    pub fn new(base: u32) -> Sources {
        Sources {
            next: base.wrapping_mul(4099),
        }
    }

    /// The next source address; never 127.0.0.1 (the server's) nor a .0/.255 host part.
    pub fn next_addr(&mut self) -> Ipv4Addr {
        let i = self.next;
        self.next = self.next.wrapping_add(1);
        let c = 2 + (i % 253) as u8;
        let rest = (i / 253) % (200 * 256);
        Ipv4Addr::new(127, 1 + (rest / 256) as u8, (rest % 256) as u8, c)
    }
}

/// Creates a non-blocking socket bound to `src` and starts connecting it to `dst`.
fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> io::Result<TcpStream> {
    let SocketAddr::V4(dst4) = dst else {
        // IPv6 targets: no source spreading, the kernel picks.
        let std = std::net::TcpStream::connect(dst)?;
        std.set_nonblocking(true)?;
        return Ok(TcpStream::from_std(std));
    };
    let to_sa = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket syscalls on a descriptor we own; the sockaddr structs live on
    // the stack for the duration of each call and `len` is their exact size.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // From here on the std stream owns the fd and closes it on every error path.
        let std = std::net::TcpStream::from_raw_fd(fd);
        let one: libc::c_int = 1;
        let on = &one as *const libc::c_int as *const libc::c_void;
        let olen = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            on,
            olen,
        );
        libc::setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, on, olen);
        let s = to_sa(src, 0);
        if libc::bind(fd, &s as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(io::Error::last_os_error());
        }
        let d = to_sa(*dst4.ip(), dst4.port());
        if libc::connect(fd, &d as *const _ as *const libc::sockaddr, len) != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(e);
            }
        }
        Ok(TcpStream::from_std(std))
    }
}

/// The engine. One per thread or worker process.
pub struct Net {
    poll: Poll,
    events: Events,
    conns: Slab<Conn>,
    scratch: Vec<u8>,
    sources: Sources,
}

impl Net {
    pub fn new(source_base: u32) -> io::Result<Net> {
        Ok(Net {
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            conns: Slab::new(),
            scratch: vec![0; 64 * 1024],
            sources: Sources::new(source_base),
        })
    }

    /// Number of live connections.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Opens a connection to `dst` that sends `request`. `wait`: report `Parked` on the
    /// header block; `half_close`: shut down writing once the request is flushed.
    pub fn open(
        &mut self,
        dst: SocketAddr,
        request: Vec<u8>,
        wait: bool,
        half_close: bool,
        user: u64,
    ) -> io::Result<usize> {
        let src = self.sources.next_addr();
        let mut sock = connect_from(src, dst)?;
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        self.poll.registry().register(
            &mut sock,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(Conn {
            sock,
            out: request,
            written: 0,
            inbuf: Vec::new(),
            half_close,
            wait,
            parked: false,
            connected: false,
            t_data: 0,
            user,
            dec: None,
        });
        Ok(key)
    }

    /// Opens a WAIT connection of any transport (`wire::listen`).
    pub fn open_listen(
        &mut self,
        dst: SocketAddr,
        l: wire::Listen,
        user: u64,
    ) -> io::Result<usize> {
        match l.decoder {
            None => self.open(dst, l.request, true, false, user),
            Some(d) => self.open_decoded(dst, l.request, d, user),
        }
    }

    /// Opens a keep-alive HTTP connection (nothing sent yet: `send` requests on it).
    pub fn open_http(&mut self, dst: SocketAddr, user: u64) -> io::Result<usize> {
        self.open_decoded(dst, Vec::new(), Decoder::http(), user)
    }

    fn open_decoded(
        &mut self,
        dst: SocketAddr,
        request: Vec<u8>,
        d: Decoder,
        user: u64,
    ) -> io::Result<usize> {
        let key = self.open(dst, request, false, false, user)?;
        if let Some(c) = self.conns.get_mut(key) {
            c.dec = Some(d);
        }
        Ok(key)
    }

    /// Queues `bytes` on a live connection and writes what the socket takes now (the rest
    /// when it is writable again). An error here shows up as `Failed` at a later `poll`.
    pub fn send(&mut self, key: usize, bytes: &[u8]) -> io::Result<()> {
        let c = self
            .conns
            .get_mut(key)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
        c.out.extend_from_slice(bytes);
        flush(c)
    }

    /// Appends `bytes` to what `key` has to send, without sending yet (see `flush_out`).
    pub fn queue(&mut self, key: usize, bytes: &[u8]) -> io::Result<()> {
        let c = self
            .conns
            .get_mut(key)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
        c.out.extend_from_slice(bytes);
        Ok(())
    }

    /// Sends what `queue` gathered for `key`, in one write where the socket takes it.
    pub fn flush_out(&mut self, key: usize) -> io::Result<()> {
        let c = self
            .conns
            .get_mut(key)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
        flush(c)
    }

    /// Closes a connection of ours (a client leaving); no event is reported for it.
    pub fn close(&mut self, key: usize) {
        if let Some(mut c) = self.conns.try_remove(key) {
            let _ = self.poll.registry().deregister(&mut c.sock);
        }
    }

    /// Closes every connection.
    pub fn close_all(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.close(k);
        }
    }

    /// Waits up to `timeout` for readiness and appends what happened to `out`.
    pub fn poll(&mut self, timeout: Duration, out: &mut Vec<Ev>) -> io::Result<()> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let ready: Vec<(usize, bool, bool)> = self
            .events
            .iter()
            .map(|e| (e.token().0, e.is_readable(), e.is_writable()))
            .collect();
        let mut outs = Vec::new();
        for (key, readable, writable) in ready {
            let (verdict, user) = match self.conns.get_mut(key) {
                None => continue,
                Some(c) => (
                    on_ready(c, &mut self.scratch, readable, writable, &mut outs),
                    c.user,
                ),
            };
            if !outs.is_empty() {
                let t = now_ns();
                for o in outs.drain(..) {
                    out.push(match o {
                        Out::Parked => Ev::Parked { key, user, t },
                        Out::Message(data) => Ev::Message { key, user, t, data },
                        Out::Response(resp) => Ev::Response { key, user, t, resp },
                        Out::Send(_) | Out::Closed => continue,
                    });
                }
            }
            match verdict {
                Verdict::Keep => {}
                Verdict::Parked(t) => out.push(Ev::Parked {
                    key,
                    user: self.conns.get(key).map_or(0, |c| c.user),
                    t,
                }),
                Verdict::Closed(res) => {
                    if let Some(mut c) = self.conns.try_remove(key) {
                        let _ = self.poll.registry().deregister(&mut c.sock);
                        out.push(match res {
                            Ok(()) => Ev::Done {
                                key,
                                user: c.user,
                                t_data: c.t_data,
                                data: std::mem::take(&mut c.inbuf),
                            },
                            Err(err) => Ev::Failed {
                                key,
                                user: c.user,
                                err,
                            },
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

enum Verdict {
    Keep,
    Parked(u64),
    Closed(io::Result<()>),
}

/// Writes what the socket takes of `c.out`; half-closes after the last byte if asked.
fn flush(c: &mut Conn) -> io::Result<()> {
    if !c.connected || c.written >= c.out.len() {
        return Ok(());
    }
    loop {
        match c.sock.write(c.out.get(c.written..).unwrap_or_default()) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                c.written += n;
                if c.written >= c.out.len() {
                    c.out = Vec::new();
                    c.written = 0;
                    if c.half_close {
                        c.sock.shutdown(Shutdown::Write)?;
                    }
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Handles readiness; a decoded connection's events go to `outs` (in order, before the
/// verdict's own).
fn on_ready(
    c: &mut Conn,
    scratch: &mut [u8],
    readable: bool,
    writable: bool,
    outs: &mut Vec<Out>,
) -> Verdict {
    if !c.connected && (writable || readable) {
        match c.sock.take_error() {
            Ok(Some(e)) | Err(e) => return Verdict::Closed(Err(e)),
            Ok(None) => {}
        }
        match c.sock.peer_addr() {
            Ok(_) => c.connected = true,
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Verdict::Keep,
            Err(e) => return Verdict::Closed(Err(e)),
        }
    }
    if let Err(e) = flush(c) {
        return Verdict::Closed(Err(e));
    }
    if !readable {
        return Verdict::Keep;
    }
    let mut eof = false;
    loop {
        match c.sock.read(scratch) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => c
                .inbuf
                .extend_from_slice(scratch.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Verdict::Closed(Err(e)),
        }
    }
    if let Some(dec) = c.dec.as_mut() {
        let first = outs.len();
        if let Err(e) = dec.feed(&mut c.inbuf, outs) {
            return Verdict::Closed(Err(io::Error::other(e)));
        }
        let mut closed = false;
        for o in outs.get(first..).unwrap_or_default() {
            match o {
                Out::Send(b) => c.out.extend_from_slice(b),
                Out::Closed => closed = true,
                _ => {}
            }
        }
        if let Err(e) = flush(c) {
            return Verdict::Closed(Err(e));
        }
        return if eof || closed {
            Verdict::Closed(Ok(()))
        } else {
            Verdict::Keep
        };
    }
    let now = if c.t_data == 0 || (c.wait && !c.parked) {
        now_ns()
    } else {
        0
    };
    let mut verdict = Verdict::Keep;
    if c.wait {
        if !c.parked {
            if let Some(p) = find(&c.inbuf, HEADER_END) {
                c.parked = true;
                verdict = Verdict::Parked(now);
                if c.inbuf.len() > p + HEADER_END.len() && c.t_data == 0 {
                    c.t_data = now;
                }
            }
        } else if c.t_data == 0 && !c.inbuf.is_empty() {
            c.t_data = now;
        }
    } else if c.t_data == 0 && !c.inbuf.is_empty() {
        c.t_data = now;
    }
    if eof {
        return Verdict::Closed(Ok(()));
    }
    verdict
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_skip_server_and_broadcast_hosts() {
        let mut s = Sources::new(0);
        for _ in 0..2000 {
            let a = s.next_addr().octets();
            assert_eq!(a[0], 127);
            assert!(a[1] >= 1, "never 127.0.x.x, the server's block");
            assert!((2..=254).contains(&a[3]));
        }
        let mut a = Sources::new(1);
        let mut b = Sources::new(2);
        assert_ne!(a.next_addr(), b.next_addr());
    }

    #[test]
    fn find_works() {
        assert_eq!(find(b"abc\r\n\r\n \r\nx", HEADER_END), Some(3));
        assert_eq!(find(b"ab", HEADER_END), None);
    }
}
