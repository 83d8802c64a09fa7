//! Shared helpers for the black-box tests: a `Server` that runs the real
//! `realplexor` binary on ephemeral ports, raw-byte WAIT and IN clients, and
//! log inspection.
//!
//! Structure: `Server { child, dir, log: Arc<Log { lines: Vec<String> } >, wait_addrs, in_addrs }`.
//! The child's stdout is read line by line by a thread into `Log`; waiters block on a
//! `Condvar` with a deadline, never on a fixed sleep.
//!
//! How tests synchronise (see also `tests/tests.rs`):
//! * a WAIT client is registered once it has received the header block (4.4);
//! * an IN push is processed once the server closed the connection (EOF), because the
//!   server handles a push at the publisher's EOF and closes right after;
//! * "nothing happened" is proven with `settle`: wait until the server logged the
//!   `read N bytes` lines for a peer, then run an IN round trip (`barrier`). The server
//!   is single-threaded, so once the barrier's EOF arrives the handler of the earlier read
//!   has completed.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The block a WAIT client receives upon registration (spec 4.4).
pub const WAIT_HEADER: &str = "HTTP/1.1 200 OK\r\n\
Connection: close\r\n\
Cache-Control: no-store, no-cache, must-revalidate\r\n\
Expires: Mon, 26 Jul 1997 05:00:00 GMT\r\n\
Content-Type: text/javascript; charset=utf-8\r\n\
\r\n \r\n";

/// Safety net for socket reads: a test never blocks longer than this on one read.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline for a log line to appear.
pub const LOG_TIMEOUT: Duration = Duration::from_secs(10);

/// Placeholder for a generated cursor in expected bodies, as the original harness prints it.
pub const GEN: &str = "<cursor>";

/// Lines every test conf starts with: ephemeral loopback ports, no privilege drop.
const BASE_CONF: &str = "$CONFIG{WAIT_ADDR} = [ '127.0.0.1:0' ];\n\
$CONFIG{IN_ADDR} = [ '127.0.0.1:0' ];\n\
$CONFIG{SU_USER} = '';\n";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// `(pairs_by_fhs, data_to_send, connected_fhs, online_timers, cleanup_timers)`: the
/// `last=(p,d,c,o,cl)` of the spec tables (`events` is masked, as the harness does).
pub type Stats = (usize, usize, usize, usize, usize);

/// One log message with the stats line that followed it (VERBOSITY 3).
#[derive(Debug, Clone)]
pub struct Entry {
    /// The message with its `[<ctime>] ` prefix removed.
    pub msg: String,
    pub stats: Option<Stats>,
}

#[derive(Default)]
struct LogBuf {
    lines: Vec<String>,
    closed: bool,
}

#[derive(Default)]
struct Log {
    buf: Mutex<LogBuf>,
    cond: Condvar,
}

impl Log {
    fn lock(&self) -> MutexGuard<'_, LogBuf> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dump(&self) -> String {
        self.lock().lines.join("\n")
    }
}

fn spawn_reader(stream: impl Read + Send + 'static, log: Arc<Log>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let mut line = String::from_utf8_lossy(&raw).into_owned();
                    while line.ends_with('\n') || line.ends_with('\r') {
                        line.pop();
                    }
                    log.lock().lines.push(line);
                    log.cond.notify_all();
                }
            }
        }
        log.lock().closed = true;
        log.cond.notify_all();
    });
}

/// A running `realplexor` child with its own temp dir and conf; killed on drop.
pub struct Server {
    child: Child,
    dir: PathBuf,
    log: Arc<Log>,
    stderr: Arc<Log>,
    wait_addrs: Vec<SocketAddr>,
    in_addrs: Vec<SocketAddr>,
}

impl Server {
    /// Starts the server with the base conf plus `extra_conf` (fixture text).
    pub fn start(extra_conf: &str) -> Server {
        Server::start_with_files(extra_conf, &[])
    }

