//! The server's stdout log, as the tests read it: waiting for lines with a deadline,
//! snapshots, and the original harness's filter.
//!
//! Data: raw lines (`Server::lines`) become `Entry { msg, stats }`: a message with its
//! `[<ctime>] ` prefix removed and the `[pairs_by_fhs=...]` stats line that followed it
//! (VERBOSITY 3) as `Stats`. Waits block on the log's `Condvar`, never on a sleep.
//!
//! May use std and the sibling `server` (the `Server`'s log buffers) and `wire` (the
//! barrier of `settle`) modules.

use super::server::Server;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Deadline for a log line to appear.
pub const LOG_TIMEOUT: Duration = Duration::from_secs(10);

/// `(pairs_by_fhs, data_to_send, connected_fhs, online_timers, cleanup_timers)`: the
/// `last=(p,d,c,o,cl)` of the spec tables (`events` is masked, as the harness does).
pub type Stats = (usize, usize, usize, usize, usize);

/// One log message with the stats line that followed it (VERBOSITY 3).
#[derive(Debug, Clone)]
pub struct Entry {
    /// The message with its `[<ctime>] ` prefix removed.
    pub msg: String,
    pub stats: Option<Stats>,
}

impl Server {
    /// Waits until the server logged `read N bytes` lines adding up to `bytes` for the
    /// peer `client` (a client socket's local address).
    pub fn wait_reads(&self, client: SocketAddr, bytes: usize) {
        let needle = format!("{client}: DEBUG: read ");
        self.wait_until(
            &format!("reads of {bytes} bytes from {client}"),
            LOG_TIMEOUT,
            |es| {
                let total: usize = es
                    .iter()
                    .filter_map(|e| e.msg.split_once(&needle))
                    .filter_map(|(_, rest)| rest.strip_suffix(" bytes"))
                    .filter_map(|n| n.parse::<usize>().ok())
                    .sum();
                (total >= bytes).then_some(())
            },
        );
    }

    /// `wait_reads`, then a barrier: the handlers of those reads have completed.
    pub fn settle(&self, client: SocketAddr, bytes: usize) {
        self.wait_reads(client, bytes);
        self.barrier();
    }

    /// Snapshot of the raw stdout lines.
    pub fn lines(&self) -> Vec<String> {
        self.log.lock().lines.clone()
    }

    /// Snapshot of the log as messages with their stats lines.
    pub fn entries(&self) -> Vec<Entry> {
        parse_entries(&self.log.lock().lines)
    }

    /// Waits until `f` returns `Some` for the current log; panics with the log on deadline.
    pub fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&[Entry]) -> Option<T>,
    ) -> T {
        self.wait_lines(what, timeout, |lines| f(&parse_entries(lines)))
    }

    /// As `wait_until`, over the raw stdout lines.
    fn wait_lines<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&[String]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        let mut guard = self.log.lock();
        loop {
            if let Some(t) = f(&guard.lines) {
                return t;
            }
            let now = Instant::now();
            if now >= deadline || guard.closed {
                let why = if guard.closed {
                    "server exited"
                } else {
                    "timed out"
                };
                drop(guard);
                panic!(
                    "{why} waiting for {what}; server log:\n{}\nstderr:\n{}",
                    self.log.dump(),
                    self.stderr.dump()
                );
            }
            guard = self
                .log
                .cond
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits for a message matching `pred` and returns it.
    pub fn wait_log(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        self.wait_until("a matching log line", timeout, |es| {
            es.iter().find(|e| pred(&e.msg)).map(|e| e.msg.clone())
        })
    }

    /// Waits until `n` messages match `pred`; returns them.
    pub fn wait_log_count(&self, pred: impl Fn(&str) -> bool, n: usize) -> Vec<String> {
        self.wait_until(&format!("{n} matching log lines"), LOG_TIMEOUT, |es| {
            let found: Vec<String> = es
                .iter()
                .filter(|e| pred(&e.msg))
                .map(|e| e.msg.clone())
                .collect();
            (found.len() >= n).then_some(found)
        })
    }

    /// Waits for a message whose normalized form (`norm`) equals `expected`, and its
    /// stats line; returns the stats.
    pub fn stats_of(&self, expected: &str) -> Stats {
        self.wait_until(
            &format!("log line {expected:?} with stats"),
            LOG_TIMEOUT,
            |es| {
                es.iter()
                    .find(|e| norm(&e.msg) == expected && e.stats.is_some())
                    .and_then(|e| e.stats)
            },
        )
    }

    /// Whether any message matches `pred` right now.
    pub fn has_log(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.entries().iter().any(|e| pred(&e.msg))
    }

    /// The last stats line (waits until the log ends with one). Call it after waiting
    /// for the line that ends the scenario.
    pub fn last_stats(&self) -> Stats {
        self.wait_lines("a final stats line", LOG_TIMEOUT, |lines| {
            lines.last().and_then(|l| parse_stats(l))
        })
    }

    /// Normalized messages (`norm`) with stats, from the first one equal to `first` on.
    pub fn normalized_from(&self, first: &str) -> Vec<(String, Option<Stats>)> {
        let all: Vec<(String, Option<Stats>)> = self
            .entries()
            .iter()
            .map(|e| (norm(&e.msg), e.stats))
            .collect();
        let start = all
            .iter()
            .position(|(m, _)| m == first)
            .unwrap_or_else(|| panic!("no log line {first:?}; log:\n{}", self.log.dump()));
        all[start..].to_vec()
    }

    /// Waits until `n` WAIT connections have logged `connection closed`.
    pub fn wait_wait_closed(&self, n: usize) {
        self.wait_log_count(
            |m| m.starts_with("WAIT: ") && m.ends_with("connection closed"),
            n,
        );
    }

    /// Waits until `n` IN connections have logged `connection closed`.
    pub fn wait_in_closed(&self, n: usize) {
        self.wait_log_count(
            |m| m.starts_with("IN: ") && m.ends_with("connection closed"),
            n,
        );
    }

    /// Waits for `[<id>] is now offline`.
    pub fn wait_offline(&self, id: &str) {
        let line = format!("[{id}] is now offline");
        self.wait_log(|m| m == line, LOG_TIMEOUT);
    }

    /// Whether `[<id>] is now offline` was logged.
    pub fn went_offline(&self, id: &str) -> bool {
        let line = format!("[{id}] is now offline");
        self.has_log(|m| m == line)
    }
}

