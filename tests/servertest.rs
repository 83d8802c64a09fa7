//! Ports of the original `t/servertest/*.phpt` data-path tests (spec 12.1), numbered as
//! there. Log sequences are compared through the harness filter (`util::norm`), WAIT
//! replies byte for byte with generated cursors masked as `<cursor>`, and the final
//! stats suffix as `last=(p,d,c,o,cl)`.

use crate::util::*;

const Z: Stats = (0, 0, 0, 0, 0);

fn is_wait_closed(m: &str) -> bool {
    m.starts_with("WAIT: ") && m.ends_with("connection closed")
}

#[test]
fn t010_send() {
    let s = Server::start("");
    s.push_ids("abc", r#""aaa""#);
    s.stats_of("IN: DEBUG: connection closed");
    let wait = format!("WAIT: listening {}", s.wait_addr());
    let inl = format!("IN: listening {}", s.in_addr());
    assert_log(
        &s.normalized_from("Starting."),
        &[
            ("Starting.", Z),
            ("CONFIG: appending configuration from ***", Z),
            (&wait, Z),
            (&inl, Z),
            ("IN: DEBUG: connection opened", Z),
            ("IN: DEBUG: read <N> bytes", Z),
            ("IN: DEBUG: parsed IDs", Z),
            ("IN: DEBUG: added data for [abc]", (0, 1, 0, 0, 1)),
            ("IN: DEBUG: connection closed", (0, 1, 0, 0, 1)),
        ],
    );
    // VERBOSITY 3: every message has a ctime prefix and is followed by a stats line.
    let lines = s.lines();
    for (i, l) in lines.iter().enumerate() {
        if i % 2 == 0 {
            assert!(has_ctime_prefix(l), "line {i} has no [ctime] prefix: {l:?}");
        } else {
            assert!(
                parse_stats(l).is_some(),
                "line {i} is not a stats line: {l:?}"
            );
        }
    }
}

#[test]
fn t025_send_multi_with_stamp() {
    let s = Server::start("");
    s.push_ids("12345.678:abc,def,hgi", r#""aaa""#);
    s.stats_of("IN: DEBUG: connection closed");
    assert_log(
        &s.normalized_from("IN: DEBUG: connection opened"),
        &[
            ("IN: DEBUG: connection opened", Z),
            ("IN: DEBUG: read <N> bytes", Z),
            ("IN: DEBUG: parsed IDs", Z),
            ("IN: DEBUG: added data for [abc,def,hgi]", (0, 3, 0, 0, 3)),
            ("IN: DEBUG: connection closed", (0, 3, 0, 0, 3)),
        ],
    );
}

#[test]
fn t026_send_ignore_referrer() {
    let s = Server::start("");
    let w = WaitClient::register(
        &s,
        b"Abc: def\nReferer: blabla?identifier=IFRAME\nidentifier=abc,def\n",
    );
    assert_eq!(
        s.stats_of("WAIT: DEBUG: [*:abc,(and 1 more)] registered"),
        (1, 0, 2, 2, 0)
    );
    s.push_ids("abc", r#""aaa""#);
    assert_eq!(
        mask_generated(&w.read_body()),
        body(&[block(&[("abc", GEN)], r#""aaa""#)])
    );
    s.wait_wait_closed(1);
    s.wait_in_closed(1);
    assert_eq!(s.last_stats(), (0, 1, 0, 2, 1));
}

#[test]
fn t027_send_multi_limited() {
    let s = Server::start("");
    s.push_ids("12345.678:abc,def,hgi,*aa,1234:*bb", r#""aaa""#);
    s.stats_of("IN: DEBUG: connection closed");
    assert_log(
        &s.normalized_from("IN: DEBUG: connection opened"),
        &[
            ("IN: DEBUG: connection opened", Z),
            ("IN: DEBUG: read <N> bytes", Z),
            ("IN: DEBUG: parsed IDs; limiters are (aa)", Z),
            ("IN: DEBUG: added data for [abc,def,hgi]", (0, 3, 0, 0, 3)),
            ("IN: DEBUG: connection closed", (0, 3, 0, 0, 3)),
        ],
    );
}

#[test]
fn t030_pass_to_connected() {
    let s = Server::start(fixture::SMALL_OFFLINE_TIMEOUT);
    let w = WaitClient::register(&s, b"identifier=abc\n");
    s.push_ids("abc", r#""aaa""#);
    let got = w.read_body();
    assert_eq!(
        mask_generated(&got),
        body(&[block(&[("abc", GEN)], r#""aaa""#)])
    );
    s.stats_of("[abc] is now offline");
    let sending = format!(
        "<- sending 1 responses ({} bytes) from [abc] (print=1, shutdown=1)",
        got.len()
    );
    assert!(
        s.has_log(|m| m == sending),
        "no {sending:?}: the byte count is the body length"
    );
    assert_log(
        &s.normalized_from("WAIT: DEBUG: connection opened"),
        &[
            ("WAIT: DEBUG: connection opened", Z),
            ("WAIT: DEBUG: read <N> bytes", Z),
            ("WAIT: DEBUG: [*:abc] registered", (1, 0, 1, 1, 0)),
            ("IN: DEBUG: connection opened", (1, 0, 1, 1, 0)),
            ("IN: DEBUG: read <N> bytes", (1, 0, 1, 1, 0)),
            ("IN: DEBUG: parsed IDs", (1, 0, 1, 1, 0)),
            ("IN: DEBUG: added data for [abc]", (1, 1, 1, 1, 1)),
            (
                "<- sending 1 responses (<N> bytes) from [abc] (print=1, shutdown=1)",
                (0, 1, 0, 1, 1),
            ),
            ("IN: DEBUG: connection closed", (0, 1, 0, 1, 1)),
            ("WAIT: DEBUG: [*:abc] connection closed", (0, 1, 0, 1, 1)),
            ("[abc] is now offline", (0, 1, 0, 0, 1)),
        ],
    );
}

#[test]
fn t040_stamp_compare_empty() {
    let s = Server::start(fixture::SMALL_WAIT_TIMEOUT);
    s.push_ids("5:abc", r#""aaa""#);
    let w = WaitClient::register(&s, b"identifier=10:abc\n");
    s.push_ids("6:abc", r#""aaa""#);
    // After WAIT_TIMEOUT the reply is just the header block.
    assert_eq!(w.read_body(), "");
    s.wait_log(
        |m| m.starts_with("WAIT: ") && m.ends_with("DEBUG: [10:abc] timeout"),
        LOG_TIMEOUT,
    );
    s.wait_log(is_wait_closed, LOG_TIMEOUT);
    assert_eq!(s.last_stats(), (0, 1, 0, 1, 1));
}

#[test]
fn t045_not_grouped_sequence() {
    let s = Server::start("");
    let w = WaitClient::register(&s, b"identifier=10:abc\n");
    s.push_ids("15:abc", r#""aaa""#);
    s.push_ids("20:abc", r#""bbb""#);
    assert_eq!(w.read_body(), body(&[block(&[("abc", "15")], r#""aaa""#)]));
    let w = WaitClient::register(&s, b"identifier=15:abc\n");
    assert_eq!(w.read_body(), body(&[block(&[("abc", "20")], r#""bbb""#)]));
    s.wait_wait_closed(2);
    assert_eq!(s.last_stats(), (0, 1, 0, 1, 1));
}

#[test]
fn t047_grouped_sorted() {
    let s = Server::start("");
    s.push_ids("20:abc", r#""ccc""#);
    s.push_ids("11:abc", r#""aaa""#);
    s.push_ids("18:abc", r#""ddd""#);
    s.push_ids("15:abc", r#""bbb""#);
    let w = WaitClient::register(&s, b"identifier=10:abc\n");
    assert_eq!(
        w.read_body(),
        body(&[
            block(&[("abc", "11")], r#""aaa""#),
            block(&[("abc", "15")], r#""bbb""#),
            block(&[("abc", "18")], r#""ddd""#),
            block(&[("abc", "20")], r#""ccc""#),
        ])
    );
    s.wait_wait_closed(1);
    assert_eq!(s.last_stats(), (0, 1, 0, 1, 1));
}

#[test]
fn t049_multiple_matched_read_own_ids_only() {
    let s = Server::start("");
    s.push_ids("20:abc,30:def,40:ghi", r#""ccc""#);
    let w = WaitClient::register(&s, b"identifier=10:abc,20:def\n");
    assert_eq!(
        w.read_body(),
        body(&[block(&[("abc", "20"), ("def", "30")], r#""ccc""#)])
    );
    s.wait_wait_closed(1);
    assert_eq!(s.last_stats(), (0, 3, 0, 2, 3));
}

#[test]
fn t050_pass_to_online_buffered_multi() {
    let s = Server::start(fixture::SMALL_OFFLINE_TIMEOUT);
    s.push_ids("2:abc,2:def", r#""aaa""#);
    s.push_ids("2:abc,2:def", r#""bbb""#);
    let w = WaitClient::register(&s, b"identifier=1:abc,1:def\n");
    assert_eq!(
        w.read_body(),
        body(&[
            block(&[("abc", "2"), ("def", "2")], r#""aaa""#),
            block(&[("abc", "2"), ("def", "2")], r#""bbb""#),
        ])
    );
    s.stats_of("[abc] is now offline");
    s.stats_of("[def] is now offline");
    assert_eq!(s.last_stats(), (0, 2, 0, 0, 2));
}

#[test]
fn t060_multiple_matched_limited() {
    let s = Server::start("");
    s.push_ids("100:aa", r#""data to limiter ID""#);
    s.push_ids("20:abc", r#""public data""#);
    s.push_ids("20:abc,30:def,40:ghi,*aa,*bb", r#""limited data""#);

    // Only public data, matched 'abc'.
    let w = WaitClient::register(&s, b"identifier=10:abc,20:def\n");
    assert_eq!(
        w.read_body(),
        body(&[block(&[("abc", "20")], r#""public data""#)])
    );

    // Public and limited data, matched 'abc' and limiter 'aa'; equal cursors are
    // ordered by data.
    let w = WaitClient::register(&s, b"identifier=10:abc,100:def,200:aa\n");
    assert_eq!(
        w.read_body(),
        body(&[
            block(&[("abc", "20")], r#""limited data""#),
            block(&[("abc", "20")], r#""public data""#),
        ])
    );

    // Limited data, matched 'def' and limiter 'bb'.
    let w = WaitClient::register(&s, b"identifier=100:abc,10:def,bb\n");
    assert_eq!(
        w.read_body(),
        body(&[block(&[("def", "30")], r#""limited data""#)])
    );

    // Data pushed to the limiter id itself.
    let w = WaitClient::register(&s, b"identifier=50:aa\n");
    assert_eq!(
        w.read_body(),
        body(&[block(&[("aa", "100")], r#""data to limiter ID""#)])
    );

    s.wait_wait_closed(4);
    assert_eq!(s.last_stats(), (0, 4, 0, 4, 4));
}

#[test]
fn t070_pass_to_connected_readmulti() {
    let s = Server::start("");
    let w = WaitClient::register(&s, b"identifier=abc,def\n");
    s.push_ids("def", r#""aaa""#);
    assert_eq!(
        mask_generated(&w.read_body()),
        body(&[block(&[("def", GEN)], r#""aaa""#)])
    );
    s.wait_wait_closed(1);
    s.wait_in_closed(1);
    assert_eq!(s.last_stats(), (0, 1, 0, 2, 1));
}

fn static_reply(content_type: &str, last_modified: &str, content: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\n\
         Connection: close\r\n\
         Content-Type: {content_type}\r\n\
         Last-Modified: {last_modified}\r\n\
         Expires: Wed, 08 Jul 2037 22:53:52 GMT\r\n\
         Cache-Control: public\r\n\
         \r\n\
         {content}"
    )
}

fn static_log(marker: &str) -> Vec<(String, Stats)> {
    vec![
        ("WAIT: DEBUG: connection opened".to_string(), Z),
        ("WAIT: DEBUG: read <N> bytes".to_string(), Z),
        (
            format!("WAIT: DEBUG: {marker} marker received, sending content"),
            Z,
        ),
        ("WAIT: DEBUG: connection closed".to_string(), Z),
    ]
}

#[test]
fn t400_iframe() {
    let s = Server::start_with_files(
        fixture::IFRAME_STUB,
        &[("iframe_stub.html", fixture::IFRAME_STUB_HTML)],
    );
    // Last-Modified is the file's mtime as `%a, %e %b %Y %H:%M:%S GMT`.
    let lm = http_date(mtime_secs(&s.dir().join("iframe_stub.html")));
    let expected = static_reply("text/html; charset=utf-8", &lm, "IFRAME stub: [IFRAME].\n");
    for _ in 0..2 {
        let mut c = WaitClient::connect(s.wait_addr());
        c.send(b"identifier=IFRAME\naaa\n");
        assert_eq!(show(&c.read_all()), expected);
    }
    s.wait_wait_closed(2);
    s.last_stats();
    let mut want = static_log("IFRAME");
    want.extend(static_log("IFRAME"));
    let want: Vec<(&str, Stats)> = want.iter().map(|(m, st)| (m.as_str(), *st)).collect();
    assert_log(&s.normalized_from("WAIT: DEBUG: connection opened"), &want);
}

#[test]
fn t410_script() {
    let s = Server::start_with_files(
        fixture::SCRIPT_STUB,
        &[("script_stub.js", fixture::SCRIPT_STUB_JS)],
    );
    let lm = http_date(mtime_secs(&s.dir().join("script_stub.js")));
    let mut c = WaitClient::connect(s.wait_addr());
    c.send(b"identifier=SCRIPT\naaa\n");
    assert_eq!(
        show(&c.read_all()),
        static_reply(
            "text/javascript; charset=utf-8",
            &lm,
            "SCRIPT stub: [SCRIPT].\n"
        )
    );
    s.wait_wait_closed(1);
    s.last_stats();
    let want = static_log("SCRIPT");
    let want: Vec<(&str, Stats)> = want.iter().map(|(m, st)| (m.as_str(), *st)).collect();
    assert_log(&s.normalized_from("WAIT: DEBUG: connection opened"), &want);
}

#[test]
fn t600_send_empty_id() {
    let s = Server::start("");
    let mut c = WaitClient::connect(s.wait_addr());
    c.send(b"identifier=\n");
    assert_eq!(show(&c.read_all()), "", "the client gets no bytes");
    s.wait_wait_closed(1);
    s.last_stats();
    assert_log(
        &s.normalized_from("WAIT: DEBUG: connection opened"),
        &[
            ("WAIT: DEBUG: connection opened", Z),
            ("WAIT: DEBUG: read <N> bytes", Z),
            ("WAIT: ERROR: Empty identifier passed", Z),
            ("WAIT: DEBUG: connection closed", Z),
        ],
    );
}
