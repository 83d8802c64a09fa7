//! SSE on the WAIT line (issue 14): the head and event bytes, one connection for many
//! messages, resume with Last-Event-ID and with `last_event_id=`, pings, multi-line
//! bodies, limiters, CORS, presence, and back-pressure without loss.

use crate::util::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// An SSE client: the raw socket and the bytes read but not yet consumed.
pub struct SseClient {
    pub sock: TcpStream,
    pending: Vec<u8>,
}

impl SseClient {
    /// Sends the GET with `Accept: text/event-stream` (and `extra` header lines) and reads
    /// the head and the `retry:` line.
    pub fn open(s: &Server, query: &str, extra: &str) -> (SseClient, String) {
        let mut sock = connect_raw(s.wait_addr());
        let req = format!(
            "GET /?{query} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n{extra}\r\n"
        );
        sock.write_all(req.as_bytes()).expect("request");
        let mut c = SseClient {
            sock,
            pending: Vec::new(),
        };
        let head = c.read_until(b"\r\n\r\n");
        let retry = c.read_until(b"\n\n");
        assert_eq!(retry, "retry: 2000\n\n");
        (c, head)
    }

    /// Reads until `end`, returning everything up to and including it.
    pub fn read_until(&mut self, end: &[u8]) -> String {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(p) = self.pending.windows(end.len()).position(|w| w == end) {
                let rest = self.pending.split_off(p + end.len());
                let got = std::mem::replace(&mut self.pending, rest);
                return String::from_utf8(got).expect("utf-8");
            }
            assert!(
                Instant::now() < deadline,
                "no {end:?} in {:?}",
                show(&self.pending)
            );
            let mut buf = [0u8; 65536];
            match self.sock.read(&mut buf) {
                Ok(0) => panic!("closed; had {:?}", show(&self.pending)),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) => panic!("read: {e}; had {:?}", show(&self.pending)),
            }
        }
    }

    /// The next event (comments skipped): its id and its data lines joined with \n.
    pub fn event(&mut self) -> (String, String) {
        loop {
            let ev = self.read_until(b"\n\n");
            let mut id = String::new();
            let mut data: Vec<&str> = Vec::new();
            for line in ev.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.to_string();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push(v);
                }
            }
            if !data.is_empty() {
                return (id, data.join("\n"));
            }
        }
    }

    /// Asserts that nothing arrives for a short while.
    pub fn assert_quiet(&mut self) {
        assert!(
            self.pending.is_empty(),
            "pending: {:?}",
            show(&self.pending)
        );
        self.sock
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let mut buf = [0u8; 256];
        match self.sock.read(&mut buf) {
            Ok(n) => panic!("unexpected {:?}", show(&buf[..n])),
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "{e}"
            ),
        }
        self.sock
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("timeout");
    }
}

/// The JSON object of an event, parsed.
fn json(data: &str) -> serde_json::Value {
    serde_json::from_str(data).unwrap_or_else(|e| panic!("{data:?}: {e}"))
}

#[test]
fn sse_head_and_events_on_one_connection() {
    let s = Server::start("");
    let (mut c, head) = SseClient::open(&s, "identifier=abc", "");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    for h in [
        "Content-Type: text/event-stream; charset=utf-8\r\n",
        "Cache-Control: no-cache\r\n",
        "X-Accel-Buffering: no\r\n",
    ] {
        assert!(head.contains(h), "{h} in {head}");
    }
    s.wait_log(|m| m.ends_with("registered"), LOG_TIMEOUT);
    s.push_ids("abc", "\"one\"");
    let (id1, d1) = c.event();
    assert!(is_generated_cursor(&id1), "{id1}");
    assert_eq!(
        d1,
        format!("{{\"ids\": {{\"abc\": \"{id1}\"}}, \"data\": \"one\"}}")
    );
    // The connection stays open: the next push is the next event.
    s.push_ids("abc", "{\"n\": 2}");
    let (id2, d2) = c.event();
    assert!(id2 > id1);
    assert_eq!(json(&d2)["data"]["n"], 2);
    c.assert_quiet();
}

#[test]
fn sse_multi_line_body_becomes_several_data_lines() {
    let s = Server::start("");
    let (mut c, _) = SseClient::open(&s, "identifier=ml", "");
    s.wait_log(|m| m.ends_with("registered"), LOG_TIMEOUT);
    s.push_ids("ml", "{\"a\":\r\n1,\n\"b\":\r2}");
    let raw = c.read_until(b"\n\n");
    assert_eq!(raw.matches("data: ").count(), 4, "{raw}");
    let (_, data) = {
        c.pending = raw.into_bytes();
        c.event()
    };
    assert_eq!(json(&data)["data"]["b"], 2);
}

#[test]
fn sse_resume_with_last_event_id_loses_and_repeats_nothing() {
    let s = Server::start("");
    let (mut c, _) = SseClient::open(&s, "identifier=r1,r2", "");
    s.wait_log(|m| m.ends_with("registered"), LOG_TIMEOUT);
    s.push_ids("r1", "\"a\"");
    let (last, _) = c.event();
    drop(c);
    // Pushed while the browser is away.
    s.push_ids("r2", "\"b\"");
    s.push_ids("r1,r2", "\"c\"");
    let (mut c, _) = SseClient::open(
        &s,
        "identifier=r1,r2",
        &format!("Last-Event-ID: {last}\r\n"),
    );
    let (_, b) = c.event();
    assert_eq!(json(&b)["data"], "b");
    let (_, cc) = c.event();
    assert_eq!(json(&cc)["data"], "c");
    c.assert_quiet();
    // The query parameter does the same for a first connection.
    let (mut q, _) = SseClient::open(&s, &format!("identifier=r2&last_event_id={last}"), "");
    assert_eq!(json(&q.event().1)["data"], "b");
    assert_eq!(json(&q.event().1)["data"], "c");
    q.assert_quiet();
}

