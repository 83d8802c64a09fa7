//! `floor-server`: the least work any server must do for the `publish` exchange (and,
//! with `--fanout`, for the `fanout` one), to tell how much of a server's CPU per push is
//! its own and how much is the kernel's.
//!
//! It is not a Realplexor: no queues, no cursors kept, no limits, no logging. A WAIT
//! request (`identifier=[cursor:]id`) parks its socket under `id` and gets the header
//! block at once; an IN request is read to EOF, and its body goes as a one-block reply,
//! with FIN in the same segment, to the socket parked under its first id (one listener
//! per id, a newer one replacing the older), then both sockets close. With `--fanout`
//! every listener parked under an id stays (a list per id), and a push to that id builds
//! the reply once and writes it to each of them, closing each: the kernel floor of a
//! fan-out. It uses what the real server does to save system calls (TCP_DEFER_ACCEPT, a
//! read right after accept, edge-triggered epoll, MSG_MORE), so its CPU per push is a
//! floor for that exchange on this kernel, not a straw man.
//!
//! Usage: `realplexor-loadtest floor-server [--fanout] CONF`, where CONF is the override
//! file that `--server-cmd` writes (only its WAIT_ADDR and IN_ADDR lines are read), e.g.
//! `realplexor-loadtest publish --server-cmd 'realplexor-loadtest floor-server {conf}'` or
//! `realplexor-loadtest fanout --server-cmd 'realplexor-loadtest floor-server --fanout {conf}'`.
//! Runs until killed.
//!
//! Uses: mio, slab, libc.

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;

/// The header block a WAIT client gets when it parks (spec 4.4).
const HEADER: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\
Cache-Control: no-store, no-cache, must-revalidate\r\n\
Expires: Mon, 26 Jul 1997 05:00:00 GMT\r\n\
Content-Type: text/javascript; charset=utf-8\r\n\r\n \r\n";

const WAIT_LISTENER: Token = Token(usize::MAX - 1);
const IN_LISTENER: Token = Token(usize::MAX - 2);
/// Requests are small; a longer one is dropped.
const MAX_REQUEST: usize = 64 * 1024;

struct FloorConn {
    sock: TcpStream,
    wait: bool,
    buf: Vec<u8>,
    /// The id a parked WAIT socket listens to.
    parked: Option<String>,
    /// Fan-out mode: this socket's index in its id's list.
    slot: usize,
}

/// The first `'...'` address on the line that sets `key` in a Perl override.
pub fn conf_addr(conf: &str, key: &str) -> Option<SocketAddr> {
    let line = conf.lines().find(|l| l.contains(&format!("{{{key}}}")))?;
    let rest = line.split_once('\'')?.1;
    rest.split_once('\'')?.0.parse().ok()
}

/// The id of the first item of `identifier=[cursor:]id,...` in a request.
pub fn first_id(req: &[u8]) -> Option<&str> {
    let at = find(req, b"identifier=")? + b"identifier=".len();
    let rest = req.get(at..)?;
    let end = rest
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':')))
        .unwrap_or(rest.len());
    let item = std::str::from_utf8(rest.get(..end)?).ok()?;
    let id = item.rsplit_once(':').map_or(item, |(_, id)| id);
    (!id.is_empty()).then_some(id)
}

