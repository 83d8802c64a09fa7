//! The online/offline event history that WATCH reads (spec 8.2).
//!
//! Structure: up to 3 chains (newest last) of events `(kind, pos, id)`, each chain keeping
//! its ids in one string and one 4-byte end offset (plus the kind bit) per event. A new chain starts
//! when the newest already holds more than EVENT_CHAIN_LEN events; the oldest chain is dropped
//! when there are more than 3, as the Perl original does (so between 2*(LEN+1)+1 and
//! 3*(LEN+1) newest events are retained). Positions start at 10 and grow by one per event.
//! Uses: nothing internal.

use std::collections::VecDeque;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    Online,
    Offline,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Online => "online",
            EventKind::Offline => "offline",
        }
    }
}

/// One retained event, borrowed from its chain.
#[derive(Copy, Clone, Debug)]
pub struct Event<'a> {
    pub kind: EventKind,
    pub pos: u64,
    pub id: &'a str,
}

/// A chain keeps its ids in one contiguous string and its events as 8-byte entries:
/// thousands of retained events then pin a few allocations, not thousands of small ones
/// scattered over the heap (which kept memory from being returned after a connection
/// peak). Positions are consecutive over the whole history (the oldest chains are dropped
/// whole), so a chain stores only its first one.
#[derive(Debug, Default)]
struct Chain {
    first_pos: u64,
    text: String,
    /// End of each event's id in `text`; the top bit set means `Offline`.
    ends: Vec<u32>,
}

const OFFLINE_BIT: u32 = 1 << 31;

impl Chain {
    fn event(&self, i: usize) -> Option<Event<'_>> {
        let raw = *self.ends.get(i)?;
        let start = match i.checked_sub(1) {
            Some(p) => self.ends.get(p).map_or(0, |e| e & !OFFLINE_BIT),
            None => 0,
        };
        let end = raw & !OFFLINE_BIT;
        Some(Event {
            kind: if raw & OFFLINE_BIT != 0 {
                EventKind::Offline
            } else {
                EventKind::Online
            },
            pos: self.first_pos + i as u64,
            id: self.text.get(start as usize..end as usize).unwrap_or(""),
        })
    }
}

#[derive(Debug)]
pub struct Events {
    chains: VecDeque<Chain>,
    next_pos: u64,
    len: usize,
}

/// Spec 13.1 #22: the original numbers events from 10 and its FAKE answer names the *next*
/// position, so a client that follows FAKE misses one event. We number from 11 and FAKE
/// names the last assigned position: a fresh server still answers `FAKE 10:FAKE` (PHP test
/// 562), positions stay two digits in the original tests, and no event is skipped.
const FIRST_POS: u64 = 11;
const MAX_CHAINS: usize = 3;
/// Entries reserved at once for a new chain (EVENT_CHAIN_LEN + 1 when it is smaller).
const MAX_RESERVE: usize = 1 << 16;

impl Default for Events {
    fn default() -> Self {
        Events {
            chains: VecDeque::new(),
            next_pos: FIRST_POS,
            len: 0,
        }
    }
}

impl Events {
    /// Number of retained events (the `events=` log counter).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The position of the newest event ever assigned (10 on a fresh server): what FAKE
    /// reports as the position to watch from.
    pub fn last_pos(&self) -> u64 {
        self.next_pos - 1
    }

    /// The position of the oldest retained event (the next one's when none is retained).
    pub fn first_pos(&self) -> u64 {
        self.iter().next().map_or(self.next_pos, |e| e.pos)
    }

    /// Replaces the history with `events` (oldest first) numbered from `first_pos`: a
    /// snapshot being loaded, so that WATCH positions continue across a restart.
    pub fn restore<'a>(
        &mut self,
        first_pos: u64,
        events: impl Iterator<Item = (EventKind, &'a str)>,
        chain_len: usize,
    ) {
        *self = Events::default();
        self.next_pos = first_pos.max(FIRST_POS);
        for (kind, id) in events {
            self.push(kind, id, chain_len);
        }
    }