    /// As `start`, and first writes `files` (name, content) beside the conf. A fixture
    /// refers to them as `@DIR@/<name>` (replaced with the temp dir here) or through the
    /// original's `dirname(abs_path(__FILE__))` idiom.
    pub fn start_with_files(extra_conf: &str, files: &[(&str, &str)]) -> Server {
        Server::launch(extra_conf, files, None)
    }

    fn launch(extra_conf: &str, files: &[(&str, &str)], shell_prefix: Option<&str>) -> Server {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("realplexor-it-{}-{}", std::process::id(), n));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        for (name, content) in files {
            fs::write(dir.join(name), content).expect("write fixture file");
        }
        let conf = dir.join("test.conf");
        let extra_conf = extra_conf.replace("@DIR@", &dir.to_string_lossy());
        fs::write(&conf, format!("{BASE_CONF}{extra_conf}\n")).expect("write conf");

        // With a shell prefix: `sh -c '<prefix>exec realplexor --foreground conf'`, so the
        // child is the worker itself; without: the default supervisor + worker.
        let mut cmd = match shell_prefix {
            Some(prefix) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("{prefix}exec \"$0\" \"$@\""))
                    .arg(env!("CARGO_BIN_EXE_realplexor"))
                    .arg("--foreground");
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_realplexor")),
        };
        let mut child = cmd
            .arg(&conf)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn realplexor");
        let log = Arc::new(Log::default());
        let stderr = Arc::new(Log::default());
        spawn_reader(child.stdout.take().expect("stdout"), Arc::clone(&log));
        spawn_reader(child.stderr.take().expect("stderr"), Arc::clone(&stderr));
        // Build the value first so that Drop kills the child if startup fails.
        let mut server = Server {
            child,
            dir,
            log,
            stderr,
            wait_addrs: Vec::new(),
            in_addrs: Vec::new(),
        };
        server.wait_until("the IN: listening line", LOG_TIMEOUT, |es| {
            es.iter()
                .any(|e| e.msg.starts_with("IN: listening "))
                .then_some(())
        });
        let parse = |prefix: &str, es: &[Entry]| -> Vec<SocketAddr> {
            es.iter()
                .filter_map(|e| e.msg.strip_prefix(prefix))
                .map(|a| {
                    a.trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("bad listening address {a:?}"))
                })
                .collect()
        };
        let entries = server.entries();
        server.wait_addrs = parse("WAIT: listening ", &entries);
        server.in_addrs = parse("IN: listening ", &entries);
        assert!(
            !server.wait_addrs.is_empty(),
            "no WAIT: listening line before IN: listening; log:\n{}",
            server.log.dump()
        );
        server
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn wait_addr(&self) -> SocketAddr {
        self.wait_addrs[0]
    }

    pub fn wait_addrs(&self) -> &[SocketAddr] {
        &self.wait_addrs
    }

    pub fn in_addr(&self) -> SocketAddr {
        self.in_addrs[0]
    }

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
    pub fn push_ids(&self, ids: &str, data: &str) {
        let reply = self.push(format!("X-Realplexor: identifier={ids}\r\n\r\n{data}").as_bytes());
        assert_eq!(show(&reply), "", "reply to a push must be empty");
    }

    /// A round trip through the event loop that changes no state: an IN connection
    /// without a marker, closed at once.
    pub fn barrier(&self) {
        let reply = self.push(b"");
        assert!(reply.is_empty(), "barrier got a reply: {}", show(&reply));
    }

    /// Waits until the server logged `read N bytes` lines adding up to `bytes` for the
    /// peer `client` (a client socket's local address).
    pub fn wait_reads(&self, client: SocketAddr, bytes: usize) {
        let needle = format!("{client}: DEBUG: read ");
        self.wait_until(
            &format!("reads of {bytes} bytes from {client}"),
            LOG_TIMEOUT,
            |es| {
                let total: usize = es
                    .iter()
                    .filter_map(|e| e.msg.split_once(&needle))
                    .filter_map(|(_, rest)| rest.strip_suffix(" bytes"))
                    .filter_map(|n| n.parse::<usize>().ok())
                    .sum();
                (total >= bytes).then_some(())
            },
        );
    }

    /// `wait_reads`, then a barrier: the handlers of those reads have completed.
    pub fn settle(&self, client: SocketAddr, bytes: usize) {
        self.wait_reads(client, bytes);
        self.barrier();
    }

    /// Snapshot of the raw stdout lines.
    pub fn lines(&self) -> Vec<String> {
        self.log.lock().lines.clone()
    }

    /// Snapshot of the log as messages with their stats lines.
    pub fn entries(&self) -> Vec<Entry> {
        parse_entries(&self.log.lock().lines)
    }

    /// Waits until `f` returns `Some` for the current log; panics with the log on deadline.
    pub fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&[Entry]) -> Option<T>,
    ) -> T {
        self.wait_lines(what, timeout, |lines| f(&parse_entries(lines)))
    }

    /// As `wait_until`, over the raw stdout lines.
    fn wait_lines<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&[String]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        let mut guard = self.log.lock();
        loop {
            if let Some(t) = f(&guard.lines) {
                return t;
            }
            let now = Instant::now();
            if now >= deadline || guard.closed {
                let why = if guard.closed {
                    "server exited"
                } else {
                    "timed out"
                };
                drop(guard);
                panic!(
                    "{why} waiting for {what}; server log:\n{}\nstderr:\n{}",
                    self.log.dump(),
                    self.stderr.dump()
                );
            }
            guard = self
                .log
                .cond
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits for a message matching `pred` and returns it.
    pub fn wait_log(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        self.wait_until("a matching log line", timeout, |es| {
            es.iter().find(|e| pred(&e.msg)).map(|e| e.msg.clone())
        })
    }

    /// Waits until `n` messages match `pred`; returns them.
    pub fn wait_log_count(&self, pred: impl Fn(&str) -> bool, n: usize) -> Vec<String> {
        self.wait_until(&format!("{n} matching log lines"), LOG_TIMEOUT, |es| {
            let found: Vec<String> = es
                .iter()
                .filter(|e| pred(&e.msg))
                .map(|e| e.msg.clone())
                .collect();
            (found.len() >= n).then_some(found)
        })
    }

    /// Waits for a message whose normalized form (`norm`) equals `expected`, and its
    /// stats line; returns the stats.
    pub fn stats_of(&self, expected: &str) -> Stats {
        self.wait_until(
            &format!("log line {expected:?} with stats"),
            LOG_TIMEOUT,
            |es| {
                es.iter()
                    .find(|e| norm(&e.msg) == expected && e.stats.is_some())
                    .and_then(|e| e.stats)
            },
        )
    }

    /// Whether any message matches `pred` right now.
    pub fn has_log(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.entries().iter().any(|e| pred(&e.msg))
    }

    /// The last stats line (waits until the log ends with one). Call it after waiting
    /// for the line that ends the scenario.
    pub fn last_stats(&self) -> Stats {
        self.wait_lines("a final stats line", LOG_TIMEOUT, |lines| {
            lines.last().and_then(|l| parse_stats(l))
        })
    }

    /// Normalized messages (`norm`) with stats, from the first one equal to `first` on.
    pub fn normalized_from(&self, first: &str) -> Vec<(String, Option<Stats>)> {
        let all: Vec<(String, Option<Stats>)> = self
            .entries()
            .iter()
            .map(|e| (norm(&e.msg), e.stats))
            .collect();
        let start = all
            .iter()
            .position(|(m, _)| m == first)
            .unwrap_or_else(|| panic!("no log line {first:?}; log:\n{}", self.log.dump()));
        all[start..].to_vec()
    }

    /// Waits until `n` WAIT connections have logged `connection closed`.
    pub fn wait_wait_closed(&self, n: usize) {
        self.wait_log_count(
            |m| m.starts_with("WAIT: ") && m.ends_with("connection closed"),
            n,
        );
    }

    /// Waits until `n` IN connections have logged `connection closed`.
    pub fn wait_in_closed(&self, n: usize) {
        self.wait_log_count(
            |m| m.starts_with("IN: ") && m.ends_with("connection closed"),
            n,
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "--- realplexor stdout ---\n{}\n--- realplexor stderr ---\n{}",
                self.log.dump(),
                self.stderr.dump()
            );
        }
        let _ = fs::remove_dir_all(&self.dir);
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

fn parse_entries(lines: &[String]) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for line in lines {
        if let Some(stats) = parse_stats(line) {
            if let Some(last) = out.last_mut() {
                if last.stats.is_none() {
                    last.stats = Some(stats);
                    continue;
                }
            }
            continue;
        }
        out.push(Entry {
            msg: strip_timestamp(line).to_string(),
            stats: None,
        });
    }
    out
}

