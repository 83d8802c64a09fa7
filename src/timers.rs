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
//! `queues: Vec<Fifo { dur, head, tail }>` (a handful at most).
//! Never reads the clock: callers pass `now`.
//! Uses: nothing internal.

use slab::Slab;
use std::time::{Duration, Instant};

const NIL: u32 = u32::MAX;

/// Handle of an armed timer; valid until it fires or is cancelled.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TimerKey(u32);

struct Node<T> {
    deadline: Instant,
    prev: u32,
    next: u32,
    queue: u16,
    payload: T,
}

struct Fifo {
    dur: Duration,
    head: u32,
    tail: u32,
}

pub struct Timers<T> {
    nodes: Slab<Node<T>>,
    queues: Vec<Fifo>,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Timers {
            nodes: Slab::new(),
            queues: Vec::new(),
        }
    }
}

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
        let fifo = &mut self.queues[q];
        let deadline = now
            .checked_add(dur)
            .unwrap_or(now + Duration::from_secs(86400 * 365));
        let key = self.nodes.insert(Node {
            deadline,
            prev: fifo.tail,
            next: NIL,
            queue: q as u16,
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
        self.unlink(node.queue, node.prev, node.next);
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

    /// The earliest deadline, if any timer is armed.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queues
            .iter()
            .filter_map(|f| self.nodes.get(f.head as usize).map(|n| n.deadline))
            .min()
    }

    /// Pops one expired timer (deadline <= now), earliest queue head first.
    pub fn pop_expired(&mut self, now: Instant) -> Option<T> {
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
        self.nodes.get(key.0 as usize).map(|n| n.deadline)
    }

    /// The payload of a live timer.
    pub fn get(&self, key: TimerKey) -> Option<&T> {
        self.nodes.get(key.0 as usize).map(|n| &n.payload)
    }
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
}
