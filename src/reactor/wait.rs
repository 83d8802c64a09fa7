//! A WAIT request from its first byte to parked or answered: CORS, the identifier marker,
//! the IFRAME/SCRIPT static replies, overflow, and registration (header block, storage
//! subscriptions, then anything already pending).
//!
//! Structure: works on `Conn::buf` while the connection is `Reading`; registration frees the
//! buffer and leaves a `Parked` connection holding only its storage listener.
//! Uses: http, ident, cursor, storage, transport, config.

use super::*;

impl Reactor {
    pub(super) fn on_wait_data(&mut self, key: usize, last_read: usize, now: Instant) {
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
        // WAIT_MAXLEN bounds the request up to the end of its id list, however TCP split it
        // (a list found in one large read used to pass; the same bytes in two reads did
        // not). It also bounds what one anonymous connection can subscribe to.
        let list_end = (m.list.as_ptr() as usize)
            .saturating_sub(c.buf.as_ptr() as usize)
            .saturating_add(m.list.len());
        if list_end > self.cfg.wait_maxlen {
            self.wait_overflow(key, last_read, now);
            return;
        }
        // The first pair's id (whatever its cursor) selects the static replies.
        let first = ident::items(m.list).next().map(|it| it.id);
        let what = match first {
            None => None,
            Some(id) if id == self.cfg.iframe_id.as_bytes() => Some("IFRAME"),
            Some(id) if id == self.cfg.script_id.as_bytes() => Some("SCRIPT"),
            Some(_) => {
                // SSE or WebSocket (a GET whose head says so), else long-poll.
                let (transport, resume, head) =
                    match stream::detect(&c.buf, &self.cfg.allowed_origins) {
                        stream::Detect::LongPoll => {
                            match stream::query_param(&c.buf, b"callback") {
                                None => (Transport::LongPoll, None, None),
                                Some(name) if transport::valid_callback(&name) => {
                                    let name = String::from_utf8_lossy(&name).into_owned();
                                    let id = ConnId {
                                        key: key as u32,
                                        gen: c.gen,
                                    };
                                    self.jsonp.insert(id, name.into_boxed_str());
                                    (Transport::Jsonp, None, None)
                                }
                                Some(_) => {
                                    let reply = http::refusal(
                                "400 Bad Request",
                                "bad callback: want [A-Za-z_$][A-Za-z0-9_$.]{0,63}, no more\n",
                            );
                                    self.reply_and_close(key, &reply);
                                    return;
                                }
                            }
                        }
                        stream::Detect::WaitHead => {
                            if c.buf.len() > self.cfg.wait_maxlen {
                                self.wait_overflow(key, last_read, now);
                            }
                            return;
                        }
                        stream::Detect::Sse(resume) => (Transport::Sse, resume, None),
                        stream::Detect::Ws(accept, resume) => {
                            let cors_lines = cors.as_deref().map(http::cors_headers);
                            let mut head = Vec::new();
                            crate::websocket::handshake::switching_protocols(
                                &accept,
                                cors_lines.as_deref().unwrap_or_default(),
                                &mut head,
                            );
                            (Transport::Ws, resume, Some(head))
                        }
                        stream::Detect::WsForeign => {
                            rlog!(
                                Debug,
                                self.storage.counts(),
                                "{}: DEBUG: WebSocket from a foreign origin refused",
                                self.who(key)
                            );
                            let reply = http::refusal(
                            "403 Forbidden",
                            "WebSocket refused: this origin is not listed in ALLOWED_ORIGINS.\r\n",
                        );
                            self.reply_and_close(key, &reply);
                            return;
                        }
                        stream::Detect::Reject(reply) => {
                            self.reply_and_close(key, &reply);
                            return;
                        }
                    };
                c.transport = transport;
                // Interned straight from the request bytes (ids are ASCII word characters).
                let mut gen_now: Option<Cursor> = None;
                let mut pairs: Vec<(Cursor, ChannelId)> = Vec::new();
                // Compat: the Perl original listens to `*id` items on WAIT like plain ids.
                for it in ident::items(m.list) {
                    let cursor = match it.cursor.and_then(Cursor::parse_client) {
                        Some(c) => c,
                        None => match &resume {
                            Some(r) => r.cursor_for(it.id),
                            None => gen_now
                                .get_or_insert_with(|| {
                                    cluster::listen_now(&mut self.cursors, self.cluster.as_deref())
                                })
                                .clone(),
                        },
                    };
                    let name = std::str::from_utf8(it.id).unwrap_or_default();
                    pairs.push((cursor, self.storage.intern(name)));
                }
                // Gap blocks are opt-in (`gap=1`): without it the bytes are the original's.
                let gaps = self
                    .conns
                    .get(key)
                    .is_some_and(|c| http::query_flag(&c.buf, b"gap=1"));
                self.register(key, pairs, cors, head, now, gaps);
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
            Some(o) => http::with_headers(&reply, &http::cors_headers(o)),
            None if !self.cfg.allowed_origins.is_empty() => {
                http::with_headers(&reply, b"Vary: Origin\r\n")
            }
            None => reply.to_vec(),
        };
        self.reply_and_close(key, &reply);
    }

    /// More than WAIT_MAXLEN bytes and no marker: close without a reply.
    pub(super) fn wait_overflow(&mut self, key: usize, last_read: usize, now: Instant) {
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
    pub(super) fn register(
        &mut self,
        key: usize,
        pairs: Vec<(Cursor, ChannelId)>,
        cors: Option<Vec<u8>>,
        head: Option<Vec<u8>>,
        now: Instant,
        gaps: bool,
    ) {
        let Some(id) = self.id_of(key) else {
            self.storage.forget_unused(pairs.iter().map(|p| p.1));
            return;
        };
        let Some(transport) = self.conns.get(key).map(|c| c.transport) else {
            self.storage.forget_unused(pairs.iter().map(|p| p.1));
            return;
        };
        let header: Rc<[u8]> = match head {
            Some(h) => Rc::from(h),
            None => transport.head(&self.cfg, cors.as_deref()),
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
        // SSE and WebSocket clients always get gap notices; long-poll ones when they ask.
        if gaps || transport.is_streaming() {
            self.storage.want_gaps(l);
        }
        if let Some(c) = self.conns.get_mut(key) {
            c.listener = Some(l);
        }
        if transport.is_streaming() {
            self.start_streaming(key, l, now);
        } else {
            // A stream's deliveries cost a write on an open connection, not a connection
            // cycle each: only long-poll listeners are held (COALESCE_MS).
            self.storage.hold(l, now, self.limits.coalesce);
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
            self.send_delivery(d, &ids_text, &mut ReplyCache::default(), None);
        }
    }
}
