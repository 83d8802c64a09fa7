//! Streaming listeners (SSE and WebSocket) on the WAIT line: recognising the request,
//! resuming from `Last-Event-ID`, keeping the connection parked across deliveries, pings
//! every STREAM_PING, back-pressure, and a WebSocket's client frames (subscribe and
//! unsubscribe commands, pings, the close handshake).
//!
//! Structure: a streaming connection is a WAIT connection whose `transport` is `Sse` or
//! `Ws` and whose storage listener is marked streaming (its deliveries advance its cursors
//! instead of detaching it). Its timer is the ping timer, not WAIT_TIMEOUT. An SSE
//! connection is `Parked` (input is discarded); a WebSocket is `WsOpen` (frames are read
//! into `Conn::buf`, freed whenever no partial frame is left; the assembler is boxed only
//! while a fragmented message is in progress).
//! Uses: transport, websocket, sse, storage, timers.

use super::*;
use crate::transport::stream::{resume_cursors, Resume};
use crate::websocket::commands::{self as ws_commands, Command as WsCommand};
use crate::websocket::frame::{self, code};
use crate::websocket::handshake::{self, Handshake};
use crate::websocket::message::{Assembler, Message as WsMessage};

/// Unsent bytes a streaming client may leave behind before it is closed (it reconnects
/// with its last cursor and gets what is still queued, so nothing is lost).
pub(super) const STREAM_MAX_PENDING: usize = 64 * 1024;

/// What a WAIT request asks for, decided once its marker is found.
pub(super) enum Detect {
    /// The original's long-poll (also anything that is not HTTP).
    LongPoll,
    /// An HTTP head that is not complete yet: wait for the rest (WAIT_MAXLEN applies).
    WaitHead,
    Sse(Option<Resume>),
    Ws([u8; handshake::ACCEPT_LEN], Option<Resume>),
    /// A WebSocket upgrade from a page of another origin that ALLOWED_ORIGINS does not
    /// name: refused (browsers apply no CORS to WebSocket, so the server must).
    WsForeign,
    /// A WebSocket upgrade that must be refused: this reply, then close.
    Reject(Vec<u8>),
}

/// The value of query parameter `name` in the request line, percent-decoded.
pub(super) fn query_param(buf: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    crate::http::query_param(crate::http::request_query(buf)?, name)
}

/// The `Host` header's value (the first one), if the head has one.
fn host_of(head: &[u8]) -> Option<&[u8]> {
    head.split(|&c| c == b'\n').skip(1).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&c| c == b':')?;
        let (name, value) = line.split_at(colon);
        name.eq_ignore_ascii_case(b"host")
            .then(|| value.get(1..).unwrap_or_default().trim_ascii())
    })
}

