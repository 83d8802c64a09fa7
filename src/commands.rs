//! ONLINE, WATCH and STATS on the IN line (spec 7): recognition over the raw request bytes
//! and the exact reply bodies.
//!
//! Structure: `find(buf, at_eof) -> Option<Command { kind, arg }>` reproduces the original's
//! `(?:^|\r?\n\r?\n)(ONLINE|STATS|WATCH)(?:\s+([^\r\n]*))?(?:\r?\n\r?\n|$)` search
//! (case-insensitive, `$` only at EOF); `answer` builds the body from storage.
//! Uses: storage (read-only), cursor, types.

use crate::storage::Storage;
use crate::types::ConnId;
use std::fmt::Write as _;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Online,
    Stats,
    Watch,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub kind: Kind,
    /// The argument as received (the rest of the line), if the keyword had one.
    pub arg: Option<String>,
}

impl Command {
    /// `ONLINE user_` as the original logs it.
    pub fn describe(&self) -> String {
        let name = match self.kind {
            Kind::Online => "ONLINE",
            Kind::Stats => "STATS",
            Kind::Watch => "WATCH",
        };
        match &self.arg {
            Some(a) if !a.is_empty() => format!("{name} {a}"),
            _ => name.to_owned(),
        }
    }
}

/// Perl's `\s`: space, \t, \n, \x0B, \x0C, \r.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// Length of `\r?\n\r?\n` at `p`, if it matches there.
fn blank_line_at(buf: &[u8], p: usize) -> Option<usize> {
    let mut i = p;
    if buf.get(i) == Some(&b'\r') {
        i += 1;
    }
    if buf.get(i) != Some(&b'\n') {
        return None;
    }
    i += 1;
    if buf.get(i) == Some(&b'\r') && buf.get(i + 1) == Some(&b'\n') {
        return Some(i + 2 - p);
    }
    (buf.get(i) == Some(&b'\n')).then_some(i + 1 - p)
}

/// The tail: a blank line, or at EOF the end of the buffer (also just before a final `\n`).
fn tail_at(buf: &[u8], p: usize, at_eof: bool) -> bool {
    blank_line_at(buf, p).is_some()
        || (at_eof && (p == buf.len() || (p + 1 == buf.len() && buf.get(p) == Some(&b'\n'))))
}

fn keyword_at(buf: &[u8], k: usize) -> Option<(Kind, usize)> {
    let rest = buf.get(k..)?;
    for (word, kind) in [
        (&b"online"[..], Kind::Online),
        (b"stats", Kind::Stats),
        (b"watch", Kind::Watch),
    ] {
        if rest
            .get(..word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
        {
            return Some((kind, k + word.len()));
        }
    }
    None
}

fn try_at(buf: &[u8], k: usize, at_eof: bool) -> Option<Command> {
    let (kind, after) = keyword_at(buf, k)?;
    // `(?:\s+([^\r\n]*))?` is greedy: try the longest whitespace run first, then shorter ones,
    // and only then the form without an argument. The argument is always maximal, as a
    // shorter one could not be followed by the tail.
    let ws = buf
        .get(after..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&c| is_space(c))
        .count();
    for w in (1..=ws).rev() {
        let a = after + w;
        let alen = buf
            .get(a..)
            .unwrap_or_default()
            .iter()
            .take_while(|&&c| c != b'\r' && c != b'\n')
            .count();
        if tail_at(buf, a + alen, at_eof) {
            let arg =
                String::from_utf8_lossy(buf.get(a..a + alen).unwrap_or_default()).into_owned();
            return Some(Command {
                kind,
                arg: Some(arg),
            });
        }
    }
    tail_at(buf, after, at_eof).then_some(Command { kind, arg: None })
}

/// Finds a command in an IN request. Without `at_eof` only a command followed by a blank
/// line counts (it is then run at once, without waiting for EOF).
pub fn find(buf: &[u8], at_eof: bool) -> Option<Command> {
    if let Some(c) = try_at(buf, 0, at_eof) {
        return Some(c);
    }
    // A blank line starts at a `\n`, or at the `\r` just before one: visit only those.
    let mut from = 0;
    while let Some(rel) = buf
        .get(from..)
        .and_then(|r| r.iter().position(|&c| c == b'\n'))
    {
        let nl = from + rel;
        let before = nl.checked_sub(1).filter(|&p| buf.get(p) == Some(&b'\r'));
        for p in before.into_iter().chain(std::iter::once(nl)) {
            if let Some(n) = blank_line_at(buf, p) {
                if let Some(c) = try_at(buf, p + n, at_eof) {
                    return Some(c);
                }
            }
        }
        from = nl + 1;
    }
    None
}

/// What to send back.
pub enum Answer {
    /// A 200 reply with this body; `log` is the original's debug line.
    Text { body: Vec<u8>, log: String },
    /// Close without a reply (STATS with credentials, as the original does).
    Nothing,
}

/// Prefix filter of ONLINE and WATCH (spec 7.2), with the login rule.
fn prefixes<'a>(words: impl Iterator<Item = &'a str>, login: Option<&str>) -> Filter<'a> {
    let list: Vec<&str> = words.collect();
    match login {
        None => Filter {
            all: list.is_empty(),
            list,
        },
        Some(l) => {
            let own = format!("{l}_");
            Filter {
                all: false,
                list: list.into_iter().filter(|p| p.starts_with(&own)).collect(),
            }
        }
    }
}

