//! Delivery: turning storage's `Delivery` records into bytes on parked sockets, and the one
//! entry point that applies a published message (queue it, then answer every listener that
//! may see it), whatever the message's source.
//!
//! Structure: `ReplyCache` keeps the last reply body of a run with the blocks it was built
//! from, so a fan-out serialises each distinct reply once.
//! Uses: storage, transport, logging.

use super::*;

/// The body of the last reply of a delivery run, with the blocks it was built from.
#[derive(Default)]
pub(super) struct ReplyCache {
    pub(super) shape: Option<(Transport, Vec<Block>)>,
    pub(super) body: Vec<u8>,
}

/// `abc, def` for the `<- sending` log line (empty when debug logging is off).
pub(super) fn join_ids(ids: &[Rc<str>]) -> String {
    if !log::log_enabled!(Debug) {
        return String::new();
    }
    ids.iter().map(|s| &**s).collect::<Vec<_>>().join(", ")
}

impl Reactor {
    /// MAX_DATA_FOR_ID dropped the oldest messages of these queues: say so (a limit that
    /// drops data is always logged; the original trims silently).
    pub(super) fn log_trims(&mut self) {
        if !log::log_enabled!(Debug) {
            self.storage.clear_trims();
            return;
        }
        for (id, n) in self.storage.take_trims() {
            rlog!(
                Debug,
                self.storage.counts(),
                "[{}] queue trimmed to MAX_DATA_FOR_ID={}: {} oldest message(s) dropped",
                id,
                self.limits.max_data_for_id,
                n
            );
        }
    }

    /// Writes one delivery's body at once and queues its connection for closing. `out`
    /// carries the previous reply between calls of one run: a fan-out gives most listeners
    /// the same blocks, so their body is serialised once.
    ///
    /// `run_at`: the call is part of a delivery run (not of a request's own handling), so a
    /// long-poll connection it answered may be closed at once (`finish_delivered`).
    pub(super) fn send_delivery(
        &mut self,
        d: Delivery,
        ids_text: &str,
        out: &mut ReplyCache,
        run_at: Option<Instant>,
    ) {
        let key = d.conn.key as usize;
        // INVARIANT: a listener's connection outlives its registration.
        debug_assert_eq!(self.id_of(key), Some(d.conn));
        if self.id_of(key) != Some(d.conn) {
            return;
        }
        let Some(transport) = self.conns.get(key).map(|c| c.transport) else {
            return;
        };
        if transport.is_streaming() && self.over_backpressure(key) {
            return;
        }
        // A reply with a gap notice is particular to its listener: never shared.
        if !d.gaps.is_empty()
            || out
                .shape
                .as_ref()
                .is_none_or(|(t, p)| *t != transport || !transport::same_blocks(p, &d.blocks))
        {
            out.body.clear();
            transport.encode(&d.blocks, &d.gaps, &mut out.body);
        }
        let after = transport.after_delivery();
        if let Some(c) = self.conns.get_mut(key) {
            match after {
                After::Close => c.state = State::Closing,
                After::Stay => {}
            }
        }
        let done = match transport {
            Transport::Jsonp => {
                // The shared body, wrapped in this listener's callback.
                let name = self.jsonp.get(&d.conn).map_or("", |n| &**n);
                let mut wrapped = Vec::with_capacity(out.body.len() + name.len() + 3);
                wrapped.extend_from_slice(name.as_bytes());
                wrapped.push(b'(');
                wrapped.extend_from_slice(&out.body);
                wrapped.extend_from_slice(b");");
                self.write_or_close(key, &wrapped)
            }
            _ => self.write_or_close(key, &out.body),
        };
        self.counters.deliveries += 1;
        match transport {
            Transport::Sse => self.counters.deliveries_sse += 1,
            Transport::Ws => self.counters.deliveries_ws += 1,
            Transport::LongPoll | Transport::Jsonp => {}
        }
        rlog!(
            Debug,
            self.storage.counts(),
            "<- sending {} responses ({} bytes) from [{}] (print={}, shutdown={})",
            d.blocks.len(),
            out.body.len(),
            ids_text,
            1,
            u8::from(after == After::Close)
        );
        if after == After::Close && done == Ok(true) {
            match run_at {
                Some(now) => self.finish_delivered(key, now),
                None => self.finish(key),
            }
        }
        out.shape = d.gaps.is_empty().then_some((transport, d.blocks));
    }

    /// Answers the listeners whose coalescing window (COALESCE_MS) ended by `now` with
    /// everything that arrived for them meanwhile, as at registration.
    pub(super) fn release_held(&mut self, now: Instant) {
        let mut cache = ReplyCache::default();
        while let Some(l) = self.storage.release_one(now) {
            let delivery = self.storage.deliver_to_new(l, &self.limits);
            self.log_trims();
            if let Some((d, ids)) = delivery {
                self.send_delivery(d, &join_ids(&ids), &mut cache, Some(now));
            }
        }
    }

    /// Applies one published message: queue it under its targets now, and wake its
    /// listeners at the end of the loop turn (`flush_deliveries`), together with every other
    /// push of the turn, so a listener of several busy ids gets one reply instead of one per
    /// push. This is the one entry point for messages, whatever their source.
    pub fn apply_message(
        &mut self,
        now: Instant,
        msg: Rc<Message>,
        targets: Vec<(Cursor, ChannelId)>,
        queued: impl FnOnce(crate::storage::Counts),
    ) {
        self.storage.push(now, &msg, &targets, &self.limits);
        self.counters.pushes += 1;
        queued(self.storage.counts());
        self.wake.extend(targets.iter().map(|t| t.1));
    }

    /// Answers every listener the turn's pushes woke, each once, then closes the publishers
    /// that waited for it (so the log keeps the original's order: the push, its deliveries,
    /// the publisher's close, then the listeners' closes).
    pub(super) fn flush_deliveries(&mut self, now: Instant) {
        if self.wake.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut self.wake);
        let mut run = self.storage.begin_delivery(ids, &self.limits);
        self.log_trims();
        // The ids list costs a pass over the listeners: only when it is logged.
        let ids_text = if log::log_enabled!(Debug) {
            join_ids(&self.storage.ids_with_data(&run))
        } else {
            String::new()
        };
        let mut cache = ReplyCache::default();
        while let Some(d) = self.storage.next_delivery(&mut run) {
            self.send_delivery(d, &ids_text, &mut cache, Some(now));
        }
        for id in std::mem::take(&mut self.wake_ins) {
            if self.id_of(id.key as usize) == Some(id) {
                self.close_now(id.key as usize, now);
            }
        }
    }
}
