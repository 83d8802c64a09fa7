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
//! IN connections are routed by their request line (`http_api`): the original protocol
//! (`publish`) or the HTTP API.
//! Uses: everything below it.

mod close;
mod cluster;
mod cluster_online;
mod cluster_presence;
mod cluster_publish;
mod control;
mod deliver;
mod housekeeping;
mod http_api;
mod listen;
mod persist;
mod publish;
mod reply_job;
mod source;
mod stream;
mod wait;

use control::limits_of;
use deliver::{join_ids, ReplyCache};
use listen::{wanted_addrs, ListenToken, Listener};
pub use persist::{snapshot_path, SNAPSHOT_ENV};
use source::Source;

use crate::commands::{self, Command};
use crate::config::perl::Value;
use crate::config::{self, Config};
use crate::conn::{Conn, Peer, State};
use crate::counters::{Counters, Drop};
use crate::cursor::{Cursor, CursorGen};
use crate::http::{self, Head};
use crate::ident::{self, Scan};
use crate::in_line::{self, Parsed, Publication};
use crate::logging;
use crate::net::{self, Listen, Stream};
use crate::rlog;
use crate::storage::{Block, Delivery, Expired, Limits, Message, Storage};
use crate::sys::{self, SignalFd};
use crate::timers::Timers;
use crate::transport::{self, After, Transport};
use crate::types::{ChannelId, ConnId, Line, ListenerId};
use log::Level::{Debug, Info, Warn};
use mio::net::TcpListener;
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

