//! Regression tests for the defects an operator hit in the first week (issue 18), one test
//! per defect, named after it: each failed before its fix.

use crate::util::*;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

/// #1: a push over IN_MAXLEN used to end with a clean EOF, exactly like a success. It is
/// refused with a 413 that arrives after the publisher sent everything (even a body far
/// over the limit, written in pieces), and nothing is pushed.
#[test]
fn push_over_in_maxlen_is_refused_with_413_not_a_silent_eof() {
    let s = Server::start(fixture::SMALL_IN_MAXLEN);
    let w = WaitClient::register(&s, b"identifier=big\n");
    let mut p = in_stream(&s);
    p.write_all(b"X-Realplexor: identifier=big\r\n\r\n\"")
        .expect("head");
    // 2 MB in 64 KB pieces: the server is over the limit after the first one and must
    // keep reading (a reply sent while the publisher writes could be lost to a reset).
    for _ in 0..32 {
        p.write_all(&[b'x'; 64 * 1024]).expect("body piece");
    }
    p.write_all(b"\"").expect("tail");
    p.shutdown(Shutdown::Write).expect("half-close");
    let reply = show(&read_to_eof(&mut p));
    assert!(
        reply.starts_with("HTTP/1.0 413 Request Entity Too Large\r\nContent-Type: text/plain\r\n"),
        "{reply}"
    );
    assert!(reply.contains("IN_MAXLEN (100 bytes)"), "{reply}");
    s.barrier();
    assert!(!s.has_log(|m| m.contains("added data for")));
    w.assert_silent();
    // The limit still lets a small push through.
    s.push_ids("big", "\"small\"");
    assert!(w.read_body().contains("\"small\""));
}

/// #6: a whitespace-only body was delivered as `"data":  ` (invalid JSON); it is ignored
/// like an empty one.
#[test]
fn whitespace_only_body_is_ignored_like_an_empty_one() {
    let s = Server::start("");
    let w = WaitClient::register(&s, b"identifier=ws\n");
    for body in [" ", "\r\n", "\t", " \r\n\t \n"] {
        s.push_ids("ws", body);
    }
    s.wait_log_count(|m| m.ends_with("passed empty HTTP body, ignored"), 4);
    w.assert_silent();
    s.push_ids("ws", "\"real\"");
    let got = w.read_body();
    assert!(got.contains("\"data\": \"real\""), "{got}");
    assert_eq!(parse_ids(&got).len(), 1, "{got}");
}

/// A WAIT request of `ids` distinct ids, padded by TCP segmentation as asked.
fn big_wait_request(ids: usize) -> Vec<u8> {
    let list: Vec<String> = (0..ids).map(|i| format!("id{i}")).collect();
    format!(
        "GET /?identifier={} HTTP/1.1\r\nHost: x\r\n\r\n",
        list.join(",")
    )
    .into_bytes()
}