#[test]
fn sse_event_id_of_a_push_with_different_cursors_resumes_each_id() {
    let s = Server::start("");
    let (mut c, _) = SseClient::open(&s, "identifier=m1,m2", "");
    s.wait_log(|m| m.ends_with("registered"), LOG_TIMEOUT);
    // Explicit cursors (above "now", so the fresh listener takes them).
    s.push_ids("9000000005:m1,9000000007:m2", "\"x\"");
    let (id, _) = c.event();
    assert_eq!(id, "9000000005:m1,9000000007:m2");
    drop(c);
    s.push_ids("9000000006:m1", "\"for m1\"");
    s.push_ids("9000000006:m2", "\"old for m2\"");
    s.push_ids("9000000008:m2", "\"for m2\"");
    let (mut c, _) = SseClient::open(&s, "identifier=m1,m2", &format!("Last-Event-ID: {id}\r\n"));
    let mut got = vec![
        json(&c.event().1)["data"].clone(),
        json(&c.event().1)["data"].clone(),
    ];
    got.sort_by_key(|v| v.to_string());
    assert_eq!(got, vec!["for m1", "for m2"]);
    c.assert_quiet();
}

#[test]
fn sse_pings_with_a_comment_every_stream_ping() {
    let s = Server::start("$CONFIG{STREAM_PING} = 1;\n");
    let (mut c, _) = SseClient::open(&s, "identifier=p", "");
    let t0 = Instant::now();
    assert_eq!(c.read_until(b"\n"), ": ping\n");
    assert_eq!(c.read_until(b"\n"), ": ping\n");
    assert!(t0.elapsed() >= Duration::from_millis(900));
    // Still a listener afterwards.
    s.push_ids("p", "1");
    assert_eq!(json(&c.event().1)["data"], 1);
}

#[test]
fn sse_limiters_cors_and_presence() {
    let s = Server::start("$CONFIG{ALLOWED_ORIGINS} = [ 'https://app.example' ];\n");
    let (mut c, head) = SseClient::open(&s, "identifier=lim_a", "Origin: https://app.example\r\n");
    assert!(
        head.contains("Access-Control-Allow-Origin: https://app.example\r\n"),
        "{head}"
    );
    s.wait_log(|m| m.ends_with("registered"), LOG_TIMEOUT);
    s.online_eventually("lim_a 1");
    // Limited to listeners of lim_b: not for this one.
    s.push_ids("lim_a,*lim_b", "\"hidden\"");
    s.push_ids("lim_a", "\"shown\"");
    assert_eq!(json(&c.event().1)["data"], "shown");
    drop(c);
    s.wait_log(|m| m.contains("connection closed"), LOG_TIMEOUT);
    s.online_eventually("lim_a 0");
}

#[test]
fn sse_client_that_stops_reading_is_closed_and_resumes_without_loss() {
    let s = Server::start("$CONFIG{MAX_DATA_FOR_ID} = 1000;\n");
    let (mut c, _) = SseClient::open(&s, "identifier=bp", "");
    s.wait_log(|m| m.ends_with("registered"), LOG_TIMEOUT);
    s.push_ids("bp", "\"first\"");
    let (first, _) = c.event();
    // The client stops reading; big messages pile up until the server gives up on it.
    let big = format!("\"{}\"", "x".repeat(60_000));
    let mut n = 0;
    while !s.has_log(|m| m.contains("closing a streaming client that does not read")) {
        s.push_ids("bp", &big);
        n += 1;
        assert!(n < 400, "never closed");
    }
    // Its reconnect with the last id it saw gets every message after it.
    let (mut again, _) =
        SseClient::open(&s, "identifier=bp", &format!("Last-Event-ID: {first}\r\n"));
    for _ in 0..n {
        let (_, d) = again.event();
        assert_eq!(
            d.len(),
            60_000 + 2 + "{\"ids\": {\"bp\": \"\"}, \"data\": }".len() + first.len()
        );
    }
    again.assert_quiet();
}

#[test]
fn sse_clients_always_get_the_gap_notice() {
    let s = Server::start("$CONFIG{MAX_DATA_FOR_ID} = 2;\n");
    let (mut c, _) = SseClient::open(&s, "identifier=g", "");
    s.wait_log(|m| m.ends_with("registered"), LOG_TIMEOUT);
    s.push_ids("g", "1");
    let (first, _) = c.event();
    drop(c);
    for i in 2..=5 {
        s.push_ids("g", &i.to_string());
    }
    // Messages 2 and 3 were trimmed: the reconnect is told, then gets 4 and 5.
    let (mut c, _) = SseClient::open(&s, "identifier=g", &format!("Last-Event-ID: {first}\r\n"));
    let raw = c.read_until(b"\n\n");
    assert!(
        raw.starts_with("event: gap\ndata: {\"ids\": {\"g\": \""),
        "{raw}"
    );
    assert!(raw.ends_with("\"}, \"gap\": true}\n\n"), "{raw}");
    assert!(!raw.contains("id: "), "a gap event has no id: {raw}");
    assert_eq!(json(&c.event().1)["data"], 4);
    assert_eq!(json(&c.event().1)["data"], 5);
    c.assert_quiet();
}