/// Descriptors kept for the IN line: 1/50 of the limit, at least 8 and at most 256.
fn fd_reserve(limit: u64) -> u64 {
    (limit / 50).clamp(8, 256)
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
    /// WAIT accepts stopped until then: the descriptor reserve for the IN line is reached.
    wait_paused_until: Option<Instant>,
    /// RLIMIT_NOFILE, and how many descriptors below it only the IN line may take, so a
    /// flood of browsers never locks publishers out.
    fd_limit: u64,
    fd_reserve: u64,
    /// Descriptors open besides connections (listeners, poller, signals, stdio, logs).
    fd_base: u64,
    /// A listener stopped at ACCEPT_BATCH with connections still queued: accept again
    /// after the other ready events (edge-triggered: no new edge would say so).
    accept_more: bool,
    last_accept_warn: Option<Instant>,
    /// Connections closed since the last memory trim (see `housekeeping`).
    closed_since_trim: usize,
    last_trim: Instant,
    /// The connection slab's capacity at the last trim (a growth since frees the old array).
    conns_cap_at_trim: usize,
    source: Option<ConfigSource>,
    counters: Counters,
    /// Channels pushed to in this loop turn, woken together at its end (`flush_deliveries`).
    wake: Vec<ChannelId>,
    /// Publishers whose close waits for that delivery (the original's log order).
    wake_ins: Vec<ConnId>,
    /// JSONP long-poll listeners' callback names (only theirs: a parked connection stays
    /// small).
    jsonp: std::collections::HashMap<ConnId, Box<str>>,
    /// Command replies being written in slices (see `reply_job`).
    jobs: Vec<(ConnId, reply_job::Job)>,
    /// Cluster mode: the Redis links and the log position (see `cluster`).
    cluster: Option<Box<cluster::Cluster>>,
    /// Where accepted pushes go (see `source`).
    msg_source: Source,
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

impl Reactor {
    /// Binds every WAIT_ADDR and IN_ADDR (logging the real bound addresses).
    pub fn new(cfg: Config) -> Result<Reactor, String> {
        let poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
        let fd_limit = sys::nofile_limit();
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
            wait_paused_until: None,
            fd_limit,
            fd_reserve: fd_reserve(fd_limit),
            fd_base: 0,
            accept_more: false,
            last_accept_warn: None,
            closed_since_trim: 0,
            last_trim: Instant::now(),
            conns_cap_at_trim: 0,
            source: None,
            msg_source: Source::Local,
            cluster: None,
            counters: Counters::default(),
            jobs: Vec::new(),
            jsonp: std::collections::HashMap::new(),
            wake: Vec::new(),
            wake_ins: Vec::new(),
            signals: None,
            stop_by: None,
        };
        // The history starts now (a snapshot, loaded later, moves it back); cursors
        // generated from here on are above it even if the clock steps back.
        let start = crate::cursor::wall_cursor(SystemTime::now());
        r.cursors.raise_floor(&start);
        r.storage.set_history_start(start);
        let addrs = wanted_addrs(&r.cfg);
        r.listeners = r.bind_all(Vec::new(), &addrs)?;
        if let Some(target) = r.cfg.cluster.clone() {
            let c = cluster::Cluster::new(&target, &r.cfg);
            // The shared log's retention is the history: it starts where catching up
            // starts (CLEAN_ID_AFTER ago), not at this process's start.
            r.storage.set_history_start(c.listen_now());
            r.cluster = Some(Box::new(c));
            r.msg_source = Source::Cluster;
            r.storage.shared_presence = Some(Box::default());
        }
        Ok(r)
    }

    /// Runs until stopped by a signal, a restart is needed, or a fatal poll error.
    pub fn run(&mut self) -> io::Result<Exit> {
        self.count_base_fds();
        let mut events = Events::with_capacity(1024);
        // (token, readable, writable, peer closed or error)
        let mut ready: Vec<(Token, bool, bool, bool)> = Vec::with_capacity(1024);
        let mut poll_errors = 0u32;
        let _batch = crate::logging::TurnBatch::start();
        loop {
            crate::logging::flush_turn();
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
                if token == cluster::PUB_LINK || token == cluster::READ_LINK {
                    self.on_link_event(token, readable, writable);
                    continue;
                }
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
            if self.cluster.is_some() {
                self.cluster_turn(Instant::now());
            }
            self.flush_deliveries(Instant::now());
            self.close_deferred(Instant::now());
            if !self.jobs.is_empty() {
                self.run_jobs();
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

    /// Counts the descriptors open besides connections (see `in_reserve`).
    fn count_base_fds(&mut self) {
        let conns = self.conns.len() as u64;
        self.fd_base = sys::open_fds()
            .map(|n| n.saturating_sub(conns))
            .unwrap_or(self.listeners.len() as u64 + 8);
    }

    fn poll_timeout(&self, now: Instant) -> Duration {
        let next = [
            self.timers.next_deadline(),
            self.storage.next_deadline(),
            self.storage.next_release(),
            self.accept_paused_until,
            self.wait_paused_until,
            self.cluster
                .as_deref()
                .and_then(cluster::Cluster::next_deadline),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            _ if self.accept_more || self.jobs_runnable() => Duration::ZERO,
            Some(t) => t.saturating_duration_since(now).min(MAX_POLL),
            None => MAX_POLL,
        }
    }

    // ----- accept -----------------------------------------------------------------------

    // ----- connection events ------------------------------------------------------------

    fn on_event(&mut self, key: usize, readable: bool, writable: bool, closed: bool, now: Instant) {
        if writable {
            self.on_writable(key, now);
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

    fn on_writable(&mut self, key: usize, now: Instant) {
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
                } else if c.proto == crate::conn::Proto::Api {
                    // Pipelined requests waited for this reply to be written.
                    self.serve_api(key, now);
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
            // The inactivity timeout counts from the last byte received (a streaming
            // connection's timer is its ping timer: left alone).
            let streaming = c.is_streaming_listener();
            let timer = if streaming { None } else { c.timer.take() };
            if let Some(t) = timer {
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
                Line::Wait
                    if self
                        .conns
                        .get(key)
                        .is_some_and(|c| c.state == State::WsOpen) =>
                {
                    self.on_ws_data(key, now)
                }
                Line::Wait => self.on_wait_data(key, r.bytes, now),
                Line::In => self.on_in_bytes(key, now),
            }
        }
        if r.eof && self.conns.contains(key) {
            if line == Line::In {
                self.on_in_end(key, now);
            }
            // A final reply still being written (a large ONLINE answer to a publisher that
            // half-closed) is finished by on_writable; anything else closes now.
            let flushing = self.conns.get(key).is_some_and(|c| {
                matches!(c.state, State::Streaming | State::Awaiting)
                    || (c.state == State::Closing && c.out.is_some())
            });
            if !flushing {
                match self.id_of(key) {
                    // A publisher whose push is still to be delivered closes after it.
                    Some(id) if line == Line::In && !self.wake.is_empty() => {
                        self.wake_ins.push(id);
                    }
                    _ => self.close_now(key, now),
                }
            }
        }
    }

    // ----- WAIT line --------------------------------------------------------------------

    // ----- IN line ----------------------------------------------------------------------

    // ----- timers -----------------------------------------------------------------------
}
