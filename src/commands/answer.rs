//! The answers to ONLINE, WATCH and STATS (spec 7.2-7.5), byte-identical to the original.
//!
//! A large answer (ONLINE or STATS with hundreds of thousands of ids) must not stall the
//! loop nor build its whole text at once, yet the original's reply carries an exact
//! Content-Length, which the PHP API checks. So an answer is taken from storage at one
//! instant as a list of `Piece`s (one per reply line, holding `Rc` clones of names and
//! messages, not text), and the reactor measures and writes it a slice of pieces at a time
//! (`Reply::write_range`): the bytes are those of that instant, however long the writing
//! takes, and no more than a slice of text exists at once.
//!
//! Structure: `Answer::Text { reply: Reply { pieces }, log }` or `Answer::Nothing`.
//! Uses: storage (read-only views), cursor, types.

use crate::cursor::Cursor;
use crate::storage::{Message, Storage};
use crate::types::ConnId;
use std::io::Write as _;
use std::rc::Rc;

use super::{Command, Kind};

/// What to send back.
pub enum Answer {
    /// A 200 reply with this body; `log` is the original's debug line.
    Text { reply: Reply, log: String },
    /// Close without a reply (STATS with credentials, as the original does).
    Nothing,
}

/// One line (or fixed text) of a reply, as taken from storage (`json` renders the same
/// pieces for the HTTP API).
pub(super) enum Piece {
    Static(&'static str),
    /// WATCH without a usable cursor: `FAKE pos:FAKE`.
    Fake(u64),
    /// WATCH: `kind pos:id`.
    Event(&'static str, u64, Box<str>),
    /// ONLINE: `id count`.
    Online(Rc<str>, usize),
    /// STATS [data_to_send]: `id => [cursor: Nb, limited by (a, b)], ...`.
    Queue(Rc<str>, Box<[(Cursor, Rc<Message>)]>),
    /// STATS [connected_fhs]: `id => (0x..), ...`.
    Waiters(Rc<str>, Box<[ConnId]>),
    /// STATS [online_timers] / [cleanup_timers]: `id => assigned`.
    Assigned(Rc<str>),
    /// STATS [pairs_by_fhs]: `(0x..) => cursor:id, ...`.
    Pairs(ConnId, Box<[(Cursor, Rc<str>)]>),
}

/// Opaque connection token for STATS (`(0x...)`).
pub(super) fn token(c: ConnId) -> u64 {
    (u64::from(c.gen) << 24) | u64::from(c.key)
}

impl Piece {
    fn write(&self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        let _ = match self {
            Piece::Static(s) => out.write_all(s.as_bytes()),
            Piece::Fake(pos) => writeln!(out, "FAKE {pos}:FAKE"),
            Piece::Event(kind, pos, id) => writeln!(out, "{kind} {pos}:{id}"),
            Piece::Online(id, n) => writeln!(out, "{id} {n}"),
            Piece::Queue(id, items) => {
                let _ = write!(out, "{id} => ");
                for (i, (cursor, msg)) in items.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    let _ = write!(out, "[{}: {}b", cursor, msg.data.len());
                    if !msg.limiters.is_empty() {
                        let _ = write!(out, ", limited by ({})", msg.limiters.join(", "));
                    }
                    out.push(b']');
                }
                writeln!(out)
            }
            Piece::Waiters(id, conns) => {
                let _ = write!(out, "{id} => ");
                for (i, c) in conns.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    let _ = write!(out, "(0x{:x})", token(*c));
                }
                writeln!(out)
            }
            Piece::Assigned(id) => writeln!(out, "{id} => assigned"),
            Piece::Pairs(conn, pairs) => {
                let _ = write!(out, "(0x{:x}) => ", token(*conn));
                for (i, (cursor, id)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    let _ = write!(out, "{cursor}:{id}");
                }
                writeln!(out)
            }
        };
    }
}

/// A reply body taken from storage at one instant, written a slice of pieces at a time.
pub struct Reply {
    pub(super) pieces: Vec<Piece>,
}

impl Reply {
    /// How many pieces the body has (the unit of `write_range`).
    pub fn pieces(&self) -> usize {
        self.pieces.len()
    }

    /// Appends the bytes of pieces `from..to` to `out`.
    pub fn write_range(&self, from: usize, to: usize, out: &mut Vec<u8>) {
        for p in self
            .pieces
            .get(from..to.min(self.pieces.len()))
            .unwrap_or_default()
        {
            p.write(out);
        }
    }

    /// The whole body at once (small replies, tests).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_range(0, self.pieces.len(), &mut out);
        out
    }
}

/// Prefix filter of ONLINE and WATCH (spec 7.2), with the login rule: a login sees only
/// the prefixes it names that start with `login_`; the guest sees all ids without any.
pub struct Filter {
    all: bool,
    list: Vec<String>,
}

impl Filter {
    pub fn new<'a>(words: impl Iterator<Item = &'a str>, login: Option<&str>) -> Filter {
        let list = words.map(str::to_owned);
        match login {
            None => {
                let list: Vec<String> = list.collect();
                Filter {
                    all: list.is_empty(),
                    list,
                }
            }
            Some(l) => {
                let own = format!("{l}_");
                Filter {
                    all: false,
                    list: list.filter(|p| p.starts_with(&own)).collect(),
                }
            }
        }
    }

    /// ONLINE's filter for `cmd` (its argument is the list of prefixes).
    pub fn online(cmd: &Command, login: Option<&str>) -> Filter {
        let arg = cmd.arg.as_deref().unwrap_or("").trim();
        Filter::new(arg.split_whitespace(), login)
    }

    pub fn matches(&self, id: &str) -> bool {
        self.all || self.list.iter().any(|p| id.starts_with(p.as_str()))
    }
}

