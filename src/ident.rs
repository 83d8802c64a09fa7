//! The `identifier=` marker scanner, over raw bytes (spec section 3).
//!
//! Structure: `scan(buf, ident, from)` finds the leftmost marker
//! `\b IDENT = [LOGIN:PASSWORD@] LIST TERM` outside `Referer:` lines, exactly as the
//! original's `extract_pairs` regex does (including its backtracking from the credentials
//! form to the plain form); `items(list)` splits LIST into validated items.
//! Nothing here allocates; everything borrows from the request buffer.
//! Uses: nothing internal.

/// A marker found in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker<'a> {
    pub login: Option<&'a [u8]>,
    pub password: Option<&'a [u8]>,
    pub list: &'a [u8],
}

/// Result of a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan<'a> {
    Found(Marker<'a>),
    /// No complete marker yet. A later scan of the same (grown) buffer can start at `resume`:
    /// no marker can start before it.
    NotYet {
        resume: usize,
    },
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Whether `s` is an id as `items` yields them: `[A-Za-z0-9_]+` (the rule every other
/// place that takes ids from outside uses too: WebSocket commands, cluster log entries,
/// `Last-Event-ID` lists).
pub fn is_id(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&c| is_word(c))
}

/// The LIST character set: `* A-Z a-z 0-9 _ , . :`
fn is_list_char(c: u8) -> bool {
    is_word(c) || matches!(c, b'*' | b',' | b'.' | b':')
}

/// Scans `buf` for the marker named `ident` (e.g. `identifier`), starting at `from`.
pub fn scan<'a>(buf: &'a [u8], ident: &[u8], from: usize) -> Scan<'a> {
    let Some(&first) = ident.first() else {
        return Scan::NotYet { resume: from };
    };
    let need = ident.len() + 1; // IDENT "="
    let mut pos = from;
    // The earliest candidate that failed only because the buffer ended too soon.
    let mut pending: Option<usize> = None;
    while let Some(rel) = buf
        .get(pos..)
        .and_then(|rest| rest.iter().position(|&c| c == first))
    {
        let start = pos + rel;
        pos = start + 1;
        let Some(after_eq) = start.checked_add(need) else {
            break;
        };
        match buf.get(start..after_eq) {
            Some(cand) => {
                if cand.get(..ident.len()) != Some(ident) || cand.last() != Some(&b'=') {
                    continue;
                }
            }
            None => {
                // Too short to hold "IDENT=" yet: it may complete with more bytes.
                if ident.starts_with(buf.get(start..).unwrap_or_default()) {
                    pending.get_or_insert(start);
                }
                break;
            }
        }
        // \b before IDENT: a word boundary between the previous byte and IDENT's first byte.
        let prev_is_word = start
            .checked_sub(1)
            .and_then(|p| buf.get(p))
            .is_some_and(|&c| is_word(c));
        if prev_is_word == is_word(first) {
            continue;
        }
        if in_referer_line(buf, start) {
            continue;
        }
        match match_at(buf, after_eq) {
            Some(m) => return Scan::Found(m),
            None => {
                pending.get_or_insert(start);
            }
        }
    }
    let resume = pending.unwrap_or_else(|| buf.len().saturating_sub(need).max(from));
    Scan::NotYet { resume }
}

/// Tries `[LOGIN:PASSWORD@] LIST TERM` at `p`; the credentials form first, then the plain one,
/// as the original regex backtracks. `None` means only the end of the buffer stopped it.
fn match_at(buf: &[u8], p: usize) -> Option<Marker<'_>> {
    let rest = buf.get(p..)?;
    let login_len = rest.iter().take_while(|&&c| is_word(c)).count();
    if login_len > 0 && rest.get(login_len) == Some(&b':') {
        let pw_start = login_len + 1;
        let pw_len = rest
            .get(pw_start..)?
            .iter()
            .take_while(|&&c| c != b'@' && !c.is_ascii_whitespace())
            .count();
        if pw_len > 0 && rest.get(pw_start + pw_len) == Some(&b'@') {
            let list_start = pw_start + pw_len + 1;
            if let Some(list) = list_then_term(rest.get(list_start..)?) {
                return Some(Marker {
                    login: rest.get(..login_len),
                    password: rest.get(pw_start..pw_start + pw_len),
                    list,
                });
            }
        }
    }
    list_then_term(rest).map(|list| Marker {
        login: None,
        password: None,
        list,
    })
}

