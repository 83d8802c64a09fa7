//! The little real HTTP the server needs, through httparse: only when CORS is configured
//! does a WAIT request's head matter (its method and `Origin`); everything else about the
//! protocol is the original's raw-byte marker search (`ident`).
//!
//! Uses: nothing internal.

/// What the start of a request is.
#[derive(Debug, PartialEq, Eq)]
pub enum Head<'a> {
    /// An HTTP request head that has not fully arrived yet.
    Partial,
    /// Not an HTTP request (the original also serves bare `identifier=abc\n` lines).
    NotHttp,
    Complete {
        method: &'a str,
        origin: Option<&'a [u8]>,
        /// `Access-Control-Request-Headers` of a preflight.
        request_headers: Option<&'a [u8]>,
    },
}

const MAX_HEADERS: usize = 64;

pub fn parse_head(buf: &[u8]) -> Head<'_> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => Head::Partial,
        Ok(httparse::Status::Complete(_)) => {
            let find = |name: &str| {
                req.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| h.value)
            };
            Head::Complete {
                method: req.method.unwrap_or(""),
                origin: find("Origin"),
                request_headers: find("Access-Control-Request-Headers"),
            }
        }
        // Too many headers is still HTTP: treat it as a head without CORS information.
        Err(httparse::Error::TooManyHeaders) => Head::Complete {
            method: "",
            origin: None,
            request_headers: None,
        },
        Err(_) => Head::NotHttp,
    }
}

/// The CORS response headers for an allowed origin (each line ends with CRLF).
pub fn cors_headers(origin: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(128);
    h.extend_from_slice(b"Access-Control-Allow-Origin: ");
    h.extend_from_slice(origin);
    h.extend_from_slice(b"\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n");
    h
}

/// The answer to an OPTIONS preflight from an allowed origin.
pub fn preflight(origin: &[u8], request_headers: Option<&[u8]>) -> Vec<u8> {
    let mut r = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n".to_vec();
    r.extend_from_slice(&cors_headers(origin));
    r.extend_from_slice(b"Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n");
    if let Some(h) = request_headers.filter(|h| !h.is_empty()) {
        r.extend_from_slice(b"Access-Control-Allow-Headers: ");
        r.extend_from_slice(h);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"Access-Control-Max-Age: 86400\r\nContent-Length: 0\r\n\r\n");
    r
}

/// Whether `origin` is in ALLOWED_ORIGINS (`*` allows any).
pub fn origin_allowed(origin: &[u8], allowed: &[String]) -> bool {
    allowed.iter().any(|a| a == "*" || a.as_bytes() == origin)
}

/// Inserts extra header lines before the blank line that ends `reply`'s head.
pub fn with_headers(reply: &[u8], extra: &[u8]) -> Vec<u8> {
    let end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(reply.len(), |p| p + 2);
    let mut out = Vec::with_capacity(reply.len() + extra.len());
    out.extend_from_slice(reply.get(..end).unwrap_or_default());
    out.extend_from_slice(extra);
    out.extend_from_slice(reply.get(end..).unwrap_or_default());
    out
}

/// Whether the request's first line carries the query parameter `param` (`gap=1`) after
/// a `?` or `&` and before `&`, a space or the line's end: a client's opt-in to a
/// realplexor-only feature. Only the first line counts (a body or header never opts in);
/// clients put it before the identifier marker, so that it has arrived when the marker is
/// found.
pub fn query_flag(buf: &[u8], param: &[u8]) -> bool {
    let line_end = buf.iter().position(|&c| c == b'\n').unwrap_or(buf.len());
    let line = buf.get(..line_end).unwrap_or_default();
    if param.is_empty() {
        return false;
    }
    // Only the bytes after a `?` or `&` can start a parameter: compare there alone (a
    // comparison at every offset of a long identifier line cost a third of a worker's time).
    line.iter().enumerate().any(|(i, &sep)| {
        (sep == b'?' || sep == b'&')
            && line.get(i + 1..).is_some_and(|rest| {
                rest.starts_with(param)
                    && rest
                        .get(param.len())
                        .is_some_and(|&c| matches!(c, b'&' | b' ' | b'\r' | b'#'))
            })
    })
}

