//! The WebSocket opening handshake, server side (RFC 6455 sections 4.2 and 4.4).
//!
//! Data shape: `check(head)` reads a request head (httparse) and says what it is:
//! `Partial`, `NotWebSocket` (no `Upgrade: websocket`: the long-poll / SSE path goes on),
//! `Upgrade { accept, origin }` (a valid version-13 upgrade), or `Reject(Reject)` (an
//! upgrade attempt that fails: 426 for a version we do not speak, 400 for the rest).
//! The reply builders append to a caller's `Vec<u8>`; `extra_headers` are whole header
//! lines, each ending in CRLF (the caller's CORS lines), or empty.
//! Uses: base64, the `sha1` and `httparse` crates.

use crate::base64;
use sha1::Digest as _;

/// RFC 6455 section 1.3: appended to the key before hashing.
pub const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version this server speaks.
pub const VERSION: &[u8] = b"13";

/// Length of a `Sec-WebSocket-Accept` value: base64 of a 20-byte SHA-1.
pub const ACCEPT_LEN: usize = 28;

const MAX_HEADERS: usize = 64;

/// Why an upgrade attempt is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// `Sec-WebSocket-Version` missing or not 13: `426 Upgrade Required`.
    Version,
    /// Anything else wrong with the upgrade request: `400 Bad Request`; the text says what.
    Bad(&'static str),
}

/// What a request head is, for the WAIT line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake<'a> {
    /// The head has not fully arrived.
    Partial,
    /// Not a WebSocket upgrade (no `Upgrade: websocket`), or not HTTP at all.
    NotWebSocket,
    /// A valid upgrade: send `switching_protocols(&accept, ...)`, then speak frames.
    Upgrade {
        accept: [u8; ACCEPT_LEN],
        /// The `Origin` header, for the caller's ALLOWED_ORIGINS check (browsers send it;
        /// CORS does not apply to WebSocket, so refusing a foreign origin is up to the caller).
        origin: Option<&'a [u8]>,
    },
    /// An upgrade attempt that must be refused with `reject_reply`.
    Reject(Reject),
}

/// Splits a header value on commas and tells whether one element, trimmed of blanks,
/// equals `token` (ASCII case-insensitive), as HTTP's `#token` lists are read.
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&c| c == b',')
        .any(|el| trim(el).eq_ignore_ascii_case(token))
}

fn trim(s: &[u8]) -> &[u8] {
    let is_ows = |c: &u8| *c == b' ' || *c == b'\t';
    let start = s.iter().position(|c| !is_ows(c)).unwrap_or(s.len());
    let end = s.iter().rposition(|c| !is_ows(c)).map_or(start, |p| p + 1);
    s.get(start..end).unwrap_or_default()
}

/// Reads a request head. Everything about it is checked here except the target and the
/// origin policy, which are the caller's (the `identifier=` marker is found as for
/// long-polling).
pub fn check(head: &[u8]) -> Handshake<'_> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Handshake::Partial,
        // More headers than anyone's browser sends: if it is an upgrade, it is a bad one.
        Err(httparse::Error::TooManyHeaders) => {
            return if upgrade_word_in(head) {
                Handshake::Reject(Reject::Bad("too many header lines"))
            } else {
                Handshake::NotWebSocket
            };
        }
        Err(_) => return Handshake::NotWebSocket,
    }
    let all = |name: &'static str| {
        req.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    if !all("Upgrade").any(|v| has_token(v, b"websocket")) {
        return Handshake::NotWebSocket;
    }
    if req.method != Some("GET") {
        return Handshake::Reject(Reject::Bad("a WebSocket upgrade must be a GET"));
    }
    if req.version != Some(1) {
        return Handshake::Reject(Reject::Bad("a WebSocket upgrade needs HTTP/1.1"));
    }
    if all("Host").count() != 1 {
        return Handshake::Reject(Reject::Bad("a WebSocket upgrade needs one Host header"));
    }
    if !all("Connection").any(|v| has_token(v, b"upgrade")) {
        return Handshake::Reject(Reject::Bad("Connection must contain the upgrade token"));
    }
    let mut versions = all("Sec-WebSocket-Version");
    match (versions.next(), versions.next()) {
        (Some(v), None) if trim(v) == VERSION => {}
        _ => return Handshake::Reject(Reject::Version),
    }
    let mut keys = all("Sec-WebSocket-Key");
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) => trim(k),
        (None, _) => return Handshake::Reject(Reject::Bad("Sec-WebSocket-Key is missing")),
        (Some(_), Some(_)) => {
            return Handshake::Reject(Reject::Bad("more than one Sec-WebSocket-Key"))
        }
    };
    let mut nonce = [0u8; 16];
    if base64::decode(key, &mut nonce) != Some(16) {
        return Handshake::Reject(Reject::Bad("Sec-WebSocket-Key must be 16 bytes in base64"));
    }
    let mut origins = all("Origin");
    let origin = origins.next();
    if origins.next().is_some() {
        return Handshake::Reject(Reject::Bad("more than one Origin header"));
    }
    Handshake::Upgrade {
        accept: accept_key(key),
        origin,
    }
}

