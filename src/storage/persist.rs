//! Snapshots from storage's side: streaming every queue, the cleaned ids, the WATCH history
//! and the gap bookkeeping into a `snapshot::Encoder`, and applying a parsed `Image` to an
//! empty storage at start.
//!
//! Structure: no state of its own. A body shared by several queues is written once: only
//! bodies whose `Rc` has other owners go through the pointer-to-index map, so a snapshot of
//! unshared messages costs no map at all. Wall-clock deadlines (unix ms) stand in for the
//! CLEAN_ID_AFTER timers, which count in `Instant`s.
//! Uses: snapshot, cursor, timers, events, gaps.

use super::*;
use crate::snapshot::{Encoder, Image};
use std::io::{self, Write};

/// What a snapshot write or load covered, for the log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SnapCounts {
    pub queues: usize,
    pub items: usize,
    pub messages: usize,
    pub cleaned: usize,
    pub events: usize,
    /// Queues CLEAN_ID_AFTER would have deleted while the server was down (load only).
    pub expired: usize,
}

impl Storage {
    /// Writes everything after the header (`last`: the last generated cursor). `now` and
    /// `wall_ms` are the same moment on both clocks.
    pub fn write_snapshot<W: Write>(
        &self,
        out: W,
        last: &Cursor,
        now: Instant,
        wall_ms: u64,
        lim: &Limits,
    ) -> io::Result<(W, SnapCounts, u64)> {
        let mut enc = Encoder::new(out)?;
        let start = self.gaps.start().cloned().unwrap_or_else(|| last.clone());
        let (records, forgotten) = self.forgotten_records();
        enc.header(last, &start, wall_ms, forgotten)?;
        let mut n = SnapCounts::default();
        let mut shared: HashMap<*const Message, u32> = HashMap::new();
        let mut items: Vec<(&Cursor, u32)> = Vec::new();
        for (key, c) in self.channels.iter() {
            let Some(q) = &c.queue else {
                // A known id without a queue: its record, as if it were forgotten.
                if let Some(d) = self.newest_dropped(key as ChannelId) {
                    enc.cleaned(gaps::id_hash(&c.name), d)?;
                    n.cleaned += 1;
                }
                continue;
            };
            items.clear();
            for it in q {
                let idx = if Rc::strong_count(&it.msg) > 1 {
                    match shared.get(&Rc::as_ptr(&it.msg)) {
                        Some(&i) => i,
                        None => {
                            let i = enc.message(&it.msg)?;
                            shared.insert(Rc::as_ptr(&it.msg), i);
                            i
                        }
                    }
                } else {
                    enc.message(&it.msg)?
                };
                items.push((&it.cursor, idx));
            }
            let left = c
                .cleanup
                .and_then(|k| self.timers.deadline(k))
                .map_or(lim.clean_id_after, |d| d.saturating_duration_since(now));
            let clean_at = wall_ms.saturating_add(u64::try_from(left.as_millis()).unwrap_or(0));
            let dropped = self.newest_dropped(key as ChannelId);
            enc.queue(&c.name, clean_at, dropped, &items)?;
            n.queues += 1;
            n.items += items.len();
        }
        for (k, c) in records {
            enc.cleaned(k, c)?;
            n.cleaned += 1;
        }
        n.events = self.events.len();
        enc.events(
            self.events.first_pos(),
            self.events
                .iter()
                .map(|e| (e.kind == EventKind::Online, e.id)),
        )?;
        n.messages = enc.messages as usize;
        let (out, bytes) = enc.finish()?;
        Ok((out, n, bytes))
    }

