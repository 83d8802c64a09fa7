//! The event loop: owns the poller, the listeners, the connection slab, storage and the
//! timers; accepts, routes readiness, runs the WAIT and IN handlers, wakes parked
//! connections after a push, expires timers and picks the poll timeout. It is the only
//! place that registers sockets and the only place where sockets and storage meet.
//!
//! Edge-triggered rule (mio): every readable event is drained to WouldBlock, and WRITABLE
//! interest is added only while a write tail is pending.
//!
//! Structure: `conns: Slab<Conn>` (token = slab key), listener tokens from `LISTENER_BASE`
//! up; `closing` collects connections that got their final reply during this turn, closed
//! after the handler that served them finished (so logs come in the original's order).
//! Uses: everything below it.

use crate::commands::{self, Command};
use crate::config::perl::Value;
use crate::config::{self, Config};
use crate::conn::{Conn, Peer, State};
use crate::cursor::{Cursor, CursorGen};
use crate::http::{self, Head};
use crate::ident::{self, Scan};
use crate::in_line::{self, Parsed};
use crate::logging;
use crate::rlog;
use crate::storage::{Block, Delivery, Expired, Limits, Message, Storage};
use crate::sys::{self, SignalFd};
use crate::timers::Timers;
use crate::types::{ChannelId, ConnId, Line};
use crate::wait_line;
use log::Level::{Debug, Info, Warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

/// Tokens at and above this are listeners; below are connection slab keys.
const LISTENER_BASE: usize = 1 << 40;
/// The signalfd's token (just below the listeners).
const SIGNAL: Token = Token(LISTENER_BASE - 1);
/// How long a stopping worker lets IN requests already under way finish.
const STOP_GRACE: Duration = Duration::from_millis(1500);
/// Size of the one read buffer every connection reads through.
const SCRATCH: usize = 64 * 1024;
/// Longest poll sleep, so that coarse timers stay coarse but not stale.
const MAX_POLL: Duration = Duration::from_secs(1);
/// Pause after EMFILE/ENFILE before trying to accept again.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Connections one listener event accepts (and serves: see `add_conn`) before the loop
/// turns to its other ready events; the rest follow in the next turn.
const ACCEPT_BATCH: usize = 256;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct ListenToken(usize);

struct Listener {
    sock: TcpListener,
    line: Line,
    /// The address as configured (compared on reload).
    addr: String,
}

/// Why `run` returned.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// SIGINT/SIGTERM: stopped gracefully.
    Stop,
    /// A reload changed an option that needs a fresh process (SU_USER, or an address that
    /// could not be bound live): the supervisor starts a new worker, as the original does.
    Restart,
}

/// Where the config came from, to load it again on SIGHUP.
pub struct ConfigSource {
    pub override_path: Option<std::path::PathBuf>,
    pub install_dir: std::path::PathBuf,
}

pub struct Reactor {
    poll: Poll,
    listeners: Vec<Listener>,
    conns: Slab<Conn>,
    next_gen: u32,
    storage: Storage,
    timers: Timers<ConnId>,
    cfg: Config,
    limits: Limits,
    cursors: CursorGen,
    scratch: Vec<u8>,
    closing: Vec<ConnId>,
    accept_paused_until: Option<Instant>,
    /// A listener stopped at ACCEPT_BATCH with connections still queued: accept again
    /// after the other ready events (edge-triggered: no new edge would say so).
    accept_more: bool,
    last_accept_warn: Option<Instant>,
    /// Connections closed since the last memory trim (see `housekeeping`).
    closed_since_trim: usize,
    last_trim: Instant,
    source: Option<ConfigSource>,
    signals: Option<SignalFd>,
    /// Set once SIGINT/SIGTERM arrived: the time by which the worker exits.
    stop_by: Option<Instant>,
}

/// `WAIT: 1.2.3.4:5678` (or `?:?` when unknown), formatted only when logging.
struct Who<'a> {
    line: Line,
    peer: Option<&'a Peer>,
}

impl fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.peer {
            Some(a) => write!(f, "{}: {}", self.line.name(), a),
            None => write!(f, "{}: ?:?", self.line.name()),
        }
    }
}

fn limits_of(cfg: &Config) -> Limits {
    Limits {
        max_data_for_id: cfg.max_data_for_id,
        offline_timeout: cfg.offline_timeout,
        clean_id_after: cfg.clean_id_after,
        event_chain_len: cfg.event_chain_len,
    }
}

/// Binds one `host:port` (IPv4, `[IPv6]`, or a host name) with SO_REUSEADDR and the
/// original's backlog of 50000.
fn bind(addr: &str) -> Result<TcpListener, String> {
    let sa: SocketAddr = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let std = std::net::TcpListener::bind(sa).map_err(|e| format!("{addr}: {e}"))?;
    std.set_nonblocking(true)
        .map_err(|e| format!("{addr}: {e}"))?;
    // SAFETY: the fd is a valid listening socket owned by `std`; listen() again only
    // changes its backlog.
    unsafe {
        libc::listen(std::os::fd::AsRawFd::as_raw_fd(&std), 50_000);
    }
    // On both lines the client speaks first: accept a connection when its first bytes are
    // here, so the optimistic read in add_conn finds them. Silent connections wait in the
    // kernel (the original accepted them at once; nothing else differs).
    if let Err(e) = sys::defer_accept(std::os::fd::AsRawFd::as_raw_fd(&std), 1) {
        log::debug!("{addr}: TCP_DEFER_ACCEPT: {e}");
    }
    Ok(TcpListener::from_std(std))
}

