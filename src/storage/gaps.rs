//! The gap signal: what storage remembers about history it dropped, and the rule that tells
//! a listener its history was cut.
//!
//! The rule (also in README, "Gap signal"). A listener that opted in gets one gap block for
//! the ids where all of these hold:
//! 1. it sent a cursor C for the id (an id listed without a cursor listens from "now"), and
//!    C is not zero (`0` asks for "whatever is kept", so nothing can be missing);
//! 2. C is below the id's bound B, the greatest of:
//!    - the newest cursor the server dropped from the id's queue, by MAX_DATA_FOR_ID or by
//!      CLEAN_ID_AFTER (kept while the id is known: it has a queue, listeners or is online;
//!      then among the last `CLEANED_MAX` ids forgotten);
//!    - for an id with no queue and no such record: the newest dropped cursor of every
//!      record that was itself forgotten (the server can no longer rule a loss out);
//!    - the history start: the cursor where this server's knowledge begins (its first
//!      start without a snapshot, carried through every snapshot).
//!
//! The gap names B, the cursor to continue from. A listener whose cursor came from this
//! server's history (a message it received, or "now" when it registered) never sees a gap
//! for an id that never had a message, nor for an id nothing was dropped from: its C is at
//! or above every bound. Below the history start the server cannot know what an id held,
//! so it says so.
//!
//! Structure: `Gaps { dropped: HashMap<ChannelId, Cursor>, cleaned: HashMap<u64, (Cursor,
//! seq)>, order: VecDeque<(u64, seq)>, forgotten, start }`. `dropped` has an entry only for
//! known ids that lost something; when such an id is forgotten its entry moves to `cleaned`,
//! keyed by the FNV-1a hash of the id (no string kept) and bounded by `CLEANED_MAX` (oldest
//! first into `forgotten`). Idle connections pay nothing; forgotten ids pin at most
//! `CLEANED_MAX` small entries.
//! Uses: cursor, types, snapshot (Fnv).

use super::*;
use crate::snapshot::Fnv;

/// Forgotten ids whose newest dropped cursor is remembered (about 60 bytes each).
pub const CLEANED_MAX: usize = 2048;

#[derive(Debug, Default)]
pub struct Gaps {
    dropped: HashMap<ChannelId, Cursor>,
    cleaned: HashMap<u64, (Cursor, u64)>,
    order: VecDeque<(u64, u64)>,
    seq: u64,
    forgotten: Option<Cursor>,
    start: Option<Cursor>,
}

/// The greater of two optional cursors.
fn max_of(a: Option<Cursor>, b: Option<&Cursor>) -> Option<Cursor> {
    match (a, b) {
        (Some(a), Some(b)) if b.is_after(&a) => Some(b.clone()),
        (Some(a), _) => Some(a),
        (None, b) => b.cloned(),
    }
}

/// The key of a forgotten id's record.
pub fn id_hash(name: &str) -> u64 {
    let mut h = Fnv::default();
    h.update(name.as_bytes());
    h.value()
}

impl Gaps {
    /// `newest_dropped` left the queue of `id` (trimmed, or the whole queue cleaned).
    pub(super) fn dropped(&mut self, id: ChannelId, newest_dropped: &Cursor) {
        let old = self.dropped.remove(&id);
        if let Some(c) = max_of(old, Some(newest_dropped)) {
            self.dropped.insert(id, c);
        }
    }

    /// The channel `id` is forgotten: its record moves to the bounded `cleaned`.
    pub(super) fn forgotten(&mut self, id: ChannelId, name: &str) {
        if let Some(c) = self.dropped.remove(&id) {
            self.remember(id_hash(name), c);
        }
    }

    pub(super) fn remember(&mut self, key: u64, c: Cursor) {
        self.seq += 1;
        let c = max_of(self.cleaned.remove(&key).map(|e| e.0), Some(&c)).unwrap_or(c);
        self.cleaned.insert(key, (c, self.seq));
        self.order.push_back((key, self.seq));
        while self.order.len() > CLEANED_MAX {
            let Some((old, seq)) = self.order.pop_front() else {
                break;
            };
            if self.cleaned.get(&old).is_some_and(|e| e.1 == seq) {
                if let Some((c, _)) = self.cleaned.remove(&old) {
                    self.forgotten = max_of(self.forgotten.take(), Some(&c));
                }
            }
        }
    }

