//! The HTTP API on an IN connection: routing a new connection by its request line (the
//! original protocol keeps its bytes), then serving `Content-Length` requests in order on a
//! keep-alive connection: `POST /pub`, `GET /online`, `/watch`, `/stats.json`, `/metrics`,
//! `/health`.
//!
//! Structure: `Conn::proto` says which protocol a connection speaks. An API connection is
//! `Reading` between requests with an empty, unallocated buffer (its idle cost is the Conn
//! alone; IN_TIMEOUT closes it). A complete request is cut from the front of `Conn::buf`,
//! answered, and the next pipelined one follows; while a reply is only partly written the
//! rest waits (resumed by `on_writable`), so a client that does not read cannot make the
//! server buffer more than one reply. Errors that leave the request boundary unknown (bad
//! head, smuggling, chunked) answer and close. In cluster mode `POST /pub` and `GET /online`
//! are answered once Redis replied (`State::Awaiting`; see `cluster`, `cluster_online`); the
//! requests pipelined behind them wait.
//! Uses: api (route, request, reply, metrics), commands (answers and their JSON), ident,
//! in_line (Parsed, Publication), auth (through config), source (submit), cluster_online.

use super::*;
use crate::api::reply::Reply as ApiReply;
use crate::api::request::{query_param, Basic};
use crate::api::{self, metrics, Endpoint, Method, Parse, Request, Route};
use crate::commands::{json, Kind};
use crate::conn::Proto;

/// Replies batched for one write at most (then written, and the batch starts again).
const BATCH_FLUSH: usize = 64 * 1024;