/// The body of the last reply of a delivery run, with the blocks it was built from.
#[derive(Default)]
struct ReplyCache {
    blocks: Option<Vec<Block>>,
    body: Vec<u8>,
}

/// `abc, def` for the `<- sending` log line (empty when debug logging is off).
fn join_ids(ids: &[Rc<str>]) -> String {
    if !log::log_enabled!(Debug) {
        return String::new();
    }
    ids.iter().map(|s| &**s).collect::<Vec<_>>().join(", ")
}

/// The listen addresses a config asks for, in order.
fn wanted_addrs(cfg: &Config) -> Vec<(String, Line)> {
    cfg.wait_addr
        .iter()
        .map(|a| (a.clone(), Line::Wait))
        .chain(cfg.in_addr.iter().map(|a| (a.clone(), Line::In)))
        .collect()
}

/// A config value as the reload log shows it (lists joined with ", ", as Perl does).
fn option_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::List(items)) => items
            .iter()
            .map(Value::to_perl_string)
            .collect::<Vec<_>>()
            .join(", "),
        Some(v) => v.to_perl_string(),
        None => String::new(),
    }
}

/// Inserts extra header lines before the blank line that ends `reply`'s head.
fn with_headers(reply: &[u8], extra: &[u8]) -> Vec<u8> {
    let end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(reply.len(), |p| p + 2);
    let mut out = Vec::with_capacity(reply.len() + extra.len());
    out.extend_from_slice(reply.get(..end).unwrap_or_default());
    out.extend_from_slice(extra);
    out.extend_from_slice(reply.get(end..).unwrap_or_default());
    out
}

impl Reactor {
    /// Binds every WAIT_ADDR and IN_ADDR (logging the real bound addresses).
    pub fn new(cfg: Config) -> Result<Reactor, String> {
        let poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
        let mut r = Reactor {
            poll,
            listeners: Vec::new(),
            conns: Slab::new(),
            next_gen: 0,
            storage: Storage::new(),
            timers: Timers::new(),
            limits: limits_of(&cfg),
            cfg,
            cursors: CursorGen::new(),
            scratch: vec![0; SCRATCH],
            closing: Vec::new(),
            accept_paused_until: None,
            accept_more: false,
            last_accept_warn: None,
            closed_since_trim: 0,
            last_trim: Instant::now(),
            source: None,
            signals: None,
            stop_by: None,
        };
        let addrs = wanted_addrs(&r.cfg);
        r.listeners = r.bind_all(Vec::new(), &addrs)?;
        Ok(r)
    }

    /// Makes `run` handle SIGHUP (reload from `source`), SIGINT and SIGTERM (graceful stop).
    pub fn handle_signals(&mut self, source: ConfigSource) -> Result<(), String> {
        let sfd = SignalFd::new().map_err(|e| format!("signalfd: {e}"))?;
        self.poll
            .registry()
            .register(
                &mut mio::unix::SourceFd(&sfd.raw_fd()),
                SIGNAL,
                Interest::READABLE,
            )
            .map_err(|e| format!("signalfd: {e}"))?;
        self.signals = Some(sfd);
        self.source = Some(source);
        Ok(())
    }

    /// Builds the listener list for `addrs`, keeping any of `old` with the same address
    /// and line (no new socket, no lost connection) and binding the rest. Tokens follow the
    /// new order.
    fn bind_all(
        &mut self,
        mut old: Vec<Listener>,
        addrs: &[(String, Line)],
    ) -> Result<Vec<Listener>, String> {
        let mut out = Vec::with_capacity(addrs.len());
        for (addr, line) in addrs {
            let token = Token(LISTENER_BASE + out.len());
            let (mut sock, fresh) =
                match old.iter().position(|l| l.addr == *addr && l.line == *line) {
                    Some(i) => (old.swap_remove(i).sock, false),
                    None => (bind(addr)?, true),
                };
            let reg = self.poll.registry();
            let res = if fresh {
                reg.register(&mut sock, token, Interest::READABLE)
            } else {
                reg.reregister(&mut sock, token, Interest::READABLE)
            };
            res.map_err(|e| format!("{addr}: {e}"))?;
            if fresh {
                let local = sock.local_addr().map_err(|e| format!("{addr}: {e}"))?;
                rlog!(
                    Info,
                    self.storage.counts(),
                    "{}: listening {}",
                    line.name(),
                    local
                );
            }
            out.push(Listener {
                sock,
                line: *line,
                addr: addr.clone(),
            });
        }
        for mut l in old {
            let _ = self.poll.registry().deregister(&mut l.sock);
            rlog!(
                Info,
                self.storage.counts(),
                "{}: no longer listening {}",
                l.line.name(),
                l.addr
            );
        }
        Ok(out)
    }

