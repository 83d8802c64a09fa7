//! Read-only views for commands and tests (online ids, channels, listeners) and
//! `check_invariants`, the cross-structure consistency check the tests run.
//!
//! Structure: borrows only; nothing here changes storage.
//! Uses: types, cursor.

use super::*;

impl Storage {
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

    /// Whether an id is online here (a listener, or OFFLINE_TIMEOUT still running).
    pub fn is_online(&self, id: ChannelId) -> bool {
        self.channels.get(id as usize).is_some_and(|c| c.online)
    }

    /// The channels online here (cluster mode sends them again after a reconnect).
    pub fn online_channel_ids(&self) -> Vec<ChannelId> {
        self.channels
            .iter()
            .filter(|(_, c)| c.online)
            .map(|(k, _)| k as ChannelId)
            .collect()
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
        let (mut items, mut bytes) = (0u64, 0u64);
        for (id, c) in &self.channels {
            assert_eq!(self.names.get(&c.name), Some(&(id as ChannelId)));
            counts.data_to_send += usize::from(c.queue.is_some());
            counts.connected_fhs += usize::from(!c.waiters.is_empty());
            counts.online_timers += usize::from(c.online);
            counts.cleanup_timers += usize::from(c.cleanup.is_some());
            assert_eq!(c.queue.is_some(), c.cleanup.is_some());
            if let Some(q) = &c.queue {
                items += q.len() as u64;
                bytes += q.iter().map(|it| it.msg.data.len() as u64).sum::<u64>();
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
        assert_eq!(items, self.queued_items, "queued items counter");
        assert_eq!(bytes, self.queued_bytes, "queued bytes counter");
    }
}