struct Filter<'a> {
    all: bool,
    list: Vec<&'a str>,
}

impl Filter<'_> {
    fn matches(&self, id: &str) -> bool {
        self.all || self.list.iter().any(|p| id.starts_with(p))
    }
}

/// Opaque connection token for STATS (`(0x...)`).
fn token(c: ConnId) -> u64 {
    (u64::from(c.gen) << 24) | u64::from(c.key)
}

pub fn answer(cmd: &Command, storage: &Storage, login: Option<&str>) -> Answer {
    let arg = cmd.arg.as_deref().unwrap_or("").trim();
    match cmd.kind {
        Kind::Online => {
            let f = prefixes(arg.split_whitespace(), login);
            let mut body = String::new();
            let mut n = 0;
            for (id, count) in storage.online() {
                if f.matches(id) {
                    n += 1;
                    let _ = writeln!(body, "{id} {count}");
                }
            }
            Answer::Text {
                body: body.into_bytes(),
                log: format!("sending {n} online identifiers"),
            }
        }
        Kind::Watch => {
            let mut words = arg.split_whitespace();
            let cursor = words.next().unwrap_or("");
            let from = perl_watch_cursor(cursor);
            let Some(from) = from else {
                let body = format!("FAKE {}:FAKE\n", storage.events().last_pos());
                return Answer::Text {
                    body: body.into_bytes(),
                    log: "sending 1 events".into(),
                };
            };
            let f = prefixes(words, login);
            // Only the newest event per id, listed oldest first: walk from the newest,
            // keeping the first event seen for each id, then reverse.
            let mut seen = std::collections::HashSet::new();
            let mut picked = Vec::new();
            for e in storage.events().iter().rev() {
                if (e.pos as f64) <= from {
                    break;
                }
                if seen.insert(e.id) && f.matches(e.id) {
                    picked.push(e);
                }
            }
            let mut body = String::new();
            let n = picked.len();
            for e in picked.iter().rev() {
                let _ = writeln!(body, "{} {}:{}", e.kind.name(), e.pos, e.id);
            }
            Answer::Text {
                body: body.into_bytes(),
                log: format!("sending {n} events"),
            }
        }
        Kind::Stats => {
            if login.is_some() {
                return Answer::Nothing;
            }
            Answer::Text {
                body: stats(storage).into_bytes(),
                log: "sending stats".into(),
            }
        }
    }
}

/// Perl's WATCH cursor rule: empty, "0", or anything not made of digits and dots means FAKE;
/// otherwise the numeric prefix (`1.2.3` is 1.2, `0.0` is 0 and lists everything).
fn perl_watch_cursor(s: &str) -> Option<f64> {
    if s.is_empty() || s == "0" || !s.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        return None;
    }
    let mut end = s.len();
    if let Some(first_dot) = s.find('.') {
        if let Some(second) = s.get(first_dot + 1..).and_then(|r| r.find('.')) {
            end = first_dot + 1 + second;
        }
    }
    Some(
        s.get(..end)
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0),
    )
}

