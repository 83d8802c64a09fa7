//! Parked listeners: registration (subscriptions, presence), detaching from the channels'
//! waiter lists in O(subscriptions), closing (offline countdowns), and the log name.
//!
//! Structure: `Listener { conn, subs: Subs }` (one `Sub` inline, or boxed) in
//! `Storage::listeners`; each `Sub` knows its index in the channel's `waiters` and each
//! `Waiter` points back at `(listener, sub)`, so removal is a swap-remove
//! (perl/Storage/PairsByFhs.pm's reverse index).
//! Uses: types, cursor, timers, events.

use super::*;

impl Storage {
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
            let went_online = !c.online;
            if went_online {
                c.online = true;
                self.counts.online_timers += 1;
            }
            let name = c.name.clone();
            if went_online {
                self.local_transition(EventKind::Online, &name, lim.event_chain_len);
            }
            self.count_changed(s.channel);
        }
        self.counts.pairs_by_fhs += 1;
        let key = self.listeners.insert(Listener {
            conn,
            subs: Subs::from(subs),
            npairs,
            first_cursor,
            attached: true,
            streaming: false,
            gaps: false,
            held: false,
        });
        debug_assert_eq!(key as ListenerId, l);
        l
    }

    /// Marks a listener as streaming (SSE, WebSocket): its deliveries advance its cursors
    /// and leave it parked.
    pub fn set_streaming(&mut self, l: ListenerId) {
        if let Some(listener) = self.listeners.get_mut(l as usize) {
            listener.streaming = true;
        }
    }

    /// The (cursor, id) pairs a listener stands at (a streaming listener's cursors move
    /// with its deliveries), in subscription order.
    pub fn listener_pairs(&self, l: ListenerId) -> Vec<(Cursor, Rc<str>)> {
        let Some(listener) = self.listeners.get(l as usize) else {
            return Vec::new();
        };
        listener
            .subs
            .iter()
            .filter_map(|s| {
                self.channel_name(s.channel)
                    .map(|n| (s.cursor.clone(), n.clone()))
            })
            .collect()
    }

    /// Takes a listener off its channels' waiter lists (after a delivery or on close).
    pub(super) fn detach(&mut self, l: ListenerId) {
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
            if let Some(p) = self.shared_presence.as_deref_mut() {
                p.count_changed.push(channel);
            }
            if c.waiters.is_empty() {
                self.counts.connected_fhs -= 1;
                c.waiters = Vec::new();
            } else {
                release_waiters(&mut c.waiters);
            }
            if let Some(moved) = c.waiters.get(pos) {
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
        if listener.held {
            self.held -= 1;
        }
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
}

/// A waiter list that fell to a quarter of its capacity keeps twice its length: a fan-out
/// to 100,000 listeners whose ids then keep ten must not keep 800 KB for them. Amortized
/// O(1): a list shrinks only after losing three quarters of what it holds.
pub(super) fn release_waiters(w: &mut Vec<Waiter>) {
    if w.capacity() > 16 && w.len() <= w.capacity() / 4 {
        w.shrink_to(w.len().saturating_mul(2));
    }
}
