//! IN line request handling that does not touch sockets or storage (spec 6): turning the
//! marker into targets, limiters and credentials; finding the body; the 403 reply.
//!
//! Structure: `Parsed { targets: Vec<(Option<Cursor>, Box<str>)>, limiters, login, password }`,
//! kept boxed on the IN connection from the moment its marker is found until EOF.
//! Uses: ident, cursor, auth.

use crate::auth::AuthError;
use crate::cursor::Cursor;
use crate::ident::{items, Marker};

#[derive(Debug, Default)]
pub struct Parsed {
    /// Non-`*` items in request order, duplicates kept (each inserts the message again).
    /// None: no cursor given, "now" is generated when the message is applied (at EOF), so
    /// that generated cursors follow the order in which messages reach the queues.
    pub targets: Vec<(Option<Cursor>, Box<str>)>,
    /// `*` items: sorted, unique.
    pub limiters: Vec<Box<str>>,
    pub login: Option<String>,
    pub password: Option<Vec<u8>>,
}

/// A push accepted on the IN line, ready for the message source: the ids the login owns,
/// each with its explicit cursor (None: the source generates one "now" for all of them),
/// the limiters and the body. Nothing here is stamped or interned yet.
#[derive(Debug)]
pub struct Publication {
    pub targets: Vec<(Option<Cursor>, Box<str>)>,
    pub limiters: Box<[Box<str>]>,
    pub body: Box<[u8]>,
}

impl Publication {
    /// Whether some target has no cursor of its own (then the message needs a generated one).
    pub fn needs_stamp(&self) -> bool {
        self.targets.iter().any(|t| t.0.is_none())
    }
}

impl Parsed {
    /// Builds the request from its marker. Items without a cursor get None (the caller
    /// gives them all one "now" cursor when it applies the message).
    pub fn from_marker(m: &Marker<'_>) -> Parsed {
        let mut p = Parsed::default();
        for it in items(m.list) {
            // Items are ASCII word characters by construction.
            let id: Box<str> = String::from_utf8_lossy(it.id).into();
            if it.limiter {
                if !p.limiters.contains(&id) {
                    p.limiters.push(id);
                }
                continue;
            }
            p.targets
                .push((it.cursor.and_then(Cursor::parse_client), id));
        }
        p.limiters.sort();
        // Compat: perl/Connection/In.pm treats a login of "0" as no login (Perl falsiness).
        if let (Some(login), Some(pw)) = (m.login, m.password) {
            if login != b"0" {
                p.login = Some(String::from_utf8_lossy(login).into_owned());
                p.password = Some(pw.to_vec());
            }
        }
        p
    }

    /// The `parsed IDs` log text.
    pub fn describe(&self) -> String {
        let mut s = String::from("parsed IDs");
        if !self.limiters.is_empty() {
            s.push_str("; limiters are (");
            s.push_str(&self.limiters.join(", "));
            s.push(')');
        }
        if let Some(l) = &self.login {
            s.push_str(&format!("; login is \"{l}\""));
        }
        s
    }

    pub fn creds(&self) -> Option<(&str, &[u8])> {
        match (&self.login, &self.password) {
            (Some(l), Some(p)) => Some((l.as_str(), p.as_slice())),
            _ => None,
        }
    }
}

/// Whether `login` owns `id` (`login_...`): a login publishes only to its own ids.
pub fn owned_by(login: &str, id: &str) -> bool {
    id.strip_prefix(login)
        .is_some_and(|rest| rest.starts_with('_'))
}

/// The message body: everything after the first `\r?\n\r?\n` (spec 6.2).
pub fn body_of(buf: &[u8]) -> Option<&[u8]> {
    let mut i = 0;
    while let Some(rel) = buf
        .get(i..)
        .and_then(|r| r.iter().position(|&c| c == b'\n'))
    {
        let nl = i + rel;
        let after = buf.get(nl + 1..).unwrap_or_default();
        if after.first() == Some(&b'\n') {
            return buf.get(nl + 2..);
        }
        if after.starts_with(b"\r\n") {
            return buf.get(nl + 3..);
        }
        i = nl + 1;
    }
    None
}

