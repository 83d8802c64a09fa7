//! Hardening, lying publishers: a Content-Length that is too large, too small or garbage
//! plays no part (a push is handled at EOF); IN_MAXLEN and IN_TIMEOUT still apply.
//!
//! Data: raw IN requests and the WAIT replies they produce. May use `crate::util` and std.

use crate::util::*;
use std::io::Write;

fn delivered(w: WaitClient, id: &str, data: &str) {
    assert_eq!(
        mask_generated(&w.read_body()),
        body(&[block(&[(id, GEN)], data)])
    );
}

#[test]
fn content_length_larger_than_the_body_is_ignored() {
    // The original handles a push at EOF only; Content-Length plays no part.
    let s = Server::start("");
    let w = WaitClient::register(&s, b"identifier=cl\n");
    let reply = s.push(
        b"POST / HTTP/1.1\r\nContent-Length: 1000\r\nX-Realplexor: identifier=cl\r\n\r\n\"short\"",
    );
    assert_eq!(show(&reply), "");
    delivered(w, "cl", "\"short\"");
}

#[test]
fn content_length_smaller_than_the_body_pushes_the_whole_body() {
    let s = Server::start("");
    let w = WaitClient::register(&s, b"identifier=cl\n");
    let reply = s.push(
        b"POST / HTTP/1.1\r\nContent-Length: 2\r\nX-Realplexor: identifier=cl\r\n\r\n\"a longer body\"",
    );
    assert_eq!(show(&reply), "");
    delivered(w, "cl", "\"a longer body\"");
}

#[test]
fn content_length_garbage_is_ignored() {
    let s = Server::start("");
    for (n, cl) in ["-5", "99999999999999999999999999", "abc", ""]
        .iter()
        .enumerate()
    {
        let id = format!("g{n}");
        let w = WaitClient::register(&s, format!("identifier={id}\n").as_bytes());
        let raw = format!(
            "POST / HTTP/1.1\r\nContent-Length: {cl}\r\nX-Realplexor: identifier={id}\r\n\r\n{n}"
        );
        assert_eq!(show(&s.push(raw.as_bytes())), "");
        delivered(w, &id, &n.to_string());
    }
}

#[test]
fn body_over_in_maxlen_is_dropped_whatever_content_length_says() {
    let s = Server::start(fixture::SMALL_IN_MAXLEN);
    let w = WaitClient::register(&s, b"identifier=big\n");
    let mut raw =
        b"POST / HTTP/1.1\r\nContent-Length: 10\r\nX-Realplexor: identifier=big\r\n\r\n\"".to_vec();
    raw.extend_from_slice(&[b'x'; 300]);
    raw.push(b'"');
    assert!(show(&s.push(&raw)).starts_with("HTTP/1.0 413 "));
    s.wait_log(
        |m| m.starts_with("IN: ") && m.contains("ERROR: overflow (received "),
        LOG_TIMEOUT,
    );
    s.wait_in_closed(1);
    s.barrier();
    assert!(!s.has_log(|m| m.contains("added data for")));
    w.assert_silent();
    s.push_ids("big", "\"small\"");
    delivered(w, "big", "\"small\"");
}

#[test]
fn publisher_that_never_half_closes_is_dropped_at_in_timeout() {
    let s = Server::start("$CONFIG{IN_TIMEOUT} = 1;\n");
    let w = WaitClient::register(&s, b"identifier=hc\n");
    let raw =
        b"POST / HTTP/1.1\r\nContent-Length: 7\r\nX-Realplexor: identifier=hc\r\n\r\n\"never\"";
    let mut p = connect_raw(s.in_addr());
    p.write_all(raw).expect("write");
    // A complete request by Content-Length, but no EOF: dropped, logged, nothing pushed.
    let line = s.wait_log(|m| m.contains("IN_TIMEOUT reached before EOF"), LOG_TIMEOUT);
    assert_eq!(
        norm(&line),
        "IN: ERROR: IN_TIMEOUT reached before EOF, <N> bytes dropped"
    );
    assert!(
        line.contains(&format!(" {} bytes dropped", raw.len())),
        "{line}"
    );
    assert_eq!(
        show(&read_to_eof(&mut p)),
        "",
        "the publisher gets no reply"
    );
    s.barrier();
    assert!(!s.has_log(|m| m.contains("added data for")));
    w.assert_silent();
    s.push_ids("hc", "\"next\"");
    delivered(w, "hc", "\"next\"");
}

#[test]
fn publisher_that_stops_mid_head_is_closed_at_in_timeout() {
    let s = Server::start("$CONFIG{IN_TIMEOUT} = 1;\n");
    let mut p = connect_raw(s.in_addr());
    p.write_all(b"POST / HTTP/1.1\r\nX-Realpl").expect("write");
    // No marker yet: closed by the timeout, with nothing to report as dropped.
    assert_eq!(show(&read_to_eof(&mut p)), "");
    s.wait_log(
        |m| m.starts_with("IN: ") && m.ends_with("DEBUG: timeout"),
        LOG_TIMEOUT,
    );
    assert!(!s.has_log(|m| m.contains("IN_TIMEOUT reached before EOF")));
}
