//! Monotonic event counters of one worker (what `/metrics` and the logs report): pushes,
//! deliveries, and every message a limit dropped, by reason. Counting is an increment on
//! the hot path: no scans, no allocation.
//!
//! Structure: plain `u64` fields owned by the reactor; storage keeps its own trim count
//! (`Storage::trimmed_items`) because it is the one that trims.
//! Uses: nothing.

/// Why a message (or a push) was dropped.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Drop {
    /// A push over IN_MAXLEN, refused with a 413.
    Overflow,
    /// A push whose publisher never half-closed within IN_TIMEOUT.
    InTimeout,
}

#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Pushes applied.
    pub pushes: u64,
    /// Replies or events written to WAIT listeners.
    pub deliveries: u64,
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
}

impl Counters {
    pub fn dropped(&mut self, why: Drop) {
        match why {
            Drop::Overflow => self.dropped_overflow += 1,
            Drop::InTimeout => self.dropped_in_timeout += 1,
        }
    }
}
