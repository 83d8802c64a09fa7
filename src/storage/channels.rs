//! Channel queues: pushing a message under its ids, MAX_DATA_FOR_ID trimming (reported
//! through `take_trims`), and the channel timers (OFFLINE_TIMEOUT countdowns, CLEAN_ID_AFTER
//! cleanups) with the offline events they produce.
//!
//! Structure: `Channel::queue` is a `VecDeque<Item>` newest first; `Storage::timers` holds
//! one countdown and one cleanup per channel at most.
//! Uses: types, cursor, timers, events.

use super::*;

impl Storage {
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
            self.queued_items += 1;
            self.queued_bytes += msg.data.len() as u64;
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
    pub(super) fn trim(&mut self, ids: &[ChannelId], max: usize) {
        for id in ids {
            if let Some(q) = self
                .channels
                .get_mut(*id as usize)
                .and_then(|c| c.queue.as_mut())
            {
                if q.len() > max {
                    let dropped = q.len() - max;
                    if let Some(newest) = q.get(max) {
                        self.gaps.dropped(*id, &newest.cursor);
                    }
                    self.trimmed_items += dropped as u64;
                    let bytes: usize = q.iter().skip(max).map(|it| it.msg.data.len()).sum();
                    self.queued_items = self.queued_items.saturating_sub(dropped as u64);
                    self.queued_bytes = self.queued_bytes.saturating_sub(bytes as u64);
                    q.truncate(max);
                    self.trims.push((*id, dropped));
                }
            }
        }
    }

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
                if let Some(q) = c.queue.take() {
                    if let Some(newest) = q.front() {
                        self.gaps.dropped(id, &newest.cursor);
                    }
                    let bytes: usize = q.iter().map(|it| it.msg.data.len()).sum();
                    self.cleaned_items += q.len() as u64;
                    self.queued_items = self.queued_items.saturating_sub(q.len() as u64);
                    self.queued_bytes = self.queued_bytes.saturating_sub(bytes as u64);
                }
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
        self.local_transition(EventKind::Offline, name, lim.event_chain_len);
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
}
