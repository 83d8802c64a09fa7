//! Deciding what each parked listener gets: after a push (`begin_delivery`, then
//! `next_delivery` per woken listener) and at registration (`deliver_to_new`), with cursors
//! and limiters applied, blocks merged per message and ordered by cursor.
//!
//! Structure: `DeliveryRun { ids, candidates, next }` is one run in progress; `Hit` is one
//! (channel, queue index) a listener may see, collected into the reusable `Storage::hits`.
//! A delivered listener is detached from its channels (long-poll answers once).
//! Uses: types, cursor, waiters (detach).

use super::*;

pub(super) struct Hit {
    pub(super) channel: ChannelId,
    pub(super) item: usize,
}

/// One delivery run in progress (see `Storage::begin_delivery`).
pub struct DeliveryRun {
    ids: Vec<ChannelId>,
    candidates: Vec<ListenerId>,
    next: usize,
}

impl Storage {
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
            if self.is_held(l) {
                // In its coalescing window: its release timer answers it.
                continue;
            }
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
            let mut gaps = Vec::new();
            self.collect_gaps(l, Some(&run.ids), &mut gaps);
            if let Some(d) = self.build_one(l, &hits, gaps) {
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
                if self.is_held(w.listener) {
                    return false;
                }
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

    /// Delivery at registration, or at the end of a coalescing window: everyone else
    /// parked on these channels and not held was served when the data arrived. Returns its
    /// delivery (detached) and the ids that gave data; None while it is held.
    pub fn deliver_to_new(
        &mut self,
        l: ListenerId,
        lim: &Limits,
    ) -> Option<(Delivery, Vec<Rc<str>>)> {
        let listener = self.listeners.get(l as usize)?;
        if listener.held {
            return None;
        }
        let ids: Vec<ChannelId> = listener.subs.iter().map(|s| s.channel).collect();
        self.trim(&ids, lim.max_data_for_id);
        let mut hits = Vec::new();
        for i in 0..ids.len() {
            self.collect(l, i, &mut hits);
        }
        let mut with_data: Vec<ChannelId> = hits.iter().map(|h| h.channel).collect();
        with_data.sort_unstable();
        with_data.dedup();
        let mut gaps = Vec::new();
        self.collect_gaps(l, None, &mut gaps);
        let d = self.build_one(l, &hits, gaps)?;
        let mut names: Vec<Rc<str>> = with_data
            .iter()
            .filter_map(|&id| self.channel_name(id).cloned())
            .collect();
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Some((d, names))
    }

    /// Walks one subscription's channel queue from the newest item down to the listen cursor.
    pub(super) fn collect(&self, l: ListenerId, sub: usize, hits: &mut Vec<Hit>) {
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
    pub(super) fn visible(&self, msg: &Message, subs: &[Sub]) -> bool {
        msg.limiters.is_empty()
            || msg.limiters.iter().any(|lim| {
                self.names
                    .get(&**lim)
                    .is_some_and(|&id| subs.iter().any(|s| s.channel == id))
            })
    }

    /// Moves a streaming listener's cursors to the newest item it was just sent on each
    /// channel (the first hit of a channel is its newest: `collect` walks newest first).
    fn advance(&mut self, l: ListenerId, hits: &[Hit]) {
        let mut last: Option<ChannelId> = None;
        for h in hits {
            if last == Some(h.channel) {
                continue;
            }
            last = Some(h.channel);
            let Some(cursor) = self
                .channels
                .get(h.channel as usize)
                .and_then(|c| c.queue.as_ref())
                .and_then(|q| q.get(h.item))
                .map(|it| it.cursor.clone())
            else {
                continue;
            };
            let Some(listener) = self.listeners.get_mut(l as usize) else {
                return;
            };
            for s in listener.subs.iter_mut().filter(|s| s.channel == h.channel) {
                if cursor.is_after(&s.cursor) {
                    s.cursor = cursor.clone();
                }
            }
        }
    }

    /// Turns one listener's hits and gaps into its reply and detaches it; None without
    /// either.
    pub(super) fn build_one(
        &mut self,
        l: ListenerId,
        hits: &[Hit],
        gaps: Vec<(Rc<str>, Cursor)>,
    ) -> Option<Delivery> {
        if hits.is_empty() && gaps.is_empty() {
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
        if self.listeners.get(l as usize).is_some_and(|x| x.streaming) {
            // A streaming listener told of a gap stands at its bound from now on (so the
            // notice is not repeated), then at what it was sent.
            for (name, cursor) in &gaps {
                let Some(&ch) = self.names.get(name) else {
                    continue;
                };
                if let Some(listener) = self.listeners.get_mut(l as usize) {
                    for s in listener.subs.iter_mut().filter(|s| s.channel == ch) {
                        if cursor.is_after(&s.cursor) {
                            s.cursor = cursor.clone();
                        }
                    }
                }
            }
            self.advance(l, hits);
        } else {
            self.detach(l);
        }
        Some(Delivery {
            listener: l,
            conn,
            blocks,
            gaps,
        })
    }
}
