//! ONLINE, WATCH and STATS on the IN line (spec 7): ports of `t/servertest` 210-230 and
//! 320-330 (spec 12.1 #13-#18, #20-#22) with their numbers in the names, then the
//! recognition rules of 7.1, the prefix lists of 7.2 and the WATCH cursor rules of 7.4.
//!
//! Every reply is checked byte for byte: `HTTP/1.0 200 OK`, `Content-Type: text/plain` and
//! a Content-Length equal to the body (`util::ok_body`). Event positions follow the fix of
//! spec 13.1 #22: events are numbered from 11 and FAKE names the last assigned position,
//! so a fresh server answers `FAKE 10:FAKE`.

use crate::util::*;

const Z: Stats = (0, 0, 0, 0, 0);

/// The STATS body of an empty server (spec 7.5): 83 bytes.
const EMPTY_STATS: &str =
    "[data_to_send]\n\n[connected_fhs]\n\n[online_timers]\n\n[cleanup_timers]\n\n[pairs_by_fhs]\n";

/// Registers a WAIT client the way the original harness does (`identifier=...\naaa\n`).
fn wait(s: &Server, ids: &str) -> WaitClient {
    WaitClient::register(s, format!("identifier={ids}\naaa\n").as_bytes())
}

/// Registers, then disconnects, a WAIT client; returns once the server has closed it
/// (`n` WAIT connections closed so far, this one included).
fn wait_and_disconnect(s: &Server, ids: &str, n: usize) {
    drop(wait(s, ids));
    s.wait_wait_closed(n);
}

#[test]
fn t210_stats_after_wait() {
    let s = Server::start(fixture::SMALL_OFFLINE_TIMEOUT);
    let w = wait(&s, "abc");
    let reply = s.push(b"stats");
    let body = ok_body(&reply);
    assert_eq!(
        mask_in(&body),
        "[data_to_send]\n\n[connected_fhs]\nabc => (0x*)\n\n[online_timers]\nabc => assigned\n\n\
         [cleanup_timers]\n\n[pairs_by_fhs]\n(0x*) => *:abc\n"
    );
    // The generated cursor of the pair is printed as 5.2 says (25 characters).
    let pair = body.lines().last().unwrap_or_default();
    let cursor = pair
        .split_once(" => ")
        .and_then(|(_, c)| c.strip_suffix(":abc"))
        .unwrap_or_default();
    assert!(is_generated_cursor(cursor), "cursor {cursor:?} in {pair:?}");

    drop(w);
    s.wait_wait_closed(1);
    assert_eq!(
        s.cmd("stats"),
        "[data_to_send]\n\n[connected_fhs]\n\n[online_timers]\nabc => assigned\n\n\
         [cleanup_timers]\n\n[pairs_by_fhs]\n"
    );

    s.wait_offline("abc");
    assert_eq!(s.cmd("stats"), EMPTY_STATS);
    s.wait_in_closed(3);
    assert_eq!(s.last_stats(), Z);
}

#[test]
fn t215_online_cmd() {
    let s = Server::start("");
    wait_and_disconnect(&s, "abc", 1);
    let def = wait(&s, "def");
    let reply = s.push(b"online");
    assert_eq!(
        show(&reply),
        format!("{}abc 0\ndef 1\n", text_head("200 OK", 12))
    );
    s.wait_log(
        |m| m.ends_with("DEBUG: sending 2 online identifiers"),
        LOG_TIMEOUT,
    );
    drop(def);
    s.wait_wait_closed(2);
    assert_eq!(s.last_stats(), (0, 0, 0, 2, 0));
}

#[test]
fn t222_watch_event_empty() {
    let s = Server::start("");
    let reply = s.push(b"watch 1");
    assert_eq!(show(&reply), text_head("200 OK", 0));
    s.wait_log(|m| m.ends_with("DEBUG: sending 0 events"), LOG_TIMEOUT);
    s.wait_in_closed(1);
    assert_eq!(s.last_stats(), Z);
}

#[test]
fn t225_watch_event_initial() {
    let s = Server::start("");
    let reply = s.push(b"watch ?");
    assert_eq!(
        show(&reply),
        format!("{}FAKE 10:FAKE\n", text_head("200 OK", 13))
    );
    s.wait_log(|m| m.ends_with("DEBUG: sending 1 events"), LOG_TIMEOUT);
    wait_and_disconnect(&s, "abc", 1);
    // Spec 13.1 #22: the one event got position 11, and FAKE names it.
    assert_eq!(s.cmd("watch ?"), "FAKE 11:FAKE\n");
    s.wait_in_closed(2);
    assert_eq!(s.last_stats(), (0, 0, 0, 1, 0));
}

