//! One HTTP API request head (through httparse) to an owned `Request`, with the rules that
//! keep a keep-alive connection's request boundaries unambiguous:
//!
//! * the body length is `Content-Length` or nothing; two `Content-Length` headers, or one
//!   with `Transfer-Encoding`, are a 400 and the connection closes (request smuggling);
//! * `Transfer-Encoding` alone (chunked) is a 501 and the connection closes (its end could
//!   not be found);
//! * HTTP/1.1 keeps the connection unless `Connection: close`; HTTP/1.0 closes unless
//!   `Connection: keep-alive`.
//!
//! Structure: `parse(buf) -> Parse { Partial | Bad { status, why } | Done(Request) }`;
//! `Request` holds only what the handlers need (owned, so the connection's buffer can be
//! consumed while it is served). `query_param` decodes one query parameter.
//! Uses: nothing internal.

/// Headers a request may carry.
const MAX_HEADERS: usize = 64;
/// Longest head accepted (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Other,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Pub,
    Online,
    Watch,
    Metrics,
    Health,
    StatsJson,
    NotFound,
}

impl Endpoint {
    fn of(path: &str) -> Endpoint {
        match path {
            "/pub" => Endpoint::Pub,
            "/online" => Endpoint::Online,
            "/watch" => Endpoint::Watch,
            "/metrics" => Endpoint::Metrics,
            "/health" => Endpoint::Health,
            "/stats.json" => Endpoint::StatsJson,
            _ => Endpoint::NotFound,
        }
    }
}

/// The `Authorization` header, as far as the API understands it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Basic {
    None,
    Creds(String, Vec<u8>),
    /// An Authorization header that is not valid `Basic base64(login:password)`.
    Malformed,
}

#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    pub endpoint: Endpoint,
    /// The request target as sent (for the log).
    pub target: String,
    /// The raw query (after `?`), empty when none.
    pub query: String,
    pub keep_alive: bool,
    /// Bytes of the head, up to and including its blank line.
    pub head_len: usize,
    /// `Content-Length`, None when absent.
    pub content_length: Option<usize>,
    pub basic: Basic,
}

impl Request {
    /// Head plus body: where the next pipelined request starts.
    pub fn total_len(&self) -> usize {
        self.head_len
            .saturating_add(self.content_length.unwrap_or(0))
    }
}

#[derive(Debug)]
pub enum Parse {
    /// The head has not fully arrived.
    Partial,
    /// A request that cannot be served; the connection closes after the reply.
    Bad {
        status: u16,
        why: String,
    },
    Done(Request),
}

fn bad(status: u16, why: impl Into<String>) -> Parse {
    Parse::Bad {
        status,
        why: why.into(),
    }
}

/// Parses the head at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parse {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEAD {
                bad(431, format!("request head over {MAX_HEAD} bytes"))
            } else {
                Parse::Partial
            };
        }
        Err(httparse::Error::TooManyHeaders) => {
            return bad(431, format!("more than {MAX_HEADERS} headers"));
        }
        Err(e) => return bad(400, format!("malformed request: {e}")),
    };
    if head_len > MAX_HEAD {
        return bad(431, format!("request head over {MAX_HEAD} bytes"));
    }
    let method = match req.method.unwrap_or("") {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        _ => Method::Other,
    };
    let target = req.path.unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let http11 = req.version == Some(1);
    let mut content_length: Option<usize> = None;
    let mut lengths = 0;
    let mut transfer_encoding = false;
    let mut close = false;
    let mut keep = false;
    let mut basic = Basic::None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("Content-Length") {
            lengths += 1;
            let v = trim(h.value);
            if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
                return bad(400, "invalid Content-Length");
            }
            let n = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<usize>().ok());
            let Some(n) = n else {
                return bad(400, "invalid Content-Length");
            };
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("Transfer-Encoding") {
            transfer_encoding = true;
        } else if name.eq_ignore_ascii_case("Connection") {
            for token in h.value.split(|&c| c == b',') {
                let t = trim(token);
                close |= t.eq_ignore_ascii_case(b"close");
                keep |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("Authorization") {
            basic = parse_basic(h.value);
        }
    }
    if lengths > 1 {
        return bad(400, "more than one Content-Length header");
    }
    if transfer_encoding && lengths > 0 {
        return bad(400, "both Content-Length and Transfer-Encoding");
    }
    if transfer_encoding {
        return bad(
            501,
            "Transfer-Encoding is not supported: send the body with a Content-Length",
        );
    }
    Parse::Done(Request {
        method,
        endpoint: Endpoint::of(path),
        target: target.to_owned(),
        query: query.to_owned(),
        keep_alive: if http11 { !close } else { keep && !close },
        head_len,
        content_length,
        basic,
    })
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().take_while(|c| c.is_ascii_whitespace()).count();
    let v = v.get(start..).unwrap_or_default();
    let end = v.len()
        - v.iter()
            .rev()
            .take_while(|c| c.is_ascii_whitespace())
            .count();
    v.get(..end).unwrap_or_default()
}

