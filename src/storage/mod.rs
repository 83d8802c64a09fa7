//! All server state that is not a socket: channel queues, parked listeners, presence, the
//! channel timers and the event history (the original's six registries).
//!
//! Structure:
//! - `names: HashMap<Rc<str>, ChannelId>` and `channels: Slab<Channel>`: a channel
//!   `{ name, queue: Option<VecDeque<Item>> (newest first), waiters: Vec<Waiter>,
//!   online, countdown, cleanup }` lives while it has a queue, waiters or presence.
//! - `listeners: Slab<Listener>`: one per registered WAIT connection
//!   `{ conn, subs: Subs }`, `Subs` being one `Sub { channel, cursor, pos }` kept inline (a
//!   listener on one id costs no allocation of its own) or a `Box<[Sub]>`. `Sub::pos` is the listener's index in
//!   the channel's `waiters`, and `Waiter` points back at `(listener, sub)`, so parking and
//!   unparking are O(subscriptions) with swap-remove (as perl/Storage/PairsByFhs.pm's reverse
//!   index).
//! - `Item { cursor, msg: Rc<Message> }`: a message body is stored once and shared by every
//!   queue and reply that carries it.
//! - `timers`: OFFLINE_TIMEOUT countdowns and CLEAN_ID_AFTER cleanups per channel;
//!   `holds`: the ends of listeners' coalescing windows.
//!
//! Files: `channels` (queues, trims, channel timers), `waiters` (parking, detaching,
//! closing), `delivery` (what each listener gets), `hold` (the coalescing window), `views` (read-only views, invariants),
//! `events` (the WATCH history), `gaps` (what was dropped, and the gap rule), `persist`
//! (writing and restoring a snapshot).
//!
//! Storage never sees a socket or the clock: callers pass `now` and get back what to send.
//! Uses: types, cursor, timers, sys (shrink_slab).

mod channels;
mod delivery;
pub mod events;
mod gaps;
mod hold;
mod persist;
mod views;
mod waiters;

pub use delivery::DeliveryRun;
use delivery::Hit;
pub use persist::SnapCounts;

use crate::cursor::Cursor;
use crate::timers::{TimerKey, Timers};
use crate::types::{ChannelId, ConnId, ListenerId};
use events::{EventKind, Events};
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// One published message: the raw IN body and its visibility limiters (`*id` items).
#[derive(Debug)]
pub struct Message {
    pub data: Box<[u8]>,
    /// Sorted, unique limiter ids; empty means visible to every listener.
    pub limiters: Box<[Box<str>]>,
}

#[derive(Debug)]
pub struct Item {
    pub cursor: Cursor,
    pub msg: Rc<Message>,
}

#[derive(Debug)]
struct Waiter {
    listener: ListenerId,
    sub: u32,
}

#[derive(Debug)]
struct Channel {
    name: Rc<str>,
    queue: Option<VecDeque<Item>>,
    waiters: Vec<Waiter>,
    online: bool,
    countdown: Option<TimerKey>,
    cleanup: Option<TimerKey>,
}

#[derive(Debug)]
pub struct Sub {
    pub channel: ChannelId,
    pub cursor: Cursor,
    pos: u32,
}

/// A listener's subscriptions, in request order. Most listeners wait on one id: that one
/// is kept inline, saving a heap block (48 bytes with malloc's header) per parked
/// connection; several are boxed. Reads as a slice.
#[derive(Debug)]
enum Subs {
    One(Sub),
    Many(Box<[Sub]>),
}

impl From<Vec<Sub>> for Subs {
    fn from(mut v: Vec<Sub>) -> Subs {
        match v.pop() {
            Some(s) if v.is_empty() => Subs::One(s),
            Some(s) => {
                v.push(s);
                Subs::Many(v.into_boxed_slice())
            }
            None => Subs::Many(Box::default()),
        }
    }
}

impl std::ops::Deref for Subs {
    type Target = [Sub];
    fn deref(&self) -> &[Sub] {
        match self {
            Subs::One(s) => std::slice::from_ref(s),
            Subs::Many(b) => b,
        }
    }
}

impl std::ops::DerefMut for Subs {
    fn deref_mut(&mut self) -> &mut [Sub] {
        match self {
            Subs::One(s) => std::slice::from_mut(s),
            Subs::Many(b) => b,
        }
    }
}

// One inline subscription costs no more room than the box it replaces plus its tag would,
// and a listener stays within 56 bytes (it was 40 plus a 48-byte heap block).
const _: () = assert!(std::mem::size_of::<Subs>() <= std::mem::size_of::<Sub>());
const _: () = assert!(std::mem::size_of::<Listener>() <= 56);

