//! The WAIT transports and publish APIs besides the classic ones: what a listener sends
//! (`--transport longpoll|sse|ws`) and how a streaming connection's bytes become events
//! (`Decoder`), and the `--api http` publisher's keep-alive framing.
//!
//! Structure: `listen(transport, pairs, ncrnd) -> Listen { request, decoder }`; long-poll
//! has no decoder (the engine's header-block and EOF handling stay as they were). A
//! `Decoder` is fed a connection's received bytes and consumes what it can, yielding
//! `Out`s: `Parked` (the SSE 200 or WebSocket 101 head checked), `Message` (one SSE event's
//! data or one WebSocket text/binary message: one JSON `{"ids": {..}, "data": ..}`),
//! `Response` (one keep-alive HTTP reply), `Send` (a pong or close frame to write) and
//! `Closed`. Anything it cannot accept is an error that ends the connection, never a panic.
//!
//! Uses: `sse`, `ws`, `http` (the per-protocol parts), `proto`, `clock`.

pub mod http;
pub mod sse;
pub mod ws;

use std::str::FromStr;

/// The largest WebSocket message accepted.
const MAX_MESSAGE: usize = 16 << 20;

/// How listeners wait for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// GET, header block, one response, close (spec 4.4, 4.5).
    #[default]
    LongPoll,
    /// GET with `Accept: text/event-stream`; events on an open connection.
    Sse,
    /// GET upgraded to a WebSocket; text frames on an open connection.
    Ws,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::LongPoll => "longpoll",
            Transport::Sse => "sse",
            Transport::Ws => "ws",
        }
    }

    /// Whether a connection stays open over many messages.
    pub fn is_stream(self) -> bool {
        self != Transport::LongPoll
    }
}

impl FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Transport, String> {
        match s {
            "longpoll" => Ok(Transport::LongPoll),
            "sse" => Ok(Transport::Sse),
            "ws" => Ok(Transport::Ws),
            _ => Err(format!("unknown transport {s:?} (longpoll, sse, ws)")),
        }
    }
}

/// How publishers push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Api {
    /// A new IN connection per push, written and half-closed (the PHP client's way).
    #[default]
    Classic,
    /// `POST /pub?identifier=..` on keep-alive HTTP/1.1 connections, pipelined.
    Http,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::Classic => "classic",
            Api::Http => "http",
        }
    }
}

impl FromStr for Api {
    type Err = String;
    fn from_str(s: &str) -> Result<Api, String> {
        match s {
            "classic" => Ok(Api::Classic),
            "http" => Ok(Api::Http),
            _ => Err(format!("unknown api {s:?} (classic, http)")),
        }
    }
}

/// What a listener sends, and how its replies are read (`None`: long-poll).
pub struct Listen {
    pub request: Vec<u8>,
    pub decoder: Option<Decoder>,
}

impl Listen {
    /// A long-poll request as it is.
    pub fn longpoll(request: Vec<u8>) -> Listen {
        Listen {
            request,
            decoder: None,
        }
    }
}

/// The listener for `pairs` (`[cursor:]id`) over `transport`.
pub fn listen(transport: Transport, pairs: &[(Option<&str>, &str)], ncrnd: u64) -> Listen {
    match transport {
        Transport::LongPoll => Listen {
            request: crate::proto::wait_request(pairs, ncrnd),
            decoder: None,
        },
        Transport::Sse => Listen {
            request: sse::request(pairs, ncrnd),
            decoder: Some(Decoder::sse()),
        },
        Transport::Ws => {
            let seed = ncrnd ^ crate::clock::now_ns().rotate_left(17);
            let key = ws::key(seed);
            Listen {
                request: ws::request(pairs, ncrnd, &key),
                decoder: Some(Decoder::ws(ws::accept(&key), seed)),
            }
        }
    }
}

/// What a decoder makes of received bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Out {
    Parked,
    Message(Vec<u8>),
    Response(http::Response),
    Send(Vec<u8>),
    Closed,
}

