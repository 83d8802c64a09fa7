//! Monotonic event counters of one worker (what `/metrics` and the logs report): pushes,
//! deliveries, and every message a limit dropped, by reason; and the open connections per
//! line, kept as gauges raised on accept and lowered on close. Counting is an increment on
//! the hot path: no scans, no allocation.
//!
//! Structure: plain `u64` fields owned by the reactor; storage keeps its own trim and clean
//! counts (`Storage::trimmed_items`, `cleaned_items`) because it is the one that drops them.
//! Uses: types.

use crate::types::Line;

/// Why a message (or a push) was dropped.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Drop {
    /// A push over IN_MAXLEN, refused with a 413.
    Overflow,
    /// A push whose publisher never half-closed within IN_TIMEOUT.
    InTimeout,
    /// A message a slow streaming listener could not take (counted by the streaming
    /// transports).
    Backpressure,
}

#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Pushes applied.
    pub pushes: u64,
    /// Replies or events written to WAIT listeners (all transports), and of them over
    /// SSE and WebSocket.
    pub deliveries: u64,
    pub deliveries_sse: u64,
    pub deliveries_ws: u64,
    pub dropped_overflow: u64,
    pub dropped_in_timeout: u64,
    /// Cluster mode: pushes refused with a 503 because the log could not take them.
    pub dropped_unavailable: u64,
    /// Streaming clients closed because they stopped reading (they resume by cursor).
    pub dropped_backpressure: u64,
    /// SIGHUP reloads that applied.
    pub reloads: u64,
    /// Times accepting stopped at the descriptor limit or its reserve.
    pub accept_paused: u64,
    /// Open connections per line (gauges).
    pub conns_wait: u64,
    pub conns_in: u64,
}

impl Counters {
    pub fn dropped(&mut self, why: Drop) {
        match why {
            Drop::Overflow => self.dropped_overflow += 1,
            Drop::InTimeout => self.dropped_in_timeout += 1,
            Drop::Backpressure => self.dropped_backpressure += 1,
        }
    }

    /// A connection was accepted on `line`.
    pub fn opened(&mut self, line: Line) {
        match line {
            Line::Wait => self.conns_wait += 1,
            Line::In => self.conns_in += 1,
        }
    }

    /// A connection of `line` was closed.
    pub fn closed(&mut self, line: Line) {
        match line {
            Line::Wait => self.conns_wait = self.conns_wait.saturating_sub(1),
            Line::In => self.conns_in = self.conns_in.saturating_sub(1),
        }
    }
}
