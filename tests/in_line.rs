//! The IN line: request shapes publishers use, message body extraction (spec 6.2),
//! limiters (6.4), and the deliberate differences from the original: an empty body is
//! not queued, and an overflowing request (IN_MAXLEN) is dropped, not pushed (2.3).

use crate::util::*;

fn is_in_overflow(m: &str) -> bool {
    m.starts_with("IN: ") && m.contains(": ERROR: overflow (received ")
}

#[test]
fn php_api_request_shape_is_delivered() {
    let s = Server::start("");
    let w = WaitClient::register(&s, b"identifier=abc\n");
    let reply = s.push(
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nX-Realplexor: identifier=abc\r\n\r\n\"aaa\"",
    );
    assert_eq!(show(&reply), "", "a push gets no reply bytes");
    assert_eq!(
        mask_generated(&w.read_body()),
        body(&[block(&[("abc", GEN)], r#""aaa""#)])
    );
}

#[test]
fn crash_test_shapes() {
    let s = Server::start("");
    // Raw publisher without HTTP, as t/crashtest does.
    assert_eq!(show(&s.push(b"identifier=10:id0\n\n\"zero\"")), "");
    let w = WaitClient::register(&s, b"test 0\nidentifier=5:id0\n");
    assert_eq!(w.read_body(), body(&[block(&[("id0", "10")], r#""zero""#)]));

    let w = WaitClient::register(&s, b"test 5\nidentifier=10:id5\n");
    assert_eq!(show(&s.push(b"identifier=11:id5\n\n\"five\"")), "");
    assert_eq!(w.read_body(), body(&[block(&[("id5", "11")], r#""five""#)]));
}

#[test]
fn no_blank_line_is_ignored() {
    let s = Server::start("");
    assert_eq!(
        show(&s.push(b"X-Realplexor: identifier=abc\r\n\"aaa\"")),
        ""
    );
    s.stats_of("IN: DEBUG: connection closed");
    assert_log(
        &s.normalized_from("IN: DEBUG: connection opened"),
        &[
            ("IN: DEBUG: connection opened", (0, 0, 0, 0, 0)),
            ("IN: DEBUG: read <N> bytes", (0, 0, 0, 0, 0)),
            ("IN: DEBUG: parsed IDs", (0, 0, 0, 0, 0)),
            (
                "IN: DEBUG: passed empty HTTP body, ignored",
                (0, 0, 0, 0, 0),
            ),
            ("IN: DEBUG: connection closed", (0, 0, 0, 0, 0)),
        ],
    );
}

#[test]
fn empty_body_is_ignored() {
    let s = Server::start("");
    let w = WaitClient::register(&s, b"identifier=abc\n");
    let l: Stats = (1, 0, 1, 1, 0);
    assert_eq!(show(&s.push(b"X-Realplexor: identifier=abc\r\n\r\n")), "");
    s.stats_of("IN: DEBUG: connection closed");
    assert_log(
        &s.normalized_from("IN: DEBUG: connection opened"),
        &[
            ("IN: DEBUG: connection opened", l),
            ("IN: DEBUG: read <N> bytes", l),
            ("IN: DEBUG: parsed IDs", l),
            ("IN: DEBUG: passed empty HTTP body, ignored", l),
            ("IN: DEBUG: connection closed", l),
        ],
    );
    w.assert_silent();
    s.push_ids("abc", r#""after""#);
    assert_eq!(
        mask_generated(&w.read_body()),
        body(&[block(&[("abc", GEN)], r#""after""#)])
    );
}

#[test]
fn overflow_drops_the_message() {
    let s = Server::start(fixture::SMALL_IN_MAXLEN);
    let w = WaitClient::register(&s, b"identifier=abc\n");
    let mut raw = b"X-Realplexor: identifier=abc\r\n\r\n\"".to_vec();
    raw.extend_from_slice(&[b'x'; 200]);
    raw.push(b'"');
    // Issue 18 #1: the publisher is told (it used to see a clean EOF, as for a success).
    assert!(show(&s.push(&raw)).starts_with("HTTP/1.0 413 Request Entity Too Large\r\n"));
    s.wait_log(is_in_overflow, LOG_TIMEOUT);
    s.wait_in_closed(1);
    assert!(
        !s.has_log(|m| m.contains("added data for")),
        "an overflowing request must not be pushed"
    );
    w.assert_silent();
    assert_eq!(s.last_stats(), (1, 0, 1, 1, 0));
    // A request within IN_MAXLEN still works.
    s.push_ids("abc", r#""ok""#);
    assert_eq!(
        mask_generated(&w.read_body()),
        body(&[block(&[("abc", GEN)], r#""ok""#)])
    );
    // The log text is exactly the one of spec 10.2.
    let line = s.wait_log(is_in_overflow, LOG_TIMEOUT);
    assert_eq!(
        norm(&line),
        "IN: ERROR: overflow (received <N> bytes total)"
    );
}

#[test]
fn body_starts_after_the_first_blank_line() {
    let s = Server::start("");
    s.push(b"X-Realplexor: identifier=abc\r\nX-Other: 1\r\n\r\n[1,\n\n2]");
    s.push(b"identifier=def\n\n{\"a\":\r\n\r\n1}");
    let w = WaitClient::register(&s, b"identifier=0:abc,0:def\n");
    assert_eq!(
        mask_generated(&w.read_body()),
        body(&[
            block(&[("abc", GEN)], "[1,\n\n2]"),
            block(&[("def", GEN)], "{\"a\":\r\n\r\n1}"),
        ])
    );
}

#[test]
fn python_style_trailing_crlf_uses_the_newline_separator() {
    let s = Server::start("");
    let w = WaitClient::register(&s, b"identifier=abc\n");
    s.push(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nX-Realplexor: identifier=abc\r\n\r\n\"aaa\"\r\n");
    let got = mask_generated(&w.read_body());
    assert_eq!(
        got,
        "[\n  {\n    \"ids\": { \"abc\": <cursor> },\n    \"data\":\n\"aaa\"\r\n\n  }\n]"
    );
    assert_eq!(got, body(&[block(&[("abc", GEN)], "\"aaa\"\r\n")]));
}

#[test]
fn body_bytes_are_stored_verbatim() {
    let s = Server::start("");
    let data =
        "{\"s\":\"\\u00e9 \u{e9} \\\\ \\\"q\\\"\",\t\"n\": [1, 2.5e3]} not json <b>&amp;</b>";
    s.push_ids("5:abc", data);
    let w = WaitClient::register(&s, b"identifier=0:abc\n");
    assert_eq!(w.read_body(), body(&[block(&[("abc", "5")], data)]));
}

#[test]
fn limiters_are_not_targets() {
    let s = Server::start("");
    s.push_ids("abc,*u2,*u1,*7:u3", r#""aaa""#);
    s.stats_of("IN: DEBUG: connection closed");
    assert!(
        s.has_log(|m| norm(m) == "IN: DEBUG: parsed IDs; limiters are (u1, u2, u3)"),
        "limiters are listed sorted"
    );
    assert_eq!(
        s.stats_of("IN: DEBUG: added data for [abc]"),
        (0, 1, 0, 0, 1)
    );
    assert_eq!(s.last_stats(), (0, 1, 0, 0, 1));
}

#[test]
fn request_without_marker_does_nothing() {
    let s = Server::start("");
    assert_eq!(
        show(&s.push(b"POST / HTTP/1.1\r\nHost: h\r\n\r\n\"x\"")),
        ""
    );
    s.stats_of("IN: DEBUG: connection closed");
    assert!(!s.has_log(|m| m.contains("parsed IDs") || m.contains("added data")));
    assert_eq!(s.last_stats(), (0, 0, 0, 0, 0));
}
