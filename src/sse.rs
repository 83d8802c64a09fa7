//! Server-sent events (the WHATWG HTML standard, "Server-sent events") for the WAIT line:
//! the response head, the event encoding, and whether a request head asks for a stream.
//!
//! Data shape: every writer appends to a caller's `Vec<u8>`, so one encoded event can be
//! written to many listeners. An event is `id: ..\n`, `event: ..\n` (both optional), one
//! `data: ..\n` line per line of the data (split on CRLF, LF and CR, the three line ends
//! the browser's parser knows, so the browser sees the lines joined by LF), then a blank
//! line. Fields that cannot hold a line end (id, event type, comment) lose their CR and LF
//! bytes, and the id its NUL bytes (a browser ignores an id with NUL), rather than break
//! the stream. The head: like the long-poll reply head (`config::Config::wait_header`):
//! no `Server` header, but always `charset=utf-8`, because a browser decodes an event
//! stream as UTF-8 whatever the header says.
//! Uses: the `httparse` crate.

/// The media type a browser's `EventSource` asks for.
pub const MEDIA_TYPE: &[u8] = b"text/event-stream";

const MAX_HEADERS: usize = 64;

/// Appends the response head of an event stream: `200 OK`, no length (the body runs until
/// the connection closes), no caching, no proxy buffering (`X-Accel-Buffering: no` for
/// nginx). `extra_headers` are whole header lines ending in CRLF (the caller's CORS lines),
/// or empty.
pub fn response_head(extra_headers: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nCache-Control: no-cache\r\n\
          X-Accel-Buffering: no\r\nContent-Type: text/event-stream; charset=utf-8\r\n",
    );
    out.extend_from_slice(extra_headers);
    out.extend_from_slice(b"\r\n");
}

/// Appends `bytes` without the bytes `drop` names.
fn push_clean(bytes: &[u8], drop: &[u8], out: &mut Vec<u8>) {
    out.extend(bytes.iter().filter(|b| !drop.contains(b)));
}

/// Appends one event. `id` becomes the browser's `lastEventId` (and the `Last-Event-ID`
/// header when it reconnects); `event` the event type (`None` is the default `message`;
/// e.g. `Some(b"gap")` for a listener that missed messages); `data` is split into lines.
pub fn event(id: Option<&[u8]>, event: Option<&[u8]>, data: &[u8], out: &mut Vec<u8>) {
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        push_clean(id, b"\r\n\0", out);
        out.push(b'\n');
    }
    if let Some(event) = event {
        out.extend_from_slice(b"event: ");
        push_clean(event, b"\r\n", out);
        out.push(b'\n');
    }
    let mut rest = data;
    loop {
        let end = rest
            .iter()
            .position(|&c| c == b'\r' || c == b'\n')
            .unwrap_or(rest.len());
        // One space after the colon: the browser drops exactly one, so data that starts
        // with a space keeps it.
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(rest.get(..end).unwrap_or_default());
        out.push(b'\n');
        let skip = match (rest.get(end), rest.get(end + 1)) {
            (None, _) => break,
            (Some(b'\r'), Some(b'\n')) => 2,
            _ => 1,
        };
        rest = rest.get(end + skip..).unwrap_or_default();
    }
    out.push(b'\n');
}

/// Appends a comment line (`: text`), which the browser ignores: a keep-alive ping for
/// proxies and for noticing a dead peer.
pub fn comment(text: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b": ");
    push_clean(text, b"\r\n", out);
    out.push(b'\n');
}

/// Appends a `retry:` line: how long the browser waits before reconnecting, in ms.
pub fn retry(ms: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(b"retry: ");
    out.extend_from_slice(ms.to_string().as_bytes());
    out.push(b'\n');
}

/// What an event-stream request says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseRequest<'a> {
    /// The `Last-Event-ID` header (the id of the last event the browser saw before it
    /// reconnected), trimmed; the first one if there are several. Raw client bytes: the
    /// caller parses it (as cursors) and must not trust it.
    pub last_event_id: Option<&'a [u8]>,
}

/// Whether one `Accept` value lists `text/event-stream` (media types compare without case;
/// parameters such as `;q=0.9` are ignored).
pub fn accepts_event_stream(accept: &[u8]) -> bool {
    accept.split(|&c| c == b',').any(|range| {
        let media = range.split(|&c| c == b';').next().unwrap_or_default();
        trim(media).eq_ignore_ascii_case(MEDIA_TYPE)
    })
}

fn trim(s: &[u8]) -> &[u8] {
    let is_ows = |c: &u8| *c == b' ' || *c == b'\t';
    let start = s.iter().position(|c| !is_ows(c)).unwrap_or(s.len());
    let end = s.iter().rposition(|c| !is_ows(c)).map_or(start, |p| p + 1);
    s.get(start..end).unwrap_or_default()
}

