//! The Realplexor wire format as a client sees it: requests for both lines and parsers
//! for what comes back (spec 4.4, 4.5, 6.2, 7.3, 7.4).
//!
//! Structure: pure functions over byte slices; `Block { ids: [(id, cursor)], data }` is
//! one message of a WAIT response (or one SSE event / WebSocket message, `parse_message`). Cursors are compared as exact decimals (spec 5.3).
//!
//! Uses: serde_json (the data response body is JSON when the payloads are).

use std::cmp::Ordering;

/// The end of the header block every registered WAIT connection receives (spec 4.4).
pub const HEADER_END: &[u8] = b"\r\n\r\n \r\n";

/// A browser-like long-poll: `GET /?identifier=[cursor:]id,...&ncrnd=N`.
pub fn wait_request(pairs: &[(Option<&str>, &str)], ncrnd: u64) -> Vec<u8> {
    let mut list = String::new();
    for (i, (cursor, id)) in pairs.iter().enumerate() {
        if i > 0 {
            list.push(',');
        }
        if let Some(c) = cursor {
            list.push_str(c);
            list.push(':');
        }
        list.push_str(id);
    }
    format!(
        "GET /?identifier={list}&ncrnd={ncrnd} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Accept: */*\r\n\r\n"
    )
    .into_bytes()
}

/// A push as the PHP client sends it (then half-closes): `X-Realplexor: identifier=...`.
pub fn push_request(ids: &[&str], body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\
         X-Realplexor: identifier={}\r\n\r\n",
        body.len(),
        ids.join(",")
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// The same push over the HTTP API (issue 15): `POST /pub?identifier=...` on a keep-alive
/// connection, answered by a JSON reply.
pub fn http_push_request(ids: &[&str], body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST /pub?identifier={} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
        ids.join(","),
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// The status code of an HTTP reply.
pub fn http_status(reply: &[u8]) -> Option<u16> {
    let line = reply.split(|&c| c == b'\r').next()?;
    std::str::from_utf8(line)
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

/// An aux command (`online ch_`, `watch 12 ch_`) as the PHP client sends it.
pub fn command_request(cmd: &str) -> Vec<u8> {
    let body = format!("{cmd}\n");
    format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\
         X-Realplexor: identifier=\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Why a response could not be understood.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    NoHeader,
    BadBody(String),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::NoHeader => f.write_str("no header block"),
            ParseError::BadBody(e) => write!(f, "bad body: {e}"),
        }
    }
}

/// One message of a WAIT data response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub ids: Vec<(String, String)>,
    /// The payload as JSON text (our payloads are JSON strings).
    pub data: String,
}

impl Block {
    /// The block's cursor: the smallest of its ids' cursors.
    pub fn cursor(&self) -> Option<&str> {
        self.ids
            .iter()
            .map(|(_, c)| c.as_str())
            .min_by(|a, b| cmp_cursor(a, b))
    }
}

/// Parses a complete WAIT response: the header block, then nothing (timeout, spec 4.7)
/// or the JSON array of blocks (spec 4.5).
pub fn parse_wait_response(bytes: &[u8]) -> Result<Vec<Block>, ParseError> {
    let end = crate::net::find(bytes, HEADER_END).ok_or(ParseError::NoHeader)?;
    let body = bytes.get(end + HEADER_END.len()..).unwrap_or_default();
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ParseError::BadBody(e.to_string()))?;
    let arr = v
        .as_array()
        .ok_or_else(|| ParseError::BadBody("not an array".into()))?;
    arr.iter().map(block_of).collect()
}

/// One message object `{"ids": {"id": "cursor", ...}, "data": ...}` (an element of a WAIT
/// response's array, or a whole SSE event / WebSocket message).
pub fn block_of(b: &serde_json::Value) -> Result<Block, ParseError> {
    let ids = b
        .get("ids")
        .and_then(|i| i.as_object())
        .ok_or_else(|| ParseError::BadBody("block without ids".into()))?;
    let mut pairs = Vec::with_capacity(ids.len());
    for (id, c) in ids {
        let c = c
            .as_str()
            .ok_or_else(|| ParseError::BadBody("cursor is not a string".into()))?;
        pairs.push((id.clone(), c.to_string()));
    }
    let data = b
        .get("data")
        .ok_or_else(|| ParseError::BadBody("block without data".into()))?;
    Ok(Block {
        ids: pairs,
        data: data.to_string(),
    })
}

/// One streamed message (SSE event data, WebSocket text) as a `Block`.
pub fn parse_message(bytes: &[u8]) -> Result<Block, ParseError> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ParseError::BadBody(e.to_string()))?;
    block_of(&v)
}

/// The body of an IN reply (`HTTP/1.0 200 OK ... \r\n\r\n<body>`), if it has one.
pub fn in_reply_body(bytes: &[u8]) -> Option<&[u8]> {
    let p = crate::net::find(bytes, b"\r\n\r\n")?;
    bytes.get(p + 4..)
}

/// ONLINE body lines `<id> <n>`.
pub fn parse_online(body: &[u8]) -> Vec<(String, u32)> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| {
            let (id, n) = l.split_once(' ')?;
            Some((id.to_string(), n.trim().parse().ok()?))
        })
        .collect()
}

