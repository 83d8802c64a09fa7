//! Timers and housekeeping: connection inactivity timeouts, the ends of coalescing
//! windows, OFFLINE_TIMEOUT and CLEAN_ID_AFTER expiries, deferred accepts, and giving memory back after a peak.
//!
//! Structure: no state of its own beyond `Reactor::closed_since_trim` / `last_trim` /
//! `conns_cap_at_trim`; `trim_due` decides.
//! Uses: timers, storage, sys, logging.

use super::*;

impl Reactor {
    /// Gives memory back after a peak: once connections or channels are gone, shrink the
    /// containers that keep their peak capacity and ask malloc to return free pages. And
    /// after growth: a connection slab (and the listener and timer slabs beside it) that
    /// doubled left its old array free inside the heap, where it stays resident; only the
    /// free pages are returned then (shrinking a slab that is growing would make it grow
    /// again). At most every 5 s, so a steady churn pays nothing measurable.
    pub(super) fn housekeeping(&mut self, now: Instant) {
        let trim = trim_due(
            self.closed_since_trim + self.storage.freed_since_trim(),
            self.conns.capacity() > self.conns_cap_at_trim,
            now.duration_since(self.last_trim),
        );
        if trim == Trim::No {
            return;
        }
        self.last_trim = now;
        if trim == Trim::AfterPeak {
            self.closed_since_trim = 0;
            self.storage.shrink();
            sys::shrink_slab(&mut self.conns);
            self.timers.shrink();
        }
        self.conns_cap_at_trim = self.conns.capacity();
        sys::trim_heap();
        rlog!(Debug, self.storage.counts(), "memory trimmed ({trim:?})");
    }

    pub(super) fn expire(&mut self, now: Instant) {
        self.housekeeping(now);
        let more = std::mem::take(&mut self.accept_more);
        let wait_resumes = self.wait_paused_until.is_some_and(|t| t <= now);
        if wait_resumes {
            self.wait_paused_until = None;
        }
        if more || wait_resumes || self.accept_paused_until.is_some_and(|t| t <= now) {
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
            let streaming = self.conns.get(key).is_some_and(Conn::is_streaming_listener);
            if streaming {
                self.on_stream_timer(key, now);
                continue;
            }
            if self.awaits_redis(id) {
                // Its request is complete and with Redis (a push being appended, ONLINE
                // being asked): the link's own reply timeout answers it (a 503 when Redis
                // does not). Closing it here told a classic publisher "done" (its success
                // reply is an empty close) for a push Redis had not acknowledged, and left
                // an HTTP API publisher without an answer.
                let d = self.cfg.in_timeout;
                if let (Some(d), Some(c)) = (d, self.conns.get_mut(key)) {
                    c.timer = Some(self.timers.arm(now, d, id));
                }
                continue;
            }
            // A push under way: the original protocol's (its marker was read) or an HTTP
            // API `POST /pub` whose body has not all arrived.
            let dropped = self.conns.get(key).and_then(|c| {
                let api_push =
                    c.proto == crate::conn::Proto::Api && c.buf.starts_with(b"POST /pub");
                (c.parsed.is_some() || api_push).then_some(c.buf.len())
            });
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
                self.counters.dropped(Drop::InTimeout);
            }
            self.close_now(key, now);
        }
        self.release_held(now);
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

/// What `housekeeping` does this turn.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Trim {
    No,
    /// Connections or channels went away: shrink the containers, return free pages.
    AfterPeak,
    /// The connection slab grew: return the free pages its old array left.
    AfterGrowth,
}

/// `freed`: connections closed and channels forgotten since the last trim; `grew`: the
/// connection slab's capacity went up since; `since`: time since the last trim.
pub(super) fn trim_due(freed: usize, grew: bool, since: Duration) -> Trim {
    const FREED: usize = 1_000;
    const EVERY: Duration = Duration::from_secs(5);
    if since < EVERY {
        Trim::No
    } else if freed >= FREED {
        Trim::AfterPeak
    } else if grew {
        Trim::AfterGrowth
    } else {
        Trim::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_after_a_peak_or_after_growth_at_most_every_5_s() {
        let s = Duration::from_secs;
        assert_eq!(trim_due(0, false, s(60)), Trim::No);
        assert_eq!(trim_due(999, false, s(60)), Trim::No);
        assert_eq!(trim_due(1_000, false, s(60)), Trim::AfterPeak);
        assert_eq!(trim_due(1_000, true, s(60)), Trim::AfterPeak);
        assert_eq!(trim_due(0, true, s(5)), Trim::AfterGrowth);
        assert_eq!(trim_due(10, true, s(60)), Trim::AfterGrowth);
        assert_eq!(
            trim_due(1_000, true, Duration::from_millis(4_999)),
            Trim::No
        );
        assert_eq!(trim_due(0, true, s(4)), Trim::No);
    }
}