impl Reactor {
    /// New bytes on an IN connection: decide its protocol, then serve it.
    pub(super) fn on_in_bytes(&mut self, key: usize, now: Instant) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.proto == Proto::Undecided {
            match api::classify(&c.buf, self.cfg.identifier.as_bytes(), self.cfg.in_maxlen) {
                Route::NotYet => return,
                Route::Legacy => c.proto = Proto::Legacy,
                Route::Api => {
                    c.proto = Proto::Api;
                    // Replies are small and answer a waiting client: never hold them back.
                    let _ = c.sock.set_nodelay(true);
                }
            }
        }
        match c.proto {
            Proto::Api => self.serve_api(key, now),
            _ => self.on_in_data(key),
        }
    }

    /// The peer closed its side of an IN connection.
    pub(super) fn on_in_end(&mut self, key: usize, now: Instant) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        match c.proto {
            Proto::Undecided => {
                c.proto = Proto::Legacy;
                self.on_in_data(key);
                self.on_in_eof(key, now);
            }
            Proto::Legacy => self.on_in_eof(key, now),
            Proto::Api => {
                // Replies still being written go out before the close.
                if c.out.is_some() && c.state == State::Reading {
                    c.state = State::Closing;
                }
            }
        }
    }

    /// Serves the complete requests at the front of the buffer, in order.
    pub(super) fn serve_api(&mut self, key: usize, now: Instant) {
        let keep_max = self.cfg.in_maxlen.saturating_add(SCRATCH);
        let was_full = self.conns.get(key).is_some_and(|c| c.buf.len() >= keep_max);
        let mut served = false;
        // The replies to the requests read in this event go out in one write (pipelined
        // publishers then cost one send per batch, not per push).
        let mut batch: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            if c.state != State::Reading || c.out.is_some() || c.buf.is_empty() {
                break;
            }
            let req = match api::parse(&c.buf) {
                Parse::Partial => break,
                Parse::Bad { status, why } => {
                    let reply = ApiReply::error(status, &why).closing();
                    self.api_send(key, None, reply, &mut batch);
                    return;
                }
                Parse::Done(r) => r,
            };
            if req.content_length.is_some_and(|n| n > self.cfg.in_maxlen) {
                if !batch.is_empty() && self.write_or_close(key, &batch).is_err() {
                    return;
                }
                self.api_too_large(key, &req);
                return;
            }
            let total = req.total_len();
            if c.buf.len() < total {
                break;
            }
            // Cut this request off the buffer; an idle connection keeps no allocation.
            let rest = c.buf.split_off(total);
            let this = std::mem::replace(&mut c.buf, rest);
            if c.buf.is_empty() {
                c.buf = Vec::new();
            }
            let body = this.get(req.head_len..).unwrap_or_default();
            let reply = self.api_handle(key, &req, body, now);
            served = true;
            if reply.is_deferred() {
                // Cluster mode: the answer comes when Redis acknowledged the push; what was
                // answered before it goes out now, what follows waits.
                if !batch.is_empty() && self.write_or_close(key, &batch).is_err() {
                    return;
                }
                if let Some(c) = self.conns.get_mut(key) {
                    c.state = State::Awaiting;
                }
                return;
            }
            if !self.api_send(key, Some(&req), reply, &mut batch) {
                return;
            }
            if batch.len() >= BATCH_FLUSH {
                let bytes = std::mem::take(&mut batch);
                if self.write_or_close(key, &bytes).is_err() {
                    return;
                }
            }
        }
        if !batch.is_empty() && self.write_or_close(key, &batch).is_err() {
            return;
        }
        // The buffer was full when read: the socket may hold more, with no new edge coming.
        // Registering again reports the readiness that is there.
        if was_full && served {
            if let Some(c) = self.conns.get_mut(key) {
                let interest = match c.out {
                    Some(_) => Interest::READABLE | Interest::WRITABLE,
                    None => Interest::READABLE,
                };
                let _ = self
                    .poll
                    .registry()
                    .reregister(&mut c.sock, Token(key), interest);
            }
        }
    }

    /// Cluster mode: the answer to a deferred `POST /pub` or `GET /online`, then the
    /// requests that were pipelined behind it.
    pub(super) fn api_deferred_done(
        &mut self,
        key: usize,
        reply: ApiReply,
        keep_alive: bool,
        head_only: bool,
        now: Instant,
    ) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.state != State::Awaiting {
            return;
        }
        c.state = State::Reading;
        let bytes = reply.to_bytes(keep_alive, head_only);
        if reply.keeps(keep_alive) {
            if self.write_or_close(key, &bytes).is_ok() {
                self.serve_api(key, now);
            }
        } else {
            self.reply_and_close(key, &bytes);
        }
    }

    /// Adds a reply to `batch` (written by the caller), or, for a final reply, writes the
    /// batch and the reply and closes; returns whether the connection stays open.
    fn api_send(
        &mut self,
        key: usize,
        req: Option<&Request>,
        reply: ApiReply,
        batch: &mut Vec<u8>,
    ) -> bool {
        let keep_alive = req.is_some_and(|r| r.keep_alive);
        let head_only = req.is_some_and(|r| r.method == Method::Head);
        rlog!(
            Debug,
            self.storage.counts(),
            "{}: DEBUG: HTTP {} -> {}",
            self.who(key),
            req.map_or("(bad request)", |r| r.target.as_str()),
            reply.status
        );
        // A stopping worker closes each connection after its reply.
        let reply = if self.stop_by.is_some() {
            reply.closing()
        } else {
            reply
        };
        let bytes = reply.to_bytes(keep_alive, head_only);
        if reply.keeps(keep_alive) {
            batch.extend_from_slice(&bytes);
            true
        } else {
            let mut all = std::mem::take(batch);
            all.extend_from_slice(&bytes);
            self.reply_and_close(key, &all);
            false
        }
    }

    /// A body over IN_MAXLEN: refused before it arrives, not pushed; the connection
    /// answers, then reads and throws away what still comes until the peer closes.
    fn api_too_large(&mut self, key: usize, req: &Request) {
        self.counters.dropped(Drop::Overflow);
        let why = format!(
            "Request too large: the body exceeds IN_MAXLEN ({} bytes) and was not pushed",
            self.cfg.in_maxlen
        );
        let bytes = ApiReply::error(413, &why).closing().to_bytes(false, false);
        rlog!(
            Debug,
            self.storage.counts(),
            "{}: DEBUG: HTTP {} -> 413",
            self.who(key),
            req.target
        );
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.buf = Vec::new();
        c.state = State::Closing;
        if self.write_or_close(key, &bytes) == Ok(true) {
            if let Some(c) = self.conns.get_mut(key) {
                let _ = c.sock.shutdown(Shutdown::Write);
                c.state = State::Draining;
            }
        }
    }

    fn api_handle(&mut self, key: usize, req: &Request, body: &[u8], now: Instant) -> ApiReply {
        let get = matches!(req.method, Method::Get | Method::Head);
        match req.endpoint {
            Endpoint::NotFound => ApiReply::error(
                404,
                &format!(
                    "unknown path: {} (the API has {})",
                    req.target.split('?').next().unwrap_or_default(),
                    api::route::PATHS.join(", ")
                ),
            ),
            Endpoint::Pub if req.method != Method::Post => ApiReply::method_not_allowed("POST"),
            Endpoint::Pub => self.api_publish(key, req, body, now),
            _ if !get => ApiReply::method_not_allowed("GET, HEAD"),
            Endpoint::Health => self.api_health(now),
            Endpoint::Metrics => {
                let text = metrics::render(&self.metrics_snapshot(), &metrics::Process::read());
                ApiReply::ok(metrics::CONTENT_TYPE, text.into_bytes())
            }
            Endpoint::Online if self.cluster.is_some() => self.api_online_cluster(key, req),
            Endpoint::Online => self.api_command(req, Kind::Online),
            Endpoint::Watch => self.api_command(req, Kind::Watch),
            Endpoint::StatsJson => self.api_command(req, Kind::Stats),
        }
    }

    /// The counters `/metrics` reports (all kept incrementally: nothing is scanned).
    fn metrics_snapshot(&self) -> metrics::Snapshot {
        let counts = self.storage.counts();
        let c = &self.counters;
        metrics::Snapshot {
            worker: crate::worker_id::worker_index(),
            conns_wait: c.conns_wait,
            conns_in: c.conns_in,
            parked_listeners: counts.pairs_by_fhs as u64,
            ids: self.storage.channel_count() as u64,
            online_ids: counts.online_timers as u64,
            queued_messages: self.storage.queued_items,
            queued_bytes: self.storage.queued_bytes,
            pushes: c.pushes,
            deliveries: c.deliveries,
            dropped_trim: self.storage.trimmed_items,
            dropped_clean: self.storage.cleaned_items,
            dropped_overflow: c.dropped_overflow,
            dropped_in_timeout: c.dropped_in_timeout,
            dropped_backpressure: c.dropped_backpressure,
            dropped_unavailable: c.dropped_unavailable,
            deliveries_sse: c.deliveries_sse,
            deliveries_ws: c.deliveries_ws,
            cluster: self
                .cluster
                .as_deref()
                .map(|k| (k.is_up(), k.caught_up(), k.last_ms())),
            reloads: c.reloads,
            accept_paused: c.accept_paused,
        }
    }

    /// `200 ok` while serving; `503` and the reason otherwise.
    fn api_health(&self, now: Instant) -> ApiReply {
        let why = if self.stop_by.is_some() {
            Some("stopping")
        } else if self.accept_paused_until.is_some_and(|t| t > now) {
            Some("accept paused: out of file descriptors")
        } else if self.wait_paused_until.is_some_and(|t| t > now) {
            Some("WAIT accepts paused: the descriptor reserve for the IN line is reached")
        } else if self.cluster.as_deref().is_some_and(|c| !c.is_up()) {
            Some("cluster mode: Redis is unreachable")
        } else if self.cluster.as_deref().is_some_and(|c| !c.caught_up()) {
            Some("cluster mode: catching up with the message log")
        } else {
            None
        };
        match why {
            Some(why) => ApiReply::error(503, why),
            None => ApiReply::ok("text/plain", b"ok\n".to_vec()),
        }
    }

    /// The login a request acts as, once its credentials are checked: `Authorization:
    /// Basic` first, else the `login:password@` form of its identifier, else the guest.
    fn api_login(
        &self,
        req: &Request,
        marker: Option<&Parsed>,
    ) -> Result<Option<String>, ApiReply> {
        match &req.basic {
            Basic::Malformed => Err(ApiReply::unauthorized(
                "malformed Authorization header: expected Basic base64(login:password)",
            )),
            Basic::Creds(login, pw) => match self.cfg.users.check(Some((login, pw))) {
                Ok(()) => Ok(Some(login.clone())),
                Err(e) => Err(ApiReply::unauthorized(&e.to_string())),
            },
            Basic::None => {
                let creds = marker.and_then(Parsed::creds);
                match self.cfg.users.check(creds) {
                    Ok(()) => Ok(marker.and_then(|p| p.login.clone())),
                    Err(e @ crate::auth::AuthError::GuestDenied) => Err(ApiReply::unauthorized(
                        &format!("{e}: send Authorization: Basic or identifier=login:password@"),
                    )),
                    Err(e) => Err(ApiReply::error(403, &e.to_string())),
                }
            }
        }
    }

    fn api_publish(&mut self, key: usize, req: &Request, body: &[u8], now: Instant) -> ApiReply {
        let Some(value) = query_param(&req.query, "identifier") else {
            return ApiReply::error(400, "no ids: add ?identifier=id1,id2");
        };
        let parsed = match parse_identifier(&value) {
            Ok(p) => p,
            Err(why) => return ApiReply::error(400, &why),
        };
        let login = match self.api_login(req, Some(&parsed)) {
            Ok(l) => l,
            Err(r) => return r,
        };
        if parsed.targets.is_empty() {
            return ApiReply::error(400, "no ids: the identifier names no id to push to");
        }
        if req.content_length.is_none() {
            return ApiReply::error(
                411,
                "Content-Length required: send the body with its length",
            );
        }
        if in_line::is_blank(body) {
            return ApiReply::error(400, "empty body: nothing to push");
        }
        let Parsed {
            targets, limiters, ..
        } = parsed;
        let (owned, skipped): (Vec<_>, Vec<_>) = targets
            .into_iter()
            .partition(|(_, id)| login.as_deref().is_none_or(|l| in_line::owned_by(l, id)));
        if self.cluster.is_some() && !owned.is_empty() {
            // Answered once Redis has it, with the cursor of its log entry; the requests
            // pipelined behind it wait (see `api_deferred_done`).
            let p = Publication {
                targets: owned.clone(),
                limiters: limiters.into_boxed_slice(),
                body: body.into(),
            };
            return match self.submit_api_to_cluster(key, p, owned, skipped, req.keep_alive) {
                Ok(()) => ApiReply::deferred(),
                Err(why) => ApiReply::error(
                    503,
                    &format!("the cluster log cannot take this push ({why}); nothing was queued"),
                ),
            };
        }
        let stamp = if owned.is_empty() {
            None
        } else {
            let p = Publication {
                targets: owned.clone(),
                limiters: limiters.into_boxed_slice(),
                body: body.into(),
            };
            self.submit(key, p, now)
        };
        ApiReply::json(publish_json(&owned, &skipped, stamp.as_ref()))
    }

    /// The command a `GET /online`, `/watch` or `/stats.json` stands for, and its login.
    fn api_command_of(
        &self,
        req: &Request,
        kind: Kind,
    ) -> Result<(Command, Option<String>), ApiReply> {
        let marker = match query_param(&req.query, "identifier") {
            Some(v) => Some(parse_identifier(&v).map_err(|why| ApiReply::error(400, &why))?),
            None => None,
        };
        let login = self.api_login(req, marker.as_ref())?;
        let words = |name: &str| {
            query_param(&req.query, name)
                .map(|v| String::from_utf8_lossy(&v).replace(',', " "))
                .unwrap_or_default()
        };
        let arg = match kind {
            Kind::Watch => format!("{} {}", words("from"), words("prefix")),
            _ => words("prefix"),
        };
        let cmd = Command {
            kind,
            arg: Some(arg),
        };
        Ok((cmd, login))
    }

    /// Cluster mode's `GET /online`: asked of Redis (see `cluster_online`).
    fn api_online_cluster(&mut self, key: usize, req: &Request) -> ApiReply {
        let (cmd, login) = match self.api_command_of(req, Kind::Online) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let via = super::cluster_online::Via::Api {
            keep_alive: req.keep_alive,
            head_only: req.method == Method::Head,
            counters: counters_asked(req),
        };
        self.online_api(key, cmd, login, via)
    }

    /// ONLINE, WATCH and STATS as JSON, with the text commands' rules.
    fn api_command(&self, req: &Request, kind: Kind) -> ApiReply {
        let (cmd, login) = match self.api_command_of(req, kind) {
            Ok(x) => x,
            Err(r) => return r,
        };
        match self.answer_command(&cmd, login.as_deref()) {
            commands::Answer::Nothing => {
                ApiReply::error(403, "stats are not available to logins, only to the guest")
            }
            commands::Answer::Text { reply, .. } => ApiReply::json(match kind {
                Kind::Online => json::online(&reply, counters_asked(req)),
                Kind::Watch => json::watch(&reply),
                Kind::Stats => json::stats(&reply),
            }),
        }
    }
}

