//! The listener side of `stream` (a worker's `stream` op): the worker's parked SSE or
//! WebSocket listeners receive a run of P pushes on their shared id; each message is
//! checked (exactly once, in order) and its lag taken, until every listener has all P or
//! the run's end time passes.
//!
//! Payload: the JSON string `"<prefix>/<seq>/<t_ns>"`, `prefix` naming the run and step,
//! `seq` in 0..P, `t_ns` the publisher's clock (`clock::now_ns`, shared by every process
//! of the machine) just before it sent the push; the lag of a delivery is its receipt
//! time minus `t_ns`.
//!
//! Structure: `Tally { per listener: Seen { got, next, bits }, hist, seq_lag }`.
//! `bits` has one bit per push (P bits a listener: the caller keeps N x P bounded). A
//! message already seen is a duplicate; one whose seq is below a seq received earlier
//! is out of order; what is not received by the end is missing (lost, or still in
//! flight when a run that did not keep up ended). A stream the server closes (e.g. its
//! back-pressure bound) is counted in `closed` and not reopened.
//!
//! ```text
//! {"op":"stream", id, prefix, pushes, end_ns}
//!   -> {"ev":"streaming"} {"ev":"progress",..}* {"ev":"streamed", listeners, complete,
//!      received, missing, duplicates, out_of_order, bad, closed, hist, seq_lag_ns, t_last}
//! ```
//!
//! Uses: `net`, `proto::parse_message`, `lag::Hist`, `clock`.

use crate::clock::now_ns;
use crate::lag::Hist;
use crate::net::{Ev, Net};
use crate::proto;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{self, Write};
use std::time::Duration;

/// What one listener has received of the run.
struct Seen {
    got: u32,
    /// One past the highest seq received.
    next: u32,
    bits: Vec<u64>,
    closed: bool,
}

/// The whole worker's count.
pub struct Tally {
    pushes: u32,
    listeners: Vec<Seen>,
    pub received: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub bad: u64,
    pub closed: u64,
    /// Listeners with all P messages.
    pub complete: u64,
    pub hist: Hist,
    /// Per seq: the largest lag any listener saw (0: nobody received it).
    pub seq_lag: Vec<u64>,
    pub t_last: u64,
    pub sample_error: String,
}

/// `(seq, t_ns)` from a payload's JSON text, if it belongs to `prefix`.
pub fn parse_payload(data: &str, prefix: &str) -> Option<(u32, u64)> {
    let s = data.strip_prefix('"')?.strip_suffix('"')?;
    let rest = s.strip_prefix(prefix)?.strip_prefix('/')?;
    let (seq, t) = rest.split_once('/')?;
    Some((seq.parse().ok()?, t.parse().ok()?))
}

/// The payload of push `seq` sent at `t_ns`, as JSON text.
pub fn payload(prefix: &str, seq: u32, t_ns: u64) -> String {
    format!("\"{prefix}/{seq}/{t_ns}\"")
}

impl Tally {
    pub fn new(listeners: usize, pushes: u32) -> Tally {
        let words = (pushes as usize).div_ceil(64);
        Tally {
            pushes,
            listeners: (0..listeners)
                .map(|_| Seen {
                    got: 0,
                    next: 0,
                    bits: vec![0; words],
                    closed: false,
                })
                .collect(),
            received: 0,
            duplicates: 0,
            out_of_order: 0,
            bad: 0,
            closed: 0,
            complete: 0,
            hist: Hist::new(),
            seq_lag: vec![0; pushes as usize],
            t_last: 0,
            sample_error: String::new(),
        }
    }

    fn error(&mut self, e: String) {
        if self.sample_error.is_empty() {
            self.sample_error = e;
        }
    }

