//! The WAIT line: where and how the identifier marker is found (spec 3), registration
//! and the static IFRAME marker (4.1-4.4), overflow and half-close (2.3), and the
//! listen addresses (2.1, 9.3).
//!
//! "Not registered" is proven with `Server::settle` (the server has handled the bytes)
//! followed by `WaitClient::assert_silent` and the absence of a `registered` line.

use crate::util::*;

/// Pushes `"x"` to `id` and asserts that `w` receives exactly that one block under `id`
/// at a generated cursor.
fn assert_delivered(s: &Server, w: WaitClient, id: &str) {
    s.push_ids(id, r#""x""#);
    assert_eq!(
        mask_generated(&w.read_body()),
        body(&[block(&[(id, GEN)], r#""x""#)])
    );
}

fn registered(name: &str) -> String {
    format!("WAIT: DEBUG: [{name}] registered")
}

fn nothing_registered(s: &Server) -> bool {
    !s.has_log(|m| m.ends_with("registered"))
}

#[test]
fn identifier_in_cookie_header() {
    let s = Server::start("");
    let w = WaitClient::register(
        &s,
        b"GET /?ncrnd=1 HTTP/1.1\r\nHost: rpl.example.com\r\nCookie: identifier=ck\r\n\r\n",
    );
    s.stats_of(&registered("*:ck"));
    assert_delivered(&s, w, "ck");
}

#[test]
fn identifier_in_browser_post_body() {
    let s = Server::start("");
    let w = WaitClient::register(
        &s,
        b"POST / HTTP/1.1\r\n\
          Host: rpl.example.com\r\n\
          User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n\
          Accept: */*\r\n\
          Content-Type: application/x-www-form-urlencoded; charset=UTF-8\r\n\
          Content-Length: 15\r\n\
          Cookie: session=1\r\n\
          \r\n\
          identifier=abc\n",
    );
    s.stats_of(&registered("*:abc"));
    assert_delivered(&s, w, "abc");
}

#[test]
fn identifier_in_get_query_with_ncrnd() {
    let s = Server::start("");
    let w = WaitClient::register(
        &s,
        b"GET /?identifier=abc&ncrnd=1700000000000 HTTP/1.1\r\n\
          Host: rpl.example.com\r\n\
          User-Agent: Mozilla/5.0\r\n\
          Accept: */*\r\n\
          \r\n",
    );
    // The list ends at "&": exactly one pair.
    s.stats_of(&registered("*:abc"));
    assert_delivered(&s, w, "abc");
}

#[test]
fn identifier_needs_a_word_boundary_and_exact_case() {
    let s = Server::start("");
    let mut silent = Vec::new();
    for req in [
        &b"myidentifier=abc\n"[..],
        b"_identifier=abc\n",
        b"IDENTIFIER=abc\n",
    ] {
        let mut c = WaitClient::connect(s.wait_addr());
        c.send(req);
        s.settle(c.local(), req.len());
        c.assert_silent();
        silent.push(c);
    }
    assert!(
        nothing_registered(&s),
        "a marker without word boundary registered"
    );
    // A non-word character before the name is a boundary.
    let w = WaitClient::register(&s, b"X-identifier=abc\n");
    s.stats_of(&registered("*:abc"));
    for c in &silent {
        c.assert_silent();
    }
    assert_delivered(&s, w, "abc");
}

#[test]
fn list_needs_a_terminator_byte() {
    let s = Server::start("");
    let mut c = WaitClient::connect(s.wait_addr());
    c.send(b"identifier=abc");
    s.settle(c.local(), 14);
    c.assert_silent();
    assert!(nothing_registered(&s), "registered without a terminator");
    c.send(b"\n");
    c.expect_header();
    s.stats_of(&registered("*:abc"));
    assert_delivered(&s, c, "abc");
}

#[test]
fn request_split_into_single_bytes() {
    let s = Server::start("");
    let req = b"GET /?identifier=abc&ncrnd=1700000000000 HTTP/1.1\r\nHost: rpl.example.com\r\n\r\n";
    let amp = req.iter().position(|&b| b == b'&').expect("&");
    let mut c = WaitClient::connect(s.wait_addr());
    let peer = c.local();
    for (i, b) in req[..amp].iter().enumerate() {
        c.send(&[*b]);
        s.wait_reads(peer, i + 1);
    }
    s.barrier();
    c.assert_silent();
    assert!(
        nothing_registered(&s),
        "registered before the terminator arrived"
    );
    c.send(b"&");
    c.expect_header();
    for b in &req[amp + 1..] {
        c.send(&[*b]);
    }
    s.stats_of(&registered("*:abc"));
    assert_delivered(&s, c, "abc");
}

#[test]
fn list_stops_at_a_dash() {
    let s = Server::start("");
    let w = WaitClient::register(&s, b"identifier=ab-cd\n");
    s.stats_of(&registered("*:ab"));
    assert_delivered(&s, w, "ab");
}

#[test]
fn malformed_items_are_dropped() {
    let s = Server::start("");
    let w = WaitClient::register(&s, b"identifier=1.:x,.5:y,:z,5:*w,ok\n");
    s.stats_of(&registered("*:ok"));
    // None of the dropped items is listened to: this push wakes nobody.
    s.push_ids("x,y,z,w", r#""bad""#);
    w.assert_silent();
    assert_delivered(&s, w, "ok");
}

#[test]
fn only_malformed_items_is_an_empty_identifier() {
    let s = Server::start("");
    for req in [&b"identifier=1.:x,,:y\n"[..], b"identifier=,\n"] {
        let mut c = WaitClient::connect(s.wait_addr());
        c.send(req);
        assert_eq!(show(&c.read_all()), "", "the client gets no bytes");
    }
    s.wait_log_count(
        |m| m.starts_with("WAIT: ") && m.ends_with(": ERROR: Empty identifier passed"),
        2,
    );
    s.wait_wait_closed(2);
    assert!(nothing_registered(&s));
    assert_eq!(s.last_stats(), (0, 0, 0, 0, 0));
}

#[test]
fn duplicate_id_listens_at_the_last_cursor() {
    let s = Server::start("");
    s.push_ids("3:dd", r#""three""#);
    s.push_ids("7:dd", r#""seven""#);
    let w = WaitClient::register(&s, b"identifier=10:dd,5:dd\n");
    assert_eq!(w.read_body(), body(&[block(&[("dd", "7")], r#""seven""#)]));
    s.stats_of(&registered("10:dd,(and 1 more)"));
}

#[test]
fn star_id_is_listened_to() {
    let s = Server::start("");
    let w = WaitClient::register(&s, b"identifier=*abc\n");
    s.stats_of(&registered("*:abc"));
    assert_delivered(&s, w, "abc");
}

#[test]
fn credentials_group_on_wait_is_parsed_and_ignored() {
    // Spec 3.2 quirk: login "10", password "abc&email=a", list "bq".
    let s = Server::start("");
    let w = WaitClient::register(
        &s,
        b"GET /?identifier=10:abc&email=a@bq HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    s.stats_of(&registered("*:bq"));
    assert_delivered(&s, w, "bq");
}

#[test]
fn all_referer_lines_are_ignored() {
    let s = Server::start("");
    let w = WaitClient::register(
        &s,
        b"GET /?ncrnd=1 HTTP/1.1\r\n\
          referer: http://a/?identifier=IFRAME\r\n  \
          Referer: http://b/?identifier=SCRIPT\r\n\
          \tREFERER: http://c/?identifier=evil\r\n\
          Cookie: identifier=good\r\n\
          \r\n",
    );
    s.stats_of(&registered("*:good"));
    // A Referer on the very first line is ignored as well.
    let w2 = WaitClient::register(&s, b"Referer: x?identifier=IFRAME\nidentifier=first\n");
    s.stats_of(&registered("*:first"));
    assert_delivered(&s, w, "good");
    assert_delivered(&s, w2, "first");
}

fn is_overflow(m: &str) -> bool {
    m.starts_with("WAIT: ")
        && m.contains(": ERROR: overflow (received ")
        && m.ends_with(" bytes total)")
}

#[test]
fn overflow_without_marker_closes_silently() {
    let s = Server::start("");
    let mut c = WaitClient::connect(s.wait_addr());
    c.send(&[b'x'; 5121]);
    assert_eq!(
        show(&c.read_all()),
        "",
        "an overflowing client gets no bytes"
    );
    s.wait_log(is_overflow, LOG_TIMEOUT);
    s.wait_wait_closed(1);
    assert_eq!(s.last_stats(), (0, 0, 0, 0, 0));
}

#[test]
fn exactly_wait_maxlen_bytes_is_not_an_overflow() {
    let s = Server::start("");
    let mut c = WaitClient::connect(s.wait_addr());
    c.send(&[b'x'; 5120]);
    s.settle(c.local(), 5120);
    c.assert_silent();
    assert!(
        !s.has_log(is_overflow),
        "5120 bytes is not longer than WAIT_MAXLEN"
    );
    c.send(b"x");
    assert_eq!(show(&c.read_all()), "");
    s.wait_log(is_overflow, LOG_TIMEOUT);
}

#[test]
fn half_closed_client_gets_only_the_header_block() {
    let s = Server::start("");
    let mut c = WaitClient::connect(s.wait_addr());
    c.send(b"identifier=abc\n");
    c.shutdown_write();
    assert_eq!(show(&c.read_all()), WAIT_HEADER);
    assert_eq!(
        s.stats_of("WAIT: DEBUG: [*:abc] connection closed"),
        (0, 0, 0, 1, 0)
    );
}

#[test]
fn iframe_marker_is_the_first_pair_whatever_its_cursor() {
    let s = Server::start_with_files(
        fixture::IFRAME_STUB,
        &[("iframe_stub.html", fixture::IFRAME_STUB_HTML)],
    );
    let mut c = WaitClient::connect(s.wait_addr());
    c.send(b"identifier=5:IFRAME,abc\n");
    let reply = show(&c.read_all());
    assert!(
        reply.starts_with(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/html; charset=utf-8\r\n"
        ) && reply.ends_with("\r\n\r\nIFRAME stub: [IFRAME].\n"),
        "not the IFRAME page: {reply:?}"
    );
    s.wait_log(
        |m| m.ends_with("DEBUG: IFRAME marker received, sending content"),
        LOG_TIMEOUT,
    );
    // Not the first pair: an ordinary registration.
    let w = WaitClient::register(&s, b"identifier=abc,IFRAME\n");
    s.stats_of(&registered("*:abc,(and 1 more)"));
    assert_delivered(&s, w, "abc");
}

#[test]
fn ipv6_wait_addr() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: this machine has no ::1");
        return;
    }
    let s = Server::start(fixture::IPV6_WAIT_ADDR);
    assert_eq!(s.wait_addrs().len(), 1);
    assert!(s.wait_addr().is_ipv6(), "listening on {}", s.wait_addr());
    let w = WaitClient::register(&s, b"identifier=abc\n");
    assert_delivered(&s, w, "abc");
}

#[test]
fn several_wait_addrs_are_all_served() {
    let s = Server::start(fixture::TWO_WAIT_ADDRS);
    let addrs = s.wait_addrs().to_vec();
    assert_eq!(addrs.len(), 2, "one WAIT: listening line per address");
    assert_ne!(addrs[0].port(), addrs[1].port());
    let clients: Vec<WaitClient> = addrs
        .iter()
        .map(|a| WaitClient::register_at(*a, b"identifier=abc\n"))
        .collect();
    s.push_ids("abc", r#""x""#);
    for c in clients {
        assert_eq!(
            mask_generated(&c.read_body()),
            body(&[block(&[("abc", GEN)], r#""x""#)])
        );
    }
}

#[test]
fn iframe_file_beside_the_conf_via_the_file_idiom() {
    // The original fixture verbatim: `use File::Basename; use Cwd 'abs_path';` and
    // `dirname(abs_path(__FILE__)) . "/iframe_stub.html"` (spec 9.2).
    let s = Server::start_with_files(
        fixture::IFRAME_STUB_FILE_IDIOM,
        &[("iframe_stub.html", fixture::IFRAME_STUB_HTML)],
    );
    let mut c = WaitClient::connect(s.wait_addr());
    c.send(b"identifier=IFRAME\n");
    let reply = show(&c.read_all());
    assert!(
        reply.ends_with("\r\n\r\nIFRAME stub: [IFRAME].\n"),
        "not the stub page: {reply:?}"
    );
}

#[test]
fn a_flooding_parked_client_does_not_stall_others() {
    let s = Server::start("");
    let flood = WaitClient::register(&s, b"identifier=flood\n");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let mut sock = flood.stream().try_clone().expect("clone");
        let stop = stop.clone();
        std::thread::spawn(move || {
            let chunk = vec![b'x'; 64 * 1024];
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            // Bounded: at most 5 s or 64 MB, and until the test says stop.
            for _ in 0..1024 {
                if stop.load(std::sync::atomic::Ordering::SeqCst)
                    || std::time::Instant::now() > deadline
                {
                    break;
                }
                if std::io::Write::write_all(&mut sock, &chunk).is_err() {
                    break;
                }
            }
        })
    };
    // While the flood runs, a normal client still gets its message promptly.
    let w = WaitClient::register(&s, b"identifier=abc\n");
    s.push_ids("abc", r#""x""#);
    assert!(w.read_body().contains(r#""x""#));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().expect("writer");
    // The flooding client is still parked and gets its own message.
    s.push_ids("flood", r#""y""#);
    assert!(flood.read_body().contains(r#""y""#));
}
