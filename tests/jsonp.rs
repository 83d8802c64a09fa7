//! JSONP on long-poll (issue 14): `callback=<name>` wraps the reply array in `name(...);`
//! with `Content-Type: application/javascript`; a bad name is refused; without it the bytes
//! are the original's.

use crate::util::*;
use std::io::Write;

#[test]
fn jsonp_wraps_the_reply_in_the_callback() {
    let s = Server::start("");
    let mut c = connect_raw(s.wait_addr());
    c.write_all(b"GET /?identifier=j1&callback=app.on_msg$1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    s.wait_log(|m| m.ends_with("registered"), LOG_TIMEOUT);
    s.push_ids("j1", "{\"n\": 1}");
    let reply = show(&read_to_eof(&mut c));
    let (head, body) = reply.split_once("\r\n\r\n").expect("head");
    assert!(
        head.contains("Content-Type: application/javascript; charset=utf-8"),
        "{head}"
    );
    assert!(!head.contains("text/javascript"), "{head}");
    let expected_array = body_of_one("j1", "{\"n\": 1}");
    let got = mask_generated(body);
    assert_eq!(got, format!(" \r\napp.on_msg$1({expected_array});"));
}

fn body_of_one(id: &str, data: &str) -> String {
    body(&[block(&[(id, GEN)], data)])
}

#[test]
fn a_bad_callback_name_is_refused() {
    let s = Server::start("");
    for bad in ["1abc", "a-b", "a%28b", &"x".repeat(65)] {
        let mut c = connect_raw(s.wait_addr());
        c.write_all(
            format!("GET /?identifier=j2&callback={bad} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
        .expect("request");
        let reply = show(&read_to_eof(&mut c));
        assert!(
            reply.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{bad}: {reply}"
        );
    }
    // Without a callback: the original's bytes.
    let w = WaitClient::register(&s, b"GET /?identifier=j3 HTTP/1.1\r\nHost: x\r\n\r\n");
    s.push_ids("j3", "1");
    assert_eq!(mask_generated(&w.read_body()), body_of_one("j3", "1"));
}
