//! Deadline queues with O(1) arm and cancel.
//!
//! Every Realplexor timeout has a fixed length per class (WAIT_TIMEOUT, IN_TIMEOUT,
//! OFFLINE_TIMEOUT, CLEAN_ID_AFTER), and `now` never goes back, so timers armed with the same
//! duration expire in the order they were armed: one FIFO per distinct duration is a sorted
//! queue for free. The FIFOs are intrusive doubly linked lists threaded through one slab, so
//! cancel is O(1) and memory grows with live timers only. A reload that changes a duration
//! starts a new FIFO; the old one drains and its slot is reused.
//!
//! Structure: `nodes: Slab<Node { deadline, prev, next, queue, payload }>`,
//! `queues: Vec<Fifo { dur, head, tail }>` (a handful at most), `base`: the first `now`
//! ever passed; a node's deadline is nanoseconds after it (8 bytes instead of an
//! `Instant`'s 16: every parked connection has a timer).
//! Never reads the clock: callers pass `now`.
//! Uses: nothing internal.

use slab::Slab;
use std::num::NonZeroU16;
use std::time::{Duration, Instant};

const NIL: u32 = u32::MAX;

/// Handle of an armed timer; valid until it fires or is cancelled.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TimerKey(u32);

struct Node<T> {
    /// Nanoseconds after `Timers::base`.
    deadline: u64,
    prev: u32,
    next: u32,
    /// The FIFO's index + 1 (non-zero, so that the slab's entry needs no tag of its own).
    queue: NonZeroU16,
    payload: T,
}

struct Fifo {
    dur: Duration,
    head: u32,
    tail: u32,
}

// A connection's timer (payload: a ConnId, two u32s) takes 32 bytes, also as a slab entry
// (the same shape as slab's: vacant with the next free index, or occupied).
#[allow(dead_code)]
enum SlabEntry<T> {
    Vacant(usize),
    Occupied(T),
}
const _: () = assert!(std::mem::size_of::<SlabEntry<Node<[u32; 2]>>>() <= 32);

pub struct Timers<T> {
    nodes: Slab<Node<T>>,
    queues: Vec<Fifo>,
    /// What deadlines count from: the first `now` given to `arm`.
    base: Option<Instant>,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Timers {
            nodes: Slab::new(),
            queues: Vec::new(),
            base: None,
        }
    }
}

/// A deadline this far out stands for "never" (as `now + dur` past `Instant`'s range).
const FAR: Duration = Duration::from_secs(86400 * 365);

impl<T> Timers<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of live timers.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Releases spare capacity left by a peak of timers.
    pub fn shrink(&mut self) {
        if self.nodes.is_empty() {
            self.nodes = Slab::new();
            for f in &mut self.queues {
                f.head = NIL;
                f.tail = NIL;
            }
        } else {
            self.nodes.shrink_to_fit();
        }
    }

    /// Arms a timer that fires at `now + dur`.
    pub fn arm(&mut self, now: Instant, dur: Duration, payload: T) -> TimerKey {
        // Reuse the FIFO of this duration, else a drained one, else add one.
        let q = match self
            .queues
            .iter()
            .position(|f| f.dur == dur)
            .or_else(|| self.queues.iter().position(|f| f.head == NIL))
        {
            Some(q) => {
                if let Some(f) = self.queues.get_mut(q) {
                    f.dur = dur;
                }
                q
            }
            None => {
                self.queues.push(Fifo {
                    dur,
                    head: NIL,
                    tail: NIL,
                });
                self.queues.len() - 1
            }
        };
        let base = *self.base.get_or_insert(now);
        let since = now.saturating_duration_since(base);
        let deadline = match now.checked_add(dur) {
            Some(_) => nanos(since.saturating_add(dur)),
            None => nanos(since.saturating_add(FAR)),
        };
        let fifo = &mut self.queues[q];
        let key = self.nodes.insert(Node {
            deadline,
            prev: fifo.tail,
            next: NIL,
            queue: NonZeroU16::new((q as u16).saturating_add(1)).unwrap_or(NonZeroU16::MIN),
            payload,
        }) as u32;
        if fifo.tail == NIL {
            fifo.head = key;
        } else if let Some(t) = self.nodes.get_mut(fifo.tail as usize) {
            t.next = key;
        }
        fifo.tail = key;
        TimerKey(key)
    }

    /// Cancels a live timer and returns its payload.
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        if !self.nodes.contains(key.0 as usize) {
            debug_assert!(false, "cancel of a dead timer");
            return None;
        }
        let node = self.nodes.remove(key.0 as usize);
        self.unlink(node.queue.get() - 1, node.prev, node.next);
        Some(node.payload)
    }

    fn unlink(&mut self, q: u16, prev: u32, next: u32) {
        if prev == NIL {
            if let Some(f) = self.queues.get_mut(q as usize) {
                f.head = next;
            }
        } else if let Some(p) = self.nodes.get_mut(prev as usize) {
            p.next = next;
        }
        if next == NIL {
            if let Some(f) = self.queues.get_mut(q as usize) {
                f.tail = prev;
            }
        } else if let Some(n) = self.nodes.get_mut(next as usize) {
            n.prev = prev;
        }
    }

    /// The `Instant` of a stored deadline.
    fn at(&self, deadline: u64) -> Option<Instant> {
        let base = self.base?;
        let d = Duration::from_nanos(deadline);
        Some(base.checked_add(d).unwrap_or(base + FAR))
    }

    /// The earliest deadline, if any timer is armed.
    pub fn next_deadline(&self) -> Option<Instant> {
        let d = self
            .queues
            .iter()
            .filter_map(|f| self.nodes.get(f.head as usize).map(|n| n.deadline))
            .min()?;
        self.at(d)
    }

    /// Pops one expired timer (deadline <= now), earliest queue head first.
    pub fn pop_expired(&mut self, now: Instant) -> Option<T> {
        let now = nanos(now.saturating_duration_since(self.base?));
        let (key, _) = self
            .queues
            .iter()
            .filter_map(|f| {
                self.nodes
                    .get(f.head as usize)
                    .map(|n| (f.head, n.deadline))
            })
            .filter(|&(_, d)| d <= now)
            .min_by_key(|&(_, d)| d)?;
        self.cancel(TimerKey(key))
    }

    /// The deadline of a live timer.
    pub fn deadline(&self, key: TimerKey) -> Option<Instant> {
        self.at(self.nodes.get(key.0 as usize)?.deadline)
    }

    /// The payload of a live timer.
    pub fn get(&self, key: TimerKey) -> Option<&T> {
        self.nodes.get(key.0 as usize).map(|n| &n.payload)
    }
}