#[derive(Debug)]
enum Kind {
    Sse(sse::Parser),
    Ws {
        accept: String,
        /// A fragmented message being assembled: (opcode, bytes so far).
        frag: Option<(u8, Vec<u8>)>,
        /// Mask source for our frames.
        rng: u64,
    },
    Http,
}

/// The per-connection reader of a streaming transport or a keep-alive publisher.
#[derive(Debug)]
pub struct Decoder {
    kind: Kind,
    head_done: bool,
    closed: bool,
}

impl Decoder {
    pub fn sse() -> Decoder {
        Decoder {
            kind: Kind::Sse(sse::Parser::new()),
            head_done: false,
            closed: false,
        }
    }

    /// `accept`: the `Sec-WebSocket-Accept` the 101 reply must carry.
    pub fn ws(accept: String, seed: u64) -> Decoder {
        Decoder {
            kind: Kind::Ws {
                accept,
                frag: None,
                rng: seed | 1,
            },
            head_done: false,
            closed: false,
        }
    }

    pub fn http() -> Decoder {
        Decoder {
            kind: Kind::Http,
            head_done: true,
            closed: false,
        }
    }

    /// Consumes what it can of `buf` (a connection's received, unconsumed bytes).
    pub fn feed(&mut self, buf: &mut Vec<u8>, out: &mut Vec<Out>) -> Result<(), String> {
        if self.closed {
            buf.clear();
            return Ok(());
        }
        if !self.head_done {
            let Some(head) = http::parse_head(buf)? else {
                return Ok(());
            };
            match &self.kind {
                Kind::Sse(_) => {
                    let ct = head.header("content-type").unwrap_or_default();
                    if head.status != 200
                        || !ct
                            .trim_start()
                            .to_ascii_lowercase()
                            .starts_with("text/event-stream")
                    {
                        return Err(format!("SSE refused: status {}, type {ct:?}", head.status));
                    }
                }
                Kind::Ws { accept, .. } => {
                    let got = head.header("sec-websocket-accept").unwrap_or_default();
                    if head.status != 101 || got.trim() != accept {
                        return Err(format!(
                            "WebSocket refused: status {}, accept {got:?}",
                            head.status
                        ));
                    }
                }
                Kind::Http => {}
            }
            buf.drain(..head.len.min(buf.len()));
            self.head_done = true;
            out.push(Out::Parked);
        }
        match &mut self.kind {
            Kind::Sse(p) => {
                let mut evs = Vec::new();
                let r = p.feed(buf, &mut evs);
                buf.clear();
                out.extend(evs.into_iter().map(|e| Out::Message(e.data)));
                r
            }
            Kind::Http => {
                let mut at = 0;
                let r = loop {
                    match http::parse_response(buf.get(at..).unwrap_or_default()) {
                        Ok(Some((resp, n))) => {
                            at += n;
                            out.push(Out::Response(resp));
                        }
                        Ok(None) => break Ok(()),
                        Err(e) => break Err(e),
                    }
                };
                buf.drain(..at.min(buf.len()));
                r
            }
            Kind::Ws { frag, rng, .. } => {
                let mut at = 0;
                let r = loop {
                    let rest = buf.get(at..).unwrap_or_default();
                    let (f, n) = match ws::parse_frame(rest, MAX_MESSAGE) {
                        Ok(Some(x)) => x,
                        Ok(None) => break Ok(()),
                        Err(e) => break Err(e),
                    };
                    at += n;
                    if let Err(e) = on_frame(f, frag, rng, out) {
                        break Err(e);
                    }
                    if out.last() == Some(&Out::Closed) {
                        self.closed = true;
                        break Ok(());
                    }
                };
                buf.drain(..at.min(buf.len()));
                r
            }
        }
    }
}

fn next_mask(rng: &mut u64) -> [u8; 4] {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    (*rng as u32).to_le_bytes()
}