/// `Some` when `head` is a complete HTTP request head with an `Accept` header that asks for
/// `text/event-stream`; `None` for anything else (partial heads included: ask again when
/// the head is complete).
pub fn sse_request(head: &[u8]) -> Option<SseRequest<'_>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    let named = |name: &'static str| {
        req.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    if !named("Accept").any(accepts_event_stream) {
        return None;
    }
    Some(SseRequest {
        last_event_id: named("Last-Event-ID").next().map(trim),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: Option<&str>, event_type: Option<&str>, data: &str) -> String {
        let mut out = Vec::new();
        event(
            id.map(str::as_bytes),
            event_type.map(str::as_bytes),
            data.as_bytes(),
            &mut out,
        );
        String::from_utf8(out).unwrap()
    }

    /// What a browser's event-stream parser makes of a stream: (type, data, last id) per
    /// dispatched event, following the standard's line-by-line steps.
    fn browser(stream: &str) -> Vec<(String, String, String)> {
        let (mut out, mut data, mut kind, mut last_id) =
            (Vec::new(), String::new(), String::new(), String::new());
        let norm = stream.replace("\r\n", "\n").replace('\r', "\n");
        for line in norm.split_inclusive('\n') {
            let Some(line) = line.strip_suffix('\n') else {
                break; // an unfinished line is not processed
            };
            if line.is_empty() {
                if !data.is_empty() {
                    data.pop();
                    let k = if kind.is_empty() {
                        "message".into()
                    } else {
                        kind.clone()
                    };
                    out.push((k, data.clone(), last_id.clone()));
                }
                data.clear();
                kind.clear();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "data" => {
                    data.push_str(value);
                    data.push('\n');
                }
                "event" => kind = value.into(),
                "id" if !value.contains('\0') => last_id = value.into(),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn events_bytes() {
        assert_eq!(ev(None, None, "hello"), "data: hello\n\n");
        assert_eq!(
            ev(Some("12.5"), Some("gap"), "a\nb\r\nc\rd"),
            "id: 12.5\nevent: gap\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(ev(None, None, ""), "data: \n\n");
        assert_eq!(ev(None, None, "x\n"), "data: x\ndata: \n\n");
        assert_eq!(ev(None, None, "\r\n\r"), "data: \ndata: \ndata: \n\n");
        assert_eq!(
            ev(Some("a\r\nb\0c"), Some("x\ny"), "d"),
            "id: abc\nevent: xy\ndata: d\n\n"
        );
        let mut out = Vec::new();
        comment(b"ping\r\nx", &mut out);
        retry(3000, &mut out);
        assert_eq!(out, b": pingx\nretry: 3000\n");
    }

    #[test]
    fn a_browser_reads_back_what_was_written() {
        let cases = [
            ("plain", "plain"),
            ("two\nlines", "two\nlines"),
            ("crlf\r\nand cr\rend", "crlf\nand cr\nend"),
            (" leading space", " leading space"),
            ("trailing newline\n", "trailing newline\n"),
            ("", ""),
            (":colon: first", ":colon: first"),
            ("\n\n", "\n\n"),
            ("{\"json\": [1, 2]}", "{\"json\": [1, 2]}"),
        ];
        let mut stream = String::new();
        for (i, (data, _)) in cases.iter().enumerate() {
            stream.push_str(&ev(Some(&i.to_string()), None, data));
            let mut c = Vec::new();
            comment(b"keep-alive", &mut c);
            stream.push_str(std::str::from_utf8(&c).unwrap());
        }
        stream.push_str(&ev(Some("9"), Some("gap"), "lost"));
        let got = browser(&stream);
        assert_eq!(got.len(), cases.len() + 1);
        for (i, (_, want)) in cases.iter().enumerate() {
            assert_eq!(got[i], ("message".into(), want.to_string(), i.to_string()));
        }
        assert_eq!(got[cases.len()], ("gap".into(), "lost".into(), "9".into()));
    }

    #[test]
    fn head_bytes() {
        let mut out = Vec::new();
        response_head(b"Access-Control-Allow-Origin: o\r\n", &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"));
        for h in [
            "Content-Type: text/event-stream; charset=utf-8",
            "Cache-Control: no-cache",
            "X-Accel-Buffering: no",
            "Connection: keep-alive",
            "Access-Control-Allow-Origin: o",
        ] {
            assert!(s.contains(&format!("\r\n{h}\r\n")), "{h}");
        }
        assert!(s.ends_with("\r\n\r\n") && !s.contains("Content-Length"));
    }

    #[test]
    fn request_heads() {
        let h = b"GET /?identifier=a HTTP/1.1\r\nHost: h\r\nAccept: text/event-stream\r\n\
                  Last-Event-ID:  12.5 \r\n\r\n";
        assert_eq!(
            sse_request(h),
            Some(SseRequest {
                last_event_id: Some(&b"12.5"[..])
            })
        );
        let h = b"GET / HTTP/1.1\r\naccept: text/html, Text/Event-Stream;q=0.9\r\n\r\n";
        assert_eq!(
            sse_request(h),
            Some(SseRequest {
                last_event_id: None
            })
        );
        for not in [
            &b"GET / HTTP/1.1\r\nAccept: text/event-stream\r\n"[..], // partial
            b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
            b"GET / HTTP/1.1\r\nAccept: text/event-streams\r\n\r\n",
            b"GET / HTTP/1.1\r\nX-Accept: text/event-stream\r\n\r\n",
            b"identifier=abc\n",
        ] {
            assert_eq!(sse_request(not), None);
        }
        assert!(accepts_event_stream(
            b"a/b;x=\"y\", text/event-stream ; charset=utf-8"
        ));
        assert!(!accepts_event_stream(b""));
    }

    #[test]
    fn hostile_input_never_panics_nor_breaks_framing() {
        let base: &[u8] =
            b"GET / HTTP/1.1\r\nAccept: text/event-stream\r\nLast-Event-ID: 1\r\n\r\n";
        let mut x = 0xd1b5_4a32_d192_ed03u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut v = base.to_vec();
            for k in 0..3 {
                let at = ((x >> (k * 16)) as usize) % v.len();
                v[at] = (x >> (k * 8 + 5)) as u8;
            }
            v.truncate((x >> 40) as usize % (v.len() + 1));
            if let Some(r) = sse_request(&v) {
                // An id or type from anywhere never adds a line.
                let mut out = Vec::new();
                event(r.last_event_id, Some(&v), b"d", &mut out);
                let lines = out.iter().filter(|&&c| c == b'\n').count();
                assert_eq!(lines, 2 + usize::from(r.last_event_id.is_some()) + 1);
                assert!(!out.contains(&b'\r'));
            }
        }
    }
}
