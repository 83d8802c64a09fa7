//! Raw-socket clients of the WAIT and IN lines: `WaitClient`, IN pushes and barriers,
//! and the `text/plain` replies of the IN line's commands.
//!
//! Data: one `TcpStream` per client, with the test timeouts (`IO_TIMEOUT`) and
//! `TCP_NODELAY`; replies are read to EOF (a reset counts as EOF).
//!
//! May use std and the sibling `server` module (the addresses to connect to).

use super::server::Server;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// The block a WAIT client receives upon registration (spec 4.4).
pub const WAIT_HEADER: &str = "HTTP/1.1 200 OK\r\n\
Connection: close\r\n\
Cache-Control: no-store, no-cache, must-revalidate\r\n\
Expires: Mon, 26 Jul 1997 05:00:00 GMT\r\n\
Content-Type: text/javascript; charset=utf-8\r\n\
\r\n \r\n";

/// Safety net for socket reads: a test never blocks longer than this on one read.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

impl Server {
    /// IN client: writes `raw`, half-closes, reads the reply to EOF (EOF = processed).
    pub fn push(&self, raw: &[u8]) -> Vec<u8> {
        let mut s = connect(self.in_addr());
        match s.write_all(raw) {
            Ok(()) => {}
            // The server may close early (overflow); that is the server's answer.
            Err(e) if is_reset(&e) => {}
            Err(e) => panic!("IN write failed: {e}"),
        }
        let _ = s.shutdown(Shutdown::Write);
        read_to_eof(&mut s)
    }

    /// IN client as the original harness: `X-Realplexor: identifier=<ids>\r\n\r\n<data>`.
    /// The reply to a push is empty, and this asserts it.
    /// In the cluster-mode run it returns once every worker applied the push (each logs
    /// its `added data` line), as the embedded server has when the reply comes.
    pub fn push_ids(&self, ids: &str, data: &str) {
        let workers = super::server::cluster_workers();
        let added = |s: &Server| {
            s.entries()
                .iter()
                .filter(|e| e.msg.contains("DEBUG: added data for ["))
                .count()
        };
        let before = if workers > 1 { added(self) } else { 0 };
        let reply = self.push(format!("X-Realplexor: identifier={ids}\r\n\r\n{data}").as_bytes());
        assert_eq!(show(&reply), "", "reply to a push must be empty");
        if workers > 1 {
            let deadline = std::time::Instant::now() + IO_TIMEOUT;
            while added(self) < before + workers {
                assert!(
                    std::time::Instant::now() < deadline,
                    "a worker never applied the push"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// A round trip through the event loop that changes no state: an IN connection
    /// without a marker, closed at once.
    pub fn barrier(&self) {
        let reply = self.push(b"");
        assert!(reply.is_empty(), "barrier got a reply: {}", show(&reply));
    }

    /// Sends a raw command request (harness style: `stats`, `watch 1`, no headers) and
    /// returns the body of its `200 OK` reply, checked by `ok_body`.
    pub fn cmd(&self, raw: &str) -> String {
        ok_body(&self.push(raw.as_bytes()))
    }
}

/// A WAIT line client speaking raw bytes.
pub struct WaitClient {
    stream: TcpStream,
}

impl WaitClient {
    pub fn connect(addr: SocketAddr) -> WaitClient {
        WaitClient {
            stream: connect(addr),
        }
    }

    /// Connects to the server's first WAIT address, writes `request` and reads the
    /// header block; once that is here the server has registered the client.
    pub fn register(server: &Server, request: &[u8]) -> WaitClient {
        WaitClient::register_at(server.wait_addr(), request)
    }

    pub fn register_at(addr: SocketAddr, request: &[u8]) -> WaitClient {
        let mut c = WaitClient::connect(addr);
        c.send(request);
        c.expect_header();
        c
    }

    /// The client's own address: the `<ip>:<port>` the server logs for it.
    pub fn local(&self) -> SocketAddr {
        self.stream.local_addr().expect("local_addr")
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("WAIT write");
    }

    pub fn shutdown_write(&self) {
        self.stream.shutdown(Shutdown::Write).expect("shutdown");
    }

    /// Reads exactly the header block (and nothing beyond it); panics with what came
    /// instead.
    pub fn expect_header(&mut self) {
        let mut buf = vec![0u8; WAIT_HEADER.len()];
        let mut filled = 0;
        while filled < buf.len() {
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_reset(&e) => break,
                Err(e) => panic!(
                    "reading the header block: {e}; got {}",
                    show(&buf[..filled])
                ),
            }
            if buf[..filled] != WAIT_HEADER.as_bytes()[..filled] {
                break;
            }
        }
        assert_eq!(
            show(&buf[..filled]),
            show(WAIT_HEADER.as_bytes()),
            "expected the WAIT header block"
        );
    }

    /// Everything after the header block, up to EOF.
    pub fn read_body(mut self) -> String {
        let bytes = read_to_eof(&mut self.stream);
        String::from_utf8(bytes).expect("utf-8 body")
    }

    /// Everything up to EOF (for clients that did not call `expect_header`).
    pub fn read_all(mut self) -> Vec<u8> {
        read_to_eof(&mut self.stream)
    }

    /// Asserts the server has sent nothing (further) and not closed the connection.
    pub fn assert_silent(&self) {
        self.stream.set_nonblocking(true).expect("nonblocking");
        let mut b = [0u8; 256];
        let r = self.stream.peek(&mut b);
        self.stream.set_nonblocking(false).expect("blocking");
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Ok(0) => panic!("connection was closed by the server"),
            Ok(n) => panic!("unexpected bytes from the server: {}", show(&b[..n])),
            Err(e) => panic!("connection error: {e}"),
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

/// Reads to EOF; a reset counts as EOF; a read timeout panics with the bytes so far.
pub fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_reset(&e) => return out,
            Err(e) => panic!("no EOF within {IO_TIMEOUT:?} ({e}); got {}", show(&out)),
        }
    }
}

/// Bytes as a readable string for assertion messages.
pub fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An IN connection with nothing sent yet (for tests that decide when to half-close).
pub fn in_stream(server: &Server) -> TcpStream {
    connect(server.in_addr())
}

/// The head every ONLINE / WATCH / STATS reply and every 403 carries (spec 6.3, 6.5).
pub fn text_head(status: &str, len: usize) -> String {
    format!("HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len}\r\n\r\n")
}

/// Checks a `text/plain` reply byte for byte: `HTTP/1.0 <status>`, the Content-Type and a
/// Content-Length equal to the body's length. Returns the body.
pub fn text_body(reply: &[u8], status: &str) -> String {
    let text = show(reply);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no blank line in the reply {text:?}"));
    assert_eq!(
        format!("{head}\r\n\r\n"),
        text_head(status, body.len()),
        "reply head (body {body:?})"
    );
    body.to_string()
}

/// `text_body` for a `200 OK` reply.
pub fn ok_body(reply: &[u8]) -> String {
    text_body(reply, "200 OK")
}

/// Opens a raw client connection to `addr` with the test timeouts (no request sent).
pub fn connect_raw(addr: SocketAddr) -> TcpStream {
    connect(addr)
}

impl WaitClient {
    /// The client's socket (e.g. to write from another thread).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

impl Server {
    /// Asks ONLINE until its answer contains `line` (cluster mode's counts lag by up to a
    /// second; in the embedded mode the first answer already holds).
    pub fn online_eventually(&self, line: &str) {
        let deadline = std::time::Instant::now() + IO_TIMEOUT;
        loop {
            let got = self.cmd("ONLINE");
            if got.lines().any(|l| l == line) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "ONLINE never said {line:?}; last: {got:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
