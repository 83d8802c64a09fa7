//! WebSocket on the WAIT line (issue 14): the handshake (the accept key computed here),
//! text frames per message block, masking required, ping/pong, the close handshake,
//! oversized, fragmented and non-UTF-8 frames, subscribe/unsubscribe, bad commands,
//! limiters and presence.

use crate::util::*;
use sha1::Digest as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// RFC 4648 base64, written here so the test does not trust the server's.
fn b64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for ch in bytes.chunks(3) {
        let n = (u32::from(ch[0]) << 16)
            | (u32::from(*ch.get(1).unwrap_or(&0)) << 8)
            | u32::from(*ch.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= ch.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn accept_for(key: &str) -> String {
    let mut h = sha1::Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    b64(&h.finalize())
}

/// A client frame, masked unless `mask` is None.
fn frame(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = vec![b0];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n < 65536 => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            f.extend_from_slice(&k);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

struct Ws {
    sock: TcpStream,
}

impl Ws {
    fn open(s: &Server, query: &str) -> (Ws, String) {
        let mut sock = connect_raw(s.wait_addr());
        let req = format!(
            "GET /?{query} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        sock.write_all(req.as_bytes()).expect("request");
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(
                sock.read(&mut b).expect("head"),
                1,
                "closed: {}",
                show(&head)
            );
            head.push(b[0]);
        }
        s.wait_log(|m| m.ends_with("registered"), LOG_TIMEOUT);
        (Ws { sock }, show(&head))
    }

    fn send(&mut self, b0: u8, payload: &[u8]) {
        self.sock
            .write_all(&frame(b0, payload, Some([1, 2, 3, 4])))
            .expect("send");
    }

    fn text(&mut self, t: &str) {
        self.send(0x81, t.as_bytes());
    }

    /// The next server frame: (first byte, payload). Server frames are never masked.
    fn recv(&mut self) -> (u8, Vec<u8>) {
        let mut h = [0u8; 2];
        self.sock.read_exact(&mut h).expect("frame head");
        assert_eq!(h[1] & 0x80, 0, "server frames are unmasked");
        let len = match h[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                self.sock.read_exact(&mut l).expect("len");
                u16::from_be_bytes(l) as usize
            }
            127 => {
                let mut l = [0u8; 8];
                self.sock.read_exact(&mut l).expect("len");
                u64::from_be_bytes(l) as usize
            }
            n => n as usize,
        };
        let mut p = vec![0u8; len];
        self.sock.read_exact(&mut p).expect("payload");
        (h[0], p)
    }

    /// The next data message as JSON (pings skipped).
    fn message(&mut self) -> serde_json::Value {
        loop {
            let (b0, p) = self.recv();
            if b0 == 0x89 {
                continue;
            }
            assert_eq!(b0, 0x81, "text frame, got {:?}", show(&p));
            return serde_json::from_slice(&p).expect("json");
        }
    }

    /// The close frame's code, then EOF.
    fn expect_close(&mut self, code: u16) {
        let (b0, p) = self.recv();
        assert_eq!(b0, 0x88, "close frame, got {:?}", show(&p));
        assert_eq!(u16::from_be_bytes([p[0], p[1]]), code, "{}", show(&p));
        assert_eq!(show(&read_to_eof(&mut self.sock)), "");
    }
}

#[test]
fn websocket_handshake_and_text_frames() {
    let s = Server::start("");
    let (mut w, head) = Ws::open(&s, "identifier=wa");
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(head.contains(&format!("Sec-WebSocket-Accept: {}\r\n", accept_for(KEY))));
    assert_eq!(accept_for(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    s.push_ids("wa", "\"one\"");
    let m = w.message();
    assert_eq!(m["data"], "one");
    let c1 = m["ids"]["wa"].as_str().expect("cursor").to_string();
    assert!(is_generated_cursor(&c1));
    s.push_ids("wa", "[2]");
    let m = w.message();
    assert_eq!(m["data"][0], 2);
    assert!(m["ids"]["wa"].as_str().expect("cursor") > c1.as_str());
}

#[test]
fn websocket_refuses_a_bad_version() {
    let s = Server::start("");
    let mut sock = connect_raw(s.wait_addr());
    sock.write_all(
        b"GET /?identifier=v HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    )
    .expect("request");
    let reply = show(&read_to_eof(&mut sock));
    assert!(
        reply.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{reply}"
    );
    assert!(reply.contains("Sec-WebSocket-Version: 13\r\n"));
}

#[test]
fn websocket_ping_pong_and_close_handshake() {
    let s = Server::start("");
    let (mut w, _) = Ws::open(&s, "identifier=pp");
    w.send(0x89, b"hello");
    assert_eq!(w.recv(), (0x8A, b"hello".to_vec()));
    w.send(0x88, &1000u16.to_be_bytes());
    w.expect_close(1000);
}

#[test]
fn websocket_server_pings_every_stream_ping() {
    let s = Server::start("$CONFIG{STREAM_PING} = 1;\n");
    let (mut w, _) = Ws::open(&s, "identifier=sp");
    let t0 = Instant::now();
    assert_eq!(w.recv().0, 0x89);
    assert!(t0.elapsed() >= Duration::from_millis(900));
}

#[test]
fn websocket_protocol_errors_close_with_their_codes() {
    let s = Server::start("$CONFIG{WAIT_MAXLEN} = 1000;\n");
    // An unmasked client frame: 1002.
    let (mut w, _) = Ws::open(&s, "identifier=e1");
    w.sock.write_all(&frame(0x81, b"{}", None)).expect("send");
    w.expect_close(1002);
    // A frame over WAIT_MAXLEN: 1009.
    let (mut w, _) = Ws::open(&s, "identifier=e2");
    w.send(0x81, &[b' '; 2000]);
    w.expect_close(1009);
    // Invalid UTF-8 in a text frame: 1007.
    let (mut w, _) = Ws::open(&s, "identifier=e3");
    w.send(0x81, b"{\"subscribe\": \xff}");
    w.expect_close(1007);
    // Valid JSON that is no command, and invalid JSON: 1008, never a panic.
    for bad in [
        "{\"nope\": 1}",
        "{\"subscribe\": ",
        "[1,2]",
        "{\"subscribe\": {\"a b\": null}}",
    ] {
        let (mut w, _) = Ws::open(&s, "identifier=e4");
        w.text(bad);
        w.expect_close(1008);
    }
    // The server still serves.
    let (mut w, _) = Ws::open(&s, "identifier=ok");
    s.push_ids("ok", "1");
    assert_eq!(w.message()["data"], 1);
}

#[test]
fn websocket_subscribe_and_unsubscribe_without_reconnecting() {
    let s = Server::start("");
    let (mut w, _) = Ws::open(&s, "identifier=s1");
    // A fragmented command (two frames) subscribes to s2.
    w.send(0x01, b"{\"subscribe\": ");
    w.send(0x80, b"{\"s2\": null}}");
    s.wait_log(|m| m.ends_with("subscriptions changed"), LOG_TIMEOUT);
    s.online_eventually("s2 1");
    s.push_ids("s2", "\"two\"");
    assert_eq!(w.message()["data"], "two");
    s.push_ids("s1", "\"one\"");
    assert_eq!(w.message()["data"], "one");
    w.text("{\"unsubscribe\": [\"s1\"]}");
    s.wait_log_count(|m| m.ends_with("subscriptions changed"), 2);
    s.push_ids("s1", "\"gone\"");
    s.push_ids("s2", "\"still\"");
    assert_eq!(w.message()["data"], "still");
    // A subscription with a cursor gets what is queued after it.
    let cursor = {
        s.push_ids("s3", "\"queued\"");
        "0"
    };
    w.text(&format!("{{\"subscribe\": {{\"s3\": \"{cursor}\"}}}}"));
    assert_eq!(w.message()["data"], "queued");
}

#[test]
fn websocket_limiters_apply() {
    let s = Server::start("");
    let (mut w, _) = Ws::open(&s, "identifier=la");
    s.push_ids("la,*lb", "\"hidden\"");
    s.push_ids("la", "\"shown\"");
    assert_eq!(w.message()["data"], "shown");
}

#[test]
fn websocket_from_a_foreign_origin_is_refused() {
    let s = Server::start("$CONFIG{ALLOWED_ORIGINS} = [ 'https://app.example' ];\n");
    let try_origin = |origin: &str| {
        let mut sock = connect_raw(s.wait_addr());
        let req = format!(
            "GET /?identifier=fo HTTP/1.1\r\nHost: rpl.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Origin: {origin}\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        sock.write_all(req.as_bytes()).expect("request");
        let mut head = [0u8; 12];
        sock.read_exact(&mut head).expect("status");
        String::from_utf8_lossy(&head).into_owned()
    };
    assert_eq!(try_origin("https://evil.example"), "HTTP/1.1 403");
    assert_eq!(try_origin("https://app.example"), "HTTP/1.1 101");
    assert_eq!(
        try_origin("http://rpl.example"),
        "HTTP/1.1 101",
        "same origin"
    );
}
