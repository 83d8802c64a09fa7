//! An IN request to its applied message: the marker, credentials, commands (ONLINE, WATCH,
//! STATS), the overflow rule, and at EOF the push handed to the message source.
//!
//! Structure: the parsed marker lives boxed on the connection (`Conn::parsed`) from the
//! moment it is found until EOF; the body is the rest of `Conn::buf`.
//! Uses: in_line, ident, commands, auth (through config), storage, source.

use super::*;

impl Reactor {
    pub(super) fn on_in_data(&mut self, key: usize) {
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
            // Spec 13.1 #4: unlike the original, an overflowing request is not pushed, and
            // the publisher is told: the rest of its request is read and thrown away, then
            // a 413 answers it at EOF (a reply sent while it still writes could be lost to
            // a reset).
            rlog!(
                Debug,
                self.storage.counts(),
                "{}: ERROR: overflow (received {} bytes total)",
                self.who(key),
                c.buf.len()
            );
            self.counters.dropped(Drop::Overflow);
            if let Some(c) = self.conns.get_mut(key) {
                c.parsed = None;
                c.buf = Vec::new();
                c.state = State::Draining;
            }
        }
    }

    /// Checks the request's credentials; on failure replies 403 and returns false.
    pub(super) fn authenticate(&mut self, key: usize) -> bool {
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

    pub(super) fn on_in_eof(&mut self, key: usize, now: Instant) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.state == State::Draining {
            let reply = in_line::too_large(self.cfg.in_maxlen);
            self.reply_and_close(key, &reply);
            return;
        }
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
        let Some(body) = in_line::body_of(&buf).filter(|b| !in_line::is_blank(b)) else {
            // Spec 13.1 #3: an empty body (or one of whitespace only, which would make the
            // reply invalid JSON) is ignored like a missing one.
            rlog!(
                Debug,
                self.storage.counts(),
                "{}: DEBUG: passed empty HTTP body, ignored",
                self.who(key)
            );
            return;
        };
        let mut owned: Vec<(Option<Cursor>, Box<str>)> = Vec::with_capacity(pairs.len());
        for (cursor, id) in pairs {
            if let Some(login) = &login {
                if !in_line::owned_by(login, &id) {
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
            owned.push((cursor, id));
        }
        if owned.is_empty() {
            return;
        }
        let p = Publication {
            targets: owned,
            limiters: limiters.into_boxed_slice(),
            body: body.into(),
        };
        let _ = self.submit(key, p, now);
    }

    pub(super) fn run_command(&mut self, key: usize, cmd: Command) {
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
        if cmd.kind == commands::Kind::Online && self.cluster.is_some() {
            // Cluster mode: asked of Redis, answered when it replies.
            return self.online_text(key, cmd, login);
        }
        let answer = self.answer_command(&cmd, login.as_deref());
        self.send_answer(key, answer);
    }

    /// Sends a text command's answer (logging what it said) or, for no answer, closes.
    pub(super) fn send_answer(&mut self, key: usize, answer: commands::Answer) {
        match answer {
            commands::Answer::Text { reply, log } => {
                rlog!(
                    Debug,
                    self.storage.counts(),
                    "{}: DEBUG: {}",
                    self.who(key),
                    log
                );
                self.send_reply(key, reply);
            }
            commands::Answer::Nothing => self.finish(key),
        }
    }
}