pub fn answer(cmd: &Command, storage: &Storage, login: Option<&str>) -> Answer {
    answer_with(cmd, storage, login, None)
}

/// As `answer`, with ONLINE taken from `online` (id, count; sorted by id) when given: the
/// cluster-wide view in cluster mode.
pub fn answer_with(
    cmd: &Command,
    storage: &Storage,
    login: Option<&str>,
    online: Option<Vec<(Rc<str>, usize)>>,
) -> Answer {
    let arg = cmd.arg.as_deref().unwrap_or("").trim();
    match cmd.kind {
        Kind::Online => {
            let f = Filter::new(arg.split_whitespace(), login);
            let list = online.unwrap_or_else(|| {
                storage
                    .online()
                    .into_iter()
                    .map(|(id, n)| (id.clone(), n))
                    .collect()
            });
            let pieces: Vec<Piece> = list
                .into_iter()
                .filter(|(id, _)| f.matches(id))
                .map(|(id, n)| Piece::Online(id, n))
                .collect();
            let log = format!("sending {} online identifiers", pieces.len());
            Answer::Text {
                reply: Reply { pieces },
                log,
            }
        }
        Kind::Watch => watch(arg, storage, login),
        Kind::Stats => {
            if login.is_some() {
                return Answer::Nothing;
            }
            Answer::Text {
                reply: stats(storage),
                log: "sending stats".into(),
            }
        }
    }
}

/// WATCH (spec 7.4): bounded by EVENT_CHAIN_LEN, so built at once.
fn watch(arg: &str, storage: &Storage, login: Option<&str>) -> Answer {
    let mut words = arg.split_whitespace();
    let cursor = words.next().unwrap_or("");
    let Some(from) = perl_watch_cursor(cursor) else {
        return Answer::Text {
            reply: Reply {
                pieces: vec![Piece::Fake(storage.events().last_pos())],
            },
            log: "sending 1 events".into(),
        };
    };
    let f = Filter::new(words, login);
    // Only the newest event per id, listed oldest first: walk from the newest, keeping the
    // first event seen for each id, then reverse.
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
    let n = picked.len();
    let pieces = picked
        .iter()
        .rev()
        .map(|e| Piece::Event(e.kind.name(), e.pos, e.id.into()))
        .collect();
    Answer::Text {
        reply: Reply { pieces },
        log: format!("sending {n} events"),
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

/// The STATS dump (spec 7.5), as pieces.
fn stats(storage: &Storage) -> Reply {
    let views = storage.channel_views();
    let mut p = vec![Piece::Static("[data_to_send]\n")];
    for v in &views {
        let Some(q) = v.queue else { continue };
        let items = q
            .iter()
            .map(|it| (it.cursor.clone(), it.msg.clone()))
            .collect();
        p.push(Piece::Queue(v.name.clone(), items));
    }
    p.push(Piece::Static("\n[connected_fhs]\n"));
    for v in views.iter().filter(|v| !v.waiters.is_empty()) {
        p.push(Piece::Waiters(v.name.clone(), v.waiters.clone().into()));
    }
    p.push(Piece::Static("\n[online_timers]\n"));
    for v in views.iter().filter(|v| v.online) {
        p.push(Piece::Assigned(v.name.clone()));
    }
    p.push(Piece::Static("\n[cleanup_timers]\n"));
    for v in views.iter().filter(|v| v.cleanup) {
        p.push(Piece::Assigned(v.name.clone()));
    }
    p.push(Piece::Static("\n[pairs_by_fhs]\n"));
    for (conn, pairs) in storage.listener_views() {
        let pairs = pairs
            .into_iter()
            .map(|(c, id)| (c.clone(), id.clone()))
            .collect();
        p.push(Piece::Pairs(conn, pairs));
    }
    Reply { pieces: p }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let s = stats(&Storage::new()).to_bytes();
        assert_eq!(s.len(), 83);
        assert_eq!(
            s,
            b"[data_to_send]\n\n[connected_fhs]\n\n[online_timers]\n\n[cleanup_timers]\n\n[pairs_by_fhs]\n"
        );
    }

    #[test]
    fn slices_concatenate_to_the_whole_body() {
        let mut storage = Storage::new();
        let lim = crate::storage::Limits {
            max_data_for_id: 10,
            offline_timeout: std::time::Duration::from_secs(30),
            clean_id_after: std::time::Duration::from_secs(60),
            event_chain_len: 100,
            coalesce: std::time::Duration::ZERO,
        };
        let now = std::time::Instant::now();
        for i in 0..50u32 {
            let ch = storage.intern(&format!("id{i}"));
            let msg = Rc::new(Message {
                data: format!("\"m{i}\"").into_bytes().into(),
                limiters: Box::new([]),
            });
            let c = Cursor::parse_client(format!("{}", i + 1).as_bytes()).unwrap();
            storage.push(now, &msg, &[(c, ch)], &lim);
        }
        let reply = stats(&storage);
        let whole = reply.to_bytes();
        for slice in [1, 3, 7, 1000] {
            let mut parts = Vec::new();
            let mut at = 0;
            while at < reply.pieces() {
                reply.write_range(at, at + slice, &mut parts);
                at += slice;
            }
            assert_eq!(parts, whole, "slice {slice}");
        }
        assert!(String::from_utf8(whole).unwrap().contains("id7 => [8: 4b]"));
    }
}