/// One WATCH event line `<online|offline|FAKE> <pos>:<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: String,
    pub pos: u64,
    pub id: String,
}

/// WATCH body lines.
pub fn parse_watch(body: &[u8]) -> Vec<Event> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| {
            let (kind, rest) = l.split_once(' ')?;
            let (pos, id) = rest.split_once(':')?;
            Some(Event {
                kind: kind.to_string(),
                pos: pos.trim().parse().ok()?,
                id: id.to_string(),
            })
        })
        .collect()
}

/// Compares two cursors `digits[.digits]` as exact decimals; malformed ones sort first.
pub fn cmp_cursor(a: &str, b: &str) -> Ordering {
    fn split(s: &str) -> (&str, &str) {
        let (i, f) = s.split_once('.').unwrap_or((s, ""));
        (i.trim_start_matches('0'), f.trim_end_matches('0'))
    }
    let (ai, af) = split(a);
    let (bi, bf) = split(b);
    ai.len()
        .cmp(&bi.len())
        .then_with(|| ai.cmp(bi))
        .then_with(|| af.cmp(bf))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HDR: &str = "HTTP/1.1 200 OK\r\nConnection: close\r\n\
        Cache-Control: no-store, no-cache, must-revalidate\r\n\
        Expires: Mon, 26 Jul 1997 05:00:00 GMT\r\n\
        Content-Type: text/javascript; charset=utf-8\r\n\r\n \r\n";

    #[test]
    fn requests() {
        assert_eq!(
            wait_request(&[(None, "a"), (Some("12.5"), "b")], 7),
            b"GET /?identifier=a,12.5:b&ncrnd=7 HTTP/1.1\r\nHost: 127.0.0.1\r\n\
              Accept: */*\r\n\r\n"
                .to_vec()
        );
        let p = push_request(&["x", "y"], b"\"hi\"");
        assert!(p.ends_with(b"Content-Length: 4\r\nX-Realplexor: identifier=x,y\r\n\r\n\"hi\""));
        assert!(command_request("online ch_").ends_with(b"identifier=\r\n\r\nonline ch_\n"));
    }

    #[test]
    fn wait_response_timeout_and_data() {
        assert_eq!(parse_wait_response(HDR.as_bytes()), Ok(vec![]));
        assert_eq!(
            parse_wait_response(b"HTTP/1.1 200 OK\r\n"),
            Err(ParseError::NoHeader)
        );
        let full = format!(
            "{HDR}[\n  {{\n    \"ids\": {{ \"a\": \"15\", \"b\": \"1.5\" }},\n    \"data\": \"aaa\"\n  }},\n  \
             {{\n    \"ids\": {{ \"a\": \"16\" }},\n    \"data\":\n{{\"k\":\n1}}\n  }}\n]"
        );
        let blocks = parse_wait_response(full.as_bytes()).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].data, "\"aaa\"");
        assert_eq!(blocks[0].cursor(), Some("1.5"));
        assert_eq!(blocks[1].ids, vec![("a".to_string(), "16".to_string())]);
        assert_eq!(blocks[1].data, "{\"k\":1}");
        let bad = format!("{HDR}[\n  {{\n    \"data\": 1\n  }}\n]");
        assert!(matches!(
            parse_wait_response(bad.as_bytes()),
            Err(ParseError::BadBody(_))
        ));
        let truncated = format!("{HDR}[\n  {{");
        assert!(parse_wait_response(truncated.as_bytes()).is_err());
    }

    #[test]
    fn streamed_messages() {
        let b =
            parse_message(b"{\"ids\": {\"a\": \"15\", \"b\": \"9\"}, \"data\": \"x\"}").unwrap();
        assert_eq!(b.data, "\"x\"");
        assert_eq!(b.cursor(), Some("9"));
        assert!(parse_message(b"{\"ids\": {}}").is_err());
        assert!(parse_message(b"[{\"ids\": {}, \"data\": 1}]").is_err());
        assert!(parse_message(b"{\"ids\": {\"a\": 1}, \"data\": 1}").is_err());
        assert!(parse_message(b"\xff").is_err());
    }

    #[test]
    fn aux_bodies() {
        let r = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nabc 0\ndef 1\n";
        let body = in_reply_body(r).unwrap();
        assert_eq!(
            parse_online(body),
            vec![("abc".to_string(), 0), ("def".to_string(), 1)]
        );
        assert_eq!(parse_online(b""), vec![]);
        let w = parse_watch(b"online 10:abc\noffline 11:d_e\nFAKE 10:FAKE\ngarbage\n");
        assert_eq!(w.len(), 3);
        assert_eq!(
            w[1],
            Event {
                kind: "offline".into(),
                pos: 11,
                id: "d_e".into()
            }
        );
    }

    #[test]
    fn cursor_order() {
        use Ordering::*;
        assert_eq!(cmp_cursor("15", "9"), Greater);
        assert_eq!(cmp_cursor("1.50", "1.5"), Equal);
        assert_eq!(cmp_cursor("0010", "10.0"), Equal);
        assert_eq!(
            cmp_cursor("1795400390.30520000100000", "1795400390.3052000009"),
            Greater
        );
        assert_eq!(cmp_cursor("1.05", "1.5"), Less);
        assert_eq!(cmp_cursor("0", "0.000001"), Less);
    }
}