    /// One message for listener `i`, read at `t`.
    pub fn message(&mut self, i: usize, t: u64, data: &[u8], id: &str, prefix: &str) {
        let parsed = match proto::parse_message(data) {
            Ok(b) if b.ids.iter().any(|(x, _)| x == id) => parse_payload(&b.data, prefix),
            Ok(b) => {
                self.bad += 1;
                self.error(format!("a message for other ids: {:?}", b.ids));
                return;
            }
            Err(e) => {
                self.bad += 1;
                self.error(e.to_string());
                return;
            }
        };
        let Some((seq, t_sent)) = parsed.filter(|(s, _)| *s < self.pushes) else {
            self.bad += 1;
            self.error(format!(
                "unexpected payload {:?}",
                String::from_utf8_lossy(data)
            ));
            return;
        };
        let Some(l) = self.listeners.get_mut(i) else {
            return;
        };
        let (w, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        let Some(word) = l.bits.get_mut(w) else {
            return;
        };
        if *word & bit != 0 {
            self.duplicates += 1;
            return;
        }
        *word |= bit;
        if seq < l.next {
            self.out_of_order += 1;
        }
        l.next = l.next.max(seq + 1);
        l.got += 1;
        if l.got == self.pushes {
            self.complete += 1;
        }
        self.received += 1;
        let lag = t.saturating_sub(t_sent);
        self.hist.add(lag);
        if let Some(m) = self.seq_lag.get_mut(seq as usize) {
            *m = (*m).max(lag);
        }
        self.t_last = self.t_last.max(t);
    }

    /// Listener `i`'s stream ended.
    pub fn closed(&mut self, i: usize, why: String) {
        if let Some(l) = self.listeners.get_mut(i) {
            if !l.closed {
                l.closed = true;
                self.closed += 1;
                self.error(why);
            }
        }
    }

    /// Every listener is complete or closed.
    pub fn finished(&self) -> bool {
        self.complete + self.closed >= self.listeners.len() as u64
    }

    /// Messages not received, over every listener.
    pub fn missing(&self) -> u64 {
        self.listeners
            .iter()
            .map(|l| u64::from(self.pushes.saturating_sub(l.got)))
            .sum()
    }

    pub fn to_json(&self) -> Value {
        json!({"ev": "streamed", "listeners": self.listeners.len(), "complete": self.complete,
               "received": self.received, "missing": self.missing(),
               "duplicates": self.duplicates, "out_of_order": self.out_of_order,
               "bad": self.bad, "closed": self.closed, "hist": self.hist.to_json(),
               "seq_lag_ns": self.seq_lag, "t_last": self.t_last, "error": self.sample_error})
    }
}

/// Runs the `stream` op over the worker's parked listeners (`parked`: their keys). Streams
/// the server closed are dropped from `parked`.
pub fn run(
    net: &mut Net,
    cmd: &Value,
    parked: &mut Vec<usize>,
    out: &mut impl Write,
) -> io::Result<Value> {
    writeln!(out, "{}", json!({"ev": "streaming"}))?;
    out.flush()?;
    let id = cmd["id"].as_str().unwrap_or("");
    let prefix = cmd["prefix"].as_str().unwrap_or("");
    let pushes = cmd["pushes"].as_u64().unwrap_or(0).min(u64::from(u32::MAX)) as u32;
    let end = cmd["end_ns"].as_u64().unwrap_or(0);
    let index: HashMap<usize, usize> = parked.iter().enumerate().map(|(i, &k)| (k, i)).collect();
    let mut tally = Tally::new(parked.len(), pushes);
    let mut evs = Vec::new();
    let mut last_progress = 0u64;
    while !tally.finished() && now_ns() < end {
        evs.clear();
        net.poll(Duration::from_millis(5), &mut evs)?;
        for ev in evs.drain(..) {
            match ev {
                Ev::Message { key, t, data, .. } => {
                    if let Some(&i) = index.get(&key) {
                        tally.message(i, t, &data, id, prefix);
                    }
                }
                Ev::Done { key, .. } => {
                    if let Some(&i) = index.get(&key) {
                        tally.closed(i, "the server closed a stream".into());
                    }
                }
                Ev::Failed { key, err, .. } => {
                    if let Some(&i) = index.get(&key) {
                        tally.closed(i, err.to_string());
                    }
                }
                Ev::Parked { .. } | Ev::Response { .. } => {}
            }
        }
        if now_ns().saturating_sub(last_progress) > 200_000_000 {
            last_progress = now_ns();
            writeln!(
                out,
                "{}",
                json!({"ev": "progress", "open": net.len(), "done": tally.received})
            )?;
            out.flush()?;
        }
    }
    // Streams the server closed are gone from the engine: forget their keys.
    parked.retain(|&k| {
        index
            .get(&k)
            .and_then(|&i| tally.listeners.get(i))
            .is_some_and(|l| !l.closed)
    });
    Ok(tally.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, data: &str) -> Vec<u8> {
        format!("{{\"ids\": {{\"{id}\": \"1\"}}, \"data\": {data}}}").into_bytes()
    }

    #[test]
    fn payload_round_trip() {
        let p = payload("t1x/0", 7, 123);
        assert_eq!(p, "\"t1x/0/7/123\"");
        assert_eq!(parse_payload(&p, "t1x/0"), Some((7, 123)));
        assert_eq!(parse_payload(&p, "t1x/1"), None);
        assert_eq!(parse_payload("\"t1x/0/x/1\"", "t1x/0"), None);
        assert_eq!(parse_payload("7", "t1x/0"), None);
    }

    #[test]
    fn exactly_once_in_order_and_the_rest() {
        let mut t = Tally::new(2, 3);
        let m = |s: u32| msg("a", &payload("p", s, 100));
        for s in 0..3 {
            t.message(0, 1_000_100, &m(s), "a", "p");
        }
        assert!(!t.finished());
        t.message(1, 200, &m(1), "a", "p");
        t.message(1, 300, &m(0), "a", "p"); // late
        t.message(1, 400, &m(0), "a", "p"); // again
        t.message(1, 400, &msg("b", &payload("p", 2, 1)), "a", "p");
        t.message(1, 400, &msg("a", &payload("q", 2, 1)), "a", "p");
        t.message(1, 400, &msg("a", &payload("p", 3, 1)), "a", "p");
        t.message(1, 400, b"garbage", "a", "p");
        assert_eq!((t.received, t.duplicates, t.out_of_order), (5, 1, 1));
        assert_eq!((t.bad, t.complete, t.missing()), (4, 1, 1));
        assert_eq!(t.seq_lag, vec![1_000_000, 1_000_000, 1_000_000]);
        t.closed(1, "gone".into());
        t.closed(1, "gone".into());
        assert_eq!(t.closed, 1);
        assert!(t.finished());
        let v = t.to_json();
        assert_eq!(v["missing"], 1);
        assert_eq!(v["hist"]["n"], 5);
        assert_eq!(v["t_last"], 1_000_100);
    }
}