/// One server frame: messages assembled, pings answered, a close echoed.
fn on_frame(
    f: ws::Frame,
    frag: &mut Option<(u8, Vec<u8>)>,
    rng: &mut u64,
    out: &mut Vec<Out>,
) -> Result<(), String> {
    match f.opcode {
        ws::OP_TEXT | ws::OP_BINARY => {
            if frag.is_some() {
                return Err("WebSocket: a new message inside a fragmented one".into());
            }
            if f.fin {
                out.push(Out::Message(f.payload));
            } else {
                *frag = Some((f.opcode, f.payload));
            }
        }
        ws::OP_CONT => {
            let Some((_, mut so_far)) = frag.take() else {
                return Err("WebSocket: continuation without a message".into());
            };
            if so_far.len() + f.payload.len() > MAX_MESSAGE {
                return Err("WebSocket: message too large".into());
            }
            so_far.extend_from_slice(&f.payload);
            if f.fin {
                out.push(Out::Message(so_far));
            } else {
                *frag = Some((ws::OP_TEXT, so_far));
            }
        }
        ws::OP_PING => out.push(Out::Send(ws::client_frame(
            ws::OP_PONG,
            &f.payload,
            next_mask(rng),
        ))),
        ws::OP_CLOSE => {
            let status = f.payload.get(..2).unwrap_or_default();
            out.push(Out::Send(ws::client_frame(
                ws::OP_CLOSE,
                status,
                next_mask(rng),
            )));
            out.push(Out::Closed);
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(d: &mut Decoder, chunks: &[&[u8]]) -> Result<Vec<Out>, String> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            d.feed(&mut buf, &mut out)?;
        }
        Ok(out)
    }

    const MSG: &str = r#"{"ids": {"a": "15"}, "data": "x"}"#;

    #[test]
    fn names_round_trip() {
        for t in [Transport::LongPoll, Transport::Sse, Transport::Ws] {
            assert_eq!(t.name().parse::<Transport>(), Ok(t));
        }
        for a in [Api::Classic, Api::Http] {
            assert_eq!(a.name().parse::<Api>(), Ok(a));
        }
        assert!("poll".parse::<Transport>().is_err());
        assert!(!Transport::LongPoll.is_stream() && Transport::Ws.is_stream());
    }

    #[test]
    fn sse_stream_split_anywhere() {
        let s = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n\
             retry: 1000\n: keepalive\n\nid: 15\ndata: {MSG}\n\nid: 16\ndata: {MSG}\n\n"
        );
        let b = s.as_bytes();
        let whole = feed_all(&mut Decoder::sse(), &[b]).unwrap();
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0], Out::Parked);
        assert_eq!(whole[1], Out::Message(MSG.as_bytes().to_vec()));
        for cut in 0..b.len() {
            let got = feed_all(&mut Decoder::sse(), &[&b[..cut], &b[cut..]]).unwrap();
            assert_eq!(got, whole, "cut {cut}");
        }
        let parsed = crate::proto::parse_message(MSG.as_bytes()).unwrap();
        assert_eq!(parsed.cursor(), Some("15"));
    }

    #[test]
    fn sse_refused_by_a_long_poll_reply() {
        let lp = b"HTTP/1.1 200 OK\r\nContent-Type: text/javascript; charset=utf-8\r\n\r\n \r\n";
        assert!(feed_all(&mut Decoder::sse(), &[lp]).is_err());
        let e404 = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/event-stream\r\n\r\n";
        assert!(feed_all(&mut Decoder::sse(), &[e404]).is_err());
    }

    fn ws_head(accept: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        )
    }

    #[test]
    fn ws_upgrade_messages_ping_and_close() {
        let l = listen(Transport::Ws, &[(None, "a")], 9);
        let req = String::from_utf8(l.request).unwrap();
        let key = req
            .lines()
            .find_map(|x| x.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .to_string();
        let mut d = l.decoder.unwrap();
        let mut bytes = ws_head(&ws::accept(&key)).into_bytes();
        let m = MSG.as_bytes();
        bytes.extend([0x81, m.len() as u8]);
        bytes.extend_from_slice(m);
        bytes.extend([0x89, 0x01, b'p']); // ping "p"
        bytes.extend([0x01, 0x02]); // "{\"" fragment, then the rest
        bytes.extend_from_slice(&m[..2]);
        bytes.extend([0x80, (m.len() - 2) as u8]);
        bytes.extend_from_slice(&m[2..]);
        bytes.extend([0x88, 0x02, 0x03, 0xE8]); // close 1000
        bytes.extend([0x81, 0x01, b'x']); // after close: ignored
        for cut in [0, 1, 50, bytes.len() / 2, bytes.len() - 3] {
            let mut d2 = Decoder::ws(ws::accept(&key), 5);
            let got = feed_all(&mut d2, &[&bytes[..cut], &bytes[cut..]]).unwrap();
            assert_eq!(got.len(), 6, "cut {cut}: {got:?}");
        }
        let got = feed_all(&mut d, &[&bytes]).unwrap();
        assert_eq!(got[0], Out::Parked);
        assert_eq!(got[1], Out::Message(m.to_vec()));
        let Out::Send(pong) = &got[2] else {
            panic!("{got:?}")
        };
        // A masked pong with "p": unmask and compare.
        assert_eq!((pong[0], pong[1]), (0x8A, 0x81));
        assert_eq!(pong[6] ^ pong[2], b'p');
        assert_eq!(got[3], Out::Message(m.to_vec()));
        let Out::Send(close) = &got[4] else {
            panic!("{got:?}")
        };
        assert_eq!((close[0], close[1]), (0x88, 0x82));
        assert_eq!(got[5], Out::Closed);
    }

    #[test]
    fn ws_refusals_and_protocol_errors() {
        let bad_accept = ws_head("nope");
        assert!(feed_all(&mut Decoder::ws("yes".into(), 1), &[bad_accept.as_bytes()]).is_err());
        let lp = b"HTTP/1.1 200 OK\r\nSec-WebSocket-Accept: yes\r\n\r\n";
        assert!(feed_all(&mut Decoder::ws("yes".into(), 1), &[lp]).is_err());
        let mut cont = ws_head("yes").into_bytes();
        cont.extend([0x80, 0x00]);
        assert!(feed_all(&mut Decoder::ws("yes".into(), 1), &[&cont]).is_err());
        let mut masked = ws_head("yes").into_bytes();
        masked.extend([0x81, 0x81, 1, 2, 3, 4, 5]);
        assert!(feed_all(&mut Decoder::ws("yes".into(), 1), &[&masked]).is_err());
    }

    #[test]
    fn http_keep_alive_replies() {
        let one =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        let mut bytes = one.to_vec();
        bytes.extend_from_slice(one);
        bytes.extend_from_slice(&one[..10]);
        let mut d = Decoder::http();
        let mut buf = bytes.clone();
        let mut out = Vec::new();
        d.feed(&mut buf, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(buf, one[..10].to_vec(), "the partial third stays");
        assert!(matches!(&out[0], Out::Response(r) if r.status == 200 && r.body == b"{}"));
        let mut junk = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        assert!(d.feed(&mut junk, &mut out).is_err());
    }

    #[test]
    fn listen_requests_per_transport() {
        let lp = listen(Transport::LongPoll, &[(None, "a")], 1);
        assert!(lp.decoder.is_none());
        assert_eq!(lp.request, crate::proto::wait_request(&[(None, "a")], 1));
        let sse = listen(Transport::Sse, &[(None, "a")], 1);
        assert!(sse.decoder.is_some());
        assert!(sse.request.ends_with(b"Accept: text/event-stream\r\n\r\n"));
    }
}