#[test]
fn t230_watch_event_chain_size() {
    let s = Server::start(fixture_cmd::SMALL_CHAIN_LEN);
    for i in 0..20 {
        wait_and_disconnect(&s, &format!("abc{i:02}"), i + 1);
    }
    // Perl semantics (spec 8.2): with LEN=3 the 12 newest of 20 events are kept. Positions
    // are 11-30 here (13.1 #22), so the kept ones are 19-30.
    let reply = s.push(b"watch 1");
    let want: String = (8..20)
        .map(|i| format!("online {}:abc{i:02}\n", i + 11))
        .collect();
    assert_eq!(show(&reply), format!("{}{want}", text_head("200 OK", 192)));
    s.wait_in_closed(1);
    assert_eq!(s.last_stats(), (0, 0, 0, 20, 0));
}

#[test]
fn t320_rotate_queue() {
    let s = Server::start(fixture::SMALL_QUEUE_SZ);
    s.push_ids("abc,def", r#""a""#);
    s.push_ids("abc,def", r#""bb""#);
    let want = |n1: usize, n2: usize| {
        format!(
            "[data_to_send]\nabc => [*: {n1}b], [*: {n2}b]\ndef => [*: {n1}b], [*: {n2}b]\n\n\
             [connected_fhs]\n\n[online_timers]\n\n\
             [cleanup_timers]\nabc => assigned\ndef => assigned\n\n[pairs_by_fhs]\n"
        )
    };
    let body = ok_body(&s.push(b"stats"));
    assert_eq!(body.len(), 259, "{body:?}");
    assert_eq!(mask_in(&body), want(4, 3));
    s.push_ids("abc,def", r#""ccc""#);
    let body = ok_body(&s.push(b"stats"));
    assert_eq!(body.len(), 259, "{body:?}");
    assert_eq!(mask_in(&body), want(5, 4));
    s.wait_in_closed(5);
    assert_eq!(s.last_stats(), (0, 2, 0, 0, 2));
}

#[test]
fn t325_rotate_queue_with_same_id() {
    let s = Server::start(fixture::SMALL_QUEUE_SZ);
    s.push_ids("1:abc,1:def", r#""a""#);
    s.push_ids("1:abc,1:def", r#""bb""#);
    let want = |n1: usize, n2: usize| {
        format!(
            "[data_to_send]\nabc => [1: {n1}b], [1: {n2}b]\ndef => [1: {n1}b], [1: {n2}b]\n\n\
             [connected_fhs]\n\n[online_timers]\n\n\
             [cleanup_timers]\nabc => assigned\ndef => assigned\n\n[pairs_by_fhs]\n"
        )
    };
    let reply = s.push(b"stats");
    assert_eq!(
        show(&reply),
        format!("{}{}", text_head("200 OK", 163), want(4, 3))
    );
    s.push_ids("1:abc,1:def", r#""ccc""#);
    let reply = s.push(b"stats");
    assert_eq!(
        show(&reply),
        format!("{}{}", text_head("200 OK", 163), want(5, 4))
    );
    s.wait_in_closed(5);
    assert_eq!(s.last_stats(), (0, 2, 0, 0, 2));
}

#[test]
fn t330_cleanup_queue_on_expire() {
    let s = Server::start(fixture::SMALL_CLEANUP_TIMEOUT);
    s.push_ids("abc", r#""a""#);
    let body = ok_body(&s.push(b"stats"));
    assert_eq!(body.len(), 138, "{body:?}");
    assert_eq!(
        mask_in(&body),
        "[data_to_send]\nabc => [*: 3b]\n\n[connected_fhs]\n\n[online_timers]\n\n\
         [cleanup_timers]\nabc => assigned\n\n[pairs_by_fhs]\n"
    );
    s.wait_log(
        |m| m == "[abc] cleaned, because no data is pushed within last 1 seconds",
        LOG_TIMEOUT,
    );
    let reply = s.push(b"stats");
    assert_eq!(
        show(&reply),
        format!("{}{EMPTY_STATS}", text_head("200 OK", 83))
    );
    s.wait_in_closed(3);
    assert_eq!(s.last_stats(), Z);
}

// ----- Recognition (spec 7.1) -------------------------------------------------------------

/// A command followed by a blank line is answered at once, before the client's EOF.
#[test]
fn command_ending_in_blank_line_runs_before_eof() {
    let s = Server::start("");
    let w = wait(&s, "abc");
    let mut c = in_stream(&s);
    std::io::Write::write_all(
        &mut c,
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Realplexor: identifier=\r\n\r\nonline\r\n\r\n",
    )
    .expect("write");
    // No shutdown: the reply and the server's close come by themselves.
    let reply = read_to_eof(&mut c);
    assert_eq!(ok_body(&reply), "abc 1\n");
    s.wait_log(
        |m| m.ends_with("DEBUG: received aux command: ONLINE"),
        LOG_TIMEOUT,
    );
    drop(w);
}

/// Without the blank line, the API form (`online prefix\n`) waits for EOF.
#[test]
fn command_without_blank_line_waits_for_eof() {
    let s = Server::start("");
    let w = wait(&s, "abc");
    let mut c = in_stream(&s);
    let req = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 11\r\nX-Realplexor: identifier=\r\n\r\nonline abc\n";
    std::io::Write::write_all(&mut c, req).expect("write");
    s.settle(c.local_addr().expect("local"), req.len());
    c.set_nonblocking(true).expect("nonblocking");
    let mut b = [0u8; 64];
    match std::io::Read::read(&mut c, &mut b) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the server answered before EOF: {other:?}"),
    }
    c.set_nonblocking(false).expect("blocking");
    c.shutdown(std::net::Shutdown::Write).expect("shutdown");
    assert_eq!(ok_body(&read_to_eof(&mut c)), "abc 1\n");
    drop(w);
}

#[test]
fn keywords_are_case_insensitive() {
    let s = Server::start("");
    assert_eq!(s.cmd("Online"), "");
    assert_eq!(s.cmd("WATCH 0"), "FAKE 10:FAKE\n");
    assert_eq!(s.cmd("sTaTs"), EMPTY_STATS);
    assert_eq!(s.cmd("stats now"), EMPTY_STATS);
    s.wait_log(
        |m| m.ends_with("DEBUG: received aux command: ONLINE"),
        LOG_TIMEOUT,
    );
    s.wait_log(
        |m| m.ends_with("DEBUG: received aux command: WATCH 0"),
        LOG_TIMEOUT,
    );
    s.wait_log(
        |m| m.ends_with("DEBUG: received aux command: STATS now"),
        LOG_TIMEOUT,
    );
}

/// `onlinex`, `Stats: 1` and a keyword on a later line of the body (the C++ quirk) are data,
/// not commands: they are pushed.
#[test]
fn keyword_must_end_in_whitespace_or_end() {
    let s = Server::start("");
    for (i, data) in ["onlinex", "Stats: 1", "\"a\"\nonline\nmore", "watchers 1"]
        .iter()
        .enumerate()
    {
        let id = format!("id{i}");
        s.push_ids(&id, data);
        s.wait_log(
            |m| m.ends_with(&format!("DEBUG: added data for [{id}]")),
            LOG_TIMEOUT,
        );
        let w = WaitClient::register(&s, format!("identifier=1:{id}\n").as_bytes());
        assert_eq!(
            mask_generated(&w.read_body()),
            body(&[block(&[(&id, GEN)], data)])
        );
    }
    // Without a marker, `onlinex` does nothing at all.
    assert_eq!(show(&s.push(b"onlinex")), "");
    assert!(!s.has_log(|m| m.contains("received aux command")));
}

/// A request with ids whose body is a command is answered as the command; nothing is
/// pushed (spec 13.1 #5). A command after a blank line inside a body is found too.
#[test]
fn commands_override_data() {
    let s = Server::start("");
    let reply = s.push(b"X-Realplexor: identifier=abc\r\n\r\nonline\n");
    assert_eq!(ok_body(&reply), "");
    let reply = s.push(b"X-Realplexor: identifier=abc\r\n\r\n\"a\"\n\nstats\n\n");
    assert_eq!(ok_body(&reply), EMPTY_STATS);
    let reply = s.push(b"X-Realplexor: identifier=abc\r\n\r\n\"a\"\r\n\r\nwatch 0");
    assert_eq!(ok_body(&reply), "FAKE 10:FAKE\n");
    assert!(!s.has_log(|m| m.contains("added data")));
    s.wait_in_closed(3);
    assert_eq!(s.last_stats(), Z);
}

// ----- Prefix lists (spec 7.2) --------------------------------------------------------------

#[test]
fn online_prefix_filters() {
    let s = Server::start("");
    let w = wait(&s, "5:A_abc,10:def,20:B_ghi");
    assert_eq!(s.cmd("online"), "A_abc 1\nB_ghi 1\ndef 1\n");
    assert_eq!(s.cmd("online A_ B_"), "A_abc 1\nB_ghi 1\n");
    assert_eq!(s.cmd("online  B_\tA_ "), "A_abc 1\nB_ghi 1\n");
    assert_eq!(s.cmd("online d"), "def 1\n");
    assert_eq!(s.cmd("online xxx_"), "");
    // A plain string prefix, not a regular expression.
    assert_eq!(s.cmd("online ."), "");
    assert_eq!(s.cmd("online .*"), "");
    assert_eq!(s.cmd("online A_abcd"), "");
    // The API form: one LF, then EOF.
    assert_eq!(
        ok_body(&s.push(
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\nX-Realplexor: identifier=\r\n\r\nonline B_\n"
        )),
        "B_ghi 1\n"
    );
    drop(w);
}

#[test]
fn watch_prefix_filters_and_order() {
    let s = Server::start("");
    wait_and_disconnect(&s, "zzz", 1);
    wait_and_disconnect(&s, "A_abc,def", 2);
    // Chronological order (by position), not by id; one line per id.
    assert_eq!(
        s.cmd("watch 1"),
        "online 11:zzz\nonline 12:A_abc\nonline 13:def\n"
    );
    assert_eq!(s.cmd("watch 1 A_ z"), "online 11:zzz\nonline 12:A_abc\n");
    assert_eq!(s.cmd("watch 1 def "), "online 13:def\n");
    assert_eq!(s.cmd("watch 1 x"), "");
    assert_eq!(s.cmd("watch 1 ."), "");
    // Positions are exclusive lower bounds.
    assert_eq!(s.cmd("watch 11"), "online 12:A_abc\nonline 13:def\n");
    assert_eq!(s.cmd("watch 13"), "");
    assert_eq!(s.cmd("watch 100"), "");
    // FAKE ignores the prefixes.
    assert_eq!(s.cmd("watch 0 x"), "FAKE 13:FAKE\n");
}

/// Only the latest event of an id is listed (spec 7.4).
#[test]
fn watch_lists_only_the_latest_event_per_id() {
    let s = Server::start(fixture::SMALL_OFFLINE_TIMEOUT);
    wait_and_disconnect(&s, "abc", 1);
    s.wait_offline("abc");
    assert_eq!(s.cmd("watch 1"), "offline 12:abc\n");
    let w = wait(&s, "abc");
    assert_eq!(s.cmd("watch 1"), "online 13:abc\n");
    assert_eq!(s.cmd("watch 12"), "online 13:abc\n");
    assert_eq!(s.cmd("watch 0"), "FAKE 13:FAKE\n");
    drop(w);
}

// ----- WATCH cursors (spec 7.4, 13.1 #22) ---------------------------------------------------

#[test]
fn watch_cursor_rules() {
    let s = Server::start("");
    // Fresh server: FAKE for every non-numeric or zero cursor.
    for c in [
        "watch",
        "watch ",
        "watch 0",
        "watch -1",
        "watch abc",
        "watch 1a",
        "watch ?",
    ] {
        assert_eq!(s.cmd(c), "FAKE 10:FAKE\n", "{c:?}");
    }
    wait_and_disconnect(&s, "abc", 1);
    wait_and_disconnect(&s, "def", 2);
    let all = "online 11:abc\nonline 12:def\n";
    // Perl: `0.0` is numeric (all events), `1.2.3` reads as 1.2, `-1` is FAKE.
    assert_eq!(s.cmd("watch 0.0"), all);
    assert_eq!(s.cmd("watch 1.2.3"), all);
    assert_eq!(s.cmd("watch 11.5"), "online 12:def\n");
    assert_eq!(s.cmd("watch 11.5.9"), "online 12:def\n");
    assert_eq!(s.cmd("watch 00011"), "online 12:def\n");
    assert_eq!(s.cmd("watch -1"), "FAKE 12:FAKE\n");
    assert_eq!(s.cmd("watch 0"), "FAKE 12:FAKE\n");
    assert_eq!(s.cmd("watch x1"), "FAKE 12:FAKE\n");
}

/// Spec 13.1 #22: a client that starts from FAKE and passes its position sees the very
/// next event (the original missed it).
#[test]
fn watch_following_fake_misses_no_event() {
    let s = Server::start("");
    assert_eq!(s.cmd("watch 0"), "FAKE 10:FAKE\n");
    wait_and_disconnect(&s, "abc", 1);
    assert_eq!(s.cmd("watch 10"), "online 11:abc\n");
    assert_eq!(s.cmd("watch 0"), "FAKE 11:FAKE\n");
    assert_eq!(s.cmd("watch 11"), "");
    wait_and_disconnect(&s, "def", 2);
    assert_eq!(s.cmd("watch 11"), "online 12:def\n");
}