pub(super) fn parse_entries(lines: &[String]) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for line in lines {
        if let Some(stats) = parse_stats(line) {
            if let Some(last) = out.last_mut() {
                if last.stats.is_none() {
                    last.stats = Some(stats);
                    continue;
                }
            }
            continue;
        }
        out.push(Entry {
            msg: strip_timestamp(line).to_string(),
            stats: None,
        });
    }
    out
}

/// Parses `  [pairs_by_fhs=a data_to_send=b connected_fhs=c online_timers=d cleanup_timers=e events=f]`.
pub fn parse_stats(line: &str) -> Option<Stats> {
    let inner = line.strip_prefix("  [pairs_by_fhs=")?.strip_suffix(']')?;
    let mut v = Vec::new();
    for (i, part) in format!("pairs_by_fhs={inner}").split(' ').enumerate() {
        let (k, n) = part.split_once('=')?;
        let want = [
            "pairs_by_fhs",
            "data_to_send",
            "connected_fhs",
            "online_timers",
            "cleanup_timers",
            "events",
        ];
        if want.get(i) != Some(&k) {
            return None;
        }
        v.push(n.parse::<usize>().ok()?);
    }
    (v.len() == 6).then(|| (v[0], v[1], v[2], v[3], v[4]))
}

/// Removes a `[Mon Nov 23 02:18:55 2026] ` prefix (VERBOSITY >= 2).
fn strip_timestamp(line: &str) -> &str {
    let b = line.as_bytes();
    if b.len() > 26 && b[0] == b'[' && &line[25..27] == "] " && b[14] == b':' && b[17] == b':' {
        &line[27..]
    } else {
        line
    }
}

/// The original harness's log filter (spec 12.0) for one message: peer addresses
/// stripped (`WAIT: DEBUG: …`), the first `<digits> bytes` masked as `<N> bytes`,
/// `[<d>.<d>` masked as `[*`, the ulimit and conf path masked.
pub fn norm(msg: &str) -> String {
    let mut m = msg.to_string();
    for line in ["WAIT: ", "IN: "] {
        if let Some(rest) = m.strip_prefix(line) {
            if !rest.starts_with("listening ") {
                if let Some((peer, tail)) = rest.split_once(": ") {
                    if peer.contains(':') && !peer.contains(' ') {
                        m = format!("{line}{tail}");
                    }
                }
            }
            break;
        }
    }
    if let Some(i) = m.find(" Opened files limit") {
        m.truncate(i);
    }
    if let Some(i) = m.find("appending configuration from ") {
        m.truncate(i + "appending configuration from ".len());
        m.push_str("***");
    }
    // First "<digits> bytes".
    let bytes: Vec<char> = m.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let mut j = i;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            let rest: String = bytes[j..].iter().collect();
            if rest.starts_with(" bytes") {
                let head: String = bytes[..i].iter().collect();
                m = format!("{head}<N>{rest}");
                break;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    // "[<digits>.<digits>" -> "[*", everywhere.
    let c: Vec<char> = m.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        if c[i] == '[' {
            let mut j = i + 1;
            let d1 = j;
            while j < c.len() && c[j].is_ascii_digit() {
                j += 1;
            }
            if j > d1 && j < c.len() && c[j] == '.' {
                let d2 = j + 1;
                let mut k = d2;
                while k < c.len() && c[k].is_ascii_digit() {
                    k += 1;
                }
                if k > d2 {
                    out.push_str("[*");
                    i = k;
                    continue;
                }
            }
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

/// Compares normalized log entries (`Server::normalized_from`) with the expected
/// `(message, stats)` list, printing both as one line per entry on mismatch.
pub fn assert_log(got: &[(String, Option<Stats>)], expected: &[(&str, Stats)]) {
    let got: Vec<String> = got.iter().map(|(m, s)| format!("{m}  {s:?}")).collect();
    let want: Vec<String> = expected
        .iter()
        .map(|(m, s)| format!("{m}  {:?}", Some(*s)))
        .collect();
    assert_eq!(got.join("\n"), want.join("\n"), "log lines differ");
}

/// Whether `line` starts with a ctime-style `[Mon Nov  3 02:18:55 2026] ` (spec 10.1).
pub fn has_ctime_prefix(line: &str) -> bool {
    const WD: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let Some(ts) = line.get(..27) else {
        return false;
    };
    let b = ts.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b[0] == b'['
        && WD.contains(&&ts[1..4])
        && b[4] == b' '
        && MON.contains(&&ts[5..8])
        && b[8] == b' '
        && (b[9] == b' ' || b[9].is_ascii_digit())
        && b[10].is_ascii_digit()
        && b[11] == b' '
        && digits(12..14)
        && b[14] == b':'
        && digits(15..17)
        && b[17] == b':'
        && digits(18..20)
        && b[20] == b' '
        && digits(21..25)
        && &ts[25..27] == "] "
}
