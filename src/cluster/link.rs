//! One non-blocking Redis connection, driven by the caller's mio loop (one per worker).
//!
//! Job: connect (TCP or Unix socket), run the handshake (`AUTH`, `SELECT`, `CLIENT
//! SETNAME`, or a `PING` when none of them is needed), pipeline the caller's commands,
//! match replies to the caller's tags in order, and when the connection fails report every
//! command still owed a reply as failed (the publisher answers 503; nothing is dropped
//! silently), then reconnect by itself with back-off (`backoff_min` doubling up to
//! `backoff_max`), logging at most once a second while it stays down.
//!
//! Data shape: `Link<T>` where `T` is the caller's tag. Commands accepted while the
//! handshake runs wait in `waiting` (they are only written once the handshake succeeded,
//! so a failed `SELECT` can never run them in the wrong database); written commands and
//! handshake steps are in `inflight`, in wire order, and each reply pops the front. The
//! caller reads what happened with `next_event`: `Reply(tag, value)` (Redis error replies
//! are values too), `Failed(tag, error)`, `Up`, `Down(error)`. A failed command's outcome
//! is unknown (an `XADD` may have been applied before the link dropped).
//!
//! The caller's loop, each turn: on this link's token call `on_readable` (also for error
//! and hang-up events) and/or `on_writable`; then `tick` (timers: retry, connect and reply
//! timeouts), `flush` after queueing commands with `send`, `sync_registration` (registers
//! a new socket after a reconnect; the link never owns the Poll), drain `next_event`, and
//! poll with a timeout no later than `next_deadline`. The socket is registered for
//! READABLE | WRITABLE once (edge-triggered), so interest never has to change.
//!
//! Memory: replies are read straight into `inbuf` (16 KiB at a time, no scratch buffer),
//! and a buffer or queue that a burst grew past `KEEP` bytes is given back once the burst
//! is over (`release`): one large XREAD reply or a backlog of commands while Redis was
//! slow must not stay resident in every worker for the rest of its life.
//!
//! Limits: a reply may be at most `max_reply` bytes and unsent bytes at most `max_out`
//! (`send` refuses past it), a reply must start arriving within `reply_timeout` (so a
//! command that blocks in Redis, like `XREAD BLOCK ms`, must block for less). A host name
//! is resolved with the system resolver on each attempt, which blocks: prefer IP literals.
//! Uses: `cluster::resp`, `cluster::addr`, `cluster::sock`, `cluster::link_types` (its
//! options, states, errors and events); `mio`, `log`.

use super::addr::Target;
use super::resp::{self, Limits, Parsed, Value};
use super::sock::Sock;
use mio::event::Source;
use mio::{Interest, Registry, Token};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

pub use super::link_types::{Event, LinkError, Options, State};

#[derive(Clone, Copy, Debug)]
enum Step {
    Auth,
    Select,
    SetName,
    Ping,
}

enum Pending<T> {
    Step(Step),
    Cmd(T),
}

pub struct Link<T> {
    target: Target,
    opts: Options,
    limits: Limits,
    state: State,
    sock: Option<Sock>,
    registered: bool,
    since: Instant,
    out: Vec<u8>,
    out_pos: usize,
    inbuf: Vec<u8>,
    /// `inbuf` must hold this many bytes before parsing again (the decoder's hint).
    need: usize,
    inflight: VecDeque<Pending<T>>,
    waiting: Vec<u8>,
    waiting_tags: VecDeque<T>,
    events: VecDeque<Event<T>>,
    backoff: Duration,
    last_progress: Instant,
    last_error: Option<LinkError>,
    last_log: Option<Instant>,
    suppressed: u64,
    attempts: u64,
    up_since: Instant,
}

/// How long a link must stay up for the back-off to start over.
const STABLE: Duration = Duration::from_secs(1);
/// Bytes read from the socket per `read` call (straight into `inbuf`'s tail).
const READ_CHUNK: usize = 16 << 10;
/// Capacity, in bytes, a buffer may keep once it is (nearly) empty again; above it the
/// memory goes back to the allocator.
pub const KEEP: usize = 64 << 10;

/// Gives back what a burst left of `buf`'s capacity once at most a quarter of `KEEP` is
/// in it; O(1) unless it shrinks (then it moves what is left: at most `KEEP / 4` bytes).
fn release_bytes(buf: &mut Vec<u8>) {
    if buf.capacity() > KEEP && buf.len() <= KEEP / 4 {
        buf.shrink_to(KEEP / 4);
    }
}

/// `release_bytes` for a queue of `T`s, counted in bytes.
fn release_queue<X>(q: &mut VecDeque<X>) {
    let size = std::mem::size_of::<X>().max(1);
    if q.capacity().saturating_mul(size) > KEEP && q.len().saturating_mul(size) <= KEEP / 4 {
        q.shrink_to(KEEP / 4 / size);
    }
}

