//! The client side of Server-Sent Events as the loadtest needs it: the long-poll GET with
//! `Accept: text/event-stream`, and an incremental parser of the event stream that
//! follows the reply's header block.
//!
//! Structure: `Parser` takes bytes as they arrive (any split) and yields `Event { id,
//! data }` at each blank line that ends an event with data. Lines end with LF, CRLF or CR;
//! `data:` lines are joined with LF; `id:` sets the event's id; comment lines (`:`),
//! `retry:`, `event:` and unknown fields are ignored. A line or an event over the caps is
//! an error, never unbounded memory.
//!
//! Uses: `proto::wait_request` (the GET line).

/// The longest line and the largest event data accepted.
const MAX_LINE: usize = 1 << 20;
const MAX_DATA: usize = 16 << 20;

/// The SSE request: the long-poll GET, asking for an event stream.
pub fn request(pairs: &[(Option<&str>, &str)], ncrnd: u64) -> Vec<u8> {
    let get = crate::proto::wait_request(pairs, ncrnd);
    let line_end = crate::net::find(&get, b"\r\n").unwrap_or(get.len());
    let mut r = get.get(..line_end).unwrap_or_default().to_vec();
    r.extend_from_slice(b"\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n");
    r
}

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: Option<String>,
    pub data: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    id: Option<String>,
    /// The last byte fed was CR: an LF right after it ends nothing more.
    after_cr: bool,
}

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Feeds bytes; appends the events they complete to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Event>) -> Result<(), String> {
        for &b in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, b == b'\r');
            match b {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => self.end_line(out)?,
                _ => {
                    if self.line.len() >= MAX_LINE {
                        return Err("SSE: line too long".into());
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<Event>) -> Result<(), String> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data {
                out.push(Event {
                    id: self.id.take(),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.has_data = false;
            self.id = None;
            return Ok(());
        }
        if line.first() == Some(&b':') {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&c| c == b':') {
            Some(p) => {
                let v = line.get(p + 1..).unwrap_or_default();
                (
                    line.get(..p).unwrap_or_default(),
                    v.strip_prefix(b" ").unwrap_or(v),
                )
            }
            None => (line.as_slice(), &[][..]),
        };
        match field {
            b"data" => {
                if self.data.len() + value.len() + 1 > MAX_DATA {
                    return Err("SSE: event too large".into());
                }
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"id" => self.id = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Result<Vec<Event>, String> {
        let mut p = Parser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out)?;
        }
        Ok(out)
    }

    fn ev(id: Option<&str>, data: &str) -> Event {
        Event {
            id: id.map(String::from),
            data: data.as_bytes().to_vec(),
        }
    }

    #[test]
    fn request_asks_for_an_event_stream() {
        assert_eq!(
            request(&[(None, "a")], 5),
            b"GET /?identifier=a&ncrnd=5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\
              Accept: text/event-stream\r\n\r\n"
                .to_vec()
        );
    }

    #[test]
    fn events_comments_retry_and_multi_line_data() {
        let s = b": hello\nretry: 3000\n\nid: 15\ndata: {\"ids\": {\"a\": \"15\"},\ndata:  \"data\": 1}\n\n\
                  event: x\ndata:no-space\nunknown: 1\n\n";
        assert_eq!(
            all(&[s]).unwrap(),
            vec![
                ev(Some("15"), "{\"ids\": {\"a\": \"15\"},\n \"data\": 1}"),
                ev(None, "no-space"),
            ]
        );
    }

    #[test]
    fn any_split_and_any_line_ending() {
        let s = b"id: 1\r\ndata: x\r\n\r\nid: 2\rdata: y\r\rdata\ndata\n\n";
        let whole = all(&[s]).unwrap();
        assert_eq!(
            whole,
            vec![ev(Some("1"), "x"), ev(Some("2"), "y"), ev(None, "\n")]
        );
        for cut in 0..s.len() {
            assert_eq!(all(&[&s[..cut], &s[cut..]]).unwrap(), whole, "cut {cut}");
        }
        let bytes: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(all(&bytes).unwrap(), whole);
    }

    #[test]
    fn nothing_without_data_and_caps_hold() {
        assert_eq!(all(&[b"id: 3\n\n: c\n\n\n"]).unwrap(), vec![]);
        assert_eq!(all(&[b"data: partial\n"]).unwrap(), vec![]);
        assert!(all(&[&vec![b'x'; MAX_LINE + 1]]).is_err());
    }
}