/// The one-block reply body (spec 4.5) for `data` pushed to `id` at `cursor`.
pub fn reply(id: &str, cursor: u64, data: &[u8]) -> Vec<u8> {
    let sep = if data.contains(&b'\n') { "\n" } else { " " };
    let mut out =
        format!("[\n  {{\n    \"ids\": {{ \"{id}\": \"{cursor}\" }},\n    \"data\":{sep}")
            .into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n  }\n]");
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    let secs: libc::c_int = 1;
    // SAFETY: setsockopt reads a c_int that lives across the call.
    unsafe {
        libc::listen(l.as_raw_fd(), 4096);
        libc::setsockopt(
            l.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    Ok(TcpListener::from_std(l))
}

/// Writes `bytes` and FIN in one segment (the reply is small; a short write just closes).
fn send_last(sock: &TcpStream, bytes: &[u8]) {
    // SAFETY: send reads `bytes.len()` bytes from a live slice.
    unsafe {
        libc::send(
            sock.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_NOSIGNAL | libc::MSG_MORE,
        );
    }
    let _ = sock.shutdown(Shutdown::Write);
}

struct Floor {
    poll: Poll,
    conns: Slab<FloorConn>,
    parked: HashMap<String, usize>,
    /// Fan-out mode: every socket parked under an id.
    groups: HashMap<String, Vec<usize>>,
    fanout: bool,
    cursor: u64,
    scratch: Vec<u8>,
}

impl Floor {
    fn close(&mut self, key: usize) {
        let Some(c) = self.conns.try_remove(key) else {
            return;
        };
        let Some(id) = c.parked else { return };
        if !self.fanout {
            if self.parked.get(&id) == Some(&key) {
                self.parked.remove(&id);
            }
            return;
        }
        // Out of its id's list in O(1): the last one takes its slot.
        if let Some(list) = self.groups.get_mut(&id) {
            if list.get(c.slot) == Some(&key) {
                list.swap_remove(c.slot);
                if let Some(&moved) = list.get(c.slot) {
                    if let Some(m) = self.conns.get_mut(moved) {
                        m.slot = c.slot;
                    }
                }
            }
            if list.is_empty() {
                self.groups.remove(&id);
            }
        }
    }

    /// Parks `key` under `id`.
    fn park(&mut self, key: usize, id: String) {
        if self.fanout {
            let list = self.groups.entry(id.clone()).or_default();
            if let Some(c) = self.conns.get_mut(key) {
                c.slot = list.len();
                c.parked = Some(id);
                list.push(key);
            }
        } else {
            if let Some(c) = self.conns.get_mut(key) {
                c.parked = Some(id.clone());
            }
            if let Some(old) = self.parked.insert(id, key) {
                self.close(old);
            }
        }
    }

    /// Reads what is there; returns false when the connection is gone.
    fn on_readable(&mut self, key: usize) -> bool {
        loop {
            let Some(c) = self.conns.get_mut(key) else {
                return false;
            };
            match c.sock.read(&mut self.scratch) {
                Ok(0) => {
                    if !c.wait {
                        self.push(key);
                    }
                    self.close(key);
                    return false;
                }
                Ok(n) => {
                    if c.parked.is_some() {
                        continue;
                    }
                    c.buf
                        .extend_from_slice(self.scratch.get(..n).unwrap_or_default());
                    if c.buf.len() > MAX_REQUEST {
                        self.close(key);
                        return false;
                    }
                    if c.wait && find(&c.buf, b"\r\n\r\n").is_some() {
                        let Some(id) = first_id(&c.buf).map(str::to_string) else {
                            self.close(key);
                            return false;
                        };
                        // A few hundred bytes to a fresh socket: one write.
                        let _ = (&c.sock).write(HEADER);
                        c.buf = Vec::new();
                        self.park(key, id);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.close(key);
                    return false;
                }
            }
        }
    }

    /// An IN request at EOF: its body to the listener parked on its first id (to every
    /// one parked there, in fan-out mode).
    fn push(&mut self, key: usize) {
        let Some(c) = self.conns.get(key) else {
            return;
        };
        let (Some(id), Some(at)) = (first_id(&c.buf), find(&c.buf, b"\r\n\r\n")) else {
            return;
        };
        if self.fanout {
            let Some(list) = self.groups.remove(id) else {
                return;
            };
            self.cursor += 1;
            let body = reply(id, self.cursor, c.buf.get(at + 4..).unwrap_or_default());
            for w in list {
                // The list is gone from `groups`: no slot to fix, just drop the socket.
                if let Some(l) = self.conns.try_remove(w) {
                    send_last(&l.sock, &body);
                }
            }
            return;
        }
        let Some(&w) = self.parked.get(id) else {
            return;
        };
        self.cursor += 1;
        let body = reply(id, self.cursor, c.buf.get(at + 4..).unwrap_or_default());
        if let Some(l) = self.conns.get(w) {
            send_last(&l.sock, &body);
        }
        self.close(w);
    }

    fn accept(&mut self, listener: &TcpListener, wait: bool) {
        loop {
            let sock = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let key = self.conns.insert(FloorConn {
                sock,
                wait,
                buf: Vec::new(),
                parked: None,
                slot: 0,
            });
            if self.on_readable(key) {
                if let Some(c) = self.conns.get_mut(key) {
                    if self
                        .poll
                        .registry()
                        .register(&mut c.sock, Token(key), Interest::READABLE)
                        .is_err()
                    {
                        self.close(key);
                    }
                }
            }
        }
    }
}

/// Serves the publish exchange until killed.
pub fn serve(conf_path: &str) -> Result<(), String> {
    serve_with(conf_path, false)
}

/// Serves until killed; `fanout`: every listener parked under an id gets its pushes.
pub fn serve_with(conf_path: &str, fanout: bool) -> Result<(), String> {
    let conf = std::fs::read_to_string(conf_path).map_err(|e| format!("{conf_path}: {e}"))?;
    let wait = conf_addr(&conf, "WAIT_ADDR").ok_or("no WAIT_ADDR in the conf")?;
    let inn = conf_addr(&conf, "IN_ADDR").ok_or("no IN_ADDR in the conf")?;
    let mut wl = listen(wait).map_err(|e| format!("{wait}: {e}"))?;
    let mut il = listen(inn).map_err(|e| format!("{inn}: {e}"))?;
    let poll = Poll::new().map_err(|e| e.to_string())?;
    poll.registry()
        .register(&mut wl, WAIT_LISTENER, Interest::READABLE)
        .map_err(|e| e.to_string())?;
    poll.registry()
        .register(&mut il, IN_LISTENER, Interest::READABLE)
        .map_err(|e| e.to_string())?;
    let mut f = Floor {
        poll,
        conns: Slab::new(),
        parked: HashMap::new(),
        groups: HashMap::new(),
        fanout,
        cursor: 1_000_000_000,
        scratch: vec![0; 64 * 1024],
    };
    let mut events = Events::with_capacity(1024);
    let mut ready: Vec<Token> = Vec::with_capacity(1024);
    loop {
        if let Err(e) = f.poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.to_string());
        }
        ready.clear();
        ready.extend(events.iter().map(|e| e.token()));
        for &t in &ready {
            match t {
                WAIT_LISTENER => f.accept(&wl, true),
                IN_LISTENER => f.accept(&il, false),
                Token(key) => {
                    f.on_readable(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_override_the_loadtest_writes() {
        let c = crate::target::override_conf(4001, 4002, "");
        assert_eq!(conf_addr(&c, "WAIT_ADDR"), "127.0.0.1:4001".parse().ok());
        assert_eq!(conf_addr(&c, "IN_ADDR"), "127.0.0.1:4002".parse().ok());
        assert_eq!(conf_addr("", "IN_ADDR"), None);
    }

    #[test]
    fn first_id_of_both_lines() {
        assert_eq!(
            first_id(b"GET /?identifier=12.5:abc&ncrnd=1 HTTP/1.1\r\n"),
            Some("abc")
        );
        assert_eq!(
            first_id(b"X-Realplexor: identifier=p1,p2\r\n\r\n1"),
            Some("p1")
        );
        assert_eq!(first_id(b"identifier=\r\n"), None);
        assert_eq!(first_id(b"nothing"), None);
    }

    #[test]
    fn reply_parses_as_a_wait_response() {
        let mut r = HEADER.to_vec();
        r.extend(reply("abc", 7, b"\"x\""));
        let blocks = crate::proto::parse_wait_response(&r).expect("parses");
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].data, "\"x\"");
        assert_eq!(blocks[0].cursor(), Some("7"));
    }
}