/// Whether a browser's `Origin` may open a WebSocket: the same origin as the request's
/// `Host` (scheme aside), or one ALLOWED_ORIGINS names. No Origin (not a browser): yes.
fn ws_origin_ok(origin: Option<&[u8]>, host: Option<&[u8]>, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    if crate::http::origin_allowed(origin, allowed) {
        return true;
    }
    let authority = origin
        .windows(3)
        .position(|w| w == b"://")
        .and_then(|p| origin.get(p + 3..));
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

/// Decides the transport of a WAIT request from its bytes so far. A marker found before
/// the request line is complete is long-poll at once, as the original registers it (a
/// browser's first segment always holds its whole request line); after it, a GET waits
/// for its complete head (its Accept, Upgrade and WebSocket key lines may come in a
/// later segment, after cookies).
pub(super) fn detect(buf: &[u8], allowed: &[String]) -> Detect {
    if !buf.starts_with(b"GET ") || !buf.contains(&b'\n') {
        return Detect::LongPoll;
    }
    let from_query = || query_param(buf, b"last_event_id").and_then(|v| resume_cursors(&v));
    match handshake::check(buf) {
        Handshake::Partial => return Detect::WaitHead,
        Handshake::Upgrade { accept, origin } => {
            if !ws_origin_ok(origin, host_of(buf), allowed) {
                return Detect::WsForeign;
            }
            return Detect::Ws(accept, from_query());
        }
        Handshake::Reject(why) => {
            let mut out = Vec::new();
            handshake::reject_reply(why, b"", &mut out);
            return Detect::Reject(out);
        }
        Handshake::NotWebSocket => {}
    }
    match crate::sse::sse_request(buf) {
        Some(req) => Detect::Sse(
            req.last_event_id
                .and_then(resume_cursors)
                .or_else(from_query),
        ),
        None => Detect::LongPoll,
    }
}

impl Reactor {
    /// After registration: a streaming listener stays parked across deliveries and is
    /// pinged every STREAM_PING instead of timing out.
    pub(super) fn start_streaming(&mut self, key: usize, l: ListenerId, now: Instant) {
        self.storage.set_streaming(l);
        let Some(id) = self.id_of(key) else {
            return;
        };
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.transport == Transport::Ws {
            c.state = State::WsOpen;
        }
        if let Some(t) = c.timer.take() {
            self.timers.cancel(t);
        }
        c.timer = self.cfg.stream_ping.map(|d| self.timers.arm(now, d, id));
    }

    /// The ping timer of a streaming connection fired: ping and arm it again.
    pub(super) fn on_stream_timer(&mut self, key: usize, now: Instant) {
        let Some(id) = self.id_of(key) else {
            return;
        };
        let Some(transport) = self.conns.get(key).map(|c| c.transport) else {
            return;
        };
        if self.over_backpressure(key) {
            return;
        }
        let mut ping = Vec::new();
        transport.ping(&mut ping);
        if self.write_or_close(key, &ping).is_err() {
            return;
        }
        if let Some(c) = self.conns.get_mut(key) {
            c.timer = self.cfg.stream_ping.map(|d| self.timers.arm(now, d, id));
        }
    }

    /// Before writing more to a streaming client: one that still has more than
    /// STREAM_MAX_PENDING bytes unsent from earlier writes has stopped reading, and is
    /// closed instead (logged and counted; its reconnect with its last cursor gets what is
    /// still queued). A single large write, such as the backlog sent at registration, may
    /// exceed the bound: only what the client leaves behind counts.
    pub(super) fn over_backpressure(&mut self, key: usize) -> bool {
        let Some(pending) = self.conns.get(key).map(Conn::pending) else {
            return true;
        };
        if pending <= STREAM_MAX_PENDING {
            return false;
        }
        rlog!(
            Info,
            self.storage.counts(),
            "{}: {}closing a streaming client that does not read ({} bytes unsent)",
            self.who(key),
            self.name_prefix(key),
            pending
        );
        self.counters.dropped_backpressure += 1;
        self.defer_close(key);
        true
    }

    /// Client frames on an open WebSocket.
    pub(super) fn on_ws_data(&mut self, key: usize, now: Instant) {
        loop {
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            if c.state != State::WsOpen {
                return;
            }
            let mut asm = c.ws.take().map(|b| *b).unwrap_or_else(Assembler::new);
            let res = asm.next_message(&c.buf, self.cfg.wait_maxlen);
            let (used, msg) = match res {
                Ok(r) => r,
                Err(close) => {
                    self.ws_close(key, close.code, close.reason);
                    return;
                }
            };
            c.buf.drain(..used.min(c.buf.len()));
            if c.buf.is_empty() {
                c.buf = Vec::new();
            }
            if asm.in_message() {
                c.ws = Some(Box::new(asm));
            }
            let Some(msg) = msg else {
                return;
            };
            match msg {
                WsMessage::Ping(p) => {
                    let mut out = Vec::new();
                    frame::pong(&p, &mut out);
                    if self.write_or_close(key, &out).is_err() {
                        return;
                    }
                }
                WsMessage::Pong(_) => {}
                WsMessage::Close(code) => {
                    let mut out = Vec::new();
                    match code {
                        Some(c) => frame::close(c, "", &mut out),
                        None => frame::close_empty(&mut out),
                    }
                    self.reply_and_close(key, &out);
                    return;
                }
                WsMessage::Text(text) => match ws_commands::parse(&text) {
                    Ok(cmd) => self.ws_command(key, cmd, now),
                    Err(e) => {
                        rlog!(
                            Debug,
                            self.storage.counts(),
                            "{}: DEBUG: bad WebSocket command: {}",
                            self.who(key),
                            e.message
                        );
                        let reason = e.message.clone();
                        let mut out = Vec::new();
                        frame::close(e.code, &reason, &mut out);
                        self.reply_and_close(key, &out);
                        return;
                    }
                },
            }
        }
    }

    /// Sends a close frame with `code` and closes once it is out.
    fn ws_close(&mut self, key: usize, code: u16, reason: &str) {
        rlog!(
            Debug,
            self.storage.counts(),
            "{}: DEBUG: closing WebSocket ({} {})",
            self.who(key),
            code,
            reason
        );
        let mut out = Vec::new();
        frame::close(code, reason, &mut out);
        self.reply_and_close(key, &out);
    }

    /// `subscribe` / `unsubscribe`: the listener is registered again with its new ids (the
    /// ids it keeps at the cursors it stands at), then anything pending for a new id at its
    /// cursor is sent. Presence follows: a dropped id gets its offline countdown.
    fn ws_command(&mut self, key: usize, cmd: WsCommand, now: Instant) {
        let Some(id) = self.id_of(key) else {
            return;
        };
        let Some(old) = self.conns.get(key).and_then(|c| c.listener) else {
            return;
        };
        let mut pairs: Vec<(Cursor, Rc<str>)> = self.storage.listener_pairs(old);
        match cmd {
            WsCommand::Subscribe(subs) => {
                let mut stamp: Option<Cursor> = None;
                for (name, cursor) in subs {
                    let cursor = match cursor {
                        Some(c) => c,
                        None => stamp.get_or_insert_with(|| self.listen_now()).clone(),
                    };
                    match pairs.iter_mut().find(|(_, n)| **n == *name) {
                        Some(p) => p.0 = cursor,
                        None => pairs.push((cursor, Rc::from(&*name))),
                    }
                }
            }
            WsCommand::Unsubscribe(names) => {
                pairs.retain(|(_, n)| !names.iter().any(|x| **x == **n));
            }
        }
        let max_ids = self.cfg.wait_maxlen / 2;
        if pairs.len() > max_ids.max(1) {
            self.ws_close(key, code::POLICY_VIOLATION, "too many ids");
            return;
        }
        let interned: Vec<(Cursor, ChannelId)> = pairs
            .into_iter()
            .map(|(c, n)| (c, self.storage.intern(&n)))
            .collect();
        let l = self.storage.register(id, interned, &self.limits);
        self.storage.set_streaming(l);
        self.storage.want_gaps(l);
        self.storage.close_listener(old, now, &self.limits);
        if let Some(c) = self.conns.get_mut(key) {
            c.listener = Some(l);
        }
        rlog!(
            Debug,
            self.storage.counts(),
            "{}: DEBUG: {}subscriptions changed",
            self.who(key),
            self.name_prefix(key)
        );
        let delivery = self.storage.deliver_to_new(l, &self.limits);
        if let Some((d, ids)) = delivery {
            let ids_text = join_ids(&ids);
            self.send_delivery(d, &ids_text, &mut ReplyCache::default(), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_origins() {
        let none: &[String] = &[];
        assert!(ws_origin_ok(None, Some(b"x"), none));
        assert!(ws_origin_ok(
            Some(b"https://rpl.example:8088"),
            Some(b"RPL.example:8088"),
            none
        ));
        assert!(!ws_origin_ok(
            Some(b"https://evil.example"),
            Some(b"rpl.example"),
            none
        ));
        assert!(ws_origin_ok(
            Some(b"https://evil.example"),
            Some(b"rpl.example"),
            &["*".into()]
        ));
        assert!(!ws_origin_ok(Some(b"null"), Some(b"rpl.example"), none));
        let head = b"GET / HTTP/1.1\r\nX: 1\r\nhost:  a.b:1 \r\n\r\n";
        assert_eq!(host_of(head), Some(&b"a.b:1"[..]));
    }

    #[test]
    fn query_parameters_are_decoded() {
        let req = b"GET /?identifier=a&last_event_id=5%3Aa%2C7%3Ab HTTP/1.1\r\n";
        assert_eq!(query_param(req, b"last_event_id").unwrap(), b"5:a,7:b");
        assert_eq!(query_param(req, b"nope"), None);
        assert_eq!(query_param(b"GET /x%4 HTTP/1.1", b"x"), None);
        assert_eq!(query_param(b"GET /?x=%zz%4", b"x").unwrap(), b"%zz%4");
    }
}