impl<T> Link<T> {
    /// A link that starts connecting at once.
    pub fn new(target: Target, opts: Options) -> Link<T> {
        let now = Instant::now();
        let limits = Limits {
            max_bulk: opts.max_reply,
            ..Limits::default()
        };
        let mut link = Link {
            target,
            backoff: opts.backoff_min,
            opts,
            limits,
            state: State::Down { retry_at: now },
            sock: None,
            registered: false,
            since: now,
            out: Vec::new(),
            out_pos: 0,
            inbuf: Vec::new(),
            need: 0,
            inflight: VecDeque::new(),
            waiting: Vec::new(),
            waiting_tags: VecDeque::new(),
            events: VecDeque::new(),
            last_progress: now,
            last_error: None,
            last_log: None,
            suppressed: 0,
            attempts: 0,
            up_since: now,
        };
        link.connect();
        link
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    /// Why the link last dropped or last failed to come up.
    pub fn last_error(&self) -> Option<&LinkError> {
        self.last_error.as_ref()
    }

    /// Connection attempts so far.
    pub fn attempts(&self) -> u64 {
        self.attempts
    }

    /// Commands accepted and not yet answered or failed.
    pub fn in_flight(&self) -> usize {
        // Before Ready, `inflight` holds handshake steps only; from Ready on, commands only.
        let sent = if self.state == State::Ready {
            self.inflight.len()
        } else {
            0
        };
        sent.saturating_add(self.waiting_tags.len())
    }

    /// Capacity of the link's byte buffers (read, write, and commands waiting for the
    /// handshake), in bytes: at most about `KEEP` each between bursts.
    pub fn buffer_capacity(&self) -> usize {
        self.inbuf
            .capacity()
            .saturating_add(self.out.capacity())
            .saturating_add(self.waiting.capacity())
    }

    /// Capacity of the link's queues (commands owed a reply, commands waiting for the
    /// handshake, events not yet taken), in bytes: at most about `KEEP` each between
    /// bursts.
    pub fn queue_capacity(&self) -> usize {
        fn bytes<X>(q: &VecDeque<X>) -> usize {
            q.capacity().saturating_mul(std::mem::size_of::<X>())
        }
        bytes(&self.inflight)
            .saturating_add(bytes(&self.waiting_tags))
            .saturating_add(bytes(&self.events))
    }

    /// Command bytes not yet written to the socket.
    pub fn unsent_bytes(&self) -> usize {
        self.out
            .len()
            .saturating_sub(self.out_pos)
            .saturating_add(self.waiting.len())
    }

    /// The interest the socket needs, when there is one: always both, edge-triggered.
    pub fn interest(&self) -> Option<Interest> {
        self.sock
            .as_ref()
            .map(|_| Interest::READABLE | Interest::WRITABLE)
    }

    /// Registers the current socket if it is new (after `new` or a reconnect). Sockets
    /// the link drops leave the Poll when they are closed.
    pub fn sync_registration(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        if let (Some(sock), false) = (self.sock.as_mut(), self.registered) {
            sock.register(registry, token, Interest::READABLE | Interest::WRITABLE)?;
            self.registered = true;
        }
        Ok(())
    }

    /// Deregisters the socket (before dropping the link or the Poll).
    pub fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        if let (Some(sock), true) = (self.sock.as_mut(), self.registered) {
            self.registered = false;
            sock.deregister(registry)?;
        }
        Ok(())
    }

    /// The next thing that happened, oldest first.
    pub fn next_event(&mut self) -> Option<Event<T>> {
        let ev = self.events.pop_front();
        if ev.is_none() {
            // All taken: what a burst of replies grew goes back (see `KEEP`).
            release_queue(&mut self.events);
        }
        ev
    }

