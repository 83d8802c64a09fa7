//! Vocabulary types shared by every module (as `cpp/dklab_realplexor.h` is for the original).
//!
//! Structure: plain `Copy` identifiers; nothing here owns data.
//! Uses: nothing.

/// Index of a channel (the original calls it an "ID") in `storage`'s channel slab.
pub type ChannelId = u32;

/// Index of a registered WAIT connection ("listener") in `storage`'s listener slab.
pub type ListenerId = u32;

/// A connection as the reactor knows it: the slab key plus a generation, because the slab
/// reuses keys and a stale reference must never reach a newer connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub key: u32,
    pub gen: u32,
}

/// Which listening line a connection came in on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Line {
    Wait,
    In,
}

impl Line {
    /// The prefix the original puts in front of connection log lines.
    pub fn name(self) -> &'static str {
        match self {
            Line::Wait => "WAIT",
            Line::In => "IN",
        }
    }
}
