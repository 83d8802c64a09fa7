//! Cluster mode inside one worker: the message source that appends pushes to the shared
//! log (a Redis Stream) and applies what it reads back, in stream order, on every worker
//! and host alike.
//!
//! Flow: an accepted push is XADDed on the `publisher` link (the IN connection waits in
//! `State::Awaiting`, then gets the original's empty reply once Redis acknowledged it, or
//! a 503 when it cannot be kept); the `reader` link reads the log with XREAD after the
//! last entry applied and applies each entry through `apply_publication`, with the cursor
//! derived from the entry ID (`stream_id`), so every worker stamps the same bytes. At start
//! the worker reads the retained log (what CLEAN_ID_AFTER would still hold) before it
//! accepts any WAIT connection ("catching up"), then follows it with XREAD BLOCK. When
//! Redis goes away, parked clients keep their sockets, pushes get 503, and reading resumes
//! after the last entry applied once the link is back. The log is trimmed by XADD MAXLEN ~
//! (CLUSTER_MAXLEN) and by XTRIM MINID ~ (CLEAN_ID_AFTER) every few seconds.
//!
//! Structure: `Cluster { publisher, reader: Link<Tag>, key, last_id, last_cursor,
//! caught_up, reading, next_trim }`, boxed on the reactor; a listener that names no cursor
//! starts at `last_cursor` (what it has seen is exactly what this worker applied).
//! Uses: cluster::{link, entry, stream_id, resp}, source (apply_publication), close;
//! cluster_publish (appending pushes and answering their publishers).

use super::*;
use crate::cluster::addr::Target;
use crate::cluster::entry;
use crate::cluster::link::{Event, Link, LinkError, Options};
use crate::cluster::resp::Value;
use crate::cluster::stream_id::StreamId;

/// The publisher link's token and the reader's (below the signalfd's).
pub(super) const PUB_LINK: Token = Token(LISTENER_BASE - 2);
pub(super) const READ_LINK: Token = Token(LISTENER_BASE - 3);
/// Entries read per XREAD.
const READ_COUNT: usize = 1000;
/// How long one XREAD waits for new entries (below the link's reply timeout).
const READ_BLOCK_MS: u64 = 1000;
/// How often the log is trimmed by age.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// What a command on a link was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tag {
    Publish(ConnId),
    /// A `POST /pub` of the HTTP API (answered with JSON, on a keep-alive connection).
    ApiPublish(ConnId),
    Read,
    Trim,
    Presence,
    /// The heartbeat, whose reply says whether this worker's ids are missing in Redis.
    Heartbeat,
    /// After a reconnect: is the last applied entry still in the log?
    Check,
    /// ONLINE waiting for Redis: the live workers, then a scan of worker n's counts hash
    /// (see `cluster_online`).
    OnlineWorkers(ConnId),
    OnlineScan(ConnId, u32),
}