/// `Basic base64(login:password)`.
fn parse_basic(value: &[u8]) -> Basic {
    let v = trim(value);
    let Some(scheme) = v.get(..6) else {
        return Basic::Malformed;
    };
    if !scheme.eq_ignore_ascii_case(b"Basic ") {
        return Basic::Malformed;
    }
    let Some(raw) = base64_decode(trim(v.get(6..).unwrap_or_default())) else {
        return Basic::Malformed;
    };
    let Some(colon) = raw.iter().position(|&c| c == b':') else {
        return Basic::Malformed;
    };
    let login = raw.get(..colon).unwrap_or_default();
    let password = raw.get(colon + 1..).unwrap_or_default();
    match std::str::from_utf8(login) {
        Ok(l) if !l.is_empty() => Basic::Creds(l.to_owned(), password.to_vec()),
        _ => Basic::Malformed,
    }
}

/// Standard base64 with padding (RFC 4648), as `Authorization: Basic` uses (the strict
/// decoder the WebSocket handshake uses).
fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![0u8; s.len() / 4 * 3];
    let n = crate::base64::decode(s, &mut out)?;
    out.truncate(n);
    Some(out)
}

/// The first value of query parameter `name`, percent-decoded (`+` is a space).
pub fn query_param(query: &str, name: &str) -> Option<Vec<u8>> {
    crate::http::query_param(query.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(s: &str) -> Request {
        match parse(s.as_bytes()) {
            Parse::Done(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn status(s: &str) -> u16 {
        match parse(s.as_bytes()) {
            Parse::Bad { status, .. } => status,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn heads() {
        let r = done("POST /pub?identifier=a,b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
        assert_eq!(r.endpoint, Endpoint::Pub);
        assert_eq!(r.method, Method::Post);
        assert_eq!(r.query, "identifier=a,b");
        assert!(r.keep_alive);
        assert_eq!(r.content_length, Some(3));
        assert_eq!(r.total_len(), r.head_len + 3);
        assert!(!done("GET /health HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!done("GET /health HTTP/1.0\r\n\r\n").keep_alive);
        assert!(done("GET /health HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert_eq!(
            done("GET /nope HTTP/1.1\r\n\r\n").endpoint,
            Endpoint::NotFound
        );
        assert!(matches!(parse(b"GET /health HTTP/1.1\r\n"), Parse::Partial));
    }

    #[test]
    fn smuggling_and_lengths() {
        assert_eq!(
            status("POST /pub HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST /pub HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST /pub HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            501
        );
        assert_eq!(
            status("POST /pub HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            400
        );
        assert_eq!(
            status("POST /pub HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            400
        );
        assert_eq!(status("POST /pub HTTP/1.1\r\nBad Header\r\n\r\n"), 400);
    }

    #[test]
    fn basic_auth() {
        // "user:pa:ss" -> dXNlcjpwYTpzcw==
        let r = done("GET /online HTTP/1.1\r\nAuthorization: Basic dXNlcjpwYTpzcw==\r\n\r\n");
        assert_eq!(r.basic, Basic::Creds("user".into(), b"pa:ss".to_vec()));
        let r = done("GET /online HTTP/1.1\r\nAuthorization: Bearer x\r\n\r\n");
        assert_eq!(r.basic, Basic::Malformed);
        let r = done("GET /online HTTP/1.1\r\nAuthorization: Basic !!!\r\n\r\n");
        assert_eq!(r.basic, Basic::Malformed);
        assert_eq!(base64_decode(b"YWJj").as_deref(), Some(&b"abc"[..]));
        assert_eq!(base64_decode(b"YWI=").as_deref(), Some(&b"ab"[..]));
        assert_eq!(base64_decode(b"YQ==").as_deref(), Some(&b"a"[..]));
    }

    #[test]
    fn query() {
        assert_eq!(
            query_param("a=1&identifier=x%2Cy&b", "identifier").as_deref(),
            Some(&b"x,y"[..])
        );
        assert_eq!(
            query_param("counters", "counters").as_deref(),
            Some(&b""[..])
        );
        assert_eq!(query_param("a=%zz%4", "a").as_deref(), Some(&b"%zz%4"[..]));
        assert_eq!(query_param("a=1", "b"), None);
    }

    #[test]
    fn hostile_heads_never_panic() {
        let seed = b"POST /pub?identifier=a HTTP/1.1\r\nContent-Length: 12\r\nAuthorization: Basic dXNlcjpwYTpzcw==\r\nConnection: close\r\n\r\n";
        crate::testutil::one_byte_mutants(seed, 0x2545_f491_4f6c_dd1d, 20_000, |v, _| {
            let _ = parse(v);
            let _ = crate::http::query_param(v, b"a");
            let _ = base64_decode(v);
        });
    }
}
