//! HTTP API replies: the status line, the headers every reply carries, errors that say
//! why in their body, and JSON text for ids and cursors.
//!
//! Structure: `Reply { status, content_type, body, extra, close }` rendered by `to_bytes`;
//! `error(status, why)` builds the plain-text errors; `json_str` appends a JSON string.
//! Every reply has a `Content-Length`; a reply that ends the connection says
//! `Connection: close`, one that keeps it says `Connection: keep-alive` (HTTP/1.0 clients
//! need it to know).
//! Uses: nothing internal (serde_json for string escaping).

/// The realm of the Basic challenge.
pub const REALM: &str = "realplexor";

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Extra header lines, each ending with CRLF.
    pub extra: String,
    /// The connection closes after this reply (whatever the request asked).
    pub close: bool,
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

impl Reply {
    pub fn ok(content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status: 200,
            content_type,
            body,
            extra: String::new(),
            close: false,
        }
    }

    /// No reply yet: it is sent later (cluster mode's `POST /pub`, once Redis has the push).
    /// Marked by status 0, which is never written.
    pub fn deferred() -> Reply {
        Reply {
            status: 0,
            content_type: "",
            body: Vec::new(),
            extra: String::new(),
            close: false,
        }
    }

    pub fn is_deferred(&self) -> bool {
        self.status == 0
    }

    pub fn json(body: Vec<u8>) -> Reply {
        Reply::ok("application/json", body)
    }

    /// A plain-text reply whose body is `why` and a newline.
    pub fn error(status: u16, why: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain",
            body: format!("{why}\n").into_bytes(),
            extra: String::new(),
            close: false,
        }
    }

    /// A 401 with the Basic challenge.
    pub fn unauthorized(why: &str) -> Reply {
        let mut r = Reply::error(401, why);
        r.extra = format!("WWW-Authenticate: Basic realm=\"{REALM}\"\r\n");
        r
    }

    /// A 405 naming the allowed methods.
    pub fn method_not_allowed(allow: &str) -> Reply {
        let mut r = Reply::error(405, &format!("method not allowed: use {allow}"));
        r.extra = format!("Allow: {allow}\r\n");
        r
    }

    pub fn closing(mut self) -> Reply {
        self.close = true;
        self
    }

    /// The reply's bytes; `keep_alive`: the request asked to keep the connection;
    /// `head_only`: a HEAD request (headers as for GET, no body).
    pub fn to_bytes(&self, keep_alive: bool, head_only: bool) -> Vec<u8> {
        let keep = keep_alive && !self.close;
        let mut out = Vec::with_capacity(160 + self.body.len());
        out.extend_from_slice(
            format!(
                "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: {}\r\n\r\n",
                self.status,
                reason(self.status),
                self.content_type,
                self.body.len(),
                self.extra,
                if keep { "keep-alive" } else { "close" }
            )
            .as_bytes(),
        );
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }

    /// Whether the connection stays open after this reply.
    pub fn keeps(&self, keep_alive: bool) -> bool {
        keep_alive && !self.close
    }
}

/// Appends `s` as a JSON string.
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    // Serialising a &str cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        let r = Reply::json(b"{}".to_vec());
        assert_eq!(
            String::from_utf8(r.to_bytes(true, false)).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n{}"
        );
        let r = Reply::unauthorized("no credentials");
        let s = String::from_utf8(r.to_bytes(true, true)).unwrap();
        assert!(s.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
        assert!(s.contains("WWW-Authenticate: Basic realm=\"realplexor\"\r\n"));
        assert!(s.ends_with("Content-Length: 15\r\nWWW-Authenticate: Basic realm=\"realplexor\"\r\nConnection: keep-alive\r\n\r\n"));
        let r = Reply::error(400, "x").closing();
        assert!(!r.keeps(true));
        assert!(String::from_utf8(r.to_bytes(true, false))
            .unwrap()
            .contains("Connection: close\r\n"));
        let mut o = Vec::new();
        json_str(&mut o, "a\"b\n");
        assert_eq!(o, b"\"a\\\"b\\n\"");
    }
}