    /// A channel was created for `name`: its forgotten record counts again.
    pub(super) fn known_again(&mut self, id: ChannelId, name: &str) {
        if self.cleaned.is_empty() {
            return;
        }
        if let Some((c, _)) = self.cleaned.remove(&id_hash(name)) {
            self.dropped(id, &c);
        }
    }

    pub fn start(&self) -> Option<&Cursor> {
        self.start.as_ref()
    }

    pub(super) fn bound(&self, id: ChannelId, has_queue: bool) -> Option<Cursor> {
        let b = max_of(self.start.clone(), self.dropped.get(&id));
        match self.dropped.contains_key(&id) || has_queue {
            true => b,
            false => max_of(b, self.forgotten.as_ref()),
        }
    }

    /// Releases spare capacity after a peak.
    pub(super) fn shrink(&mut self) {
        self.dropped.shrink_to_fit();
        self.cleaned.shrink_to_fit();
        self.order.shrink_to_fit();
    }
}

impl Storage {
    /// Sets the cursor where this server's history begins (start, or the snapshot's).
    pub fn set_history_start(&mut self, start: Cursor) {
        self.gaps.start = Some(start);
    }

    pub fn history_start(&self) -> Option<&Cursor> {
        self.gaps.start()
    }

    /// The newest dropped cursor of a known id (the snapshot keeps it).
    pub fn newest_dropped(&self, id: ChannelId) -> Option<&Cursor> {
        self.gaps.dropped.get(&id)
    }

    /// Records of forgotten ids still remembered, oldest first, and the bound of those
    /// forgotten (the snapshot keeps them).
    pub fn forgotten_records(&self) -> (Vec<(u64, &Cursor)>, Option<&Cursor>) {
        let v = self
            .gaps
            .order
            .iter()
            .filter_map(|(k, seq)| match self.gaps.cleaned.get(k) {
                Some((c, s)) if s == seq => Some((*k, c)),
                _ => None,
            })
            .collect();
        (v, self.gaps.forgotten.as_ref())
    }

    /// Restores the records of forgotten ids (a snapshot being loaded).
    pub fn restore_forgotten(&mut self, records: Vec<(u64, Cursor)>, bound: Option<Cursor>) {
        for (k, c) in records {
            self.gaps.remember(k, c);
        }
        self.gaps.forgotten = max_of(self.gaps.forgotten.take(), bound.as_ref());
    }

    /// Makes the listener get gap blocks (it opted in, or its transport always does).
    pub fn want_gaps(&mut self, l: ListenerId) {
        if let Some(x) = self.listeners.get_mut(l as usize) {
            x.gaps = true;
        }
    }

