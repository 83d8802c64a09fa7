//! Listening and accepting: binds WAIT_ADDR and IN_ADDR (TCP, or `unix:/path` through
//! `net`), keeps the listeners across a reload, accepts in bounded batches, pauses when out
//! of descriptors, and serves a new connection's first bytes right away (TCP_DEFER_ACCEPT
//! makes them already here).
//!
//! Structure: `Listener { sock, line, addr }`, one per configured address; its token is
//! `LISTENER_BASE + index` (`ListenToken`). New connections go into the reactor's slab with
//! their inactivity timer armed.
//! Uses: conn, config, net, sys, timers, types.

use super::*;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct ListenToken(pub(super) usize);

pub(super) struct Listener {
    pub(super) sock: Listen,
    pub(super) line: Line,
    /// The address as configured (compared on reload).
    pub(super) addr: String,
}

/// Binds one `host:port` (IPv4, `[IPv6]`, or a host name) with SO_REUSEADDR and the
/// original's backlog of 50000. With WORKERS > 1 also SO_REUSEPORT, so that every worker
/// listens on the same port (only then: with one worker a second server on the port must
/// still fail to start).
pub(super) fn bind(addr: &str) -> Result<TcpListener, String> {
    let sa: SocketAddr = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let std = if crate::worker_id::worker_count() > 1 {
        sys::reuseport_listener(sa, 50_000)
    } else {
        std::net::TcpListener::bind(sa)
    }
    .map_err(|e| format!("{addr}: {e}"))?;
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

/// Binds one WAIT_ADDR or IN_ADDR entry: `unix:/path` (`net::bind_unix`) or TCP (`bind`).
pub(super) fn bind_any(addr: &str) -> Result<Listen, String> {
    if addr.starts_with(net::UNIX_PREFIX) {
        return net::bind_unix(addr).map(Listen::Unix);
    }
    bind(addr).map(Listen::Tcp)
}

/// The listen addresses a config asks for, in order.
pub(super) fn wanted_addrs(cfg: &Config) -> Vec<(String, Line)> {
    cfg.wait_addr
        .iter()
        .map(|a| (a.clone(), Line::Wait))
        .chain(cfg.in_addr.iter().map(|a| (a.clone(), Line::In)))
        .collect()
}

impl Reactor {
    /// Builds the listener list for `addrs`, keeping any of `old` with the same address
    /// and line (no new socket, no lost connection) and binding the rest. Tokens follow the
    /// new order.
    pub(super) fn bind_all(
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
                    None => (bind_any(addr)?, true),
                };
            let reg = self.poll.registry();
            let res = if fresh {
                reg.register(&mut sock, token, Interest::READABLE)
            } else {
                reg.reregister(&mut sock, token, Interest::READABLE)
            };
            res.map_err(|e| format!("{addr}: {e}"))?;
            if fresh {
                let local = sock.describe().map_err(|e| format!("{addr}: {e}"))?;
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

    pub(super) fn accept(&mut self, which: ListenToken, now: Instant) {
        if self.accept_paused_until.is_some_and(|t| t > now) {
            return;
        }
        self.accept_paused_until = None;
        let wait_line = self.listeners.get(which.0).map(|l| l.line) == Some(Line::Wait);
        if wait_line && self.wait_paused_until.is_some_and(|t| t > now) {
            return;
        }
        // Cluster mode: no WAIT connection before the retained log is applied (they wait
        // in the kernel's queue; catching up sets accept_more).
        if wait_line && self.cluster.as_deref().is_some_and(|c| !c.caught_up()) {
            return;
        }
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
            if line == Line::Wait && self.in_reserve() {
                // Browsers may not take the descriptors kept for publishers: leave them in
                // the kernel's queue and stop accepting on WAIT for a moment.
                self.pause_wait(now);
                return;
            }
            let Some(l) = self.listeners.get(which.0) else {
                return;
            };
            match l.sock.accept() {
                Ok((sock, peer)) => {
                    accepted += 1;
                    self.add_conn(sock, peer, line, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) => {
                    // Out of descriptors: stop accepting for a moment instead of spinning.
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    self.counters.accept_paused += 1;
                    if self.accept_warn_due(now) {
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

    /// Whether one more connection would take a descriptor of the reserve kept for the IN
    /// line (counted: the descriptors open when the loop started, plus one per connection).
    fn in_reserve(&self) -> bool {
        let open = self.fd_base.saturating_add(self.conns.len() as u64);
        open.saturating_add(1) > self.fd_limit.saturating_sub(self.fd_reserve)
    }

    /// Whether an accept pause may be logged now (at most once a second); marks it logged.
    fn accept_warn_due(&mut self, now: Instant) -> bool {
        let due = self
            .last_accept_warn
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
        if due {
            self.last_accept_warn = Some(now);
        }
        due
    }

    /// Stops accepting WAIT connections for ACCEPT_PAUSE (the reserve is reached).
    fn pause_wait(&mut self, now: Instant) {
        self.wait_paused_until = Some(now + ACCEPT_PAUSE);
        self.counters.accept_paused += 1;
        if self.accept_warn_due(now) {
            rlog!(
                Warn,
                self.storage.counts(),
                "WAIT: descriptor reserve reached ({} of {} in use; the last {} are kept for the IN line); pausing new WAIT connections",
                self.fd_base.saturating_add(self.conns.len() as u64),
                self.fd_limit,
                self.fd_reserve
            );
        }
    }

    pub(super) fn add_conn(&mut self, sock: Stream, peer: Peer, line: Line, now: Instant) {
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
        self.counters.opened(line);
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
}
