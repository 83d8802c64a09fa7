//! All server state that is not a socket: channel queues, parked listeners, presence, the
//! channel timers and the event history (the original's six registries).
//!
//! Structure:
//! - `names: HashMap<Rc<str>, ChannelId>` and `channels: Slab<Channel>`: a channel
//!   `{ name, queue: Option<VecDeque<Item>> (newest first), waiters: Vec<Waiter>,
//!   online, countdown, cleanup }` lives while it has a queue, waiters or presence.
//! - `listeners: Slab<Listener>`: one per registered WAIT connection
//!   `{ conn, subs: Box<[Sub { channel, cursor, pos }]> }`. `Sub::pos` is the listener's index in
//!   the channel's `waiters`, and `Waiter` points back at `(listener, sub)`, so parking and
//!   unparking are O(subscriptions) with swap-remove (as perl/Storage/PairsByFhs.pm's reverse
//!   index).
//! - `Item { cursor, msg: Rc<Message> }`: a message body is stored once and shared by every
//!   queue and reply that carries it.
//! - `timers`: OFFLINE_TIMEOUT countdowns and CLEAN_ID_AFTER cleanups per channel.
//!
//! Storage never sees a socket or the clock: callers pass `now` and get back what to send.
//! Uses: types, cursor, timers, sys (shrink_slab).

pub mod events;

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

#[derive(Debug)]
struct Listener {
    conn: ConnId,
    subs: Box<[Sub]>,
    /// Pairs in the request, duplicates included (for the log name).
    npairs: u32,
    /// The first pair's cursor as sent, when a later duplicate id replaced it (rare; the
    /// log name shows the first pair as sent, as the original does).
    first_cursor: Option<Box<Cursor>>,
    /// Still parked on its channels' waiter lists (the original's pairs_by_fhs entry).
    attached: bool,
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
}

/// The limits that storage applies (a view of the live config).
#[derive(Copy, Clone, Debug)]
pub struct Limits {
    pub max_data_for_id: usize,
    pub offline_timeout: Duration,
    pub clean_id_after: Duration,
    pub event_chain_len: usize,
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
    events: Events,
    counts: Counts,
    /// Items dropped by MAX_DATA_FOR_ID trimming since start.
    pub trimmed_items: u64,
    /// (channel, items dropped) by trims not yet reported (see `take_trims`).
    trims: Vec<(ChannelId, usize)>,
    /// Scratch for delivery runs (kept to avoid an allocation per listener).
    hits: Vec<Hit>,
    /// Channels forgotten since the last `shrink`.
    freed: usize,
}

struct Hit {
    channel: ChannelId,
    item: usize,
}

