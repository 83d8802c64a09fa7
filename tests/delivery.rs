//! Delivery: generated and client cursors (spec 5.1-5.3), per-id queues with trimming
//! and cleanup (5.4), the reply body (4.5), limiters (5.6, A.4), fan-out and isolation
//! from bad clients (5.5).

use crate::util::*;
use std::io::Write;

fn one(id: &str, cursor: &str, data: &str) -> String {
    body(&[block(&[(id, cursor)], data)])
}

#[test]
fn one_message_to_two_ids_arrives_once_with_ids_sorted() {
    let s = Server::start("");
    let w = WaitClient::register(&s, b"identifier=zz,aa\n");
    s.push_ids("zz,aa", r#""x""#);
    let got = w.read_body();
    assert_eq!(
        mask_generated(&got),
        body(&[block(&[("aa", GEN), ("zz", GEN)], r#""x""#)])
    );
    // "Now" is computed once per request: both ids carry the same cursor.
    let ids = &parse_ids(&got)[0];
    assert_eq!(ids[0].1, ids[1].1, "one generated cursor per request");
}

#[test]
fn overlapping_pushes_get_cursors_in_the_order_they_are_applied() {
    // Publisher A sends its marker first but half-closes last; B is pushed in between and
    // delivered. A's "now" must be taken when A is applied: stamped at its first read,
    // it would sort below B's cursor, and the listener, already past B, would never see
    // A (found by the churn test: one lost message in about six runs).
    let s = Server::start("");
    let mut a = in_stream(&s);
    let first = b"X-Realplexor: identifier=race\r\n\r\n\"first\"";
    a.write_all(first).expect("IN write");
    s.wait_reads(a.local_addr().expect("local"), first.len());
    let w = WaitClient::register(&s, b"identifier=race\n");
    s.push_ids("race", r#""second""#);
    let got = w.read_body();
    let ids = parse_ids(&got);
    assert_eq!(mask_generated(&got), one("race", GEN, r#""second""#));
    let after_b = &ids[0][0].1;
    let w = WaitClient::register(&s, format!("identifier={after_b}:race\n").as_bytes());
    a.shutdown(std::net::Shutdown::Write).expect("shutdown");
    assert_eq!(read_to_eof(&mut a), b"", "reply to a push");
    assert_eq!(
        mask_generated(&w.read_body()),
        one("race", GEN, r#""first""#)
    );
}

#[test]
fn blocks_ordered_by_numeric_cursor_then_data() {
    let s = Server::start("");
    s.push_ids("10:abc", r#""x""#);
    s.push_ids("9:abc", r#""y""#);
    s.push_ids("9.5:abc", r#""w""#);
    s.push_ids("9.5:abc", r#""a""#);
    let w = WaitClient::register(&s, b"identifier=1:abc\n");
    assert_eq!(
        w.read_body(),
        body(&[
            block(&[("abc", "9")], r#""y""#),
            block(&[("abc", "9.5")], r#""a""#),
            block(&[("abc", "9.5")], r#""w""#),
            block(&[("abc", "10")], r#""x""#),
        ])
    );
}

#[test]
fn equal_messages_are_separate_blocks() {
    let s = Server::start("");
    s.push_ids("5:abc", r#""same""#);
    s.push_ids("5:abc", r#""same""#);
    let w = WaitClient::register(&s, b"identifier=0:abc\n");
    let b = block(&[("abc", "5")], r#""same""#);
    assert_eq!(w.read_body(), body(&[b.clone(), b]));
}

#[test]
fn limited_message_needs_a_limiter_listener() {
    // Spec A.4.
    let s = Server::start("");
    s.push_ids("20:news,*u7", r#""private""#);
    let parked = WaitClient::register(&s, b"identifier=1:news\n");
    let w = WaitClient::register(&s, b"identifier=1:news,u7\n");
    assert_eq!(w.read_body(), one("news", "20", r#""private""#));
    // The limiter id itself gets no copy.
    let limiter = WaitClient::register(&s, b"identifier=0:u7\n");
    s.barrier();
    parked.assert_silent();
    limiter.assert_silent();
    s.stats_of("IN: DEBUG: added data for [news]");
    assert!(s.has_log(|m| norm(m) == "IN: DEBUG: parsed IDs; limiters are (u7)"));
}

#[test]
fn limiters_apply_to_parked_listeners_on_push() {
    let s = Server::start("");
    let plain = WaitClient::register(&s, b"identifier=1:news\n");
    let member = WaitClient::register(&s, b"identifier=1:news,5:u7\n");
    s.push_ids("20:news,*u7", r#""private""#);
    assert_eq!(member.read_body(), one("news", "20", r#""private""#));
    plain.assert_silent();
    s.push_ids("21:news", r#""public""#);
    assert_eq!(plain.read_body(), one("news", "21", r#""public""#));
}

#[test]
fn push_wakes_only_listeners_of_its_ids() {
    let s = Server::start("");
    let wa = WaitClient::register(&s, b"identifier=abc\n");
    let wd = WaitClient::register(&s, b"identifier=def\n");
    s.push_ids("def", r#""d""#);
    assert_eq!(mask_generated(&wd.read_body()), one("def", GEN, r#""d""#));
    wa.assert_silent();
}

#[test]
fn listener_without_cursor_gets_only_later_messages() {
    let s = Server::start("");
    s.push_ids("abc", r#""old""#);
    let w = WaitClient::register(&s, b"identifier=abc\n");
    s.barrier();
    w.assert_silent();
    s.push_ids("abc", r#""new""#);
    assert_eq!(mask_generated(&w.read_body()), one("abc", GEN, r#""new""#));
}

#[test]
fn delivered_items_stay_queued() {
    let s = Server::start("");
    s.push_ids("5:abc", r#""x""#);
    for _ in 0..2 {
        let w = WaitClient::register(&s, b"identifier=0:abc\n");
        assert_eq!(w.read_body(), one("abc", "5", r#""x""#));
    }
}

#[test]
fn queue_trimmed_to_max_data_for_id() {
    let s = Server::start(fixture::SMALL_QUEUE_SZ);
    s.push_ids("abc", r#""a""#);
    s.push_ids("abc", r#""bb""#);
    s.push_ids("abc", r#""ccc""#);
    let w = WaitClient::register(&s, b"identifier=0:abc\n");
    let got = w.read_body();
    assert_eq!(
        mask_generated(&got),
        body(&[
            block(&[("abc", GEN)], r#""bb""#),
            block(&[("abc", GEN)], r#""ccc""#),
        ])
    );
    // A limit that drops data is logged.
    s.wait_log(
        |l| l.contains("[abc] queue trimmed to MAX_DATA_FOR_ID=2: 1 oldest message(s) dropped"),
        LOG_TIMEOUT,
    );
}

#[test]
fn queue_cleaned_after_clean_id_after() {
    // CLEAN_ID_AFTER = 1, WAIT_TIMEOUT = 1.
    let s = Server::start(fixture::SMALL_CLEANUP_TIMEOUT);
    s.push_ids("abc", r#""a""#);
    assert_eq!(
        s.stats_of("[abc] cleaned, because no data is pushed within last 1 seconds"),
        (0, 0, 0, 0, 0)
    );
    let w = WaitClient::register(&s, b"identifier=0:abc\n");
    assert_eq!(
        w.read_body(),
        "",
        "the queue is gone: only the header block"
    );
    s.wait_wait_closed(1);
    assert_eq!(s.last_stats(), (0, 0, 0, 1, 0));
}

#[test]
fn generated_cursors_are_25_chars_and_strictly_increasing() {
    let s = Server::start(fixture::LARGE_QUEUE_SZ);
    let start = now_secs();
    let n = 1000;
    for i in 0..n {
        s.push_ids("abc", &i.to_string());
    }
    let w = WaitClient::register(&s, b"identifier=0:abc\n");
    let got = w.read_body();
    let end = now_secs();
    let blocks = parse_ids(&got);
    assert_eq!(blocks.len(), n, "one block per push");
    let cursors: Vec<String> = blocks
        .iter()
        .map(|b| {
            assert_eq!(b.len(), 1);
            assert_eq!(b[0].0, "abc");
            b[0].1.clone()
        })
        .collect();
    for c in &cursors {
        assert!(
            is_generated_cursor(c),
            "cursor {c:?} is not <10 digits>.<14 digits>"
        );
        let secs: u64 = c[..10].parse().expect("seconds");
        assert!(
            secs >= start && secs <= end + 1,
            "cursor {c} is not near the wall clock ({start}..{end})"
        );
    }
    for pair in cursors.windows(2) {
        // Same length and form, so byte order is numeric order.
        assert!(
            pair[0] < pair[1],
            "cursors not strictly increasing: {pair:?}"
        );
    }
    let expected: Vec<String> = cursors
        .iter()
        .enumerate()
        .map(|(i, c)| block(&[("abc", c.as_str())], &i.to_string()))
        .collect();
    assert_eq!(got, body(&expected), "blocks in push order, exact layout");
}

#[test]
fn client_cursors_are_echoed_verbatim() {
    let s = Server::start("");
    s.push_ids("12345.678:abc", r#""a""#);
    s.push_ids("007:def", r#""b""#);
    s.push_ids("1.50:ghi", r#""c""#);
    let w = WaitClient::register(&s, b"identifier=0:abc,0:def,0:ghi\n");
    assert_eq!(
        w.read_body(),
        body(&[
            block(&[("ghi", "1.50")], r#""c""#),
            block(&[("def", "007")], r#""b""#),
            block(&[("abc", "12345.678")], r#""a""#),
        ])
    );
    // Cursors compare as exact decimals: 1.5 equals 1.50 and 7 equals 007, so both are
    // "already seen".
    let w1 = WaitClient::register(&s, b"identifier=1.5:ghi\n");
    let w2 = WaitClient::register(&s, b"identifier=7:def\n");
    s.barrier();
    w1.assert_silent();
    w2.assert_silent();
}

#[test]
fn fan_out_to_50_parked_listeners() {
    let s = Server::start("");
    let clients: Vec<WaitClient> = (0..50)
        .map(|_| WaitClient::register(&s, b"identifier=abc\n"))
        .collect();
    s.push_ids("abc", r#""all""#);
    let bodies: Vec<String> = clients.into_iter().map(|c| c.read_body()).collect();
    assert_eq!(mask_generated(&bodies[0]), one("abc", GEN, r#""all""#));
    for b in &bodies {
        assert_eq!(b, &bodies[0], "every listener gets the same bytes");
    }
    s.wait_log_count(
        |m| {
            m.starts_with("<- sending 1 responses (")
                && m.ends_with(") from [abc] (print=1, shutdown=1)")
        },
        50,
    );
    s.wait_wait_closed(50);
    s.wait_in_closed(1);
    assert_eq!(s.last_stats(), (0, 1, 0, 1, 1));
}

#[test]
fn bad_clients_do_not_disturb_a_parked_listener() {
    let s = Server::start("");
    let w = WaitClient::register(&s, b"identifier=abc\n");
    let junk = b"\x00\xff\xfe\r\n\r\nGET / HTTP/1.1\r\n\r\n\x1b[0m";
    let mut garbage = WaitClient::connect(s.wait_addr());
    garbage.send(junk);
    let mut overflow = WaitClient::connect(s.wait_addr());
    overflow.send(&[b'z'; 6000]);
    let mut empty = WaitClient::connect(s.wait_addr());
    empty.send(b"identifier=\n");
    drop(WaitClient::connect(s.wait_addr()));
    assert_eq!(show(&s.push(b"\x00\x01\x02 no marker\r\n\r\n\xff")), "");
    assert_eq!(show(&overflow.read_all()), "");
    assert_eq!(show(&empty.read_all()), "");
    s.settle(garbage.local(), junk.len());
    garbage.assert_silent();
    drop(garbage);
    s.wait_log(|m| m.contains("ERROR: overflow"), LOG_TIMEOUT);
    s.wait_log(
        |m| m.ends_with("ERROR: Empty identifier passed"),
        LOG_TIMEOUT,
    );
    s.barrier();
    w.assert_silent();
    s.push_ids("abc", r#""fine""#);
    assert_eq!(mask_generated(&w.read_body()), one("abc", GEN, r#""fine""#));
}
