//! The online/offline event history that WATCH reads (spec 8.2).
//!
//! Structure: up to 3 chains (newest last) of events `(kind, pos, id)`, each chain keeping
//! its ids in one string. A new chain starts
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

/// A chain keeps its ids in one contiguous string: thousands of retained events then pin
/// a few allocations, not thousands of small ones scattered over the heap (which kept
/// memory from being returned after a connection peak).
#[derive(Debug, Default)]
struct Chain {
    text: String,
    /// (kind, position, start and length of the id in `text`)
    items: Vec<(EventKind, u64, u32, u32)>,
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

    pub fn push(&mut self, kind: EventKind, id: &str, chain_len: usize) {
        let pos = self.next_pos;
        self.next_pos = self.next_pos.saturating_add(1);
        let start_new = self.chains.back().is_none_or(|c| c.items.len() > chain_len);
        if start_new {
            self.chains.push_back(Chain::default());
        }
        if let Some(c) = self.chains.back_mut() {
            let (Ok(start), Ok(len)) = (u32::try_from(c.text.len()), u32::try_from(id.len()))
            else {
                return;
            };
            c.text.push_str(id);
            c.items.push((kind, pos, start, len));
            self.len += 1;
        }
        while self.chains.len() > MAX_CHAINS {
            if let Some(old) = self.chains.pop_front() {
                self.len -= old.items.len();
            }
        }
    }

    /// Retained events, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Event<'_>> {
        self.chains.iter().flat_map(|c| {
            c.items.iter().map(move |&(kind, pos, start, len)| Event {
                kind,
                pos,
                id: c
                    .text
                    .get(start as usize..start as usize + len as usize)
                    .unwrap_or(""),
            })
        })
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
}