    /// When `tick` next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Down { retry_at } => Some(retry_at),
            State::Connecting => Some(self.since + self.opts.connect_timeout),
            _ if !self.inflight.is_empty() => Some(self.last_progress + self.opts.reply_timeout),
            _ => None,
        }
    }

    /// Queues a command (an array of bulk strings) under `tag`; `flush` writes it. Refused
    /// (the tag comes back) while the link is down or its buffer is full.
    pub fn send<A: AsRef<[u8]>>(&mut self, tag: T, args: &[A]) -> Result<(), (T, LinkError)> {
        match self.state {
            State::Down { .. } => return Err((tag, LinkError::Down)),
            _ if self.unsent_bytes() > self.opts.max_out => return Err((tag, LinkError::Full)),
            State::Ready => {
                resp::encode(&mut self.out, args);
                if self.inflight.is_empty() {
                    self.last_progress = Instant::now();
                }
                self.inflight.push_back(Pending::Cmd(tag));
            }
            State::Connecting | State::Handshake => {
                resp::encode(&mut self.waiting, args);
                self.waiting_tags.push_back(tag);
            }
        }
        Ok(())
    }

    /// Writes queued bytes until done or the socket would block.
    pub fn flush(&mut self) {
        if !matches!(self.state, State::Handshake | State::Ready) {
            return;
        }
        let Some(sock) = self.sock.as_mut() else {
            return;
        };
        while let Some(pending) = self.out.get(self.out_pos..).filter(|p| !p.is_empty()) {
            match sock.write(pending) {
                Ok(0) => return self.fail(LinkError::Io("socket accepted no bytes".into())),
                Ok(n) => self.out_pos = self.out_pos.saturating_add(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(LinkError::Io(e.to_string())),
            }
        }
        if self.out_pos >= self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > (64 << 10) && self.out_pos > self.out.len() / 2 {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        self.release();
    }

    /// Gives back the capacity a burst left in the buffers and queues (see `KEEP`).
    fn release(&mut self) {
        if self.out_pos == 0 {
            release_bytes(&mut self.out);
        }
        release_bytes(&mut self.inbuf);
        release_bytes(&mut self.waiting);
        release_queue(&mut self.inflight);
        release_queue(&mut self.waiting_tags);
        release_queue(&mut self.events);
    }

    /// The socket is writable (or connected): finish connecting, then write.
    pub fn on_writable(&mut self) {
        if self.state == State::Connecting {
            self.check_connected();
        }
        self.flush();
    }

    /// The socket is readable, or reported an error or hang-up: read until it would
    /// block and handle every complete reply.
    pub fn on_readable(&mut self) {
        if self.state == State::Connecting {
            self.check_connected();
        }
        while matches!(self.state, State::Handshake | State::Ready) {
            let Some(sock) = self.sock.as_mut() else {
                return;
            };
            let len = self.inbuf.len();
            self.inbuf.resize(len.saturating_add(READ_CHUNK), 0);
            let got = sock.read(self.inbuf.get_mut(len..).unwrap_or_default());
            let n = *got.as_ref().unwrap_or(&0);
            self.inbuf.truncate(len.saturating_add(n));
            match got {
                Ok(0) => return self.fail(LinkError::Closed),
                Ok(_) => {
                    self.last_progress = Instant::now();
                    self.process();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(LinkError::Io(e.to_string())),
            }
        }
    }

    /// Timers: a due reconnect, the connect timeout, the reply timeout.
    pub fn tick(&mut self) {
        let now = Instant::now();
        match self.state {
            State::Down { retry_at } if now >= retry_at => self.connect(),
            State::Connecting if now >= self.since + self.opts.connect_timeout => {
                self.fail(LinkError::ConnectTimeout)
            }
            State::Handshake | State::Ready
                if !self.inflight.is_empty()
                    && now >= self.last_progress + self.opts.reply_timeout =>
            {
                self.fail(LinkError::ReplyTimeout)
            }
            _ => {}
        }
    }

    /// Drops the connection for good: every command owed a reply is reported failed with
    /// `Shutdown`, and no reconnect is due until `backoff_max` from now.
    pub fn close(&mut self) {
        self.fail(LinkError::Shutdown);
        self.state = State::Down {
            retry_at: Instant::now() + self.opts.backoff_max,
        };
    }

    fn connect(&mut self) {
        self.attempts = self.attempts.saturating_add(1);
        self.registered = false;
        self.since = Instant::now();
        let sock = Sock::open(&self.target.endpoint, self.attempts);
        match sock {
            Ok(s) => {
                self.sock = Some(s);
                self.state = State::Connecting;
            }
            Err(e) => self.fail(LinkError::Connect(format!("{}: {e}", self.target.endpoint))),
        }
    }

    fn check_connected(&mut self) {
        let Some(sock) = self.sock.as_ref() else {
            return;
        };
        let checked = match sock.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => sock.connected(),
        };
        match checked {
            Ok(true) => self.start_handshake(),
            Ok(false) => {}
            Err(e) => self.fail(LinkError::Connect(format!("{}: {e}", self.target.endpoint))),
        }
    }

    fn start_handshake(&mut self) {
        self.state = State::Handshake;
        self.last_progress = Instant::now();
        if let Some(pass) = &self.target.password {
            match &self.target.username {
                Some(user) => resp::encode(&mut self.out, &[&b"AUTH"[..], user, pass]),
                None => resp::encode(&mut self.out, &[&b"AUTH"[..], pass]),
            }
            self.inflight.push_back(Pending::Step(Step::Auth));
        }
        if self.target.db != 0 {
            resp::encode(&mut self.out, &["SELECT", &self.target.db.to_string()]);
            self.inflight.push_back(Pending::Step(Step::Select));
        }
        if let Some(name) = &self.opts.client_name {
            resp::encode(&mut self.out, &["CLIENT", "SETNAME", name]);
            self.inflight.push_back(Pending::Step(Step::SetName));
        }
        if self.inflight.is_empty() {
            resp::encode(&mut self.out, &["PING"]);
            self.inflight.push_back(Pending::Step(Step::Ping));
        }
        self.flush();
    }

    /// Handles every complete reply in `inbuf`.
    fn process(&mut self) {
        let mut pos = 0;
        while self.sock.is_some() {
            let rest = self.inbuf.get(pos..).unwrap_or_default();
            if rest.is_empty() || rest.len() < self.need {
                break;
            }
            match resp::parse_hint(rest, &self.limits) {
                Ok(Parsed::Complete(v, n)) => {
                    pos = pos.saturating_add(n);
                    self.need = 0;
                    self.dispatch(v);
                }
                Ok(Parsed::Incomplete { min_len }) => {
                    self.need = min_len;
                    if rest.len() > self.opts.max_reply {
                        return self.fail(LinkError::ReplyTooLarge);
                    }
                    break;
                }
                Err(e) => return self.fail(LinkError::Protocol(e)),
            }
        }
        if self.sock.is_some() {
            self.inbuf.drain(..pos.min(self.inbuf.len()));
            self.release();
        }
    }

    fn dispatch(&mut self, v: Value) {
        if let Value::Push(_) = v {
            // Out-of-band (RESP3 only, which this link never asks for): not a reply.
            return;
        }
        match self.inflight.pop_front() {
            Some(Pending::Cmd(tag)) => self.events.push_back(Event::Reply(tag, v)),
            Some(Pending::Step(step)) => self.handshake_reply(step, v),
            None => self.fail(LinkError::Unexpected),
        }
    }

    fn handshake_reply(&mut self, step: Step, v: Value) {
        let name = match step {
            Step::Auth => "AUTH",
            Step::Select => "SELECT",
            Step::SetName => "CLIENT SETNAME",
            Step::Ping => "PING",
        };
        let want: &[u8] = if let Step::Ping = step {
            b"PONG"
        } else {
            b"OK"
        };
        match &v {
            Value::Simple(s) if s == want => {}
            Value::Error(e) => {
                let msg = format!("{name} rejected: {}", String::from_utf8_lossy(e));
                return self.fail(LinkError::Handshake(msg));
            }
            other => {
                let msg = format!("unexpected reply to {name}: {other:?}");
                return self.fail(LinkError::Handshake(msg));
            }
        }
        if self.inflight.is_empty() {
            self.state = State::Ready;
            self.up_since = Instant::now();
            log::info!("cluster: Redis link to {} is up", self.target);
            self.out.append(&mut self.waiting);
            let tags = std::mem::take(&mut self.waiting_tags);
            self.inflight.extend(tags.into_iter().map(Pending::Cmd));
            self.events.push_back(Event::Up);
            self.flush();
        }
    }

    /// Drops the connection, fails everything owed a reply, schedules the next attempt.
    fn fail(&mut self, err: LinkError) {
        let now = Instant::now();
        let was_ready = self.state == State::Ready;
        // Back-off starts over only after a link that stayed up: a server that accepts
        // the handshake and then fails at once is retried ever more slowly too.
        if was_ready && now.duration_since(self.up_since) >= STABLE {
            self.backoff = self.opts.backoff_min;
        }
        self.sock = None;
        self.registered = false;
        self.out.clear();
        self.out_pos = 0;
        self.inbuf.clear();
        self.need = 0;
        self.waiting.clear();
        self.release();
        for p in std::mem::take(&mut self.inflight) {
            if let Pending::Cmd(tag) = p {
                self.events.push_back(Event::Failed(tag, err.clone()));
            }
        }
        for tag in std::mem::take(&mut self.waiting_tags) {
            self.events.push_back(Event::Failed(tag, err.clone()));
        }
        self.state = State::Down {
            retry_at: now + self.backoff,
        };
        let retry_ms = self.backoff.as_millis();
        self.backoff = self.backoff.saturating_mul(2).min(self.opts.backoff_max);
        let quiet = self
            .last_log
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1));
        if was_ready {
            log::warn!(
                "cluster: Redis link to {} down: {err}; reconnecting",
                self.target
            );
            self.events.push_back(Event::Down(err.clone()));
            self.last_log = Some(now);
        } else if err != LinkError::Shutdown && !quiet {
            let more = match self.suppressed {
                0 => String::new(),
                n => format!(" ({n} more failed attempts not logged)"),
            };
            log::warn!(
                "cluster: Redis link to {}: {err}; retrying in {retry_ms} ms{more}",
                self.target
            );
            self.last_log = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
        }
        self.last_error = Some(err);
    }
}
