//! HTTP/1.1 as the loadtest's `--api http` publisher speaks it: `POST /pub?identifier=..`
//! requests on keep-alive connections (pipelined), and the framing of the replies by their
//! `Content-Length`. Also the reply-head reader the SSE and WebSocket upgrades share.
//!
//! Structure: pure functions over byte slices. `parse_response` returns `Ok(None)` while a
//! reply is incomplete, the reply and the bytes it took when it is whole, and an error for
//! anything it cannot frame (no length, a length over the cap, a malformed head): never a
//! panic on server bytes.
//!
//! Uses: httparse.

/// The largest reply body accepted.
pub const MAX_BODY: usize = 1 << 20;

/// A publish: `POST /pub?identifier=id1,id2` with the body.
pub fn pub_request(ids: &[&str], body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST /pub?identifier={} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
        ids.join(","),
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// A reply's status line and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Header names lower-cased, values as sent (lossy UTF-8).
    pub headers: Vec<(String, String)>,
    /// Bytes the head took, blank line included.
    pub len: usize,
}

impl Head {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The reply head at the start of `buf`; `Ok(None)` until its blank line has arrived.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut hs = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut hs);
    match r.parse(buf) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(len)) => Ok(Some(Head {
            status: r.code.unwrap_or(0),
            headers: r
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect(),
            len,
        })),
        Err(e) => Err(format!("bad reply head: {e}")),
    }
}

/// One whole reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// The first whole reply in `buf` and the bytes it took.
pub fn parse_response(buf: &[u8]) -> Result<Option<(Response, usize)>, String> {
    let Some(head) = parse_head(buf)? else {
        return Ok(None);
    };
    if head
        .header("transfer-encoding")
        .is_some_and(|v| !v.trim().eq_ignore_ascii_case("identity"))
    {
        return Err("reply with a transfer encoding (only Content-Length is read)".into());
    }
    let len = match head.header("content-length") {
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| format!("bad Content-Length {v:?}"))?,
        // 1xx, 204 and 304 have no body.
        None if head.status < 200 || head.status == 204 || head.status == 304 => 0,
        None => return Err("reply without Content-Length on a keep-alive connection".into()),
    };
    if len > MAX_BODY {
        return Err(format!("reply body of {len} bytes"));
    }
    let Some(body) = buf.get(head.len..head.len + len) else {
        return Ok(None);
    };
    Ok(Some((
        Response {
            status: head.status,
            content_type: head.header("content-type").unwrap_or_default().to_string(),
            body: body.to_vec(),
        },
        head.len + len,
    )))
}

/// Whether a publish reply is the documented success: 200, JSON, `{"cursor": .., "ids": {..}}`.
pub fn pub_reply_ok(r: &Response) -> bool {
    if r.status != 200 || !r.content_type.starts_with("application/json") {
        return false;
    }
    serde_json::from_slice::<serde_json::Value>(&r.body)
        .ok()
        .is_some_and(|v| v.get("cursor").is_some() && v["ids"].is_object())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
        Content-Length: 36\r\n\r\n{\"cursor\": \"15\", \"ids\": {\"a\": \"15\"}}";

    #[test]
    fn request_bytes() {
        assert_eq!(
            pub_request(&["id1", "id2"], b"\"x\""),
            b"POST /pub?identifier=id1,id2 HTTP/1.1\r\nHost: 127.0.0.1\r\n\
              Content-Length: 3\r\n\r\n\"x\""
                .to_vec()
        );
    }

    #[test]
    fn pipelined_replies_split_anywhere() {
        let mut two = OK.to_vec();
        two.extend_from_slice(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\nno");
        let (r, n) = parse_response(&two).unwrap().unwrap();
        assert_eq!((r.status, n), (200, OK.len()));
        assert!(pub_reply_ok(&r), "{r:?}");
        let (r2, n2) = parse_response(&two[n..]).unwrap().unwrap();
        assert_eq!(
            (r2.status, r2.body.as_slice(), n + n2),
            (400, &b"no"[..], two.len())
        );
        assert!(!pub_reply_ok(&r2));
        for cut in 0..OK.len() {
            assert_eq!(parse_response(&OK[..cut]), Ok(None), "cut {cut}");
        }
    }

    #[test]
    fn unframeable_replies_are_errors() {
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
        let (r, _) = parse_response(b"HTTP/1.1 204 No Content\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.status, 204);
        let not_json = Response {
            status: 200,
            content_type: "application/json".into(),
            body: b"[1]".to_vec(),
        };
        assert!(!pub_reply_ok(&not_json));
    }

    #[test]
    fn head_headers_are_case_insensitive() {
        let h = parse_head(
            b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: abc\r\n\r\nrest",
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.status, h.len), (101, 63));
        assert_eq!(h.header("sec-websocket-accept"), Some("abc"));
        assert_eq!(parse_head(b"HTTP/1.1 101 Sw"), Ok(None));
    }
}
