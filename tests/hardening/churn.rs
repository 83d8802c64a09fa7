//! Hardening, churn: listeners reconnect (and hang up at random) while publishers push;
//! every message reaches every listener of its ids exactly once, in cursor order.
//!
//! Data: per listener, its ids, the last cursor per id and the data received; the
//! published `(data, ids)` list. May use `crate::util`, the shared `super` helpers and std.

use super::{read_until_closed, Rng};
use crate::util::*;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// A cursor as a comparable value: integer part, then the fraction as digits.
fn cursor_key(c: &str) -> (u128, String) {
    let (int, frac) = c.split_once('.').unwrap_or((c, ""));
    let mut f = frac.to_string();
    while f.len() < 32 {
        f.push('0');
    }
    (int.parse().expect("cursor integer part"), f)
}

/// The `"data"` values of a reply body, in block order (single-line data only).
fn parse_data(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("    \"data\": "))
        .map(str::to_string)
        .collect()
}

struct Listener {
    ids: Vec<String>,
    cursors: BTreeMap<String, String>,
    received: Vec<String>,
    seen: HashSet<String>,
    reconnects: usize,
    drops: usize,
}

impl Listener {
    /// Applies one complete reply; panics on a duplicate, a foreign id or a cursor that
    /// does not move forward.
    fn apply(&mut self, body: &str) {
        let ids = parse_ids(body);
        let data = parse_data(body);
        assert_eq!(ids.len(), data.len(), "blocks in {body}");
        for (pairs, d) in ids.iter().zip(data) {
            for (id, cursor) in pairs {
                let last = self
                    .cursors
                    .get_mut(id)
                    .unwrap_or_else(|| panic!("{d} delivered for {id}, not listened to"));
                assert!(
                    cursor_key(cursor) > cursor_key(last),
                    "{d} for {id} at {cursor}, not after {last}"
                );
                *last = cursor.clone();
            }
            assert!(self.seen.insert(d.clone()), "{d} delivered twice");
            self.received.push(d);
        }
    }
}

#[test]
fn churn_loses_no_message() {
    const IDS: usize = 8;
    const CLIENTS: usize = 12;
    const PUBLISHERS: usize = 2;
    const PUSHES: usize = 150;
    let s = Server::start("$CONFIG{MAX_DATA_FOR_ID} = 1000;\n");
    let published: Mutex<Vec<(String, Vec<String>)>> = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    let listeners: Vec<Listener> = thread::scope(|sc| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|k| {
                let (s, published, done) = (&s, &published, &done);
                sc.spawn(move || {
                    let mut rng = Rng(0x1234_5678 + k as u64 * 7919);
                    let mut ids = BTreeSet::new();
                    while ids.len() < 3 {
                        ids.insert(format!("ch{}", rng.below(IDS)));
                    }
                    let ids: Vec<String> = ids.into_iter().collect();
                    let mut l = Listener {
                        cursors: ids.iter().map(|i| (i.clone(), "0".to_string())).collect(),
                        ids,
                        received: Vec::new(),
                        seen: HashSet::new(),
                        reconnects: 0,
                        drops: 0,
                    };
                    // (request, reply) of each round, shown if a message goes missing.
                    let mut hist: Vec<String> = Vec::new();
                    loop {
                        if done.load(Ordering::SeqCst) {
                            let p = published.lock().unwrap_or_else(|e| e.into_inner());
                            let want = p
                                .iter()
                                .filter(|(_, to)| to.iter().any(|i| l.cursors.contains_key(i)))
                                .count();
                            if l.received.len() >= want {
                                break;
                            }
                        }
                        if Instant::now() >= deadline {
                            let p = published.lock().unwrap_or_else(|e| e.into_inner());
                            let missing: Vec<_> = p
                                .iter()
                                .filter(|(_, to)| to.iter().any(|i| l.cursors.contains_key(i)))
                                .filter(|(d, _)| !l.seen.contains(d))
                                .collect();
                            panic!(
                                "client {k} timed out: cursors {:?}, missing {missing:?}; \
                                 its requests and replies:\n{}",
                                l.cursors,
                                hist.join("\n")
                            );
                        }
                        let list: Vec<String> = l
                            .ids
                            .iter()
                            .map(|i| format!("{}:{i}", l.cursors[i]))
                            .collect();
                        let mut c = connect_raw(s.wait_addr());
                        c.write_all(format!("identifier={}\n", list.join(",")).as_bytes())
                            .expect("WAIT write");
                        l.reconnects += 1;
                        // A third of the time, hang up at a random moment.
                        let wait = if rng.below(3) == 0 {
                            Duration::from_millis(1 + rng.below(30) as u64)
                        } else {
                            Duration::from_millis(500)
                        };
                        let (bytes, closed) = read_until_closed(&mut c, Instant::now() + wait);
                        let text = show(&bytes);
                        hist.push(format!("{} (closed: {closed}) -> {text:?}", list.join(",")));
                        if closed {
                            let body = text.strip_prefix(WAIT_HEADER).unwrap_or_else(|| {
                                panic!("reply without the header block: {text:?}")
                            });
                            l.apply(body);
                        } else {
                            l.drops += 1;
                        }
                    }
                    l
                })
            })
            .collect();
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|p| {
                let (s, published) = (&s, &published);
                sc.spawn(move || {
                    let mut rng = Rng(0xABCD_EF01 + p as u64);
                    for n in 0..PUSHES {
                        let mut to = BTreeSet::new();
                        for _ in 0..1 + rng.below(3) {
                            to.insert(format!("ch{}", rng.below(IDS)));
                        }
                        let to: Vec<String> = to.into_iter().collect();
                        let data = format!("\"m{p}_{n}\"");
                        s.push_ids(&to.join(","), &data);
                        published
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((data, to));
                    }
                })
            })
            .collect();
        for p in publishers {
            p.join().expect("publisher");
        }
        done.store(true, Ordering::SeqCst);
        clients
            .into_iter()
            .map(|c| c.join().expect("client"))
            .collect()
    });
    let published = published.into_inner().unwrap_or_else(|e| e.into_inner());
    let (mut drops, mut reconnects) = (0, 0);
    for l in &listeners {
        let want: BTreeSet<&String> = published
            .iter()
            .filter(|(_, to)| to.iter().any(|i| l.cursors.contains_key(i)))
            .map(|(d, _)| d)
            .collect();
        let got: BTreeSet<&String> = l.received.iter().collect();
        assert_eq!(got, want, "client on {:?}", l.ids);
        drops += l.drops;
        reconnects += l.reconnects;
    }
    eprintln!(
        "churn: {} messages, {CLIENTS} clients, {reconnects} connections, {drops} hung up early",
        published.len()
    );
    assert!(drops > 0, "no client hung up: the churn did not happen");
}