    /// Applies a parsed snapshot to this (empty) storage. Queues whose CLEAN_ID_AFTER
    /// deadline passed while the server was down are dropped, as their timer would have
    /// (their newest cursor is remembered for the gap signal); the others get a timer for
    /// what was left of theirs, at most CLEAN_ID_AFTER.
    pub fn restore(&mut self, img: Image, now: Instant, wall_ms: u64, lim: &Limits) -> SnapCounts {
        let mut n = SnapCounts {
            messages: img.messages,
            ..SnapCounts::default()
        };
        if let Some(start) = img.history_start {
            self.set_history_start(start);
        }
        n.cleaned = img.cleaned.len();
        self.restore_forgotten(img.cleaned, img.forgotten);
        for q in img.queues {
            let newest = q.items.first().map(|(c, _)| c.clone());
            if q.clean_at_ms <= wall_ms {
                let dropped = match (newest, q.dropped) {
                    (Some(a), Some(b)) if b.is_after(&a) => Some(b),
                    (Some(a), _) => Some(a),
                    (None, b) => b,
                };
                if let Some(c) = dropped {
                    self.gaps.remember(gaps::id_hash(&q.id), c);
                }
                n.expired += 1;
                continue;
            }
            let id = self.intern(&q.id);
            let left = Duration::from_millis(q.clean_at_ms - wall_ms).min(lim.clean_id_after);
            let key = self.timers.arm(now, left, ChanTimer::Cleanup(id));
            let Some(c) = self.channels.get_mut(id as usize) else {
                continue;
            };
            n.items += q.items.len();
            let bytes: usize = q.items.iter().map(|(_, m)| m.data.len()).sum();
            self.queued_items += q.items.len() as u64;
            self.queued_bytes += bytes as u64;
            let queue: VecDeque<Item> = q
                .items
                .into_iter()
                .map(|(cursor, msg)| Item { cursor, msg })
                .collect();
            match c.queue.replace(queue) {
                None => self.counts.data_to_send += 1,
                Some(old) => {
                    let bytes: usize = old.iter().map(|it| it.msg.data.len()).sum();
                    self.queued_items = self.queued_items.saturating_sub(old.len() as u64);
                    self.queued_bytes = self.queued_bytes.saturating_sub(bytes as u64);
                }
            }
            if let Some(old) = c.cleanup.replace(key) {
                self.timers.cancel(old);
            } else {
                self.counts.cleanup_timers += 1;
            }
            if let Some(d) = q.dropped {
                self.gaps.dropped(id, &d);
            }
            n.queues += 1;
        }
        if let Some((first, evs)) = img.events {
            n.events = evs.len();
            let kinds = evs.iter().map(|(online, id)| {
                let kind = if *online {
                    EventKind::Online
                } else {
                    EventKind::Offline
                };
                (kind, &**id)
            });
            self.events.restore(first, kinds, lim.event_chain_len);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::decode;

    fn lim() -> Limits {
        Limits {
            max_data_for_id: 2,
            offline_timeout: Duration::from_secs(30),
            clean_id_after: Duration::from_secs(100),
            event_chain_len: 1000,
            coalesce: std::time::Duration::ZERO,
        }
    }

    fn c(s: &str) -> Cursor {
        Cursor::parse_client(s.as_bytes()).unwrap()
    }

    #[test]
    fn storage_round_trip_keeps_queues_sharing_trims_events_and_deadlines() {
        let l = lim();
        let now = Instant::now();
        let mut s = Storage::new();
        s.set_history_start(c("3"));
        let (a, b) = (s.intern("a"), s.intern("b"));
        let m = Rc::new(Message {
            data: b"x".as_slice().into(),
            limiters: Box::new([]),
        });
        s.push(now, &m, &[(c("10"), a), (c("10"), b)], &l);
        for cur in ["11", "12"] {
            s.push(now, &m, &[(c(cur), a)], &l);
        }
        drop(s.begin_delivery(vec![a], &l)); // trims a to 12, 11
        s.push(now + Duration::from_secs(60), &m, &[(c("13"), b)], &l);
        let lid = s.register(ConnId { key: 1, gen: 1 }, vec![(c("0"), a)], &l);
        s.close_listener(lid, now, &l);
        let wall = 1_000_000;
        let later = now + Duration::from_secs(50);
        let (file, n, bytes) = s
            .write_snapshot(Vec::new(), &c("99"), later, wall, &l)
            .unwrap();
        assert_eq!((n.queues, n.items, n.messages, n.events), (2, 4, 1, 1));
        assert_eq!(bytes as usize, file.len());
        // 70 s later: a (deadline in 50 s) is expired, b (in 110 s) is kept.
        let img = decode(&file).unwrap();
        let mut t = Storage::new();
        let got = t.restore(img, now, wall + 70_000, &l);
        assert_eq!((got.queues, got.expired, got.items), (1, 1, 2));
        t.check_invariants();
        let views = t.channel_views();
        let qb = views
            .iter()
            .find(|v| &**v.name == "b")
            .unwrap()
            .queue
            .unwrap();
        let cursors: Vec<String> = qb.iter().map(|i| i.cursor.to_string()).collect();
        assert_eq!(cursors, ["13", "10"]);
        assert_eq!(t.history_start().unwrap().to_string(), "3");
        assert_eq!(t.events().last_pos(), s.events().last_pos());
        assert_eq!(t.counts().cleanup_timers, 1);
        // The expired queue of a is remembered for the gap signal: newest dropped 12.
        let (recs, _) = t.forgotten_records();
        assert_eq!(recs.len(), 1);
        assert_eq!(
            (recs[0].0, recs[0].1.to_string()),
            (gaps::id_hash("a"), "12".into())
        );
        // b's timer fires after what was left of it (40 s), not a full CLEAN_ID_AFTER.
        assert!(t.expire_one(now + Duration::from_secs(39)).is_none());
        assert!(matches!(
            t.expire_one(now + Duration::from_secs(41)),
            Some(Expired::Cleaned(_))
        ));
    }

    /// The README figure: `cargo test --release --lib snapshot_figures -- --ignored
    /// --nocapture` (100,000 ids x 30 messages of 40 bytes, every 10th body shared by 2 ids).
    #[test]
    #[ignore]
    fn snapshot_figures() {
        use std::io::BufWriter;
        let l = Limits {
            max_data_for_id: 30,
            ..lim()
        };
        let now = Instant::now();
        let mut s = Storage::new();
        let ids: Vec<ChannelId> = (0..100_000)
            .map(|i| s.intern(&format!("user_{i}")))
            .collect();
        let mut gen = crate::cursor::CursorGen::new();
        let wall = std::time::SystemTime::now();
        for round in 0..30 {
            for (i, &id) in ids.iter().enumerate() {
                let m = Rc::new(Message {
                    data: format!("{{\"n\":{round},\"text\":\"message {i:>12}\"}}")
                        .into_bytes()
                        .into(),
                    limiters: Box::new([]),
                });
                let mut targets = vec![(gen.next(wall), id)];
                if i % 10 == 0 {
                    let other = ids[(i + 1) % ids.len()];
                    targets.push((targets[0].0.clone(), other));
                }
                s.push(now, &m, &targets, &l);
            }
        }
        let path = std::env::temp_dir().join(format!("rplx-snap-bench-{}", std::process::id()));
        let t0 = Instant::now();
        let f = std::fs::File::create(&path).unwrap();
        let (w, n, bytes) = s
            .write_snapshot(
                BufWriter::with_capacity(1 << 20, f),
                &gen.last(),
                now,
                0,
                &l,
            )
            .unwrap();
        w.into_inner().unwrap().sync_all().unwrap();
        let write = t0.elapsed();
        let t1 = Instant::now();
        let file = std::fs::read(&path).unwrap();
        let read = t1.elapsed();
        let img = decode(&file).unwrap();
        let parse = t1.elapsed();
        drop(file);
        let mut t = Storage::new();
        let got = t.restore(img, now, 0, &l);
        let load = t1.elapsed();
        let _ = std::fs::remove_file(&path);
        assert_eq!((got.queues, got.items), (n.queues, n.items));
        eprintln!(
            "snapshot: {} ids, {} items, {} bodies, {} bytes ({:.1} MB); write+fsync {:.0} ms; read+parse+apply {:.0} ms (read {:.0}, parse {:.0})",
            n.queues,
            n.items,
            n.messages,
            bytes,
            bytes as f64 / 1e6,
            write.as_secs_f64() * 1e3,
            load.as_secs_f64() * 1e3,
            read.as_secs_f64() * 1e3,
            (parse - read).as_secs_f64() * 1e3
        );
    }
}