/// Sends `req` as the first `split` bytes, a pause, then the rest; returns what the
/// server answered within a short while ("" when it closed without a reply), or None
/// when the connection is still open (registered and parked).
fn send_split(s: &Server, req: &[u8], split: usize) -> Option<String> {
    let mut c = connect_raw(s.wait_addr());
    c.write_all(&req[..split]).expect("first part");
    std::thread::sleep(Duration::from_millis(100));
    let _ = c.write_all(&req[split..]);
    c.set_read_timeout(Some(Duration::from_millis(700)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return Some(show(&got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => return Some(show(&got)),
        }
    }
}

/// #2: WAIT_MAXLEN depended on how TCP split the request: 7,000 ids in one segment were
/// registered, the same bytes in two segments were closed. The limit now applies to the
/// request up to the end of its id list, whatever the segmentation.
#[test]
fn wait_maxlen_applies_the_same_whatever_the_segmentation() {
    let s = Server::start("");
    let big = big_wait_request(7_000);
    assert!(big.len() > 40_000);
    for split in [big.len(), 6_000, 1_000] {
        assert_eq!(
            send_split(&s, &big, split).as_deref(),
            Some(""),
            "7,000 ids (split at {split}) must be refused without a reply"
        );
    }
    // A list that ends within WAIT_MAXLEN is registered however it is split.
    let small = big_wait_request(300);
    assert!(small.len() < 5_120);
    for split in [small.len(), small.len() - 10, 10] {
        assert_eq!(
            send_split(&s, &small, split),
            None,
            "300 ids (split at {split}) must be parked"
        );
    }
}

/// #3: with the descriptor limit reached by WAIT clients, a publisher's push got no
/// answer (and was applied after the publisher gave up). WAIT accepts now stop at a
/// reserve of descriptors that only the IN line may use.
#[test]
fn wait_flood_at_the_descriptor_limit_never_locks_publishers_out() {
    const NOFILE: u32 = 64;
    let s = Server::start_with_nofile("$CONFIG{WAIT_TIMEOUT} = 60;\n", NOFILE);
    s.wait_log(
        |m| m.starts_with("Starting. Opened files limit"),
        LOG_TIMEOUT,
    );
    // Far more browsers than descriptors, each sending its request.
    let mut clients = Vec::new();
    for i in 0..NOFILE as usize {
        let mut c = WaitClient::connect(s.wait_addr());
        c.send(format!("identifier=flood{i}\n").as_bytes());
        clients.push(c);
    }
    s.wait_log(
        |m| m.starts_with("WAIT: descriptor reserve reached"),
        LOG_TIMEOUT,
    );
    // Several publishers in a row are answered at once, and their pushes are delivered.
    let registered = s
        .entries()
        .iter()
        .filter(|e| e.msg.contains(":flood") && e.msg.ends_with("registered"))
        .count();
    assert!(registered >= 20, "only {registered} browsers registered");
    for round in 0..5 {
        let t0 = Instant::now();
        let reply = s.push(format!("identifier=flood0\n\n\"p{round}\"").as_bytes());
        assert_eq!(show(&reply), "", "push {round}");
        eprintln!("push {round} answered in {:?}", t0.elapsed());
        if round == 0 {
            let w = clients.remove(0);
            assert!(w.read_body().contains("\"p0\""));
        }
    }
}

/// #10: STATS and ONLINE built their whole reply in one step (39 MB for 490,000 ids) and
/// stalled the loop meanwhile. A large reply is now taken from storage at one instant and
/// measured and written a slice at a time, only while the socket takes it: other clients
/// are served between the slices, and the bytes (with their exact Content-Length) are
/// those of the instant the command arrived.
#[test]
fn large_online_reply_is_written_in_slices_between_other_events() {
    let s = Server::start("$CONFIG{WAIT_MAXLEN} = 400000;\n$CONFIG{WAIT_TIMEOUT} = 60;\n");
    const PER_CONN: usize = 5_000;
    const CONNS: usize = 8;
    let mut parked = Vec::new();
    for c in 0..CONNS {
        let ids: Vec<String> = (0..PER_CONN)
            .map(|i| format!("online_user_number_{c}_{i:05}"))
            .collect();
        parked.push(WaitClient::register(
            &s,
            format!("identifier={}\n", ids.join(",")).as_bytes(),
        ));
    }
    let other = WaitClient::register(&s, b"identifier=other\n");
    // The ONLINE client sends its command and does not read yet: the reply (over 1 MB)
    // fills the socket, so the job waits for room between slices.
    let mut online = in_stream(&s);
    online.write_all(b"ONLINE\n").expect("online");
    online.shutdown(Shutdown::Write).expect("half-close");
    s.wait_log(
        |m| m.contains("sending 40001 online identifiers"),
        LOG_TIMEOUT,
    );
    // Meanwhile a push is served.
    s.push_ids("other", "\"meanwhile\"");
    assert!(other.read_body().contains("\"meanwhile\""));
    let reply = read_to_eof(&mut online);
    let text = String::from_utf8(reply).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .expect("length");
    assert_eq!(len, body.len());
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), CONNS * PER_CONN + 1);
    assert!(lines.windows(2).all(|w| w[0] < w[1]), "sorted");
    assert!(lines.contains(&"online_user_number_3_04999 1"));
    let done = s.wait_log(|m| m.contains("DEBUG: reply of "), LOG_TIMEOUT);
    let steps: usize = done
        .rsplit(' ')
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("steps");
    assert!(steps > 2, "{done}");
    // The push was applied while the reply was under way.
    let es = s.entries();
    let pos = |p: &dyn Fn(&str) -> bool| es.iter().position(|e| p(&e.msg)).expect("line");
    assert!(
        pos(&|m| m.contains("added data for [other]")) < pos(&|m| m.contains("DEBUG: reply of "))
    );
    drop(parked);
}