#[derive(Debug)]
struct Listener {
    conn: ConnId,
    subs: Subs,
    /// Pairs in the request, duplicates included (for the log name).
    npairs: u32,
    /// The first pair's cursor as sent, when a later duplicate id replaced it (rare; the
    /// log name shows the first pair as sent, as the original does).
    first_cursor: Option<Box<Cursor>>,
    /// Still parked on its channels' waiter lists (the original's pairs_by_fhs entry).
    attached: bool,
    /// SSE or WebSocket: a delivery advances its cursors and leaves it parked (long-poll
    /// listeners are detached by their delivery).
    streaming: bool,
    /// Gets gap blocks (opted in; see `gaps`).
    gaps: bool,
    /// In its coalescing window: pushes do not answer it yet (see `hold`).
    held: bool,
}

#[derive(Copy, Clone, Debug)]
enum ChanTimer {
    Offline(ChannelId),
    Cleanup(ChannelId),
}

/// Registry sizes for the log suffix, kept as counters so logging never scans.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub pairs_by_fhs: usize,
    pub data_to_send: usize,
    pub connected_fhs: usize,
    pub online_timers: usize,
    pub cleanup_timers: usize,
    pub events: usize,
}

/// What a channel timer did, for the caller to log.
#[derive(Debug)]
pub enum Expired {
    /// The id left the online set; log it, then call `record_offline`.
    Offline(Rc<str>),
    /// The id's queue was deleted after CLEAN_ID_AFTER without pushes.
    Cleaned(Rc<str>),
}

/// One message block of a reply.
#[derive(Debug)]
pub struct Block {
    pub msg: Rc<Message>,
    /// The smallest cursor among `ids` (orders blocks; spec 13.1 #13).
    pub cursor: Cursor,
    /// (id, cursor) pairs, sorted by id bytes.
    pub ids: Vec<(Rc<str>, Cursor)>,
}

/// A reply for one listener, already detached from its channels.
#[derive(Debug)]
pub struct Delivery {
    pub listener: ListenerId,
    pub conn: ConnId,
    /// Blocks in (cursor, data) order.
    pub blocks: Vec<Block>,
    /// (id, cursor to continue from) for the ids whose history was cut below the
    /// listener's cursor, sorted by id; empty unless the listener opted in (see `gaps`).
    pub gaps: Vec<(Rc<str>, Cursor)>,
}

/// The limits that storage applies (a view of the live config).
#[derive(Copy, Clone, Debug)]
pub struct Limits {
    pub max_data_for_id: usize,
    pub offline_timeout: Duration,
    pub clean_id_after: Duration,
    pub event_chain_len: usize,
    /// The coalescing window of long-poll listeners (see `hold`; zero: none).
    pub coalesce: Duration,
}

/// A parked connection and its (cursor, id) pairs.
pub type ListenerView<'a> = (ConnId, Vec<(&'a Cursor, &'a Rc<str>)>);

/// A read-only view of one channel.
pub struct ChannelView<'a> {
    pub name: &'a Rc<str>,
    pub queue: Option<&'a VecDeque<Item>>,
    pub waiters: Vec<ConnId>,
    pub online: bool,
    pub cleanup: bool,
}

#[derive(Default)]
pub struct Storage {
    names: HashMap<Rc<str>, ChannelId>,
    channels: Slab<Channel>,
    listeners: Slab<Listener>,
    timers: Timers<ChanTimer>,
    /// Ends of coalescing windows (see `hold`).
    holds: Timers<(ListenerId, ConnId)>,
    /// Listeners held now.
    held: usize,
    events: Events,
    counts: Counts,
    /// Items dropped by MAX_DATA_FOR_ID trimming since start.
    pub trimmed_items: u64,
    /// Items deleted with their queue by CLEAN_ID_AFTER since start.
    pub cleaned_items: u64,
    /// Items in all queues, and their body bytes (per item: a body queued under n ids
    /// counts n times), kept on push, trim and clean (for `/metrics`; never scanned).
    pub queued_items: u64,
    pub queued_bytes: u64,
    /// (channel, items dropped) by trims not yet reported (see `take_trims`).
    trims: Vec<(ChannelId, usize)>,
    /// Scratch for delivery runs (kept to avoid an allocation per listener).
    hits: Vec<Hit>,
    /// Channels forgotten since the last `shrink`.
    freed: usize,
    /// What was dropped, for the gap signal.
    gaps: gaps::Gaps,
    /// Cluster mode: presence is shared (see `presence_out`).
    pub shared_presence: Option<Box<SharedPresence>>,
}