    /// The bound addresses, per line (for tests and tools).
    pub fn local_addrs(&self) -> Vec<(Line, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|l| l.sock.local_addr().ok().map(|a| (l.line, a)))
            .collect()
    }

    /// Runs until stopped by a signal, a restart is needed, or a fatal poll error.
    pub fn run(&mut self) -> io::Result<Exit> {
        let mut events = Events::with_capacity(1024);
        // (token, readable, writable, peer closed or error)
        let mut ready: Vec<(Token, bool, bool, bool)> = Vec::with_capacity(1024);
        let mut poll_errors = 0u32;
        loop {
            let timeout = self.poll_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                poll_errors += 1;
                log::error!("poll failed: {e}");
                if poll_errors > 100 {
                    return Err(e);
                }
                continue;
            }
            poll_errors = 0;
            ready.clear();
            ready.extend(events.iter().map(|e| {
                let closed = e.is_read_closed() || e.is_error();
                (
                    e.token(),
                    e.is_readable() || closed,
                    e.is_writable() || e.is_write_closed(),
                    closed,
                )
            }));
            for &(token, readable, writable, closed) in &ready {
                let now = Instant::now();
                if token == SIGNAL {
                    if let Some(exit) = self.on_signals(now) {
                        return Ok(exit);
                    }
                    continue;
                }
                match token.0.checked_sub(LISTENER_BASE) {
                    Some(i) => self.accept(ListenToken(i), now),
                    None => self.on_event(token.0, readable, writable, closed, now),
                }
                self.close_deferred(now);
            }
            let now = Instant::now();
            self.expire(now);
            self.close_deferred(now);
            if let Some(by) = self.stop_by {
                if self.conns.is_empty() || now >= by {
                    let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                    for k in keys {
                        self.close_now(k, now);
                    }
                    return Ok(Exit::Stop);
                }
            }
        }
    }

    // ----- signals ----------------------------------------------------------------------

    fn on_signals(&mut self, now: Instant) -> Option<Exit> {
        while let Some(sig) = self.signals.as_ref().and_then(SignalFd::read) {
            match sig {
                libc::SIGHUP => {
                    if let Some(exit) = self.reload() {
                        return Some(exit);
                    }
                }
                _ => self.begin_stop(sig, now),
            }
        }
        None
    }

    /// SIGINT/SIGTERM: stop accepting, give every WAIT client its timeout reply (the header
    /// block it already has, then EOF) so browsers reconnect at once, and let IN requests
    /// under way finish for a moment.
    fn begin_stop(&mut self, sig: libc::c_int, now: Instant) {
        if self.stop_by.is_some() {
            return;
        }
        rlog!(
            Info,
            self.storage.counts(),
            "{} received, exiting",
            sys::signal_name(sig)
        );
        for mut l in std::mem::take(&mut self.listeners) {
            let _ = self.poll.registry().deregister(&mut l.sock);
        }
        self.accept_paused_until = None;
        self.stop_by = Some(now + STOP_GRACE);
        let waits: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.line == Line::Wait && c.out.is_none())
            .map(|(k, _)| k)
            .collect();
        for k in waits {
            self.close_now(k, now);
        }
    }

    /// SIGHUP: load the config files again and apply what changed (spec 9.5).
    fn reload(&mut self) -> Option<Exit> {
        rlog!(
            Info,
            self.storage.counts(),
            "SIGHUP received, reloading the config"
        );
        let source = self.source.as_ref()?;
        let loaded = match config::load(source.override_path.as_deref(), &source.install_dir) {
            Ok(l) => l,
            Err(e) => {
                rlog!(
                    Warn,
                    self.storage.counts(),
                    "Error reloading config, continue with old settings: {e}"
                );
                return None;
            }
        };
        for note in &loaded.notes {
            rlog!(Info, self.storage.counts(), "{note}");
        }
        let new = loaded.config;
        let keys: std::collections::BTreeSet<&String> =
            self.cfg.values.keys().chain(new.values.keys()).collect();
        for key in keys {
            let (a, b) = (
                self.cfg.values.get(key.as_str()),
                new.values.get(key.as_str()),
            );
            if matches!(a, Some(Value::Code(_))) || matches!(b, Some(Value::Code(_))) {
                continue;
            }
            let (a, b) = (option_text(a), option_text(b));
            if a == b {
                continue;
            }
            // Compat: SU_* need a fresh process, as in the original; WAIT_TIMEOUT and
            // IN_TIMEOUT apply to new connections live, and addresses are rebound live.
            if key.starts_with("SU_") {
                rlog!(
                    Info,
                    self.storage.counts(),
                    "Low-level option {key} is changed, restarting the script from scratch"
                );
                return Some(Exit::Restart);
            }
            rlog!(
                Info,
                self.storage.counts(),
                "Option {key} is changed: {a} -> {b}"
            );
        }
        let addrs = wanted_addrs(&new);
        if addrs != wanted_addrs(&self.cfg) {
            let old = std::mem::take(&mut self.listeners);
            match self.bind_all(old, &addrs) {
                Ok(l) => self.listeners = l,
                Err(e) => {
                    rlog!(
                        Info,
                        self.storage.counts(),
                        "Cannot listen on the new addresses live ({e}), restarting the script from scratch"
                    );
                    return Some(Exit::Restart);
                }
            }
        }
        logging::set_verbosity(new.verbosity);
        self.limits = limits_of(&new);
        self.cfg = new;
        None
    }

    fn poll_timeout(&self, now: Instant) -> Duration {
        let next = [
            self.timers.next_deadline(),
            self.storage.next_deadline(),
            self.accept_paused_until,
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            _ if self.accept_more => Duration::ZERO,
            Some(t) => t.saturating_duration_since(now).min(MAX_POLL),
            None => MAX_POLL,
        }
    }

    // ----- accept -----------------------------------------------------------------------

    fn accept(&mut self, which: ListenToken, now: Instant) {
        if self.accept_paused_until.is_some_and(|t| t > now) {
            return;
        }
        self.accept_paused_until = None;
        let mut accepted = 0;
        loop {
            if accepted == ACCEPT_BATCH {
                self.accept_more = true;
                return;
            }
            let Some(l) = self.listeners.get(which.0) else {
                return;
            };
            let line = l.line;
            match l.sock.accept() {
                Ok((sock, peer)) => {
                    accepted += 1;
                    self.add_conn(sock, peer.into(), line, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                    // Out of descriptors: stop accepting for a moment instead of spinning.
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    if self
                        .last_accept_warn
                        .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
                    {
                        self.last_accept_warn = Some(now);
                        rlog!(
                            Warn,
                            self.storage.counts(),
                            "accept: {e}; pausing new connections"
                        );
                    }
                    return;
                }
                Err(e) => {
                    log::debug!("accept: {e}");
                    continue;
                }
            }
        }
    }

    fn add_conn(&mut self, sock: TcpStream, peer: Peer, line: Line, now: Instant) {
        let key = self.conns.vacant_key();
        self.next_gen = self.next_gen.wrapping_add(1);
        let gen = self.next_gen;
        let mut conn = Conn::new(sock, peer, gen, line);
        let id = ConnId {
            key: key as u32,
            gen,
        };
        let timeout = match line {
            Line::Wait => self.cfg.wait_timeout,
            Line::In => self.cfg.in_timeout,
        };
        conn.timer = timeout.map(|d| self.timers.arm(now, d, id));
        rlog!(
            Debug,
            self.storage.counts(),
            "{}: DEBUG: connection opened",
            Who {
                line,
                peer: Some(&conn.peer)
            }
        );
        self.conns.insert(conn);
        // Optimistic read: the request is often here already (always, with
        // TCP_DEFER_ACCEPT), and then a publisher's whole request (data and FIN) is served
        // and closed without ever being registered with epoll. On IN, read until
        // WouldBlock to find an EOF that arrived; a WAIT request stops at a short read.
        self.on_readable(key, line == Line::In, now);
        if let Some(c) = self.conns.get_mut(key) {
            let interest = match c.out {
                Some(_) => Interest::READABLE | Interest::WRITABLE,
                None => Interest::READABLE,
            };
            // Registering reports readiness that is already there: no edge is lost.
            if self
                .poll
                .registry()
                .register(&mut c.sock, Token(key), interest)
                .is_err()
            {
                self.close_now(key, now);
            }
        }
        // Closes queued by this request happen before the next accept, in the original's
        // order (one connection's lines end before the next one's start).
        self.close_deferred(now);
    }

    // ----- connection events ------------------------------------------------------------

    fn on_event(&mut self, key: usize, readable: bool, writable: bool, closed: bool, now: Instant) {
        if writable {
            self.on_writable(key);
        }
        if readable {
            self.on_readable(key, closed, now);
        }
    }

    fn id_of(&self, key: usize) -> Option<ConnId> {
        self.conns.get(key).map(|c| ConnId {
            key: key as u32,
            gen: c.gen,
        })
    }

    fn who(&self, key: usize) -> Who<'_> {
        match self.conns.get(key) {
            Some(c) => Who {
                line: c.line,
                peer: Some(&c.peer),
            },
            None => Who {
                line: Line::Wait,
                peer: None,
            },
        }
    }

    /// `[name] ` for registered WAIT connections, as the original prefixes their lines.
    fn name_prefix(&self, key: usize) -> String {
        match self.conns.get(key).and_then(|c| c.listener) {
            Some(l) => format!("[{}] ", self.storage.listener_name(l)),
            None => String::new(),
        }
    }

    fn on_writable(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        match c.flush() {
            Ok(true) => {
                let _ =
                    self.poll
                        .registry()
                        .reregister(&mut c.sock, Token(key), Interest::READABLE);
                if c.state == State::Closing {
                    self.finish(key);
                }
            }
            Ok(false) => {}
            Err(_) => self.defer_close(key),
        }
    }

    fn on_readable(&mut self, key: usize, closed: bool, now: Instant) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let line = c.line;
        // Compat: the original appends everything one event reads and only then checks the
        // limit, so a marker within that read still counts. Keep up to one scratch buffer
        // past the limit (bounded memory), then let the handler report the overflow.
        let keep_max = match line {
            Line::Wait => self.cfg.wait_maxlen,
            Line::In => self.cfg.in_maxlen,
        }
        .saturating_add(SCRATCH);
        let r = c.read_all(&mut self.scratch, keep_max, closed);
        if r.bytes > 0 {
            let id = ConnId {
                key: key as u32,
                gen: c.gen,
            };
            // The inactivity timeout counts from the last byte received.
            if let Some(t) = c.timer.take() {
                self.timers.cancel(t);
                let d = match line {
                    Line::Wait => self.cfg.wait_timeout,
                    Line::In => self.cfg.in_timeout,
                };
                c.timer = d.map(|d| self.timers.arm(now, d, id));
            }
            rlog!(
                Debug,
                self.storage.counts(),
                "{}: DEBUG: {}read {} bytes",
                self.who(key),
                self.name_prefix(key),
                r.bytes
            );
            match line {
                Line::Wait => self.on_wait_data(key, r.bytes, now),
                Line::In => self.on_in_data(key),
            }
        }
        if r.eof && self.conns.contains(key) {
            if line == Line::In {
                self.on_in_eof(key, now);
            }
            // A final reply still being written (a large ONLINE answer to a publisher that
            // half-closed) is finished by on_writable; anything else closes now.
            let flushing = self
                .conns
                .get(key)
                .is_some_and(|c| c.state == State::Closing && c.out.is_some());
            if !flushing {
                self.close_now(key, now);
            }
        }
    }

    // ----- WAIT line --------------------------------------------------------------------

    fn on_wait_data(&mut self, key: usize, last_read: usize, now: Instant) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.state != State::Reading {
            return;
        }
        // CORS (only when configured, so the original's bytes stay the default): an HTTP
        // request is acted on once its head is complete, to know its Origin.
        let mut cors: Option<Vec<u8>> = None;
        if !self.cfg.allowed_origins.is_empty() {
            match http::parse_head(&c.buf) {
                Head::Partial => {
                    if c.buf.len() > self.cfg.wait_maxlen {
                        self.wait_overflow(key, last_read, now);
                    }
                    return;
                }
                Head::NotHttp => {}
                Head::Complete {
                    method,
                    origin,
                    request_headers,
                } => {
                    let allowed = origin
                        .filter(|o| http::origin_allowed(o, &self.cfg.allowed_origins))
                        .map(<[u8]>::to_vec);
                    if method.eq_ignore_ascii_case("OPTIONS") {
                        let reply = match &allowed {
                            Some(o) => http::preflight(o, request_headers),
                            None => b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".to_vec(),
                        };
                        rlog!(
                            Debug,
                            self.storage.counts(),
                            "{}: DEBUG: CORS preflight ({})",
                            self.who(key),
                            if allowed.is_some() {
                                "allowed"
                            } else {
                                "refused"
                            }
                        );
                        self.reply_and_close(key, &reply);
                        return;
                    }
                    cors = allowed;
                }
            }
        }
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let m = match ident::scan(&c.buf, self.cfg.identifier.as_bytes(), c.scan_from as usize) {
            Scan::NotYet { resume } => {
                c.scan_from = u32::try_from(resume).unwrap_or(0);
                if c.buf.len() > self.cfg.wait_maxlen {
                    self.wait_overflow(key, last_read, now);
                }
                return;
            }
            Scan::Found(m) => m,
        };
        // The first pair's id (whatever its cursor) selects the static replies.
        let first = ident::items(m.list).next().map(|it| it.id);
        let what = match first {
            None => None,
            Some(id) if id == self.cfg.iframe_id.as_bytes() => Some("IFRAME"),
            Some(id) if id == self.cfg.script_id.as_bytes() => Some("SCRIPT"),
            Some(_) => {
                // Interned straight from the request bytes (ids are ASCII word characters).
                let mut gen_now: Option<Cursor> = None;
                let mut pairs: Vec<(Cursor, ChannelId)> = Vec::new();
                // Compat: the Perl original listens to `*id` items on WAIT like plain ids.
                for it in ident::items(m.list) {
                    let cursor = match it.cursor.and_then(Cursor::parse_client) {
                        Some(c) => c,
                        None => gen_now
                            .get_or_insert_with(|| self.cursors.next(SystemTime::now()))
                            .clone(),
                    };
                    let name = std::str::from_utf8(it.id).unwrap_or_default();
                    pairs.push((cursor, self.storage.intern(name)));
                }
                self.register(key, pairs, cors);
                return;
            }
        };
        let Some(what) = what else {
            rlog!(
                Debug,
                self.storage.counts(),
                "{}: ERROR: Empty identifier passed",
                self.who(key)
            );
            self.close_now(key, now);
            return;
        };
        let reply = if what == "IFRAME" {
            self.cfg.iframe_reply.clone()
        } else {
            self.cfg.script_reply.clone()
        };
        rlog!(
            Debug,
            self.storage.counts(),
            "{}: DEBUG: {} marker received, sending content",
            self.who(key),
            what
        );
        // The static files are cacheable (Expires 2037): with CORS configured, a copy
        // fetched without Origin must not be reused for a CORS request, so they always
        // vary on Origin.
        let reply = match &cors {
            Some(o) => with_headers(&reply, &http::cors_headers(o)),
            None if !self.cfg.allowed_origins.is_empty() => {
                with_headers(&reply, b"Vary: Origin\r\n")
            }
            None => reply.to_vec(),
        };
        self.reply_and_close(key, &reply);
    }

    /// More than WAIT_MAXLEN bytes and no marker: close without a reply.
    fn wait_overflow(&mut self, key: usize, last_read: usize, now: Instant) {
        // Compat: Perl reports the size of the last read here.
        rlog!(
            Debug,
            self.storage.counts(),
            "{}: ERROR: overflow (received {} bytes total)",
            self.who(key),
            last_read
        );
        self.close_now(key, now);
    }

    /// Registration (spec 4.3): header block, subscriptions, presence, then delivery of
    /// anything already pending.
    fn register(&mut self, key: usize, pairs: Vec<(Cursor, ChannelId)>, cors: Option<Vec<u8>>) {
        let Some(id) = self.id_of(key) else {
            self.storage.forget_unused(pairs.iter().map(|p| p.1));
            return;
        };
        let header: Rc<[u8]> = match &cors {
            Some(o) => Rc::from(with_headers(&self.cfg.wait_header, &http::cors_headers(o))),
            None => self.cfg.wait_header.clone(),
        };
        let Some(c) = self.conns.get_mut(key) else {
            self.storage.forget_unused(pairs.iter().map(|p| p.1));
            return;
        };
        // The request buffer is not needed any more: free it (the parked socket's
        // footprint is its slab entry and subscriptions only).
        c.buf = Vec::new();
        c.scan_from = 0;
        c.state = State::Parked;
        if self.write_or_close(key, &header).is_err() {
            // The ids were interned for this request: drop the ones nothing else holds.
            self.storage.forget_unused(pairs.iter().map(|p| p.1));
            return;
        }
        let l = self.storage.register(id, pairs, &self.limits);
        if let Some(c) = self.conns.get_mut(key) {
            c.listener = Some(l);
        }
        rlog!(
            Debug,
            self.storage.counts(),
            "{}: DEBUG: {}registered",
            self.who(key),
            self.name_prefix(key)
        );
        let delivery = self.storage.deliver_to_new(l, &self.limits);
        self.log_trims();
        if let Some((d, ids)) = delivery {
            let ids_text = join_ids(&ids);
            self.send_delivery(d, &ids_text, &mut ReplyCache::default());
        }
    }

    /// MAX_DATA_FOR_ID dropped the oldest messages of these queues: say so (a limit that
    /// drops data is always logged; the original trims silently).
    fn log_trims(&mut self) {
        if !log::log_enabled!(Debug) {
            self.storage.clear_trims();
            return;
        }
        for (id, n) in self.storage.take_trims() {
            rlog!(
                Debug,
                self.storage.counts(),
                "[{}] queue trimmed to MAX_DATA_FOR_ID={}: {} oldest message(s) dropped",
                id,
                self.limits.max_data_for_id,
                n
            );
        }
    }

    /// Writes one delivery's body at once and queues its connection for closing. `out`
    /// carries the previous reply between calls of one run: a fan-out gives most listeners
    /// the same blocks, so their body is serialised once.
    fn send_delivery(&mut self, d: Delivery, ids_text: &str, out: &mut ReplyCache) {
        let key = d.conn.key as usize;
        // INVARIANT: a listener's connection outlives its registration.
        debug_assert_eq!(self.id_of(key), Some(d.conn));
        if self.id_of(key) != Some(d.conn) {
            return;
        }
        if out
            .blocks
            .as_deref()
            .is_none_or(|p| !wait_line::same_blocks(p, &d.blocks))
        {
            out.body.clear();
            wait_line::body(&d.blocks, &mut out.body);
        }
        if let Some(c) = self.conns.get_mut(key) {
            c.state = State::Closing;
        }
        let done = self.write_or_close(key, &out.body);
        rlog!(
            Debug,
            self.storage.counts(),
            "<- sending {} responses ({} bytes) from [{}] (print=1, shutdown=1)",
            d.blocks.len(),
            out.body.len(),
            ids_text
        );
        if done == Ok(true) {
            self.finish(key);
        }
        out.blocks = Some(d.blocks);
    }

    /// Sends `bytes`; on a socket error the connection is queued for closing.
    /// Ok(true): everything went out; Ok(false): a tail waits for WRITABLE.
    fn write_or_close(&mut self, key: usize, bytes: &[u8]) -> Result<bool, ()> {
        let Some(c) = self.conns.get_mut(key) else {
            return Err(());
        };
        match c.send(bytes) {
            Ok(true) => Ok(true),
            Ok(false) => {
                let _ = self.poll.registry().reregister(
                    &mut c.sock,
                    Token(key),
                    Interest::READABLE | Interest::WRITABLE,
                );
                Ok(false)
            }
            Err(_) => {
                self.defer_close(key);
                Err(())
            }
        }
    }

    /// Sends a final reply, then shuts the connection down once it is flushed.
    fn reply_and_close(&mut self, key: usize, bytes: &[u8]) {
        if let Some(c) = self.conns.get_mut(key) {
            c.state = State::Closing;
            c.buf = Vec::new();
        }
        if self.write_or_close(key, bytes) == Ok(true) {
            self.finish(key);
        }
    }

    /// The final reply is out: send FIN now (in the same segment as the reply, which was
    /// written with MSG_MORE) and close the socket after this turn, so that log lines keep
    /// the original's order (the IN connection closes before the WAIT ones it answered).
    fn finish(&mut self, key: usize) {
        if let Some(c) = self.conns.get(key) {
            let _ = c.sock.shutdown(Shutdown::Write);
        }
        self.defer_close(key);
    }

    fn defer_close(&mut self, key: usize) {
        // No duplicate check (a scan here made a fan-out quadratic): close_deferred skips
        // ids that are already closed.
        if let Some(id) = self.id_of(key) {
            self.closing.push(id);
        }
    }

    fn close_deferred(&mut self, now: Instant) {
        while let Some(id) = self.closing.pop() {
            if self.id_of(id.key as usize) == Some(id) {
                self.close_now(id.key as usize, now);
            }
        }
    }

    /// The close handler (spec 4.6 / 6.1 step 4): unsubscribe, start offline countdowns,
    /// log, and drop the socket.
    fn close_now(&mut self, key: usize, now: Instant) {
        if !self.conns.contains(key) {
            return;
        }
        // The name and peer are formatted only when the line is logged.
        let logged =
            log::log_enabled!(Debug).then(|| (self.who(key).to_string(), self.name_prefix(key)));
        // Closing the socket removes it from epoll: no deregister call needed.
        let mut c = self.conns.remove(key);
        self.closed_since_trim += 1;
        if let Some(t) = c.timer.take() {
            self.timers.cancel(t);
        }
        if let Some(l) = c.listener.take() {
            self.storage.close_listener(l, now, &self.limits);
        }
        if let Some((who, prefix)) = logged {
            rlog!(
                Debug,
                self.storage.counts(),
                "{}: DEBUG: {}connection closed",
                who,
                prefix
            );
        }
    }

    // ----- IN line ----------------------------------------------------------------------

    fn on_in_data(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.state != State::Reading {
            return;
        }
        if c.parsed.is_none() {
            match ident::scan(&c.buf, self.cfg.identifier.as_bytes(), c.scan_from as usize) {
                Scan::NotYet { resume } => c.scan_from = u32::try_from(resume).unwrap_or(0),
                Scan::Found(m) => {
                    let p = Parsed::from_marker(&m);
                    c.parsed = Some(Box::new(p));
                    let desc = c.parsed.as_ref().map(|p| p.describe()).unwrap_or_default();
                    rlog!(
                        Debug,
                        self.storage.counts(),
                        "{}: DEBUG: {}",
                        self.who(key),
                        desc
                    );
                    if !self.authenticate(key) {
                        return;
                    }
                }
            }
        }
        let Some(c) = self.conns.get(key) else {
            return;
        };
        if let Some(cmd) = commands::find(&c.buf, false) {
            self.run_command(key, cmd);
            return;
        }
        if c.buf.len() > self.cfg.in_maxlen {
            // Spec 13.1 #4: unlike the original, an overflowing request is not pushed.
            rlog!(
                Debug,
                self.storage.counts(),
                "{}: ERROR: overflow (received {} bytes total)",
                self.who(key),
                c.buf.len()
            );
            if let Some(c) = self.conns.get_mut(key) {
                c.parsed = None;
                c.buf = Vec::new();
                c.state = State::Closing;
            }
            self.finish(key);
        }
    }

    /// Checks the request's credentials; on failure replies 403 and returns false.
    fn authenticate(&mut self, key: usize) -> bool {
        let Some(c) = self.conns.get(key) else {
            return false;
        };
        let creds = c.parsed.as_ref().and_then(|p| p.creds());
        let Err(err) = self.cfg.users.check(creds) else {
            return true;
        };
        let reply = in_line::forbidden(&err);
        rlog!(
            Debug,
            self.storage.counts(),
            "{}: ERROR: {}",
            self.who(key),
            err
        );
        if let Some(c) = self.conns.get_mut(key) {
            c.parsed = None;
        }
        self.reply_and_close(key, &reply);
        false
    }

    fn on_in_eof(&mut self, key: usize, now: Instant) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.state != State::Reading {
            return;
        }
        if let Some(cmd) = commands::find(&c.buf, true) {
            self.run_command(key, cmd);
            return;
        }
        let Some(parsed) = c.parsed.take() else {
            return;
        };
        let Parsed {
            targets: pairs,
            limiters,
            login,
            ..
        } = *parsed;
        let buf = std::mem::take(&mut c.buf);
        let Some(body) = in_line::body_of(&buf).filter(|b| !b.is_empty()) else {
            // Spec 13.1 #3: an empty body is ignored like a missing one.
            rlog!(
                Debug,
                self.storage.counts(),
                "{}: DEBUG: passed empty HTTP body, ignored",
                self.who(key)
            );
            return;
        };
        let mut targets: Vec<(Cursor, ChannelId)> = Vec::with_capacity(pairs.len());
        let mut names: Vec<&str> = Vec::with_capacity(pairs.len());
        // "Now" is taken here, when the message is applied, not when its marker was read:
        // two publishers whose requests overlap must get cursors in the order their
        // messages reach the queues, or a listener that already moved past the later
        // cursor would never see the earlier-stamped message (spec 5.1: one "now" per
        // request, shared by its cursor-less ids).
        let mut gen_now: Option<Cursor> = None;
        for (cursor, id) in &pairs {
            if let Some(login) = &login {
                let owned = id
                    .strip_prefix(login.as_str())
                    .is_some_and(|rest| rest.starts_with('_'));
                if !owned {
                    rlog!(
                        Debug,
                        self.storage.counts(),
                        "{}: DEBUG: skipping not owned [{}] for login {}",
                        self.who(key),
                        id,
                        login
                    );
                    continue;
                }
            }
            let cursor = match cursor {
                Some(c) => c.clone(),
                None => gen_now
                    .get_or_insert_with(|| self.cursors.next(SystemTime::now()))
                    .clone(),
            };
            targets.push((cursor, self.storage.intern(id)));
            names.push(id);
        }
        if targets.is_empty() {
            return;
        }
        let msg = Rc::new(Message {
            data: body.into(),
            limiters: limiters.into_boxed_slice(),
        });
        let logged = log::log_enabled!(Debug).then(|| (self.who(key).to_string(), names.join(",")));
        self.apply_message(now, msg, targets, |counts| {
            if let Some((who, names)) = logged {
                rlog!(Debug, counts, "{}: DEBUG: added data for [{}]", who, names);
            }
        });
    }

    /// Applies one published message: queue it under its targets, then wake and answer
    /// every listener that may see it. This is the one entry point for messages, whatever
    /// their source.
    pub fn apply_message(
        &mut self,
        now: Instant,
        msg: Rc<Message>,
        targets: Vec<(Cursor, ChannelId)>,
        queued: impl FnOnce(crate::storage::Counts),
    ) {
        self.storage.push(now, &msg, &targets, &self.limits);
        queued(self.storage.counts());
        let ids: Vec<ChannelId> = targets.iter().map(|t| t.1).collect();
        let mut run = self.storage.begin_delivery(ids, &self.limits);
        self.log_trims();
        // The ids list costs a pass over the listeners: only when it is logged.
        let ids_text = if log::log_enabled!(Debug) {
            join_ids(&self.storage.ids_with_data(&run))
        } else {
            String::new()
        };
        let mut cache = ReplyCache::default();
        while let Some(d) = self.storage.next_delivery(&mut run) {
            self.send_delivery(d, &ids_text, &mut cache);
        }
    }

    fn run_command(&mut self, key: usize, cmd: Command) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.buf = Vec::new();
        c.state = State::Closing;
        rlog!(
            Debug,
            self.storage.counts(),
            "{}: DEBUG: received aux command: {}",
            self.who(key),
            cmd.describe()
        );
        // Commands check the credentials again (the marker may have come without ids).
        if !self.authenticate(key) {
            return;
        }
        let login = self
            .conns
            .get(key)
            .and_then(|c| c.parsed.as_ref())
            .and_then(|p| p.login.clone());
        let answer = commands::answer(&cmd, &self.storage, login.as_deref());
        match answer {
            commands::Answer::Text { body, log } => {
                rlog!(
                    Debug,
                    self.storage.counts(),
                    "{}: DEBUG: {}",
                    self.who(key),
                    log
                );
                let reply = in_line::ok_text(&body);
                self.reply_and_close(key, &reply);
            }
            commands::Answer::Nothing => self.finish(key),
        }
    }

    // ----- timers -----------------------------------------------------------------------

    /// Gives memory back after a peak: once connections or channels are gone, shrink the
    /// containers that keep their peak capacity and ask malloc to return free pages.
    /// At most every 5 s and only after 1,000 frees, so a steady churn pays nothing
    /// measurable.
    fn housekeeping(&mut self, now: Instant) {
        const FREED: usize = 1_000;
        const EVERY: Duration = Duration::from_secs(5);
        if self.closed_since_trim + self.storage.freed_since_trim() < FREED
            || now.duration_since(self.last_trim) < EVERY
        {
            return;
        }
        self.closed_since_trim = 0;
        self.last_trim = now;
        self.storage.shrink();
        sys::shrink_slab(&mut self.conns);
        self.timers.shrink();
        sys::trim_heap();
        rlog!(Debug, self.storage.counts(), "memory trimmed after a peak");
    }

    fn expire(&mut self, now: Instant) {
        self.housekeeping(now);
        let more = std::mem::take(&mut self.accept_more);
        if more || self.accept_paused_until.is_some_and(|t| t <= now) {
            for i in 0..self.listeners.len() {
                self.accept(ListenToken(i), now);
            }
        }
        while let Some(id) = self.timers.pop_expired(now) {
            let key = id.key as usize;
            if self.id_of(key) != Some(id) {
                continue;
            }
            if let Some(c) = self.conns.get_mut(key) {
                c.timer = None;
            }
            let dropped = self
                .conns
                .get(key)
                .and_then(|c| c.parsed.as_ref().map(|_| c.buf.len()));
            rlog!(
                Debug,
                self.storage.counts(),
                "{}: DEBUG: {}timeout",
                self.who(key),
                self.name_prefix(key)
            );
            if let Some(n) = dropped {
                rlog!(
                    Warn,
                    self.storage.counts(),
                    "{}: ERROR: IN_TIMEOUT reached before EOF, {} bytes dropped",
                    self.who(key),
                    n
                );
            }
            self.close_now(key, now);
        }
        while let Some(e) = self.storage.expire_one(now) {
            match e {
                Expired::Offline(name) => {
                    rlog!(Debug, self.storage.counts(), "[{}] is now offline", name);
                    self.storage.record_offline(&name, &self.limits);
                }
                Expired::Cleaned(name) => {
                    rlog!(
                        Debug,
                        self.storage.counts(),
                        "[{}] cleaned, because no data is pushed within last {} seconds",
                        name,
                        self.cfg
                            .values
                            .get("CLEAN_ID_AFTER")
                            .map(|v| v.to_perl_string())
                            .unwrap_or_default()
                    );
                }
            }
        }
    }
}