/// `?counters=` with a value other than empty or 0.
fn counters_asked(req: &Request) -> bool {
    query_param(&req.query, "counters").is_some_and(|v| !v.is_empty() && v != b"0")
}

/// Reads `[login:password@]item,item,...` strictly: every item must be `[*][cursor:]id`.
fn parse_identifier(value: &[u8]) -> Result<Parsed, String> {
    let mut buf = b"identifier=".to_vec();
    buf.extend_from_slice(value);
    buf.push(b'\n');
    let bad = || format!("bad identifier: {}", String::from_utf8_lossy(value));
    let Scan::Found(m) = ident::scan(&buf, b"identifier", 0) else {
        return Err(bad());
    };
    // The list must run to the end of the value (nothing after it but the added newline).
    let list_end = (m.list.as_ptr() as usize)
        .saturating_sub(buf.as_ptr() as usize)
        .saturating_add(m.list.len());
    if list_end.saturating_add(1) != buf.len() {
        return Err(bad());
    }
    for item in m.list.split(|&c| c == b',') {
        if !item.is_empty() && ident::items(item).next().is_none() {
            return Err(format!(
                "bad identifier item: {:?} (expected [*][cursor:]id, id of letters, digits and _)",
                String::from_utf8_lossy(item)
            ));
        }
    }
    Ok(Parsed::from_marker(&m))
}