pub(super) struct Cluster {
    pub(super) publisher: Link<Tag>,
    reader: Link<Tag>,
    key: String,
    maxlen: String,
    /// The last entry applied (reading resumes after it).
    last_id: StreamId,
    last_cursor: Cursor,
    /// The retained log has been applied: WAIT connections are accepted.
    caught_up: bool,
    /// An XREAD is in flight.
    reading: bool,
    /// Some entry was applied (so `last_id` is a real entry, not the starting floor).
    applied_any: bool,
    /// HTTP API pushes waiting for Redis: the ids for the JSON answer, and keep-alive.
    pub(super) api_pending: std::collections::HashMap<ConnId, super::cluster_publish::ApiPending>,
    /// Debug logging: who published the entries this worker appended, until they are
    /// applied (so the `added data` line names the publisher, as in the embedded mode).
    acked: std::collections::HashMap<StreamId, String>,
    next_trim: Instant,
    /// Cluster-wide presence (see `cluster_presence`).
    pub(super) presence: Option<super::cluster_presence::Presence>,
    /// ONLINE requests waiting for Redis (see `cluster_online`).
    pub(super) online_pending: std::collections::HashMap<ConnId, super::cluster_online::Query>,
    pub(super) prefix: String,
    events_key: String,
    /// Where reading the events stream resumes.
    events_from: String,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Cluster {
    pub(super) fn new(target: &Target, cfg: &Config) -> Cluster {
        let name = |role: &str| Options {
            client_name: Some(format!("realplexor-{role}-{}", std::process::id())),
            ..Options::default()
        };
        // Start from what CLEAN_ID_AFTER would still hold.
        let keep_ms = cfg.clean_id_after.as_millis() as u64;
        let start = StreamId {
            ms: unix_ms().saturating_sub(keep_ms),
            seq: 0,
        };
        Cluster {
            publisher: Link::new(target.clone(), name("pub")),
            reader: Link::new(target.clone(), name("read")),
            key: format!("{}:messages", cfg.cluster_prefix),
            maxlen: cfg.cluster_maxlen.to_string(),
            last_id: start,
            last_cursor: start.cursor().unwrap_or(Cursor::Gen { secs: 0, frac: 0 }),
            caught_up: false,
            reading: false,
            applied_any: false,
            api_pending: std::collections::HashMap::new(),
            acked: std::collections::HashMap::new(),
            next_trim: Instant::now(),
            presence: Some(super::cluster_presence::Presence::new(&cfg.cluster_prefix)),
            online_pending: std::collections::HashMap::new(),
            prefix: cfg.cluster_prefix.clone(),
            events_key: format!("{}:events", cfg.cluster_prefix),
            events_from: "0-0".into(),
        }
    }

    /// The XADD that appends a publication to the log (trimmed to about CLUSTER_MAXLEN).
    pub(super) fn xadd_args(&self, p: &Publication) -> Vec<Vec<u8>> {
        let mut args: Vec<Vec<u8>> = vec![
            b"XADD".to_vec(),
            self.key.clone().into_bytes(),
            b"MAXLEN".to_vec(),
            b"~".to_vec(),
            self.maxlen.clone().into_bytes(),
            b"*".to_vec(),
        ];
        args.extend(entry::fields(p));
        args
    }

    /// CLUSTER_MAXLEN changed on reload.
    pub(super) fn set_maxlen(&mut self, n: usize) {
        self.maxlen = n.to_string();
    }

    pub(super) fn caught_up(&self) -> bool {
        self.caught_up
    }

    /// The cursor a listener without one starts from.
    pub(super) fn listen_now(&self) -> Cursor {
        self.last_cursor.clone()
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        [self.publisher.next_deadline(), self.reader.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The time part of the last entry applied (ms since the epoch).
    pub(super) fn last_ms(&self) -> u64 {
        self.last_id.ms
    }

    pub(super) fn is_up(&self) -> bool {
        self.publisher.is_ready() && self.reader.is_ready()
    }
}

impl Reactor {
    /// The cursor a listener that names none starts from: "now" (the cluster's last applied
    /// entry in cluster mode, where cursors come from the log).
    pub(super) fn listen_now(&mut self) -> Cursor {
        listen_now(&mut self.cursors, self.cluster.as_deref())
    }

    /// ONLINE / WATCH / STATS from this worker's storage (in cluster mode ONLINE is asked
    /// of Redis instead: see `cluster_online`).
    pub(super) fn answer_command(&self, cmd: &Command, login: Option<&str>) -> commands::Answer {
        commands::answer(cmd, &self.storage, login)
    }

    /// A readiness event on one of the links.
    pub(super) fn on_link_event(&mut self, token: Token, readable: bool, writable: bool) {
        let Some(c) = self.cluster.as_deref_mut() else {
            return;
        };
        let link = if token == PUB_LINK {
            &mut c.publisher
        } else {
            &mut c.reader
        };
        if writable {
            link.on_writable();
        }
        if readable {
            link.on_readable();
        }
    }

    /// One step of the cluster each loop turn: timers, registration, replies, reading.
    pub(super) fn cluster_turn(&mut self, now: Instant) {
        let Some(c) = self.cluster.as_deref_mut() else {
            return;
        };
        for (link, token) in [(&mut c.publisher, PUB_LINK), (&mut c.reader, READ_LINK)] {
            link.tick();
            link.flush();
            if let Err(e) = link.sync_registration(self.poll.registry(), token) {
                log::warn!("cluster: cannot register the Redis link: {e}");
            }
        }
        while let Some(ev) = self
            .cluster
            .as_deref_mut()
            .and_then(|c| c.publisher.next_event())
        {
            self.on_publisher_event(ev, now);
        }
        while let Some(ev) = self
            .cluster
            .as_deref_mut()
            .and_then(|c| c.reader.next_event())
        {
            self.on_reader_event(ev, now);
        }
        self.presence_turn(now);
        let Some(c) = self.cluster.as_deref_mut() else {
            return;
        };
        if c.reader.is_ready() && !c.reading {
            let from = c.last_id.to_string();
            let count = READ_COUNT.to_string();
            let block = READ_BLOCK_MS.to_string();
            let mut args: Vec<&str> = vec!["XREAD", "COUNT", &count];
            if c.caught_up {
                args.extend(["BLOCK", &block]);
            }
            args.extend(["STREAMS", &c.key, &c.events_key, &from, &c.events_from]);
            if c.reader.send(Tag::Read, &args).is_ok() {
                c.reading = true;
                c.reader.flush();
            }
        }
        if c.publisher.is_ready() && now >= c.next_trim {
            c.next_trim = now + TRIM_EVERY;
            let keep_ms = self.cfg.clean_id_after.as_millis() as u64;
            let min = format!("{}-0", unix_ms().saturating_sub(keep_ms));
            if c.publisher
                .send(Tag::Trim, &["XTRIM", &c.key, "MINID", "~", &min])
                .is_ok()
            {
                c.publisher.flush();
            }
        }
    }

    fn on_publisher_event(&mut self, ev: Event<Tag>, now: Instant) {
        match ev {
            Event::Reply(Tag::ApiPublish(id), v) => {
                let why = v
                    .error_text()
                    .map(|t| String::from_utf8_lossy(t).into_owned())
                    .unwrap_or_else(|| "unexpected reply to XADD".into());
                self.api_publish_done(id, v.as_bytes(), &why, now);
            }
            Event::Failed(Tag::ApiPublish(id), e) => {
                self.api_publish_done(id, None, &e.to_string(), now);
            }
            Event::Reply(Tag::Publish(id), v) => {
                let key = id.key as usize;
                if self.id_of(key) != Some(id) {
                    return;
                }
                match v {
                    Value::Bulk(entry_id) => {
                        if log::log_enabled!(Debug) {
                            let who = self.who(key).to_string();
                            if let (Ok(id), Some(c)) =
                                (StreamId::parse(&entry_id), self.cluster.as_deref_mut())
                            {
                                // Bounded: entries are applied within a turn or two.
                                if c.acked.len() < 100_000 {
                                    c.acked.insert(id, who);
                                }
                            }
                        }
                        rlog!(
                            Debug,
                            self.storage.counts(),
                            "{}: DEBUG: appended to the cluster log as {}",
                            self.who(key),
                            String::from_utf8_lossy(&entry_id)
                        );
                        if let Some(c) = self.conns.get_mut(key) {
                            c.state = State::Closing;
                        }
                        self.finish(key);
                    }
                    other => {
                        let why = other
                            .error_text()
                            .map(|t| String::from_utf8_lossy(t).into_owned())
                            .unwrap_or_else(|| "unexpected reply to XADD".into());
                        self.refuse_push(key, &why);
                    }
                }
            }
            Event::Failed(Tag::Publish(id), e) => {
                let key = id.key as usize;
                if self.id_of(key) == Some(id) {
                    self.refuse_push(key, &e.to_string());
                }
            }
            Event::Reply(Tag::Presence, v) => {
                if let Some(t) = v.error_text() {
                    log::warn!(
                        "cluster: presence update failed: {}",
                        String::from_utf8_lossy(t)
                    );
                }
            }
            Event::Reply(Tag::Trim, v) => {
                if let Some(t) = v.error_text() {
                    log::warn!("cluster: XTRIM failed: {}", String::from_utf8_lossy(t));
                }
            }
            Event::Reply(Tag::Heartbeat, v) => self.on_heartbeat(&v),
            Event::Reply(Tag::OnlineWorkers(id), v) => self.on_online_workers(id, &v, now),
            Event::Reply(Tag::OnlineScan(id, n), v) => self.on_online_scan(id, n, &v, now),
            Event::Failed(Tag::OnlineWorkers(id) | Tag::OnlineScan(id, _), e) => {
                self.online_done(id, Err(e.to_string()), now);
            }
            Event::Up => {
                log::info!("cluster: Redis link (publishing) is up");
                // Report every local online id again (Redis may have lost them, or reaped
                // this worker while it could not reach it).
                if let Some(pr) = self
                    .cluster
                    .as_deref_mut()
                    .and_then(|c| c.presence.as_mut())
                {
                    pr.resync = true;
                }
            }
            Event::Down(e) => log::warn!("cluster: Redis link (publishing) is down: {e}"),
            Event::Reply(_, _) | Event::Failed(_, _) => {}
        }
    }

    fn on_reader_event(&mut self, ev: Event<Tag>, now: Instant) {
        match ev {
            Event::Reply(Tag::Read, v) => {
                if let Some(c) = self.cluster.as_deref_mut() {
                    c.reading = false;
                }
                if let Some(t) = v.error_text() {
                    log::warn!("cluster: XREAD failed: {}", String::from_utf8_lossy(t));
                    return;
                }
                let n = self.apply_log(&v, now);
                let Some(c) = self.cluster.as_deref_mut() else {
                    return;
                };
                if !c.caught_up && n < READ_COUNT {
                    c.caught_up = true;
                    rlog!(
                        Info,
                        self.storage.counts(),
                        "cluster: caught up with the message log (last entry {}); serving WAIT",
                        c.last_id
                    );
                    // The WAIT listeners were left alone while catching up.
                    self.accept_more = true;
                }
            }
            Event::Failed(Tag::Read, e) => {
                if let Some(c) = self.cluster.as_deref_mut() {
                    c.reading = false;
                }
                if e != LinkError::Shutdown {
                    log::debug!("cluster: XREAD failed: {e}");
                }
            }
            Event::Up => {
                log::info!("cluster: Redis link (reading) is up");
                // After a drop: the entry applied last must still be in the log, or Redis
                // lost data (restarted without AOF, flushed) and pushes it acknowledged may
                // be gone: say so loudly (reading goes on from there).
                if let Some(c) = self.cluster.as_deref_mut() {
                    if c.applied_any {
                        let id = c.last_id.to_string();
                        let _ = c.reader.send(Tag::Check, &["XRANGE", &c.key, &id, &id]);
                    }
                }
            }
            Event::Reply(Tag::Check, v) => {
                let missing = v.as_array().is_some_and(<[Value]>::is_empty);
                if missing {
                    if let Some(c) = self.cluster.as_deref() {
                        rlog!(
                            log::Level::Error,
                            self.storage.counts(),
                            "cluster: the message log no longer holds entry {} (the last one applied here): Redis lost data; pushes acknowledged before it was lost may never be delivered (use AOF: appendonly yes, appendfsync always)",
                            c.last_id
                        );
                    }
                }
            }
            Event::Down(e) => log::warn!("cluster: Redis link (reading) is down: {e}"),
            Event::Reply(_, _) | Event::Failed(_, _) => {}
        }
    }

    /// Applies an XREAD reply: the events stream to WATCH's history, the message log's
    /// entries in order; returns how many log entries it held.
    fn apply_log(&mut self, v: &Value, now: Instant) -> usize {
        // [[key, [[id, [field, value, ...]], ...]], ...], or nil when nothing is new.
        let mut messages: &[Value] = &[];
        for s in v.as_array().unwrap_or_default() {
            let Some(pair) = s.as_array() else {
                continue;
            };
            let key = pair.first().and_then(Value::as_bytes).unwrap_or_default();
            let entries = pair.get(1).and_then(Value::as_array).unwrap_or_default();
            let Some(c) = self.cluster.as_deref() else {
                return 0;
            };
            if key == c.events_key.as_bytes() {
                if let Some(last) = self.apply_events(entries) {
                    if let Some(c) = self.cluster.as_deref_mut() {
                        c.events_from = last;
                    }
                }
            } else if key == c.key.as_bytes() {
                messages = entries;
            }
        }
        let entries = messages;
        let debug = log::log_enabled!(Debug);
        for e in entries {
            let Some([id, fields]) = e
                .as_array()
                .and_then(|a| a.get(..2))
                .map(|s| [&s[0], &s[1]])
            else {
                log::error!("cluster: a log entry that is not [id, fields]: skipped");
                continue;
            };
            let Some(id) = id.as_bytes().and_then(|b| StreamId::parse(b).ok()) else {
                log::error!("cluster: a log entry with a bad ID: skipped");
                continue;
            };
            let Some(c) = self.cluster.as_deref_mut() else {
                return 0;
            };
            if id <= c.last_id {
                continue;
            }
            c.last_id = id;
            c.applied_any = true;
            let cursor = match id.cursor() {
                Ok(cursor) => cursor,
                Err(err) => {
                    log::error!("cluster: log entry {id}: {err}: skipped");
                    continue;
                }
            };
            c.last_cursor = cursor.clone();
            let p = match entry::decode(fields.as_array().unwrap_or_default()) {
                Ok(p) => p,
                Err(err) => {
                    log::error!("cluster: log entry {id}: {err}: skipped");
                    continue;
                }
            };
            let who = debug.then(|| {
                c.acked
                    .remove(&id)
                    .unwrap_or_else(|| format!("CLUSTER: {id}"))
            });
            self.apply_publication(p, Some(cursor), now, who.as_deref());
        }
        entries.len()
    }
}

/// "Now" for a listener: the last applied log entry in cluster mode, else a fresh cursor.
pub(super) fn listen_now(cursors: &mut CursorGen, cluster: Option<&Cluster>) -> Cursor {
    match cluster {
        Some(c) => c.listen_now(),
        None => cursors.next(SystemTime::now()),
    }
}