/// Cluster mode's view of local presence: instead of numbering its own online/offline
/// events, storage hands each local transition to the reactor (which reports it to the
/// cluster; the cluster-wide events come back numbered and are replayed with
/// `Events::push_at`), and notes the channels whose listener count changed (sent in
/// batches).
#[derive(Debug, Default)]
pub struct SharedPresence {
    pub transitions: Vec<(EventKind, Rc<str>)>,
    pub count_changed: Vec<ChannelId>,
}

impl SharedPresence {
    /// Past `bound` entries, keeps only the latest transition of each id (in order) and
    /// each changed channel once, so that a long Redis outage cannot grow them without end.
    pub fn compact(&mut self, bound: usize) {
        if self.transitions.len() > bound {
            let mut seen = std::collections::HashSet::new();
            let mut kept: Vec<(EventKind, Rc<str>)> = Vec::new();
            for t in self.transitions.drain(..).rev() {
                if seen.insert(t.1.clone()) {
                    kept.push(t);
                }
            }
            kept.reverse();
            self.transitions = kept;
        }
        if self.count_changed.len() > bound {
            self.count_changed.sort_unstable();
            self.count_changed.dedup();
        }
    }
}

impl Storage {
    pub fn new() -> Storage {
        Storage::default()
    }

    pub fn counts(&self) -> Counts {
        Counts {
            events: self.events.len(),
            ..self.counts
        }
    }

    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Cluster mode: the event history is the cluster's, replayed here.
    pub fn events_mut(&mut self) -> &mut Events {
        &mut self.events
    }

    /// An id went online or offline here: numbered locally, or reported to the cluster.
    pub(super) fn local_transition(&mut self, kind: EventKind, name: &Rc<str>, chain_len: usize) {
        match self.shared_presence.as_deref_mut() {
            Some(p) => p.transitions.push((kind, name.clone())),
            None => self.events.push(kind, name, chain_len),
        }
    }

    /// Cluster mode: a channel's listener count changed.
    pub(super) fn count_changed(&mut self, id: ChannelId) {
        if let Some(p) = self.shared_presence.as_deref_mut() {
            p.count_changed.push(id);
        }
    }

    /// The listener count of an id here (0 when unknown).
    pub fn local_count(&self, id: ChannelId) -> usize {
        self.channels
            .get(id as usize)
            .map_or(0, |c| c.waiters.len())
    }

    /// The channel for `name`, created if missing.
    pub fn intern(&mut self, name: &str) -> ChannelId {
        if let Some(&id) = self.names.get(name) {
            return id;
        }
        let name: Rc<str> = Rc::from(name);
        let id = self.channels.insert(Channel {
            name: name.clone(),
            queue: None,
            waiters: Vec::new(),
            online: false,
            countdown: None,
            cleanup: None,
        }) as ChannelId;
        self.gaps.known_again(id, &name);
        self.names.insert(name, id);
        id
    }

    /// How many channels (ids) exist.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    pub fn lookup(&self, name: &str) -> Option<ChannelId> {
        self.names.get(name).copied()
    }

    pub fn channel_name(&self, id: ChannelId) -> Option<&Rc<str>> {
        self.channels.get(id as usize).map(|c| &c.name)
    }

    /// Forgets those of `ids` that hold nothing (interned for a request that went away).
    pub fn forget_unused(&mut self, ids: impl Iterator<Item = ChannelId>) {
        for id in ids {
            self.forget_if_unused(id);
        }
    }

    /// Forgets a channel that holds nothing any more.
    fn forget_if_unused(&mut self, id: ChannelId) {
        let Some(c) = self.channels.get(id as usize) else {
            return;
        };
        if c.queue.is_none() && c.waiters.is_empty() && !c.online {
            debug_assert!(c.countdown.is_none() && c.cleanup.is_none());
            let c = self.channels.remove(id as usize);
            self.gaps.forgotten(id, &c.name);
            self.names.remove(&c.name);
            self.freed += 1;
        }
    }

    // ----- publishing -------------------------------------------------------------------

    // ----- listeners --------------------------------------------------------------------

    // ----- timers -----------------------------------------------------------------------

    /// Channels forgotten since the last `shrink`.
    pub fn freed_since_trim(&self) -> usize {
        self.freed
    }

    /// Releases the spare capacity a peak left in the indexes (they never shrink by
    /// themselves): the name map when it is mostly empty, and the slabs.
    pub fn shrink(&mut self) {
        self.freed = 0;
        if self.names.len() < self.names.capacity() / 4 {
            self.names.shrink_to_fit();
        }
        crate::sys::shrink_slab(&mut self.channels);
        crate::sys::shrink_slab(&mut self.listeners);
        self.timers.shrink();
        self.holds.shrink();
        self.gaps.shrink();
        self.hits = Vec::new();
    }

    // ----- read-only views (ONLINE, STATS, tests) ---------------------------------------
}

#[cfg(test)]
mod tests;