/// `{"cursor": "..", "ids": {"id": "cursor", ...}, "skipped": ["id", ...]}`.
pub(super) fn publish_json(
    owned: &[(Option<Cursor>, Box<str>)],
    skipped: &[(Option<Cursor>, Box<str>)],
    stamp: Option<&Cursor>,
) -> Vec<u8> {
    use api::reply::json_str;
    // Without a generated cursor (every id had its own), the newest explicit one.
    let top = stamp.or_else(|| {
        owned
            .iter()
            .filter_map(|(c, _)| c.as_ref())
            .max_by(|a, b| a.cmp_value(b))
    });
    let mut out = b"{\"cursor\": ".to_vec();
    match top {
        Some(c) => json_str(&mut out, &c.to_string()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b", \"ids\": {");
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (cursor, id) in owned {
        if !seen.insert(id) {
            continue;
        }
        if seen.len() > 1 {
            out.extend_from_slice(b", ");
        }
        json_str(&mut out, id);
        out.extend_from_slice(b": ");
        match cursor.as_ref().or(stamp) {
            Some(c) => json_str(&mut out, &c.to_string()),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.extend_from_slice(b"}, \"skipped\": [");
    for (i, (_, id)) in skipped.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        json_str(&mut out, id);
    }
    out.extend_from_slice(b"]}");
    out
}