    pub fn push(&mut self, kind: EventKind, id: &str, chain_len: usize) {
        let pos = self.next_pos;
        let start_new = self.chains.back().is_none_or(|c| c.ends.len() > chain_len);
        if start_new {
            // A chain is filled once and never grows again: reserve it whole (the ids
            // sized like the previous chain's) so it is not reallocated while it fills.
            let text_hint = self.chains.back().map_or(0, |c| c.text.len());
            self.chains.push_back(Chain {
                first_pos: pos,
                text: String::with_capacity(text_hint),
                ends: Vec::with_capacity(chain_len.saturating_add(1).min(MAX_RESERVE)),
            });
        }
        let Some(c) = self.chains.back_mut() else {
            return;
        };
        let Ok(end) = u32::try_from(c.text.len().saturating_add(id.len())) else {
            return;
        };
        if end & OFFLINE_BIT != 0 {
            return;
        }
        c.text.push_str(id);
        c.ends.push(match kind {
            EventKind::Online => end,
            EventKind::Offline => end | OFFLINE_BIT,
        });
        self.next_pos = self.next_pos.saturating_add(1);
        self.len += 1;
        while self.chains.len() > MAX_CHAINS {
            if let Some(old) = self.chains.pop_front() {
                self.len -= old.ends.len();
            }
        }
    }

    /// Cluster mode: appends an event numbered by the cluster. Positions already held are
    /// skipped; a jump (events trimmed from the shared log before this worker read them)
    /// starts a new chain at `pos`.
    pub fn push_at(&mut self, pos: u64, kind: EventKind, id: &str, chain_len: usize) {
        if pos < self.next_pos {
            return;
        }
        if pos > self.next_pos {
            // Positions in a chain are implicit (first + index): close the current one.
            if let Some(c) = self.chains.back_mut() {
                c.ends.shrink_to_fit();
            }
            self.chains.push_back(Chain {
                first_pos: pos,
                text: String::new(),
                ends: Vec::new(),
            });
            self.next_pos = pos;
            // The new chain may fill past chain_len before the next one starts; bounded by
            // MAX_CHAINS all the same.
        }
        self.push(kind, id, chain_len);
    }

    /// Retained events, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Event<'_>> {
        self.chains
            .iter()
            .flat_map(|c| (0..c.ends.len()).filter_map(move |i| c.event(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perl_chain_retention() {
        // Spec 8.2: LEN=3 and 20 events retain the newest 12 (numbered from 11 here).
        let mut e = Events::default();
        for i in 0..20 {
            e.push(EventKind::Online, &format!("abc{i:02}"), 3);
        }
        let pos: Vec<u64> = e.iter().map(|e| e.pos).collect();
        assert_eq!(e.iter().last().map(|e| e.id), Some("abc19"));
        assert_eq!(pos, (19..31).collect::<Vec<_>>());
        assert_eq!(e.len(), 12);
        assert_eq!(e.last_pos(), 30);
        assert_eq!(Events::default().last_pos(), 10);
    }

    #[test]
    fn kinds_ids_and_positions_survive_chain_changes() {
        let mut e = Events::default();
        let ids = ["a", "", "ccc", "dd", "e", "ffff", "g"];
        for (i, id) in ids.iter().enumerate() {
            let kind = if i % 3 == 1 {
                EventKind::Offline
            } else {
                EventKind::Online
            };
            e.push(kind, id, 1);
        }
        // LEN=1: chains of 2; 7 events keep the newest 3 chains, i.e. the last 5 events.
        let got: Vec<(u64, &str, &str)> = e.iter().map(|x| (x.pos, x.kind.name(), x.id)).collect();
        assert_eq!(
            got,
            [
                (13, "online", "ccc"),
                (14, "online", "dd"),
                (15, "offline", "e"),
                (16, "online", "ffff"),
                (17, "online", "g"),
            ]
        );
        let newest_first: Vec<u64> = e.iter().rev().map(|x| x.pos).collect();
        assert_eq!(newest_first, [17, 16, 15, 14, 13]);
    }
}