/// A duration in nanoseconds (u64 holds 584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_deadline_order_across_durations() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.arm(t0, Duration::from_secs(10), "a10");
        t.arm(t0, Duration::from_secs(3), "b3");
        t.arm(t0 + Duration::from_secs(1), Duration::from_secs(3), "c3");
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(3)));
        assert_eq!(t.pop_expired(t0 + Duration::from_secs(2)), None);
        let now = t0 + Duration::from_secs(20);
        assert_eq!(t.pop_expired(now), Some("b3"));
        assert_eq!(t.pop_expired(now), Some("c3"));
        assert_eq!(t.pop_expired(now), Some("a10"));
        assert_eq!(t.pop_expired(now), None);
        assert!(t.is_empty());
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn cancel_anywhere_in_the_list() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        let d = Duration::from_secs(1);
        let keys: Vec<_> = (0..5).map(|i| t.arm(t0, d, i)).collect();
        assert_eq!(t.cancel(keys[2]), Some(2));
        assert_eq!(t.cancel(keys[0]), Some(0));
        assert_eq!(t.cancel(keys[4]), Some(4));
        let now = t0 + d;
        assert_eq!(t.pop_expired(now), Some(1));
        assert_eq!(t.pop_expired(now), Some(3));
        assert_eq!(t.pop_expired(now), None);
        // Re-arming after everything drained works.
        let k = t.arm(now, d, 9);
        assert_eq!(t.get(k), Some(&9));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn memory_follows_live_timers() {
        let mut now = Instant::now();
        let mut t = Timers::new();
        let mut live = Vec::new();
        for i in 0..100_000u32 {
            live.push(t.arm(now, Duration::from_secs(300), i));
            if live.len() > 10 {
                let k = live.remove(0);
                t.cancel(k);
            }
            now += Duration::from_millis(1);
        }
        assert_eq!(t.len(), 10);
        assert!(t.nodes.capacity() < 64);
    }

    #[test]
    fn many_durations_do_not_grow_queue_list_unbounded() {
        let now = Instant::now();
        let mut t = Timers::new();
        for s in 0..100u64 {
            let k = t.arm(now, Duration::from_secs(s), s);
            t.cancel(k);
        }
        assert_eq!(t.queues.len(), 1);
        let _ = t.pop_expired(now + Duration::from_secs(1000));
    }

    /// Deadlines are kept as nanoseconds after the first `now`: they read back exactly,
    /// and a duration past `Instant`'s range stands for a year, without a panic.
    #[test]
    fn deadlines_read_back_exactly_and_huge_ones_saturate() {
        let t0 = Instant::now();
        let mut t: Timers<u32> = Timers::new();
        let a = t.arm(t0, Duration::from_millis(3_001), 1);
        let later = t0 + Duration::from_nanos(1_500_000_123);
        let b = t.arm(later, Duration::from_secs(1), 2);
        assert_eq!(t.deadline(a), Some(t0 + Duration::from_millis(3_001)));
        assert_eq!(t.deadline(b), Some(later + Duration::from_secs(1)));
        let c = t.arm(t0, Duration::MAX, 3);
        assert_eq!(t.deadline(c), Some(t0 + FAR));
        assert_eq!(t.pop_expired(later + Duration::from_secs(1)), Some(2));
        assert_eq!(t.pop_expired(later + Duration::from_secs(1)), None);
        assert_eq!(t.pop_expired(t0 + Duration::from_secs(86_400)), Some(1));
        assert_eq!(t.pop_expired(t0 + Duration::from_secs(86_400)), None);
        assert_eq!(t.next_deadline(), Some(t0 + FAR));
    }
}
