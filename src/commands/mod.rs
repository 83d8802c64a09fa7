//! ONLINE, WATCH and STATS on the IN line (spec 7): recognition over the raw request bytes
//! here, the reply bodies in `answer`.
//!
//! Structure: `find(buf, at_eof) -> Option<Command { kind, arg }>` reproduces the original's
//! `(?:^|\r?\n\r?\n)(ONLINE|STATS|WATCH)(?:\s+([^\r\n]*))?(?:\r?\n\r?\n|$)` search
//! (case-insensitive, `$` only at EOF).
//! `json` writes the same answers as JSON for the HTTP API.
//! Uses: nothing internal (answer: storage, cursor, types).

mod answer;
pub mod json;

pub use answer::{answer, answer_with, Answer, Filter, Reply};

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