/// A final plain-text reply to a WAIT request that is refused (`status` such as
/// `400 Bad Request`), its length counted here.
pub fn refusal(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The query of the request line (the first line of `buf`), without its `?`.
pub fn request_query(buf: &[u8]) -> Option<&[u8]> {
    let line_end = buf.iter().position(|&c| c == b'\n').unwrap_or(buf.len());
    let target = buf.get(..line_end)?.split(|&c| c == b' ').nth(1)?;
    target.splitn(2, |&c| c == b'?').nth(1)
}

/// The first value of parameter `name` in `query`, percent-decoded (`+` is a space); a
/// parameter without `=` has the empty value.
pub fn query_param(query: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    query.split(|&c| c == b'&').find_map(|kv| {
        let mut it = kv.splitn(2, |&c| c == b'=');
        (it.next() == Some(name)).then(|| percent_decode(it.next().unwrap_or_default()))
    })
}

/// `%XX` escapes decoded and `+` read as a space; a malformed escape is kept as it is.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        let escaped = (c == b'%')
            .then(|| Some((hex(*s.get(i + 1)?)?, hex(*s.get(i + 2)?)?)))
            .flatten();
        match (c, escaped) {
            (_, Some((h, l))) => {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
            (b'+', None) => out.push(b' '),
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_flags() {
        let yes: [&[u8]; 4] = [
            b"GET /?gap=1&identifier=a HTTP/1.1\r\n",
            b"GET /?identifier=a&gap=1 HTTP/1.1\r\n",
            b"POST /x?a=b&gap=1&c HTTP/1.1\r\n",
            b"GET /?gap=1\r\n",
        ];
        for b in yes {
            assert!(query_flag(b, b"gap=1"), "{}", String::from_utf8_lossy(b));
        }
        let no: [&[u8]; 7] = [
            b"GET /?gap=10&identifier=a HTTP/1.1\r\n",
            b"GET /?xgap=1 HTTP/1.1\r\n",
            b"GET /gap=1 HTTP/1.1\r\n",
            b"GET /?identifier=a HTTP/1.1\r\nX: ?gap=1 \r\n",
            b"identifier=a\n",
            b"GET /?gap=1",
            b"",
        ];
        for b in no {
            assert!(!query_flag(b, b"gap=1"), "{}", String::from_utf8_lossy(b));
        }
        assert!(!query_flag(b"?&", b""));
    }

    #[test]
    fn heads() {
        assert_eq!(
            parse_head(b"GET /?identifier=a HTTP/1.1\r\nHost: x\r\n"),
            Head::Partial
        );
        assert_eq!(parse_head(b"identifier=abc\n"), Head::NotHttp);
        assert_eq!(parse_head(b"test 5\nidentifier=10:id5\n"), Head::NotHttp);
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\norigin: https://a.example\r\n\r\n"),
            Head::Complete {
                method: "GET",
                origin: Some(&b"https://a.example"[..]),
                request_headers: None
            }
        );
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(100));
        assert!(matches!(
            parse_head(many.as_bytes()),
            Head::Complete { origin: None, .. }
        ));
    }

    #[test]
    fn preflight_bytes() {
        let r = preflight(b"https://a", Some(b"content-type"));
        let s = String::from_utf8(r).unwrap();
        assert!(s.starts_with("HTTP/1.1 204 No Content\r\n"));
        assert!(s.contains("Access-Control-Allow-Origin: https://a\r\n"));
        assert!(s.contains("Access-Control-Allow-Headers: content-type\r\n"));
        assert!(s.ends_with("\r\n\r\n"));
        assert!(origin_allowed(b"https://a", &["*".into()]));
        assert!(!origin_allowed(b"https://b", &["https://a".into()]));
    }

    #[test]
    fn hostile_heads_never_panic() {
        let seed = b"OPTIONS /?identifier=a HTTP/1.1\r\nOrigin: o\r\nAccess-Control-Request-Headers: x\r\n\r\n";
        crate::testutil::one_byte_mutants(seed, 0x2545_f491_4f6c_dd1d, 20_000, |v, _| {
            let _ = parse_head(v);
        });
    }
}
