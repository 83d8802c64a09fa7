//! The HTTP API on the IN line (issue 15), black-box: `POST /pub` with keep-alive and
//! pipelining, every error and the smuggling cases, every credential form, `/online`,
//! `/watch`, `/stats.json`, `/health`, and `/metrics` read by the real Prometheus text
//! parser (Debian's python3-prometheus-client). The original protocol on the same port is
//! covered by the other files; `legacy_push_on_the_same_port_is_unchanged` checks the two
//! side by side.

use crate::util::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A parsed reply: status, head text (lines joined by CRLF), body.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: String,
}

impl Resp {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// One keep-alive client connection to the IN line.
pub(crate) struct Api {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Api {
    pub(crate) fn connect(server: &Server) -> Api {
        Api {
            s: connect_raw(server.in_addr()),
            buf: Vec::new(),
        }
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("write request");
    }

    /// Reads one reply (head, then Content-Length bytes of body).
    pub(crate) fn read(&mut self) -> Resp {
        let mut chunk = [0u8; 65536];
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let len: usize = head
                    .split("\r\n")
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
                if self.buf.len() >= end + 4 + len {
                    let body =
                        String::from_utf8_lossy(&self.buf[end + 4..end + 4 + len]).into_owned();
                    self.buf.drain(..end + 4 + len);
                    let status = head
                        .split(' ')
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
                    return Resp { status, head, body };
                }
            }
            let n = self.s.read(&mut chunk).expect("read reply");
            assert!(n > 0, "EOF before a full reply; got {}", show(&self.buf));
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub(crate) fn request(&mut self, raw: &str) -> Resp {
        self.send(raw.as_bytes());
        self.read()
    }