/// Whether the raw bytes mention `websocket` at all (for heads httparse gave up on).
fn upgrade_word_in(head: &[u8]) -> bool {
    head.windows(9)
        .any(|w| w.eq_ignore_ascii_case(b"websocket"))
}

/// `Sec-WebSocket-Accept` for a key: base64(SHA-1(key + GUID)).
pub fn accept_key(key: &[u8]) -> [u8; ACCEPT_LEN] {
    let mut h = sha1::Sha1::new();
    h.update(key);
    h.update(GUID);
    let digest = h.finalize();
    let mut text = Vec::with_capacity(ACCEPT_LEN);
    base64::encode(&digest, &mut text);
    let mut out = [0u8; ACCEPT_LEN];
    for (o, c) in out.iter_mut().zip(&text) {
        *o = *c;
    }
    out
}

/// Appends the `101 Switching Protocols` reply. No subprotocol and no extension is
/// agreed: a client that asked for one sees none and decides for itself.
pub fn switching_protocols(accept: &[u8; ACCEPT_LEN], extra_headers: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(extra_headers);
    out.extend_from_slice(b"\r\n");
}

/// Appends the refusal for `why`, a complete response after which the caller closes:
/// `426 Upgrade Required` (with `Upgrade: websocket`, as RFC 7231 6.5.15 asks) or
/// `400 Bad Request`, both with `Sec-WebSocket-Version: 13` (RFC 6455 4.4) and a short
/// plain-text body saying what was wrong.
pub fn reject_reply(why: Reject, extra_headers: &[u8], out: &mut Vec<u8>) {
    let (status, body): (&[u8], &str) = match why {
        Reject::Version => (
            b"426 Upgrade Required\r\nUpgrade: websocket\r\nConnection: Upgrade, close",
            "Only WebSocket version 13 is supported",
        ),
        Reject::Bad(text) => (b"400 Bad Request\r\nConnection: close", text),
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status);
    out.extend_from_slice(
        b"\r\nSec-WebSocket-Version: 13\r\nContent-Type: text/plain; charset=utf-8\r\n",
    );
    out.extend_from_slice(extra_headers);
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice((body.len() + 1).to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body.as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const RFC_ACCEPT: &[u8; 28] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn head(lines: &[&str]) -> Vec<u8> {
        let mut s = String::from("GET /?identifier=abc HTTP/1.1\r\n");
        for l in lines {
            s.push_str(l);
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        s.into_bytes()
    }

    fn good() -> Vec<&'static str> {
        vec![
            "Host: server.example.com",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Origin: http://example.com",
            "Sec-WebSocket-Version: 13",
        ]
    }

    fn with(replace: &str, by: Option<&'static str>) -> Vec<u8> {
        let mut l = good();
        l.retain(|x| !x.starts_with(replace));
        l.extend(by);
        head(&l)
    }

    #[test]
    fn rfc_sample_key() {
        assert_eq!(&accept_key(RFC_KEY.as_bytes()), RFC_ACCEPT);
        let h = head(&good());
        match check(&h) {
            Handshake::Upgrade { accept, origin } => {
                assert_eq!(&accept, RFC_ACCEPT);
                assert_eq!(origin, Some(&b"http://example.com"[..]));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tokens_are_lists_and_case_insensitive() {
        let h = head(&[
            "host: h",
            "upgrade: h2c, WebSocket",
            "connection: keep-alive ,  UPGRADE",
            "sec-websocket-key:   dGhlIHNhbXBsZSBub25jZQ==  ",
            "sec-websocket-version: 13",
        ]);
        assert!(
            matches!(check(&h), Handshake::Upgrade { origin: None, accept } if &accept == RFC_ACCEPT)
        );
        assert!(has_token(b"a,\tb ,c", b"B"));
        assert!(!has_token(b"websockets", b"websocket"));
        assert!(!has_token(b"", b"upgrade"));
    }

    #[test]
    fn not_an_upgrade_goes_on_as_long_poll() {
        assert_eq!(check(b"GET / HTTP/1.1\r\nHost: h\r\n"), Handshake::Partial);
        assert_eq!(check(b"identifier=abc\n"), Handshake::NotWebSocket);
        assert_eq!(
            check(&with("Upgrade", Some("Upgrade: h2c"))),
            Handshake::NotWebSocket
        );
        assert_eq!(check(&with("Upgrade", None)), Handshake::NotWebSocket);
    }

    #[test]
    fn bad_versions_get_426() {
        for v in [
            None,
            Some("Sec-WebSocket-Version: 8"),
            Some("Sec-WebSocket-Version: 13, 8"),
        ] {
            assert_eq!(
                check(&with("Sec-WebSocket-Version", v)),
                Handshake::Reject(Reject::Version)
            );
        }
        let mut l = good();
        l.push("Sec-WebSocket-Version: 13");
        assert_eq!(check(&head(&l)), Handshake::Reject(Reject::Version));
    }

    #[test]
    fn bad_requests_get_400() {
        let bad = |h: &[u8]| matches!(check(h), Handshake::Reject(Reject::Bad(_)));
        for k in [
            None,
            Some("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ"),
            Some("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZXg="),
            Some("Sec-WebSocket-Key: !!!!IHNhbXBsZSBub25jZQ=="),
            Some("Sec-WebSocket-Key: "),
        ] {
            assert!(bad(&with("Sec-WebSocket-Key", k)), "{k:?}");
        }
        let mut two_keys = good();
        two_keys.push("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==");
        assert!(bad(&head(&two_keys)));
        assert!(bad(&with("Connection", Some("Connection: keep-alive"))));
        assert!(bad(&with("Connection", None)));
        assert!(bad(&with("Host", None)));
        let post = String::from_utf8(head(&good()))
            .unwrap()
            .replacen("GET", "POST", 1);
        assert!(bad(post.as_bytes()));
        let old = String::from_utf8(head(&good()))
            .unwrap()
            .replacen("HTTP/1.1", "HTTP/1.0", 1);
        assert!(bad(old.as_bytes()));
        let many = format!(
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\n{}\r\n",
            "X: y\r\n".repeat(100)
        );
        assert!(bad(many.as_bytes()));
    }

    #[test]
    fn reply_bytes() {
        let mut out = Vec::new();
        switching_protocols(RFC_ACCEPT, b"Access-Control-Allow-Origin: o\r\n", &mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
              Access-Control-Allow-Origin: o\r\n\r\n"
        );
        for (why, status) in [
            (Reject::Version, "HTTP/1.1 426 Upgrade Required\r\n"),
            (Reject::Bad("no key"), "HTTP/1.1 400 Bad Request\r\n"),
        ] {
            let mut out = Vec::new();
            reject_reply(why, b"", &mut out);
            let s = String::from_utf8(out).unwrap();
            assert!(s.starts_with(status), "{s}");
            assert!(s.contains("\r\nSec-WebSocket-Version: 13\r\n"));
            let (head, body) = s.split_once("\r\n\r\n").unwrap();
            assert!(head.contains(&format!("Content-Length: {}", body.len())));
        }
    }

    #[test]
    fn hostile_heads_never_panic() {
        let base = head(&good());
        let mut x = 0x853c_49e6_748f_ea9bu64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut v = base.clone();
            for k in 0..3 {
                let at = ((x >> (k * 16)) as usize) % v.len();
                v[at] = (x >> (k * 8 + 3)) as u8;
            }
            v.truncate((x >> 40) as usize % (v.len() + 1));
            if let Handshake::Reject(r) = check(&v) {
                let mut out = Vec::new();
                reject_reply(r, b"", &mut out);
            }
        }
    }
}