/// LIST followed by a mandatory terminator byte (not the end of the buffer).
fn list_then_term(s: &[u8]) -> Option<&[u8]> {
    let n = s.iter().take_while(|&&c| is_list_char(c)).count();
    if n < s.len() {
        s.get(..n)
    } else {
        None
    }
}

/// Compat: perl/Realplexor/Common.pm blanks every line whose first non-blank text is
/// `Referer:` (any case) before searching, so a marker in a Referer URL is never taken.
fn in_referer_line(buf: &[u8], at: usize) -> bool {
    let line_start = buf
        .get(..at)
        .and_then(|b| b.iter().rposition(|&c| c == b'\n'))
        .map_or(0, |p| p + 1);
    let line = buf.get(line_start..at).unwrap_or_default();
    let skip = line
        .iter()
        .take_while(|&&c| c == b' ' || c == b'\t')
        .count();
    let Some(head) = line.get(skip..) else {
        return false;
    };
    head.len() >= 8
        && head
            .get(..8)
            .is_some_and(|h| h.eq_ignore_ascii_case(b"referer:"))
        // The blanked part stops at the first CR or LF.
        && !head.contains(&b'\r')
}

/// One validated item of LIST: `[*][CURSOR:]ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    pub limiter: bool,
    pub cursor: Option<&'a [u8]>,
    pub id: &'a [u8],
}

/// Splits LIST on `,` and yields the items that match `^\*?(\d+(\.\d+)?:)?\w+$`; the others
/// are silently dropped, as the original does.
pub fn items(list: &[u8]) -> impl Iterator<Item = Item<'_>> {
    list.split(|&c| c == b',').filter_map(parse_item)
}