/// Whether a body is empty or whitespace only (nothing a listener could parse).
pub fn is_blank(body: &[u8]) -> bool {
    body.iter()
        .all(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C))
}

/// The reply to a push over IN_MAXLEN (in the style of the 403 replies, so the original
/// PHP API, which raises on any status but 200, raises).
pub fn too_large(in_maxlen: usize) -> Vec<u8> {
    let body = format!(
        "Request too large: the push exceeds IN_MAXLEN ({in_maxlen} bytes) and was not pushed\n"
    );
    format!(
        "HTTP/1.0 413 Request Entity Too Large\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        body
    )
    .into_bytes()
}

/// `HTTP/1.0 403 Access Deined` with the reason as body.
pub fn forbidden(err: &AuthError) -> Vec<u8> {
    let body = format!("{err}\n");
    // Compat: "Deined" (sic) is what perl/Connection/In.pm sends; PHP test 605 expects it.
    format!(
        "HTTP/1.0 403 Access Deined\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        body
    )
    .into_bytes()
}

/// The head of a 200 reply for ONLINE / WATCH / STATS with a body of `len` bytes.
pub fn ok_head(len: usize) -> Vec<u8> {
    format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len}\r\n\r\n")
        .into_bytes()
}

/// A 200 reply for ONLINE / WATCH / STATS.
pub fn ok_text(body: &[u8]) -> Vec<u8> {
    let mut out = ok_head(body.len());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::{scan, Scan};

    fn parse(buf: &[u8]) -> Parsed {
        let Scan::Found(m) = scan(buf, b"identifier", 0) else {
            panic!("no marker")
        };
        Parsed::from_marker(&m)
    }

    #[test]
    fn targets_limiters_and_login() {
        let p = parse(b"identifier=12345.678:abc,def,hgi,*bb,*aa,1234:*cc,*aa\n");
        let t: Vec<String> = p
            .targets
            .iter()
            .map(|(c, i)| format!("{}:{i}", c.as_ref().map_or("now".into(), |c| c.to_string())))
            .collect();
        assert_eq!(t, ["12345.678:abc", "now:def", "now:hgi"]);
        assert_eq!(p.describe(), "parsed IDs; limiters are (aa, bb)");
        let p = parse(b"identifier=user:pw@user_a\n");
        assert_eq!(p.describe(), "parsed IDs; login is \"user\"");
        assert_eq!(p.creds(), Some(("user", &b"pw"[..])));
        let p = parse(b"identifier=0:pw@a\n");
        assert_eq!(p.creds(), None);
    }

    #[test]
    fn body_after_first_blank_line() {
        assert_eq!(body_of(b"X: y\r\n\r\n\"aaa\""), Some(&b"\"aaa\""[..]));
        assert_eq!(
            body_of(b"identifier=a\n\ndata\n\nmore"),
            Some(&b"data\n\nmore"[..])
        );
        assert_eq!(body_of(b"a\r\n\r\n[1,\n\n2]"), Some(&b"[1,\n\n2]"[..]));
        assert_eq!(body_of(b"a\n\r\nx"), Some(&b"x"[..]));
        assert_eq!(body_of(b"a\r\nb\r\n"), None);
        assert_eq!(body_of(b"a\r\n\r\n"), Some(&b""[..]));
        assert_eq!(body_of(b""), None);
    }

    #[test]
    fn forbidden_bytes() {
        let r = forbidden(&AuthError::UnknownLogin("unk".into()));
        assert_eq!(
            r,
            b"HTTP/1.0 403 Access Deined\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\r\nunknown login: unk\n"
        );
        let r = forbidden(&AuthError::InvalidPassword("user".into()));
        assert!(r.starts_with(
            b"HTTP/1.0 403 Access Deined\r\nContent-Type: text/plain\r\nContent-Length: 33\r\n"
        ));
    }
}
