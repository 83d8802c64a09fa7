//! The coalescing window (COALESCE_MS, issue 17): a long-poll listener is not answered
//! before its registration is `COALESCE_MS` old, so the pushes that arrive meanwhile go out
//! in one reply instead of one reply (and one TCP connection cycle) each.
//!
//! A held listener stays parked exactly as any other: its cursors say what it still needs,
//! so nothing can be lost while it waits; a push only skips it (`next_delivery`,
//! `deliver_to_new` and `ids_with_data` pass over held listeners). Its release timer, armed
//! at registration for the one fixed duration, ends the hold; the reactor then delivers to
//! it through `deliver_to_new`, as at registration. Listeners parked longer than the window
//! are answered at once, as without it. As for a client between two requests, a message
//! that MAX_DATA_FOR_ID trims from a queue during the window is not seen (with `gap=1` the
//! reply says so).
//!
//! Structure: `Listener::held` and `Storage::holds`, a `Timers<(ListenerId, ConnId)>`.
//! A listener that closes while held leaves its timer behind (no per-listener key is kept,
//! so a parked connection costs no more memory); the timer lives at most one window and is
//! recognised as stale when it fires (the listener is gone, or its slot now belongs to
//! another connection).
//! Uses: timers, types.

use super::*;

impl Storage {
    /// Holds a freshly registered long-poll listener for `window` (zero: no hold, today's
    /// timing). Streaming listeners are never held (see the reactor's `register`).
    pub fn hold(&mut self, l: ListenerId, now: Instant, window: Duration) {
        if window.is_zero() {
            return;
        }
        let Some(listener) = self.listeners.get_mut(l as usize) else {
            return;
        };
        if listener.held || listener.streaming {
            return;
        }
        listener.held = true;
        self.held += 1;
        let conn = listener.conn;
        self.holds.arm(now, window, (l, conn));
    }

    /// Whether a listener is in its coalescing window (pushes do not answer it yet).
    pub fn is_held(&self, l: ListenerId) -> bool {
        self.listeners.get(l as usize).is_some_and(|x| x.held)
    }

    /// Listeners held right now.
    pub fn held_count(&self) -> usize {
        self.held
    }

    /// The next listener whose window ended by `now`, released (no longer held); the
    /// caller delivers to it with `deliver_to_new`. Stale timers are skipped.
    pub fn release_one(&mut self, now: Instant) -> Option<ListenerId> {
        while let Some((l, conn)) = self.holds.pop_expired(now) {
            let Some(listener) = self.listeners.get_mut(l as usize) else {
                continue;
            };
            if listener.conn != conn || !listener.held {
                continue;
            }
            listener.held = false;
            self.held -= 1;
            return Some(l);
        }
        None
    }

    /// When the next window ends.
    pub fn next_release(&self) -> Option<Instant> {
        self.holds.next_deadline()
    }
}
