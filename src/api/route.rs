//! Which protocol a new IN connection speaks, decided from its first bytes (its request
//! line), so that the original protocol keeps its exact bytes:
//!
//! * a request line whose path is one of the API's (`/pub`, `/online`, `/watch`,
//!   `/metrics`, `/health`, `/stats.json`; any method, so a wrong one gets its 405) is the
//!   HTTP API;
//! * a `GET`/`HEAD` of another path but `/` whose complete head holds no `identifier=`
//!   marker is the HTTP API too (it gets a 404: the original would have waited for a
//!   half-close that an HTTP client never sends);
//! * everything else (`POST /` as the PHP and Python clients send, bare `identifier=` lines,
//!   raw commands, a marker anywhere) is the original protocol, processed at half-close.
//!
//! Structure: `classify(buf, ident, limit) -> Route`; `NotYet` asks for more bytes (at
//! EOF, or past `limit` bytes, the caller takes it as `Legacy`).
//! Uses: ident.

use crate::ident::{self, Scan};

/// The API's paths, as they appear before any `?`.
pub const PATHS: &[&str] = &[
    "/pub",
    "/online",
    "/watch",
    "/metrics",
    "/health",
    "/stats.json",
];

/// Longest path worth waiting for (the longest API path, plus room).
const PATH_WAIT: usize = 32;
/// Longest method token worth waiting for.
const METHOD_WAIT: usize = 16;
/// Longest head of an unknown-path GET worth waiting for before calling it the original's.
const HEAD_WAIT: usize = 4096;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Not decidable from these bytes yet.
    NotYet,
    /// The original protocol (one push per connection, processed at half-close).
    Legacy,
    /// The HTTP API (keep-alive, Content-Length bodies).
    Api,
}

/// Decides the protocol of a connection whose first bytes are `buf`. `limit` bounds how
/// long a decision may wait (IN_MAXLEN: the original's overflow rule must not be delayed).
pub fn classify(buf: &[u8], ident: &[u8], limit: usize) -> Route {
    let method_len = buf.iter().take_while(|c| c.is_ascii_uppercase()).count();
    let Some(&after_method) = buf.get(method_len) else {
        return if buf.len() <= METHOD_WAIT.min(limit) {
            Route::NotYet
        } else {
            Route::Legacy
        };
    };
    if method_len == 0 || after_method != b' ' {
        return Route::Legacy;
    }
    match buf.get(method_len + 1) {
        None => return Route::NotYet,
        Some(b'/') => {}
        Some(_) => return Route::Legacy,
    }
    let path_start = method_len + 1;
    let rest = buf.get(path_start..).unwrap_or_default();
    let path_len = rest
        .iter()
        .take_while(|&&c| !matches!(c, b'?' | b' ' | b'\r' | b'\n' | b'\t'))
        .count();
    let path = rest.get(..path_len).unwrap_or_default();
    if path_len == rest.len() {
        // The path has not ended yet: wait while it may still become an API path.
        let maybe_api = PATHS.iter().any(|p| p.as_bytes().starts_with(path));
        return if maybe_api && path_len <= PATH_WAIT.min(limit) {
            Route::NotYet
        } else {
            unknown_path(buf, method_len, ident, limit)
        };
    }
    if PATHS.iter().any(|p| p.as_bytes() == path) {
        return Route::Api;
    }
    if path == b"/" {
        return Route::Legacy;
    }
    unknown_path(buf, method_len, ident, limit)
}

/// A path that is neither `/` nor the API's: a GET/HEAD without a marker in its head is
/// the API's (404); anything else is the original protocol.
fn unknown_path(buf: &[u8], method_len: usize, ident: &[u8], limit: usize) -> Route {
    let method = buf.get(..method_len).unwrap_or_default();
    if method != b"GET" && method != b"HEAD" {
        return Route::Legacy;
    }
    if matches!(ident::scan(buf, ident, 0), Scan::Found(_)) {
        return Route::Legacy;
    }
    if head_complete(buf) {
        return Route::Api;
    }
    if buf.len() > HEAD_WAIT.min(limit) {
        Route::Legacy
    } else {
        Route::NotYet
    }
}

/// Whether `buf` holds a blank line (`\n\n` or `\n\r\n`), the end of an HTTP head.
fn head_complete(buf: &[u8]) -> bool {
    buf.windows(2).any(|w| w == b"\n\n") || buf.windows(3).any(|w| w == b"\n\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Route {
        classify(s.as_bytes(), b"identifier", 1 << 20)
    }

    #[test]
    fn api_paths_by_request_line() {
        assert_eq!(c("POST /pub?identifier=a HTTP/1.1\r\n"), Route::Api);
        assert_eq!(c("POST /pub HTTP/1.1\r\n"), Route::Api);
        assert_eq!(c("GET /metrics HTTP/1.1\r\n"), Route::Api);
        assert_eq!(c("DELETE /online "), Route::Api);
        assert_eq!(c("GET /stats.json?x"), Route::Api);
        assert_eq!(c("POST /pu"), Route::NotYet);
        assert_eq!(c("PO"), Route::NotYet);
        assert_eq!(c("GET /metricsx HTTP/1.1\r\n\r\n"), Route::Api);
    }

    #[test]
    fn the_original_protocol_stays() {
        assert_eq!(c("POST / HTTP/1.1\r\n"), Route::Legacy);
        assert_eq!(c("POST /"), Route::NotYet);
        assert_eq!(c("X-Realplexor: identifier=a\r\n\r\nx"), Route::Legacy);
        assert_eq!(c("identifier=abc\n"), Route::Legacy);
        assert_eq!(c("ONLINE"), Route::NotYet);
        assert_eq!(c("ONLINE\n"), Route::Legacy);
        assert_eq!(c("online"), Route::Legacy);
        assert_eq!(c("\"data\""), Route::Legacy);
        assert_eq!(c("POST /x HTTP/1.1\r\n\r\n"), Route::Legacy);
        assert_eq!(c("GET /?identifier=a HTTP/1.1\r\n"), Route::Legacy);
        assert_eq!(c("GET /x?identifier=a HTTP/1.1\r\n"), Route::Legacy);
        assert_eq!(
            c("GET /x HTTP/1.1\r\nX-Realplexor: identifier=a\r\n\r\n"),
            Route::Legacy
        );
        assert_eq!(c("GET /x HTTP/1.1\r\nHost: a\r\n"), Route::NotYet);
        assert_eq!(c("GET /x HTTP/1.1\r\nHost: a\r\n\r\n"), Route::Api);
        assert_eq!(
            classify(b"GET /x HTTP/1.1\r\nHost: a\r\n", b"identifier", 10),
            Route::Legacy
        );
    }

    #[test]
    fn hostile_inputs_never_panic() {
        let seed = b"GET /stats.json?identifier=a HTTP/1.1\r\nHost: x\r\n\r\n";
        crate::testutil::one_byte_mutants(seed, 0x9e37_79b9_7f4a_7c15, 20_000, |v, x| {
            let _ = classify(v, b"identifier", (x >> 40) as usize % 100);
        });
    }
}