    /// Adds the listener's gaps among its subscriptions `subs` (all when None) to `out`,
    /// sorted by id; nothing unless it opted in.
    pub(super) fn collect_gaps(
        &self,
        l: ListenerId,
        run: Option<&[ChannelId]>,
        out: &mut Vec<(Rc<str>, Cursor)>,
    ) {
        let Some(listener) = self.listeners.get(l as usize) else {
            return;
        };
        if !listener.gaps {
            return;
        }
        for s in listener.subs.iter() {
            if run.is_some_and(|r| r.binary_search(&s.channel).is_err()) {
                continue;
            }
            if !s.cursor.is_from_client() || s.cursor.is_zero() {
                continue;
            }
            let Some(c) = self.channels.get(s.channel as usize) else {
                continue;
            };
            if let Some(b) = self.gaps.bound(s.channel, c.queue.is_some()) {
                if b.is_after(&s.cursor) {
                    out.push((c.name.clone(), b));
                }
            }
        }
        out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn lim(max: usize) -> Limits {
        Limits {
            max_data_for_id: max,
            offline_timeout: Duration::from_secs(30),
            clean_id_after: Duration::from_secs(10),
            event_chain_len: 1000,
            coalesce: std::time::Duration::ZERO,
        }
    }

    fn c(s: &str) -> Cursor {
        Cursor::parse_client(s.as_bytes()).unwrap()
    }

    fn push(s: &mut Storage, now: Instant, id: &str, cur: &str, l: &Limits) {
        let ch = s.intern(id);
        let m = Rc::new(Message {
            data: cur.as_bytes().into(),
            limiters: Box::new([]),
        });
        s.push(now, &m, &[(c(cur), ch)], l);
        let run = s.begin_delivery(vec![ch], l);
        drop(run);
    }

    /// Registers (cursor, id) pairs with gaps wanted; returns the gap list as text.
    fn gaps_of(s: &mut Storage, k: u32, pairs: &[(Cursor, &str)], l: &Limits) -> String {
        let pairs = pairs
            .iter()
            .map(|(cur, id)| (cur.clone(), s.intern(id)))
            .collect();
        let lid = s.register(ConnId { key: k, gen: k }, pairs, l);
        s.want_gaps(lid);
        let got = s
            .deliver_to_new(lid, l)
            .map(|(d, _)| {
                d.gaps
                    .iter()
                    .map(|(n, c)| format!("{n}@{c}"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .join(",");
        s.close_listener(lid, Instant::now(), l);
        s.check_invariants();
        got
    }

    #[test]
    fn trim_clean_and_start_bounds() {
        let l = lim(2);
        let now = Instant::now();
        let mut s = Storage::new();
        s.set_history_start(c("5"));
        for cur in ["10", "11", "12", "13"] {
            push(&mut s, now, "a", cur, &l);
        }
        // 10 and 11 were trimmed: a listener at 10 missed 11.
        assert_eq!(gaps_of(&mut s, 1, &[(c("10"), "a")], &l), "a@11");
        assert_eq!(gaps_of(&mut s, 2, &[(c("11"), "a")], &l), "");
        // Zero, "no cursor" and ids that never had a message: no gap.
        assert_eq!(gaps_of(&mut s, 3, &[(c("0"), "a")], &l), "");
        let now_c = Cursor::Gen { secs: 1, frac: 0 };
        assert_eq!(gaps_of(&mut s, 4, &[(now_c, "a")], &l), "");
        assert_eq!(gaps_of(&mut s, 5, &[(c("6"), "never")], &l), "");
        // Below the history start: the server cannot know.
        assert_eq!(
            gaps_of(&mut s, 6, &[(c("4"), "never"), (c("4.5"), "a")], &l),
            "a@11,never@5"
        );
        // CLEAN_ID_AFTER deletes the queue: its newest cursor is remembered.
        let later = now + Duration::from_secs(40);
        while let Some(e) = s.expire_one(later) {
            if let Expired::Offline(n) = e {
                s.record_offline(&n, &l);
            }
        }
        assert!(s.lookup("a").is_none(), "the cleaned id pins no channel");
        assert_eq!(gaps_of(&mut s, 7, &[(c("12"), "a")], &l), "a@13");
        assert_eq!(gaps_of(&mut s, 8, &[(c("13"), "a")], &l), "");
        // A new queue for the id keeps the old bound.
        push(&mut s, later, "a", "20", &l);
        assert_eq!(gaps_of(&mut s, 9, &[(c("12"), "a")], &l), "a@13");
        assert_eq!(s.forgotten_records().0.len(), 0);
    }

    #[test]
    fn cleaned_records_are_bounded_and_forgotten_into_one_cursor() {
        let l = lim(5);
        let now = Instant::now();
        let mut s = Storage::new();
        for i in 0..CLEANED_MAX + 3 {
            push(&mut s, now, &format!("id{i}"), &format!("{}", 100 + i), &l);
        }
        while s.expire_one(now + Duration::from_secs(11)).is_some() {}
        assert_eq!(s.gaps.cleaned.len(), CLEANED_MAX);
        assert_eq!(s.gaps.order.len(), CLEANED_MAX);
        assert_eq!(
            s.gaps.forgotten.as_ref().map(|c| c.to_string()),
            Some("102".into())
        );
        // Forgotten ids (and unknown ones) fall back to the forgotten bound...
        assert_eq!(gaps_of(&mut s, 1, &[(c("50"), "id0")], &l), "id0@102");
        assert_eq!(gaps_of(&mut s, 2, &[(c("50"), "other")], &l), "other@102");
        // ...remembered ones keep their own.
        assert_eq!(gaps_of(&mut s, 3, &[(c("102"), "id3")], &l), "id3@103");
        assert_eq!(gaps_of(&mut s, 4, &[(c("103"), "id3")], &l), "");
    }
}