    /// The server closes the connection (after any bytes already read).
    pub(crate) fn expect_eof(&mut self) {
        let rest = read_to_eof(&mut self.s);
        assert!(
            self.buf.is_empty() && rest.is_empty(),
            "unexpected bytes before EOF: {}{}",
            show(&self.buf),
            show(&rest)
        );
    }
}

pub(crate) fn publish(query: &str, body: &str, extra: &str) -> String {
    format!(
        "POST /pub?{query} HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

pub(crate) fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n")
}

fn basic(login: &str, password: &str) -> String {
    use std::fmt::Write as _;
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{login}:{password}").into_bytes();
    let mut out = String::new();
    for ch in raw.chunks(3) {
        let b = [ch[0], *ch.get(1).unwrap_or(&0), *ch.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= ch.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    let mut h = String::new();
    let _ = write!(h, "Authorization: Basic {out}\r\n");
    h
}

/// One request on its own connection, read to EOF (for replies that close).
pub(crate) fn one_shot(server: &Server, raw: &[u8]) -> Vec<u8> {
    let mut s = connect_raw(server.in_addr());
    s.write_all(raw).expect("write");
    read_to_eof(&mut s)
}

#[test]
fn publish_returns_the_cursor_listeners_get() {
    let s = Server::start("");
    let w = WaitClient::register(&s, b"identifier=abc\n");
    let mut api = Api::connect(&s);
    let r = api.request(&publish("identifier=abc,def", "\"hello\"", ""));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.header("Connection"), Some("keep-alive"));
    let v = r.json();
    let cursor = v["cursor"].as_str().expect("cursor").to_string();
    assert!(is_generated_cursor(&cursor), "{cursor}");
    assert_eq!(v["ids"]["abc"], cursor.as_str());
    assert_eq!(v["ids"]["def"], cursor.as_str());
    assert_eq!(v["skipped"], serde_json::json!([]));
    let got = w.read_body();
    assert_eq!(parse_ids(&got), vec![vec![("abc".to_string(), cursor)]]);
    assert!(got.contains("\"hello\""), "{got}");
}

#[test]
fn explicit_cursors_and_limiters() {
    let s = Server::start("");
    let mut api = Api::connect(&s);
    let r = api.request(&publish("identifier=15:abc,def,*u7", "\"x\"", ""));
    let v = r.json();
    assert_eq!(v["ids"]["abc"], "15");
    assert_eq!(v["ids"]["def"], v["cursor"]);
    let r = api.request(&publish("identifier=15:abc,16:def", "\"y\"", ""));
    assert_eq!(
        r.json()["cursor"],
        "16",
        "no generated cursor: the newest given"
    );
    // The limiter keeps the first message from a listener that is not u7.
    let w = WaitClient::register(&s, b"identifier=0:abc\n");
    assert_eq!(
        parse_ids(&w.read_body()),
        vec![vec![("abc".to_string(), "15".to_string())]]
    );
}

#[test]
fn keep_alive_serves_many_pushes_then_honours_close() {
    let s = Server::start("");
    let mut api = Api::connect(&s);
    let mut cursors = Vec::new();
    for i in 0..5 {
        let r = api.request(&publish("identifier=k", &format!("\"m{i}\""), ""));
        assert_eq!(r.status, 200);
        cursors.push(r.json()["cursor"].as_str().unwrap().to_string());
    }
    let mut sorted = cursors.clone();
    sorted.sort_by(|a, b| a.parse::<f64>().unwrap().total_cmp(&b.parse().unwrap()));
    sorted.dedup();
    assert_eq!(sorted, cursors, "five distinct increasing cursors");
    let r = api.request(&get("/health", "Connection: close\r\n"));
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    assert_eq!(r.header("Connection"), Some("close"));
    api.expect_eof();
    // One connection carried all six requests.
    let opened = s
        .lines()
        .iter()
        .filter(|l| l.contains("IN: ") && l.contains("DEBUG: connection opened"))
        .count();
    assert_eq!(opened, 1);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let s = Server::start("");
    let mut api = Api::connect(&s);
    let mut all = publish("identifier=p1", "\"a\"", "");
    all.push_str(&get("/health", ""));
    all.push_str(&publish("identifier=p2", "\"b\"", ""));
    all.push_str(&get("/nope", ""));
    all.push_str(&get("/stats.json", ""));
    api.send(all.as_bytes());
    let r1 = api.read();
    assert_eq!(r1.status, 200);
    assert!(r1.json()["ids"].get("p1").is_some());
    assert_eq!(api.read().body, "ok\n");
    let r3 = api.read();
    assert!(r3.json()["ids"].get("p2").is_some());
    assert_eq!(api.read().status, 404);
    let st = api.read().json();
    assert_eq!(st["data_to_send"]["p1"][0]["bytes"], 3);
    assert_eq!(st["data_to_send"]["p2"][0]["bytes"], 3);
}

#[test]
fn http10_closes_unless_keep_alive_is_asked() {
    let s = Server::start("");
    let reply = one_shot(&s, b"GET /health HTTP/1.0\r\n\r\n");
    let text = show(&reply);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Connection: close\r\n"), "{text}");
    let mut api = Api::connect(&s);
    let r = api.request("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(r.header("Connection"), Some("keep-alive"));
    let r = api.request("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn publish_errors_say_why() {
    let s = Server::start("$CONFIG{IN_MAXLEN} = 100;");
    let mut api = Api::connect(&s);
    let cases: &[(&str, u16, &str)] = &[
        (&publish("x=1", "\"a\"", ""), 400, "no ids"),
        (&publish("identifier=", "\"a\"", ""), 400, "no ids"),
        (&publish("identifier=*only", "\"a\"", ""), 400, "no ids"),
        (
            &publish("identifier=a-b", "\"a\"", ""),
            400,
            "bad identifier",
        ),
        (
            &publish("identifier=a,b$c", "\"a\"", ""),
            400,
            "bad identifier",
        ),
        (&publish("identifier=a", "", ""), 400, "empty body"),
        (&publish("identifier=a", " \r\n\t", ""), 400, "empty body"),
        (
            "POST /pub?identifier=a HTTP/1.1\r\n\r\n",
            411,
            "Content-Length required",
        ),
        (&get("/pub?identifier=a", ""), 405, "method not allowed"),
        (
            &publish("identifier=a", "\"x\"", "").replace("POST /pub", "POST /online"),
            405,
            "use GET",
        ),
        (&get("/nope", ""), 404, "unknown path: /nope"),
    ];
    for (raw, status, why) in cases {
        let r = api.request(raw);
        assert_eq!(r.status, *status, "{raw:?} -> {r:?}");
        assert!(r.body.contains(why), "{raw:?} -> {:?}", r.body);
        assert_eq!(r.header("Connection"), Some("keep-alive"), "{raw:?}");
    }
    let r = api.request(&get("/pub", ""));
    assert_eq!(r.header("Allow"), Some("POST"));
    // Nothing was pushed by any of them.
    assert_eq!(
        api.request(&get("/stats.json", "")).json()["data_to_send"],
        serde_json::json!({})
    );
    // Over IN_MAXLEN: 413 at once, the body is not pushed, the connection closes.
    let big = "x".repeat(150);
    let r = api.request(&publish("identifier=a", &big, ""));
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.body.contains("IN_MAXLEN (100 bytes)"), "{}", r.body);
    assert_eq!(r.header("Connection"), Some("close"));
    api.expect_eof();
    let mut api = Api::connect(&s);
    assert_eq!(
        api.request(&get("/stats.json", "")).json()["data_to_send"],
        serde_json::json!({})
    );
}

#[test]
fn smuggling_and_chunked_close_the_connection() {
    let s = Server::start("");
    let cases: &[(&str, &str)] = &[
        (
            "POST /pub?identifier=a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n\"a\"",
            "HTTP/1.1 400 Bad Request\r\n",
        ),
        (
            "POST /pub?identifier=a HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n\"a\"\r\n0\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\n",
        ),
        (
            "POST /pub?identifier=a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n\"a\"\r\n0\r\n\r\n",
            "HTTP/1.1 501 Not Implemented\r\n",
        ),
        (
            "POST /pub?identifier=a HTTP/1.1\r\nContent-Length: 1x\r\n\r\n\"a\"",
            "HTTP/1.1 400 Bad Request\r\n",
        ),
        ("GET /health HTTP/1.1\r\nBad header\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"),
    ];
    for (raw, start) in cases {
        // read_to_eof: the reply is followed by the server's close, whatever came after.
        let reply = show(&one_shot(&s, raw.as_bytes()));
        assert!(reply.starts_with(start), "{raw:?} -> {reply:?}");
        assert!(reply.contains("Connection: close\r\n"), "{reply}");
    }
    let mut api = Api::connect(&s);
    assert_eq!(
        api.request(&get("/stats.json", "")).json()["data_to_send"],
        serde_json::json!({})
    );
}

#[test]
fn credentials_basic_and_in_the_identifier() {
    let s = start_non_anonymous("");
    let mut api = Api::connect(&s);
    // No credentials: the guest is refused, with the Basic challenge.
    let r = api.request(&publish("identifier=user_a", "\"x\"", ""));
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Basic realm=\"realplexor\"")
    );
    assert!(
        r.body.contains("access denied for guest user"),
        "{}",
        r.body
    );
    // Basic, right password: pushes to the login's ids only, the others are listed as skipped.
    let r = api.request(&publish(
        "identifier=user_a,other,user_b",
        "\"x\"",
        &basic("user", "password"),
    ));
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["skipped"], serde_json::json!(["other"]));
    assert!(v["ids"].get("user_a").is_some() && v["ids"].get("user_b").is_some());
    assert!(v["ids"].get("other").is_none());
    // Basic, wrong password / unknown login / malformed: 401 with the challenge.
    for (auth, why) in [
        (basic("user", "wrong"), "invalid password for login: user"),
        (basic("unk", "x"), "unknown login: unk"),
        (
            "Authorization: Basic %%%\r\n".to_string(),
            "malformed Authorization",
        ),
    ] {
        let r = api.request(&publish("identifier=user_a", "\"x\"", &auth));
        assert_eq!(r.status, 401, "{r:?}");
        assert!(r.body.contains(why), "{}", r.body);
        assert!(r.header("WWW-Authenticate").is_some());
    }
    // The identifier form: right, then wrong (403, no challenge).
    let r = api.request(&publish("identifier=user:password@user_c", "\"x\"", ""));
    assert_eq!(r.status, 200, "{r:?}");
    let r = api.request(&publish("identifier=user:bad@user_c", "\"x\"", ""));
    assert_eq!(r.status, 403);
    assert_eq!(r.body, "invalid password for login: user\n");
    assert!(r.header("WWW-Authenticate").is_none());
    // Every login ONLINE/WATCH rule applies; STATS is the guest's only.
    let w = WaitClient::register(&s, b"identifier=user_a,zzz\n");
    let r = api.request(&get("/online?counters=1", &basic("user", "password")));
    assert_eq!(
        r.json(),
        serde_json::json!({}),
        "a login sees only prefixes it owns"
    );
    let r = api.request(&get(
        "/online?prefix=user_,z&counters=1",
        &basic("user", "password"),
    ));
    assert_eq!(r.json(), serde_json::json!({"user_a": 1}));
    let r = api.request(&get("/online", ""));
    assert_eq!(r.status, 401);
    let r = api.request(&get("/stats.json", &basic("user", "password")));
    assert_eq!(r.status, 403, "{r:?}");
    drop(w);
}

#[test]
fn online_watch_and_stats_json() {
    let s = Server::start("");
    let mut api = Api::connect(&s);
    let _a = WaitClient::register(&s, b"identifier=ns_a,ns_b,other\n");
    let _b = WaitClient::register(&s, b"identifier=ns_a\n");
    let r = api.request(&get("/online", ""));
    assert_eq!(r.json(), serde_json::json!(["ns_a", "ns_b", "other"]));
    let r = api.request(&get("/online?prefix=ns_&counters=1", ""));
    assert_eq!(r.json(), serde_json::json!({"ns_a": 2, "ns_b": 1}));
    let r = api.request(&get("/online?prefix=other,ns_b", ""));
    assert_eq!(r.json(), serde_json::json!(["ns_b", "other"]));
    let r = api.request(&get("/watch?from=0.0&prefix=ns_", ""));
    let events = r.json();
    let ids: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["event"], "online");
            assert!(e["pos"].as_u64().is_some());
            e["id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(ids, ["ns_a", "ns_b"]);
    let r = api.request(&get("/watch", ""));
    assert_eq!(r.json()[0]["event"], "FAKE");
    let r = api.request(&get("/stats.json", ""));
    let st = r.json();
    assert_eq!(
        st["online_timers"],
        serde_json::json!(["ns_a", "ns_b", "other"])
    );
    assert_eq!(st["connected_fhs"]["ns_a"].as_array().unwrap().len(), 2);
    assert_eq!(st["pairs_by_fhs"].as_object().unwrap().len(), 2);
    // HEAD: the GET headers, no body.
    api.send(b"HEAD /online HTTP/1.1\r\n\r\n");
    let mut buf = [0u8; 4096];
    let n = api.s.read(&mut buf).unwrap();
    let head = show(&buf[..n]);
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    assert_eq!(api.request(&get("/health", "")).status, 200);
}

#[test]
fn health_says_stopping_while_the_worker_stops() {
    let mut s = Server::start_foreground("");
    let mut idle = Api::connect(&s);
    assert_eq!(idle.request(&get("/health", "")).body, "ok\n");
    let mut api = Api::connect(&s);
    let first = get("/health", "");
    assert_eq!(api.request(&first).body, "ok\n");
    // A request under way when SIGTERM arrives is still served, with the reason.
    api.send(b"GET /health HTTP/1.1\r\n");
    s.wait_reads(api.s.local_addr().unwrap(), first.len() + 22);
    s.signal(libc::SIGTERM);
    s.wait_log(|l| l.contains("received, exiting"), LOG_TIMEOUT);
    // An idle keep-alive connection is closed at once: it does not hold the stop.
    idle.expect_eof();
    let r = api.request("\r\n");
    assert_eq!((r.status, r.body.as_str()), (503, "stopping\n"));
    assert_eq!(r.header("Connection"), Some("close"));
    api.expect_eof();
    assert!(s.wait_exit(Duration::from_secs(5)).is_some());
}

#[test]
fn idle_keep_alive_connections_close_after_in_timeout() {
    let s = Server::start("$CONFIG{IN_TIMEOUT} = 1;");
    let mut api = Api::connect(&s);
    assert_eq!(api.request(&get("/health", "")).status, 200);
    let t = Instant::now();
    api.expect_eof();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

#[test]
fn legacy_push_on_the_same_port_is_unchanged() {
    let s = Server::start("");
    let w = WaitClient::register(&s, b"identifier=lg\n");
    // The PHP client's request: POST / with the marker header, answered by nothing at EOF.
    let body = "\"old\"";
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nX-Realplexor: identifier=lg\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(show(&s.push(raw.as_bytes())), "");
    assert!(w.read_body().contains("\"old\""));
    // A marker in the URL of another path is the original protocol too.
    assert_eq!(
        show(&s.push(b"GET /x?identifier=lg2 HTTP/1.1\r\n\r\n\"url\"")),
        ""
    );
    let w = WaitClient::register(&s, b"identifier=0:lg2\n");
    assert!(w.read_body().contains("\"url\""));
}