/// The STATS dump (spec 7.5).
fn stats(storage: &Storage) -> String {
    let views = storage.channel_views();
    let mut out = String::from("[data_to_send]\n");
    for v in &views {
        let Some(q) = v.queue else { continue };
        let items: Vec<String> = q
            .iter()
            .map(|it| {
                let mut s = format!("[{}: {}b", it.cursor, it.msg.data.len());
                if !it.msg.limiters.is_empty() {
                    let _ = write!(s, ", limited by ({})", it.msg.limiters.join(", "));
                }
                s.push(']');
                s
            })
            .collect();
        let _ = writeln!(out, "{} => {}", v.name, items.join(", "));
    }
    out.push_str("\n[connected_fhs]\n");
    for v in views.iter().filter(|v| !v.waiters.is_empty()) {
        let fhs: Vec<String> = v
            .waiters
            .iter()
            .map(|c| format!("(0x{:x})", token(*c)))
            .collect();
        let _ = writeln!(out, "{} => {}", v.name, fhs.join(", "));
    }
    out.push_str("\n[online_timers]\n");
    for v in views.iter().filter(|v| v.online) {
        let _ = writeln!(out, "{} => assigned", v.name);
    }
    out.push_str("\n[cleanup_timers]\n");
    for v in views.iter().filter(|v| v.cleanup) {
        let _ = writeln!(out, "{} => assigned", v.name);
    }
    out.push_str("\n[pairs_by_fhs]\n");
    for (conn, pairs) in storage.listener_views() {
        let p: Vec<String> = pairs.iter().map(|(c, id)| format!("{c}:{id}")).collect();
        let _ = writeln!(out, "(0x{:x}) => {}", token(conn), p.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &str, eof: bool) -> Option<String> {
        find(s.as_bytes(), eof).map(|c| c.describe())
    }

    #[test]
    fn recognition() {
        assert_eq!(cmd("stats", true).as_deref(), Some("STATS"));
        assert_eq!(cmd("stats", false), None);
        assert_eq!(cmd("online", true).as_deref(), Some("ONLINE"));
        assert_eq!(cmd("Watch 1", true).as_deref(), Some("WATCH 1"));
        assert_eq!(
            cmd("online prefix\n", true).as_deref(),
            Some("ONLINE prefix")
        );
        assert_eq!(
            cmd(
                "POST / HTTP/1.1\r\nX-Realplexor: identifier=\r\n\r\nonline ns_ abc\n",
                true
            )
            .as_deref(),
            Some("ONLINE ns_ abc")
        );
        assert_eq!(
            cmd("x\r\n\r\nonline\r\n\r\n", false).as_deref(),
            Some("ONLINE")
        );
        assert_eq!(
            cmd("identifier=user:pw@\n\nonline user_", true).as_deref(),
            Some("ONLINE user_")
        );
        assert_eq!(cmd("\"a\"\n\nstats\n\n", false).as_deref(), Some("STATS"));
        assert_eq!(cmd("onlinex", true), None);
        assert_eq!(cmd("Stats: 1", true), None);
        // Perl anchors: a line start that is not after a blank line is no command.
        assert_eq!(cmd("\"a\"\nonline\nmore", true), None);
        assert_eq!(cmd("X: y\r\n\r\n\"online\"", true), None);
    }

    #[test]
    fn watch_cursor_rules() {
        assert_eq!(perl_watch_cursor(""), None);
        assert_eq!(perl_watch_cursor("0"), None);
        assert_eq!(perl_watch_cursor("-1"), None);
        assert_eq!(perl_watch_cursor("?"), None);
        assert_eq!(perl_watch_cursor("0.0"), Some(0.0));
        assert_eq!(perl_watch_cursor("1.2.3"), Some(1.2));
        assert_eq!(perl_watch_cursor("15"), Some(15.0));
    }

    #[test]
    fn empty_stats_is_83_bytes() {
        let s = stats(&Storage::new());
        assert_eq!(s.len(), 83);
        assert_eq!(
            s,
            "[data_to_send]\n\n[connected_fhs]\n\n[online_timers]\n\n[cleanup_timers]\n\n[pairs_by_fhs]\n"
        );
    }

    #[test]
    fn hostile_inputs_never_panic() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let seeds: [&[u8]; 3] = [
            b"x\r\n\r\nonline a b\r\n\r\n",
            b"watch 1.2 u_\n",
            b"\n\n\r\nstats",
        ];
        for i in 0..20_000usize {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut v = seeds[i % 3].to_vec();
            let at = (x as usize) % (v.len() + 1);
            match x % 4 {
                0 => v.insert(at, (x >> 8) as u8),
                1 => v.truncate(at),
                2 if at < v.len() => v[at] = b'\r',
                _ => v.insert(at, b'\n'),
            }
            let _ = find(&v, true);
            let _ = find(&v, false);
        }
    }
}