/// One delivery run in progress (see `Storage::begin_delivery`).
pub struct DeliveryRun {
    ids: Vec<ChannelId>,
    candidates: Vec<ListenerId>,
    next: usize,
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
        self.names.insert(name, id);
        id
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
            self.names.remove(&c.name);
            self.freed += 1;
        }
    }

    // ----- publishing -------------------------------------------------------------------

    /// Queues `msg` under each (cursor, channel) target and restarts their cleanup timers.
    pub fn push(
        &mut self,
        now: Instant,
        msg: &Rc<Message>,
        targets: &[(Cursor, ChannelId)],
        lim: &Limits,
    ) {
        for (cursor, id) in targets {
            let Some(c) = self.channels.get_mut(*id as usize) else {
                continue;
            };
            let q = match &mut c.queue {
                Some(q) => q,
                None => {
                    self.counts.data_to_send += 1;
                    c.queue.insert(VecDeque::new())
                }
            };
            // Newest first; a new item goes before items with an equal cursor.
            let at = q.partition_point(|it| it.cursor.is_after(cursor));
            q.insert(
                at,
                Item {
                    cursor: cursor.clone(),
                    msg: msg.clone(),
                },
            );
            match c.cleanup.take() {
                Some(k) => {
                    self.timers.cancel(k);
                }
                None => self.counts.cleanup_timers += 1,
            }
            c.cleanup = Some(
                self.timers
                    .arm(now, lim.clean_id_after, ChanTimer::Cleanup(*id)),
            );
        }
    }

    /// Cuts each queue in `ids` to MAX_DATA_FOR_ID items, dropping the oldest.
    fn trim(&mut self, ids: &[ChannelId], max: usize) {
        for id in ids {
            if let Some(q) = self
                .channels
                .get_mut(*id as usize)
                .and_then(|c| c.queue.as_mut())
            {
                if q.len() > max {
                    let dropped = q.len() - max;
                    self.trimmed_items += dropped as u64;
                    q.truncate(max);
                    self.trims.push((*id, dropped));
                }
            }
        }
    }

    /// Starts a delivery run after a push (spec 5.5): trims the queues of `ids` and lists
    /// the listeners parked on them. `next_delivery` then serves them one at a time, so the
    /// caller writes the first reply before the last one is even built.
    pub fn begin_delivery(&mut self, mut ids: Vec<ChannelId>, lim: &Limits) -> DeliveryRun {
        ids.sort_unstable();
        ids.dedup();
        self.trim(&ids, lim.max_data_for_id);
        let mut candidates = Vec::new();
        for &id in &ids {
            let Some(c) = self.channels.get(id as usize) else {
                continue;
            };
            if c.queue.as_ref().is_some_and(|q| !q.is_empty()) {
                candidates.extend(c.waiters.iter().map(|w| w.listener));
            }
        }
        if ids.len() > 1 {
            // A listener parked on several of the ids is served once.
            candidates.sort_unstable();
            candidates.dedup();
        }
        DeliveryRun {
            ids,
            candidates,
            next: 0,
        }
    }

    /// The next listener of the run that may see new data, with its blocks; it is
    /// detached (unparked) before it is returned.
    pub fn next_delivery(&mut self, run: &mut DeliveryRun) -> Option<Delivery> {
        let mut hits = std::mem::take(&mut self.hits);
        let mut found = None;
        while let Some(&l) = run.candidates.get(run.next) {
            run.next += 1;
            hits.clear();
            let nsubs = self.listeners.get(l as usize).map_or(0, |x| x.subs.len());
            for i in 0..nsubs {
                let in_run = self
                    .listeners
                    .get(l as usize)
                    .and_then(|x| x.subs.get(i))
                    .is_some_and(|s| run.ids.binary_search(&s.channel).is_ok());
                if in_run {
                    self.collect(l, i, &mut hits);
                }
            }
            if let Some(d) = self.build_one(l, &hits) {
                found = Some(d);
                break;
            }
        }
        self.hits = hits;
        found
    }

    /// The ids of the run that have data for at least one of its listeners, sorted (for
    /// the original's `<- sending` log line). Call before the first `next_delivery`.
    pub fn ids_with_data(&self, run: &DeliveryRun) -> Vec<Rc<str>> {
        let mut hits = Vec::new();
        let mut names: Vec<Rc<str>> = Vec::new();
        for &id in &run.ids {
            let Some(c) = self.channels.get(id as usize) else {
                continue;
            };
            let any = c.waiters.iter().any(|w| {
                hits.clear();
                self.collect(w.listener, w.sub as usize, &mut hits);
                !hits.is_empty()
            });
            if any {
                names.push(c.name.clone());
            }
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        names
    }

    /// Delivery at registration: only the new listener can have pending data (everyone
    /// else parked on these channels was served when the data arrived). Returns its
    /// delivery (detached) and the ids that gave data.
    pub fn deliver_to_new(
        &mut self,
        l: ListenerId,
        lim: &Limits,
    ) -> Option<(Delivery, Vec<Rc<str>>)> {
        let listener = self.listeners.get(l as usize)?;
        let ids: Vec<ChannelId> = listener.subs.iter().map(|s| s.channel).collect();
        self.trim(&ids, lim.max_data_for_id);
        let mut hits = Vec::new();
        for i in 0..ids.len() {
            self.collect(l, i, &mut hits);
        }
        let mut with_data: Vec<ChannelId> = hits.iter().map(|h| h.channel).collect();
        with_data.sort_unstable();
        with_data.dedup();
        let d = self.build_one(l, &hits)?;
        let mut names: Vec<Rc<str>> = with_data
            .iter()
            .filter_map(|&id| self.channel_name(id).cloned())
            .collect();
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Some((d, names))
    }

    /// Walks one subscription's channel queue from the newest item down to the listen cursor.
    fn collect(&self, l: ListenerId, sub: usize, hits: &mut Vec<Hit>) {
        let Some(listener) = self.listeners.get(l as usize) else {
            return;
        };
        let Some(s) = listener.subs.get(sub) else {
            return;
        };
        let Some(q) = self
            .channels
            .get(s.channel as usize)
            .and_then(|c| c.queue.as_ref())
        else {
            return;
        };
        for (i, item) in q.iter().enumerate() {
            if !item.cursor.is_after(&s.cursor) {
                break;
            }
            if !self.visible(&item.msg, &listener.subs) {
                continue;
            }
            hits.push(Hit {
                channel: s.channel,
                item: i,
            });
        }
    }

    /// Limiters: the listener must listen to at least one of them, at any cursor.
    fn visible(&self, msg: &Message, subs: &[Sub]) -> bool {
        msg.limiters.is_empty()
            || msg.limiters.iter().any(|lim| {
                self.names
                    .get(&**lim)
                    .is_some_and(|&id| subs.iter().any(|s| s.channel == id))
            })
    }

    /// Turns one listener's hits into its reply blocks and detaches it; None without hits.
    fn build_one(&mut self, l: ListenerId, hits: &[Hit]) -> Option<Delivery> {
        if hits.is_empty() {
            return None;
        }
        let conn = self.listeners.get(l as usize)?.conn;
        let mut blocks: Vec<Block> = Vec::new();
        for h in hits {
            let Some(c) = self.channels.get(h.channel as usize) else {
                continue;
            };
            let Some(item) = c.queue.as_ref().and_then(|q| q.get(h.item)) else {
                continue;
            };
            match blocks.iter_mut().find(|b| Rc::ptr_eq(&b.msg, &item.msg)) {
                Some(b) => {
                    // The same message under several ids, or twice in one queue (a duplicate
                    // id in one push): the last visited, i.e. lowest, cursor of an id wins.
                    match b.ids.iter_mut().find(|(n, _)| Rc::ptr_eq(n, &c.name)) {
                        Some(entry) => entry.1 = item.cursor.clone(),
                        None => b.ids.push((c.name.clone(), item.cursor.clone())),
                    }
                    if b.cursor.is_after(&item.cursor) {
                        b.cursor = item.cursor.clone();
                    }
                }
                None => blocks.push(Block {
                    msg: item.msg.clone(),
                    cursor: item.cursor.clone(),
                    ids: vec![(c.name.clone(), item.cursor.clone())],
                }),
            }
        }
        for b in &mut blocks {
            if b.ids.len() > 1 {
                b.ids.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            }
        }
        if blocks.len() > 1 {
            blocks.sort_by(|a, b| {
                a.cursor
                    .cmp_value(&b.cursor)
                    .then_with(|| a.msg.data.cmp(&b.msg.data))
            });
        }
        self.detach(l);
        Some(Delivery {
            listener: l,
            conn,
            blocks,
        })
    }

    // ----- listeners --------------------------------------------------------------------

    /// Registers a WAIT connection on its (cursor, channel) pairs, in request order. A later
    /// duplicate id overrides the earlier cursor. Marks each id online (emitting an `online`
    /// event for ids that were not) and stops any offline countdown.
    pub fn register(
        &mut self,
        conn: ConnId,
        pairs: Vec<(Cursor, ChannelId)>,
        lim: &Limits,
    ) -> ListenerId {
        let npairs = pairs.len() as u32;
        let mut first_cursor = None;
        let mut subs: Vec<Sub> = Vec::with_capacity(pairs.len());
        // Long id lists (POSTed by browsers) are deduplicated through a map, short ones by a
        // scan, so registration stays linear.
        let mut index: Option<HashMap<ChannelId, usize>> =
            (pairs.len() > 16).then(|| HashMap::with_capacity(pairs.len()));
        for (cursor, channel) in pairs {
            let found = match &mut index {
                Some(map) => {
                    let next = subs.len();
                    let i = *map.entry(channel).or_insert(next);
                    (i < next).then_some(i)
                }
                None => subs.iter().position(|s| s.channel == channel),
            };
            match found.and_then(|i| subs.get_mut(i).map(|s| (i, s))) {
                Some((i, s)) => {
                    if i == 0 && first_cursor.is_none() {
                        first_cursor = Some(Box::new(s.cursor.clone()));
                    }
                    s.cursor = cursor;
                }
                None => subs.push(Sub {
                    channel,
                    cursor,
                    pos: 0,
                }),
            }
        }
        let l = self.listeners.vacant_key() as ListenerId;
        for (i, s) in subs.iter_mut().enumerate() {
            let Some(c) = self.channels.get_mut(s.channel as usize) else {
                continue;
            };
            if c.waiters.is_empty() {
                self.counts.connected_fhs += 1;
            }
            s.pos = c.waiters.len() as u32;
            c.waiters.push(Waiter {
                listener: l,
                sub: i as u32,
            });
            if let Some(k) = c.countdown.take() {
                self.timers.cancel(k);
            }
            if !c.online {
                c.online = true;
                self.counts.online_timers += 1;
                self.events
                    .push(EventKind::Online, &c.name, lim.event_chain_len);
            }
        }
        self.counts.pairs_by_fhs += 1;
        let key = self.listeners.insert(Listener {
            conn,
            subs: subs.into_boxed_slice(),
            npairs,
            first_cursor,
            attached: true,
        });
        debug_assert_eq!(key as ListenerId, l);
        l
    }

    /// Takes a listener off its channels' waiter lists (after a delivery or on close).
    fn detach(&mut self, l: ListenerId) {
        let Some(listener) = self.listeners.get_mut(l as usize) else {
            return;
        };
        if !listener.attached {
            return;
        }
        listener.attached = false;
        self.counts.pairs_by_fhs -= 1;
        let nsubs = listener.subs.len();
        for i in 0..nsubs {
            let Some((channel, pos)) = self
                .listeners
                .get(l as usize)
                .and_then(|x| x.subs.get(i))
                .map(|s| (s.channel, s.pos))
            else {
                continue;
            };
            let Some(c) = self.channels.get_mut(channel as usize) else {
                continue;
            };
            let pos = pos as usize;
            // INVARIANT: waiters[pos] is this listener's entry.
            debug_assert!(c.waiters.get(pos).is_some_and(|w| w.listener == l));
            if pos >= c.waiters.len() {
                continue;
            }
            c.waiters.swap_remove(pos);
            if c.waiters.is_empty() {
                self.counts.connected_fhs -= 1;
                c.waiters = Vec::new();
            } else if let Some(moved) = c.waiters.get(pos) {
                let (ml, ms) = (moved.listener, moved.sub);
                if let Some(s) = self
                    .listeners
                    .get_mut(ml as usize)
                    .and_then(|m| m.subs.get_mut(ms as usize))
                {
                    s.pos = pos as u32;
                }
            }
        }
    }

    /// The close handler (spec 4.6): unpark if still parked, then start the offline
    /// countdown of every id nobody listens to any more.
    pub fn close_listener(&mut self, l: ListenerId, now: Instant, lim: &Limits) {
        self.detach(l);
        if !self.listeners.contains(l as usize) {
            return;
        }
        let listener = self.listeners.remove(l as usize);
        for s in listener.subs.iter() {
            let Some(c) = self.channels.get_mut(s.channel as usize) else {
                continue;
            };
            if !c.waiters.is_empty() {
                continue;
            }
            if let Some(k) = c.countdown.take() {
                self.timers.cancel(k);
            }
            c.countdown = Some(self.timers.arm(
                now,
                lim.offline_timeout,
                ChanTimer::Offline(s.channel),
            ));
        }
    }

    /// `<first cursor>:<first id>[,(and N more)]`, the original's connection name.
    pub fn listener_name(&self, l: ListenerId) -> String {
        let Some(listener) = self.listeners.get(l as usize) else {
            return String::new();
        };
        let Some(first) = listener.subs.first() else {
            return String::new();
        };
        let name = self.channel_name(first.channel).map_or("", |n| n);
        let cursor = listener.first_cursor.as_deref().unwrap_or(&first.cursor);
        let more = listener.npairs.saturating_sub(1);
        if more > 0 {
            format!("{cursor}:{name},(and {more} more)")
        } else {
            format!("{cursor}:{name}")
        }
    }

    // ----- timers -----------------------------------------------------------------------

    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Runs one expired channel timer, if any.
    pub fn expire_one(&mut self, now: Instant) -> Option<Expired> {
        match self.timers.pop_expired(now)? {
            ChanTimer::Offline(id) => {
                let c = self.channels.get_mut(id as usize)?;
                c.countdown = None;
                c.online = false;
                self.counts.online_timers -= 1;
                Some(Expired::Offline(c.name.clone()))
            }
            ChanTimer::Cleanup(id) => {
                let c = self.channels.get_mut(id as usize)?;
                c.cleanup = None;
                c.queue = None;
                self.counts.cleanup_timers -= 1;
                self.counts.data_to_send -= 1;
                let name = c.name.clone();
                self.forget_if_unused(id);
                Some(Expired::Cleaned(name))
            }
        }
    }

    /// Stores the offline event for an id that `expire_one` took offline (after the caller
    /// logged it, the original's order).
    pub fn record_offline(&mut self, name: &Rc<str>, lim: &Limits) {
        self.events
            .push(EventKind::Offline, name, lim.event_chain_len);
        if let Some(id) = self.lookup(name) {
            self.forget_if_unused(id);
        }
    }

    /// The queues trimmed since the last call, as (id, items dropped), for the log.
    pub fn take_trims(&mut self) -> Vec<(Rc<str>, usize)> {
        let trims = std::mem::take(&mut self.trims);
        trims
            .into_iter()
            .filter_map(|(id, n)| self.channel_name(id).map(|name| (name.clone(), n)))
            .collect()
    }

    /// Forgets unreported trims (when nobody logs them).
    pub fn clear_trims(&mut self) {
        self.trims.clear();
    }

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
        self.hits = Vec::new();
    }

    // ----- read-only views (ONLINE, STATS, tests) ---------------------------------------

    /// Online ids with their number of parked connections, sorted by id bytes.
    pub fn online(&self) -> Vec<(&Rc<str>, usize)> {
        let mut v: Vec<(&Rc<str>, usize)> = self
            .channels
            .iter()
            .filter(|(_, c)| c.online)
            .map(|(_, c)| (&c.name, c.waiters.len()))
            .collect();
        v.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        v
    }

    /// Every channel, sorted by id bytes, for STATS.
    pub fn channel_views(&self) -> Vec<ChannelView<'_>> {
        let mut v: Vec<ChannelView<'_>> = self
            .channels
            .iter()
            .map(|(_, c)| ChannelView {
                name: &c.name,
                queue: c.queue.as_ref(),
                waiters: c
                    .waiters
                    .iter()
                    .filter_map(|w| self.listeners.get(w.listener as usize).map(|l| l.conn))
                    .collect(),
                online: c.online,
                cleanup: c.cleanup.is_some(),
            })
            .collect();
        v.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        v
    }

    /// Parked listeners and their (cursor, id) pairs, for STATS.
    pub fn listener_views(&self) -> Vec<ListenerView<'_>> {
        self.listeners
            .iter()
            .filter(|(_, l)| l.attached)
            .map(|(_, l)| {
                let pairs = l
                    .subs
                    .iter()
                    .filter_map(|s| self.channel_name(s.channel).map(|n| (&s.cursor, n)))
                    .collect();
                (l.conn, pairs)
            })
            .collect()
    }

    /// Checks every cross-reference; for tests and debug builds.
    pub fn check_invariants(&self) {
        let mut attached = 0;
        for (l, listener) in &self.listeners {
            if !listener.attached {
                continue;
            }
            attached += 1;
            for (i, s) in listener.subs.iter().enumerate() {
                let c = &self.channels[s.channel as usize];
                let w = &c.waiters[s.pos as usize];
                assert_eq!((w.listener, w.sub), (l as ListenerId, i as u32));
                assert!(c.online);
            }
        }
        assert_eq!(attached, self.counts.pairs_by_fhs);
        let mut counts = Counts::default();
        for (id, c) in &self.channels {
            assert_eq!(self.names.get(&c.name), Some(&(id as ChannelId)));
            counts.data_to_send += usize::from(c.queue.is_some());
            counts.connected_fhs += usize::from(!c.waiters.is_empty());
            counts.online_timers += usize::from(c.online);
            counts.cleanup_timers += usize::from(c.cleanup.is_some());
            assert_eq!(c.queue.is_some(), c.cleanup.is_some());
            if let Some(q) = &c.queue {
                for w in q.iter().collect::<Vec<_>>().windows(2) {
                    assert!(!w[1].cursor.is_after(&w[0].cursor), "queue order");
                }
            }
            assert!(
                c.queue.is_some() || !c.waiters.is_empty() || c.online,
                "unused channel kept"
            );
        }
        assert_eq!(self.names.len(), self.channels.len());
        assert_eq!(counts.data_to_send, self.counts.data_to_send);
        assert_eq!(counts.connected_fhs, self.counts.connected_fhs);
        assert_eq!(counts.online_timers, self.counts.online_timers);
        assert_eq!(counts.cleanup_timers, self.counts.cleanup_timers);
    }
}

#[cfg(test)]
mod tests;