/// Parses `  [pairs_by_fhs=a data_to_send=b connected_fhs=c online_timers=d cleanup_timers=e events=f]`.
pub fn parse_stats(line: &str) -> Option<Stats> {
    let inner = line.strip_prefix("  [pairs_by_fhs=")?.strip_suffix(']')?;
    let mut v = Vec::new();
    for (i, part) in format!("pairs_by_fhs={inner}").split(' ').enumerate() {
        let (k, n) = part.split_once('=')?;
        let want = [
            "pairs_by_fhs",
            "data_to_send",
            "connected_fhs",
            "online_timers",
            "cleanup_timers",
            "events",
        ];
        if want.get(i) != Some(&k) {
            return None;
        }
        v.push(n.parse::<usize>().ok()?);
    }
    (v.len() == 6).then(|| (v[0], v[1], v[2], v[3], v[4]))
}

/// Removes a `[Mon Nov 23 02:18:55 2026] ` prefix (VERBOSITY >= 2).
fn strip_timestamp(line: &str) -> &str {
    let b = line.as_bytes();
    if b.len() > 26 && b[0] == b'[' && &line[25..27] == "] " && b[14] == b':' && b[17] == b':' {
        &line[27..]
    } else {
        line
    }
}

/// The original harness's log filter (spec 12.0) for one message: peer addresses
/// stripped (`WAIT: DEBUG: …`), the first `<digits> bytes` masked as `<N> bytes`,
/// `[<d>.<d>` masked as `[*`, the ulimit and conf path masked.
pub fn norm(msg: &str) -> String {
    let mut m = msg.to_string();
    for line in ["WAIT: ", "IN: "] {
        if let Some(rest) = m.strip_prefix(line) {
            if !rest.starts_with("listening ") {
                if let Some((peer, tail)) = rest.split_once(": ") {
                    if peer.contains(':') && !peer.contains(' ') {
                        m = format!("{line}{tail}");
                    }
                }
            }
            break;
        }
    }
    if let Some(i) = m.find(" Opened files limit") {
        m.truncate(i);
    }
    if let Some(i) = m.find("appending configuration from ") {
        m.truncate(i + "appending configuration from ".len());
        m.push_str("***");
    }
    // First "<digits> bytes".
    let bytes: Vec<char> = m.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let mut j = i;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            let rest: String = bytes[j..].iter().collect();
            if rest.starts_with(" bytes") {
                let head: String = bytes[..i].iter().collect();
                m = format!("{head}<N>{rest}");
                break;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    // "[<digits>.<digits>" -> "[*", everywhere.
    let c: Vec<char> = m.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        if c[i] == '[' {
            let mut j = i + 1;
            let d1 = j;
            while j < c.len() && c[j].is_ascii_digit() {
                j += 1;
            }
            if j > d1 && j < c.len() && c[j] == '.' {
                let d2 = j + 1;
                let mut k = d2;
                while k < c.len() && c[k].is_ascii_digit() {
                    k += 1;
                }
                if k > d2 {
                    out.push_str("[*");
                    i = k;
                    continue;
                }
            }
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

/// Whether `c` has the generated-cursor form `<10 digits>.<14 digits>` (spec 5.1).
pub fn is_generated_cursor(c: &str) -> bool {
    match c.split_once('.') {
        Some((a, b)) => {
            a.len() == 10
                && b.len() == 14
                && a.bytes().all(|x| x.is_ascii_digit())
                && b.bytes().all(|x| x.is_ascii_digit())
        }
        None => false,
    }
}

/// Replaces every quoted generated cursor (`"<10 digits>.<14 digits>"`) with `<cursor>`;
/// client-supplied cursors stay as they are.
pub fn mask_generated(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('"') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.find('"') {
            Some(j) if is_generated_cursor(&after[..j]) => {
                out.push_str(GEN);
                rest = &after[j + 1..];
            }
            _ => {
                out.push('"');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The `"ids"` maps of a reply body, in block order: `[(id, cursor), ...]` per block.
pub fn parse_ids(body: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    for line in body.lines() {
        let Some(inner) = line
            .strip_prefix("    \"ids\": { ")
            .and_then(|l| l.strip_suffix(" },"))
        else {
            continue;
        };
        let mut pairs = Vec::new();
        for pair in inner.split(", ") {
            let (id, cursor) = pair.split_once(": ").expect("id: cursor");
            pairs.push((
                id.trim_matches('"').to_string(),
                cursor.trim_matches('"').to_string(),
            ));
        }
        out.push(pairs);
    }
    out
}

/// One reply block (spec 4.5). A cursor equal to `GEN` is written unquoted, as masked.
pub fn block(ids: &[(&str, &str)], data: &str) -> String {
    let pairs: Vec<String> = ids
        .iter()
        .map(|(id, c)| {
            if *c == GEN {
                format!("\"{id}\": {GEN}")
            } else {
                format!("\"{id}\": \"{c}\"")
            }
        })
        .collect();
    let sep = if data.contains('\n') { "\n" } else { " " };
    format!(
        "  {{\n    \"ids\": {{ {} }},\n    \"data\":{sep}{data}\n  }}",
        pairs.join(", ")
    )
}

/// A whole reply body: `[\n` + blocks joined by `,\n` + `\n]` (no trailing newline).
pub fn body(blocks: &[String]) -> String {
    format!("[\n{}\n]", blocks.join(",\n"))
}

/// Seconds since the epoch of a file's mtime.
pub fn mtime_secs(path: &Path) -> u64 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
        .duration_since(UNIX_EPOCH)
        .expect("after epoch")
        .as_secs()
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after epoch")
        .as_secs()
}

/// `strftime("%a, %e %b %Y %H:%M:%S GMT")` of a Unix time (spec 4.2).
pub fn http_date(secs: u64) -> String {
    const WD: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (secs / 86400) as i64;
    let tod = secs % 86400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {:>2} {} {} {:02}:{:02}:{:02} GMT",
        WD[((days + 4) % 7) as usize],
        d,
        MON[(m - 1) as usize],
        y,
        tod / 3600,
        tod / 60 % 60,
        tod % 60
    )
}

/// Fixture confs, mirroring `t/servertest/fixture/*.conf` of the original.
pub mod fixture {
    pub const SMALL_OFFLINE_TIMEOUT: &str = include_str!("fixtures/small_offline_timeout.conf");
    pub const SMALL_WAIT_TIMEOUT: &str = include_str!("fixtures/small_wait_timeout.conf");
    pub const SMALL_QUEUE_SZ: &str = include_str!("fixtures/small_queue_sz.conf");
    /// CLEAN_ID_AFTER = 1 and WAIT_TIMEOUT = 1.
    pub const SMALL_CLEANUP_TIMEOUT: &str = include_str!("fixtures/small_cleanup_timeout.conf");
    pub const LARGE_QUEUE_SZ: &str = include_str!("fixtures/large_queue_sz.conf");
    pub const SMALL_IN_MAXLEN: &str = include_str!("fixtures/small_in_maxlen.conf");
    pub const IPV6_WAIT_ADDR: &str = include_str!("fixtures/ipv6_wait_addr.conf");
    pub const TWO_WAIT_ADDRS: &str = include_str!("fixtures/two_wait_addrs.conf");
    pub const IFRAME_STUB: &str = include_str!("fixtures/iframe_stub.conf");
    /// The original's fixture verbatim: `dirname(abs_path(__FILE__)) . "/iframe_stub.html"`.
    pub const IFRAME_STUB_FILE_IDIOM: &str = include_str!("fixtures/iframe_stub_file_idiom.conf");
    pub const IFRAME_STUB_HTML: &str = include_str!("fixtures/iframe_stub.html");
    pub const SCRIPT_STUB: &str = include_str!("fixtures/script_stub.conf");
    pub const SCRIPT_STUB_JS: &str = include_str!("fixtures/script_stub.js");
}

/// Compares normalized log entries (`Server::normalized_from`) with the expected
/// `(message, stats)` list, printing both as one line per entry on mismatch.
pub fn assert_log(got: &[(String, Option<Stats>)], expected: &[(&str, Stats)]) {
    let got: Vec<String> = got.iter().map(|(m, s)| format!("{m}  {s:?}")).collect();
    let want: Vec<String> = expected
        .iter()
        .map(|(m, s)| format!("{m}  {:?}", Some(*s)))
        .collect();
    assert_eq!(got.join("\n"), want.join("\n"), "log lines differ");
}

/// Whether `line` starts with a ctime-style `[Mon Nov  3 02:18:55 2026] ` (spec 10.1).
pub fn has_ctime_prefix(line: &str) -> bool {
    const WD: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let Some(ts) = line.get(..27) else {
        return false;
    };
    let b = ts.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b[0] == b'['
        && WD.contains(&&ts[1..4])
        && b[4] == b' '
        && MON.contains(&&ts[5..8])
        && b[8] == b' '
        && (b[9] == b' ' || b[9].is_ascii_digit())
        && b[10].is_ascii_digit()
        && b[11] == b' '
        && digits(12..14)
        && b[14] == b':'
        && digits(15..17)
        && b[17] == b':'
        && digits(18..20)
        && b[20] == b' '
        && digits(21..25)
        && &ts[25..27] == "] "
}

/// The helpers themselves, on fixed inputs (no server needed).
#[test]
fn harness_helpers() {
    assert_eq!(http_date(1_407_363_695), "Wed,  6 Aug 2014 22:21:35 GMT");
    assert_eq!(http_date(0), "Thu,  1 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(
        parse_stats("  [pairs_by_fhs=1 data_to_send=2 connected_fhs=3 online_timers=4 cleanup_timers=5 events=6]"),
        Some((1, 2, 3, 4, 5))
    );
    assert_eq!(parse_stats("[abc] is now offline"), None);
    assert!(has_ctime_prefix("[Mon Nov  3 02:18:55 2026] x"));
    assert!(!has_ctime_prefix("[abc] is now offline"));
    let es = parse_entries(&[
        "[Mon Nov 23 02:18:55 2026] WAIT: 127.0.0.1:5555: DEBUG: [1795400405.96369000100000:abc,(and 1 more)] registered".to_string(),
        "  [pairs_by_fhs=1 data_to_send=0 connected_fhs=2 online_timers=2 cleanup_timers=0 events=2]".to_string(),
        "[Mon Nov 23 02:18:55 2026] <- sending 1 responses (77 bytes) from [abc, def] (print=1, shutdown=1)".to_string(),
    ]);
    assert_eq!(es.len(), 2);
    assert_eq!(es[0].stats, Some((1, 0, 2, 2, 0)));
    assert_eq!(es[1].stats, None);
    assert_eq!(
        norm(&es[0].msg),
        "WAIT: DEBUG: [*:abc,(and 1 more)] registered"
    );
    assert_eq!(
        norm(&es[1].msg),
        "<- sending 1 responses (<N> bytes) from [abc, def] (print=1, shutdown=1)"
    );
    assert_eq!(
        norm("IN: [::1]:80: DEBUG: read 12 bytes"),
        "IN: DEBUG: read <N> bytes"
    );
    assert_eq!(
        norm("WAIT: listening 127.0.0.1:8088"),
        "WAIT: listening 127.0.0.1:8088"
    );
    assert_eq!(
        norm("Starting. Opened files limit (ulimit -n): 1024."),
        "Starting."
    );
    assert_eq!(
        norm("CONFIG: appending configuration from /tmp/x.conf"),
        "CONFIG: appending configuration from ***"
    );
    let b = r#"{ "abc": "1795400405.96369000100000", "d": "12345.678" }"#;
    assert_eq!(
        mask_generated(b),
        r#"{ "abc": <cursor>, "d": "12345.678" }"#
    );
    assert_eq!(
        block(&[("abc", GEN), ("def", "5")], "\"a\""),
        "  {\n    \"ids\": { \"abc\": <cursor>, \"def\": \"5\" },\n    \"data\": \"a\"\n  }"
    );
    assert_eq!(
        body(&[block(&[("abc", "15")], "\"aaa\"")]),
        "[\n  {\n    \"ids\": { \"abc\": \"15\" },\n    \"data\": \"aaa\"\n  }\n]"
    );
    assert_eq!(
        parse_ids(&body(&[block(&[("a", "1"), ("b", "2.5")], "1\n2")])),
        vec![vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2.5".to_string())
        ]]
    );
}

/// Process control for the service tests (signals, exit, stderr).
impl Server {
    /// The pid of the process the test started (the supervisor in the default mode).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The override conf the server was started with.
    pub fn conf_path(&self) -> PathBuf {
        self.dir.join("test.conf")
    }

    /// Sends `sig` to the started process.
    pub fn signal(&self, sig: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill on the pid of our own child, which has not been reaped yet.
        unsafe {
            libc::kill(pid, sig);
        }
    }

    /// Waits for the started process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits for a stderr line matching `pred`.
    pub fn wait_stderr(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut guard = self.stderr.lock();
        loop {
            if let Some(l) = guard.lines.iter().find(|l| pred(l)) {
                return l.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                drop(guard);
                panic!(
                    "timed out waiting for a stderr line; stderr:\n{}\nstdout:\n{}",
                    self.stderr.dump(),
                    self.log.dump()
                );
            }
            guard = self
                .stderr
                .cond
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Every `IN: listening` address logged so far (a restarted worker binds anew).
    pub fn in_addrs_logged(&self) -> Vec<SocketAddr> {
        self.entries()
            .iter()
            .filter_map(|e| e.msg.strip_prefix("IN: listening "))
            .filter_map(|a| a.trim().parse().ok())
            .collect()
    }
}

// ----- Helpers for the ONLINE / WATCH / STATS, presence and auth tests -----

/// Fixtures of the command, presence and auth tests (`t/servertest/fixture/*.conf`).
pub mod fixture_cmd {
    /// EVENT_CHAIN_LEN = 3.
    pub const SMALL_CHAIN_LEN: &str = include_str!("fixtures/small_chain_len.conf");
    /// USERS_FILE = `non_anonymous.htpasswd` beside the conf, in the original's idiom.
    pub const NON_ANONYMOUS: &str = include_str!("fixtures/non_anonymous.conf");
    /// The original's users file: only `user:32qjML0Qsbo8o` (DES of `password`), no guest.
    pub const NON_ANONYMOUS_HTPASSWD: &str = include_str!("fixtures/non_anonymous.htpasswd");
}

/// A server on the `non_anonymous` fixture (spec 12.0), with `extra` conf lines appended.
pub fn start_non_anonymous(extra: &str) -> Server {
    Server::start_with_files(
        &format!("{extra}\n{}", fixture_cmd::NON_ANONYMOUS),
        &[(
            "non_anonymous.htpasswd",
            fixture_cmd::NON_ANONYMOUS_HTPASSWD,
        )],
    )
}

/// A server whose USERS_FILE (`users.htpasswd` beside the conf) holds `users`.
pub fn start_with_users(extra_conf: &str, users: &str) -> Server {
    Server::start_with_files(
        &format!("$CONFIG{{USERS_FILE}} = \"@DIR@/users.htpasswd\";\n{extra_conf}"),
        &[("users.htpasswd", users)],
    )
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

/// The original harness's masks for IN replies (spec 12.0): `(0x<hex>)` becomes `(0x*)`,
/// and a position or cursor followed by `:` after `online `, `offline `, `FAKE `, `=> ` or
/// `[` becomes `*`.
pub fn mask_in(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    'outer: while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("(0x") {
            let hex = after.bytes().take_while(u8::is_ascii_hexdigit).count();
            if hex > 0 && after[hex..].starts_with(')') {
                out.push_str("(0x*)");
                rest = &after[hex + 1..];
                continue;
            }
        }
        for p in ["online ", "offline ", "FAKE ", "=> ", "["] {
            if let Some(after) = rest.strip_prefix(p) {
                let n = after
                    .bytes()
                    .take_while(|b| b.is_ascii_digit() || *b == b'.')
                    .count();
                if n > 0 && after[n..].starts_with(':') {
                    out.push_str(p);
                    out.push('*');
                    rest = &after[n..];
                    continue 'outer;
                }
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

impl Server {
    /// Sends a raw command request (harness style: `stats`, `watch 1`, no headers) and
    /// returns the body of its `200 OK` reply, checked by `ok_body`.
    pub fn cmd(&self, raw: &str) -> String {
        ok_body(&self.push(raw.as_bytes()))
    }

    /// Waits for `[<id>] is now offline`.
    pub fn wait_offline(&self, id: &str) {
        let line = format!("[{id}] is now offline");
        self.wait_log(|m| m == line, LOG_TIMEOUT);
    }

    /// Whether `[<id>] is now offline` was logged.
    pub fn went_offline(&self, id: &str) -> bool {
        let line = format!("[{id}] is now offline");
        self.has_log(|m| m == line)
    }
}

/// The tool an auth test needs: its path, or a panic that names the package to install
/// (tests never skip silently, with or without CI=true).
pub fn require_tool(tool: &str, package: &str) -> String {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => p.to_string_lossy().into_owned(),
        None => panic!(
            "`{tool}` is not installed: install the Debian package {package} \
             (listed in scripts/deps/auth.txt; scripts/test installs it as root)"
        ),
    }
}

/// Runs a hash tool and returns its stdout's first line, trimmed; panics with its stderr.
pub fn tool_output(tool: &str, package: &str, args: &[&str]) -> String {
    let path = require_tool(tool, package);
    let out = Command::new(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {tool} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        show(&out.stderr)
    );
    show(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

// ----- Added for tests/hardening.rs -----------------------------------------------------

impl Server {
    /// As `start`, with the server's open-files limit (soft and hard) set to `nofile`
    /// through `sh -c 'ulimit -n N; exec ...'`, and `--foreground`: the shell execs, so the
    /// child (`pid()`) is the worker itself, whose descriptors and CPU the test measures.
    pub fn start_with_nofile(extra_conf: &str, nofile: u32) -> Server {
        Server::start_foreground_with(extra_conf, &format!("ulimit -n {nofile} && "))
    }

    /// As `start`, but the worker itself (`--foreground`, no supervisor), so that `pid()`
    /// is the process whose memory the test measures.
    pub fn start_foreground(extra_conf: &str) -> Server {
        Server::start_foreground_with(extra_conf, "")
    }

    fn start_foreground_with(extra_conf: &str, shell_prefix: &str) -> Server {
        Server::launch(extra_conf, &[], Some(shell_prefix))
    }

    /// Everything the server wrote to stderr so far (a panic's message lands there).
    pub fn stderr_text(&self) -> String {
        self.stderr.dump()
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
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