fn parse_item(el: &[u8]) -> Option<Item<'_>> {
    let (limiter, el) = match el.strip_prefix(b"*") {
        Some(rest) => (true, rest),
        None => (false, el),
    };
    let (cursor, id) = match el.iter().position(|&c| c == b':') {
        Some(p) => {
            let c = el.get(..p)?;
            if !crate::cursor::is_decimal(c) {
                return None;
            }
            (Some(c), el.get(p + 1..)?)
        }
        None => (None, el),
    };
    if id.is_empty() || !id.iter().all(|&c| is_word(c)) {
        return None;
    }
    Some(Item {
        limiter,
        cursor,
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &[u8] = b"identifier";

    fn found(buf: &[u8]) -> Option<Marker<'_>> {
        match scan(buf, ID, 0) {
            Scan::Found(m) => Some(m),
            Scan::NotYet { .. } => None,
        }
    }

    fn list(buf: &[u8]) -> Option<&[u8]> {
        found(buf).map(|m| m.list)
    }

    #[test]
    fn finds_marker_anywhere() {
        assert_eq!(
            list(b"GET /?identifier=abc&x=1 HTTP/1.1\r\n"),
            Some(&b"abc"[..])
        );
        assert_eq!(
            list(b"X-Realplexor: identifier=abc\r\n\r\n"),
            Some(&b"abc"[..])
        );
        assert_eq!(list(b"Cookie: identifier=ck\r\n"), Some(&b"ck"[..]));
        assert_eq!(list(b"test 5\nidentifier=10:id5\n"), Some(&b"10:id5"[..]));
        assert_eq!(list(b"/identifier=a "), Some(&b"a"[..]));
        assert_eq!(list(b"X-identifier=a "), Some(&b"a"[..]));
    }

    #[test]
    fn word_boundary_and_case() {
        assert_eq!(list(b"myidentifier=abc "), None);
        assert_eq!(list(b"_identifier=abc "), None);
        assert_eq!(list(b"IDENTIFIER=abc "), None);
        assert_eq!(list(b"myidentifier=abc identifier=def "), Some(&b"def"[..]));
    }

    #[test]
    fn terminator_is_mandatory() {
        assert_eq!(list(b"identifier=abc"), None);
        assert_eq!(list(b"identifier=abc\n"), Some(&b"abc"[..]));
        assert_eq!(list(b"identifier=ab-cd "), Some(&b"ab"[..]));
        assert_eq!(list(b"identifier=a%2Cb "), Some(&b"a"[..]));
        assert_eq!(list(b"identifier=\n"), Some(&b""[..]));
    }

    #[test]
    fn credentials() {
        let m = found(b"identifier=user:password@abc\n").unwrap();
        assert_eq!(m.login, Some(&b"user"[..]));
        assert_eq!(m.password, Some(&b"password"[..]));
        assert_eq!(m.list, b"abc");
        // Quirk kept: greedy credentials on a browser query.
        let m = found(b"GET /?identifier=10:abc&email=a@bq HTTP/1.1").unwrap();
        assert_eq!(m.login, Some(&b"10"[..]));
        assert_eq!(m.password, Some(&b"abc&email=a"[..]));
        assert_eq!(m.list, b"bq");
        // Empty list with credentials is a valid marker.
        let m = found(b"identifier=user:pw@\n\nonline").unwrap();
        assert_eq!(m.login, Some(&b"user"[..]));
        assert_eq!(m.list, b"");
        // Credentials form whose list runs to the end falls back to the plain form.
        let m = found(b"identifier=user:pw@abc").unwrap();
        assert_eq!(m.login, None);
        assert_eq!(m.list, b"user:pw");
    }

    #[test]
    fn referer_lines_are_ignored() {
        let req =
            b"GET / HTTP/1.1\r\nReferer: http://x/?identifier=IFRAME\r\nidentifier=abc,def\r\n";
        assert_eq!(list(req), Some(&b"abc,def"[..]));
        let req = b"  rEfErEr: identifier=IFRAME\nCookie: identifier=x\n";
        assert_eq!(list(req), Some(&b"x"[..]));
        let req = b"Referer: identifier=IFRAME\n";
        assert_eq!(list(req), None);
        // Not at line start (after other text): not a Referer line.
        assert_eq!(list(b"X-Referer: identifier=a\n"), Some(&b"a"[..]));
    }

    #[test]
    fn items_grammar() {
        let got: Vec<_> = items(b"abc,12345.67:def,*ghi,*5:jkl,5:*bad,1:2:3,1.:x,.5:y,:z,,ok")
            .map(|i| {
                (
                    i.limiter,
                    i.cursor.map(|c| String::from_utf8_lossy(c).into_owned()),
                    String::from_utf8_lossy(i.id).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (false, None, "abc".into()),
                (false, Some("12345.67".into()), "def".into()),
                (true, None, "ghi".into()),
                (true, Some("5".into()), "jkl".into()),
                (false, None, "ok".into()),
            ]
        );
    }

    #[test]
    fn resume_point_never_skips_a_marker() {
        let full: &[u8] = b"POST / HTTP/1.1\r\nHost: x\r\nReferer: a?identifier=IFRAME\r\n\r\nidentifier=5:abc,def\n";
        for cut in 0..full.len() {
            let first = &full[..cut];
            let resume = match scan(first, ID, 0) {
                Scan::Found(_) => continue,
                Scan::NotYet { resume } => resume,
            };
            assert!(resume <= cut);
            assert_eq!(
                scan(full, ID, resume),
                scan(full, ID, 0),
                "cut at {cut}, resume {resume}"
            );
        }
    }

    #[test]
    fn every_split_of_a_request_gives_the_same_marker() {
        // Compat: a credentials marker split inside its list can match the plain form
        // first (the original rescans each read the same way), so only plain markers here.
        let reqs: [&[u8]; 3] = [
            b"GET /?identifier=10:abc,def&ncrnd=1 HTTP/1.1\r\nHost: h\r\n\r\n",
            b"X-Realplexor: identifier=1:a,*b\r\n\r\n\"x\"",
            b"test 5\nidentifier=10:id5\n",
        ];
        for req in reqs {
            let want = scan(req, ID, 0);
            for cut in 0..=req.len() {
                let mut resume = 0;
                let mut got = None;
                for end in [cut, req.len()] {
                    match scan(&req[..end], ID, resume) {
                        Scan::Found(m) => {
                            got = Some(m);
                            break;
                        }
                        Scan::NotYet { resume: r } => resume = r,
                    }
                }
                assert_eq!(got.map(Scan::Found), Some(want), "split at {cut}");
            }
        }
    }

    #[test]
    fn hostile_inputs_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let base: &[u8] = b"identifier=user:pw@10.5:abc,*def\r\nReferer: identifier=x\n";
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut v = base.to_vec();
            let n = (seed % 8) as usize;
            for k in 0..n {
                let at = ((seed >> (k * 5)) as usize) % (v.len() + 1);
                let byte = (seed >> (k * 3)) as u8;
                match (seed >> k) % 3 {
                    0 => v.insert(at, byte),
                    1 if at < v.len() => {
                        v.remove(at);
                    }
                    _ => v.truncate(at),
                }
            }
            for from in [0, v.len() / 2, v.len(), v.len() + 3] {
                if let Scan::Found(m) = scan(&v, ID, from) {
                    let _ = items(m.list).count();
                }
            }
            let _ = scan(&v, b"", 0);
            let _ = scan(&v, b"=", 0);
        }
    }
}
