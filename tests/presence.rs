//! Online/offline tracking (spec 8.1) seen through ONLINE and WATCH: ports of
//! `t/servertest` 220 and 240 (spec 12.1 #15, #19), the OFFLINE_TIMEOUT grace window, two
//! connections on one id and the ONLINE counters.
//!
//! No fixed sleeps: "no offline event happened" is proven with a witness id that
//! disconnects *after* the id under test; the server's offline countdowns share one
//! length, so once the witness has gone offline, any countdown the id under test could
//! have had would have expired too. A barrier then makes sure the log is complete.

use crate::util::*;
use std::time::{Duration, Instant};

const Z: Stats = (0, 0, 0, 0, 0);

fn wait(s: &Server, ids: &str) -> WaitClient {
    WaitClient::register(s, format!("identifier={ids}\naaa\n").as_bytes())
}

/// Registers and disconnects the witness `zzz` (the `n`-th WAIT close), waits until it
/// went offline, then runs a barrier.
fn witness_offline(s: &Server, n: usize) {
    drop(wait(s, "zzz"));
    s.wait_wait_closed(n);
    s.wait_offline("zzz");
    s.barrier();
}

#[test]
fn t220_watch_event_online_offline() {
    let s = Server::start(fixture::SMALL_OFFLINE_TIMEOUT);
    let w = wait(&s, "abc");
    let reply = s.push(b"watch 1");
    assert_eq!(
        show(&reply),
        format!("{}online 11:abc\n", text_head("200 OK", 14))
    );
    drop(w);
    s.wait_wait_closed(1);
    let w = wait(&s, "def");
    let reply = s.push(b"watch 1");
    assert_eq!(
        show(&reply),
        format!("{}online 11:abc\nonline 12:def\n", text_head("200 OK", 28))
    );
    drop(w);
    s.wait_wait_closed(2);
    s.wait_offline("def");
    let reply = s.push(b"watch 1");
    assert_eq!(
        show(&reply),
        format!(
            "{}offline 13:abc\noffline 14:def\n",
            text_head("200 OK", 30)
        )
    );
    s.wait_in_closed(3);
    assert_eq!(s.last_stats(), Z);
}

#[test]
fn t240_watch_event_no_extra_offline() {
    let s = Server::start(fixture::SMALL_OFFLINE_TIMEOUT);
    let first = wait(&s, "1:abc");
    drop(wait(&s, "2:abc"));
    s.wait_wait_closed(1);
    // The original sleeps 3 s here; the witness proves the same without a fixed sleep.
    witness_offline(&s, 2);
    assert!(!s.went_offline("abc"), "offline while a connection listens");
    let reply = s.push(b"watch 1 abc");
    assert_eq!(
        show(&reply),
        format!("{}online 11:abc\n", text_head("200 OK", 14))
    );

    drop(first);
    s.wait_wait_closed(3);
    // Right after the last close: still online.
    assert_eq!(s.cmd("watch 1 abc"), "online 11:abc\n");
    s.wait_offline("abc");
    let reply = s.push(b"watch 1 abc");
    assert_eq!(
        show(&reply),
        format!("{}offline 14:abc\n", text_head("200 OK", 15))
    );
    assert_eq!(s.cmd("watch 1"), "offline 13:zzz\noffline 14:abc\n");
    s.wait_in_closed(5);
    assert_eq!(s.last_stats(), Z);
}

/// The offline event comes OFFLINE_TIMEOUT after the last close, not before.
#[test]
fn offline_comes_after_offline_timeout() {
    let s = Server::start(fixture::SMALL_OFFLINE_TIMEOUT);
    let w = wait(&s, "abc");
    let closed_at = Instant::now();
    drop(w);
    s.wait_wait_closed(1);
    assert_eq!(s.cmd("online"), "abc 0\n");
    s.wait_offline("abc");
    let took = closed_at.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "offline after {took:?}, OFFLINE_TIMEOUT is 1 s"
    );
    // The log line precedes the event, and its stats already show the id gone.
    assert_eq!(s.stats_of("[abc] is now offline"), Z);
    assert_eq!(s.cmd("online"), "");
    assert_eq!(s.cmd("watch 1"), "offline 12:abc\n");
}

/// Reconnecting within the grace window cancels the countdown and emits no new event.
#[test]
fn reconnect_within_offline_timeout_emits_nothing() {
    let s = Server::start(fixture::SMALL_OFFLINE_TIMEOUT);
    drop(wait(&s, "abc"));
    s.wait_wait_closed(1);
    let again = wait(&s, "abc");
    assert_eq!(s.cmd("watch 1"), "online 11:abc\n");
    assert_eq!(s.cmd("watch 0"), "FAKE 11:FAKE\n");
    // The first countdown would have fired before the witness's.
    witness_offline(&s, 2);
    assert!(!s.went_offline("abc"), "the cancelled countdown fired");
    assert_eq!(s.cmd("online"), "abc 1\n");
    assert_eq!(s.cmd("watch 1 abc"), "online 11:abc\n");

    drop(again);
    s.wait_wait_closed(3);
    s.wait_offline("abc");
    assert_eq!(s.cmd("watch 1"), "offline 13:zzz\noffline 14:abc\n");
    assert_eq!(s.cmd("online"), "");
}

/// Two connections on one id: closing one starts nothing; closing the last one does.
#[test]
fn two_connections_on_one_id() {
    let s = Server::start(fixture::SMALL_OFFLINE_TIMEOUT);
    let a = wait(&s, "abc");
    let b = wait(&s, "5:abc,def");
    assert_eq!(s.cmd("online"), "abc 2\ndef 1\n");
    assert_eq!(s.cmd("watch 1"), "online 11:abc\nonline 12:def\n");
    drop(b);
    s.wait_wait_closed(1);
    assert_eq!(s.cmd("online"), "abc 1\ndef 0\n");
    witness_offline(&s, 2);
    assert!(s.went_offline("def"));
    assert!(!s.went_offline("abc"), "offline while a connection listens");
    assert_eq!(s.cmd("online"), "abc 1\n");
    drop(a);
    s.wait_wait_closed(3);
    s.wait_offline("abc");
    assert_eq!(s.cmd("online"), "");
    assert_eq!(
        s.cmd("watch 1"),
        "offline 14:def\noffline 15:zzz\noffline 16:abc\n"
    );
}

/// One connection listing an id twice counts once (PHP test 541), and the counter is 0
/// between a delivery and the reconnect (spec 13.1 #14).
#[test]
fn online_counters() {
    let s = Server::start("");
    let w = wait(&s, "5:abc,10:def,6:abc");
    assert_eq!(s.cmd("online"), "abc 1\ndef 1\n");
    s.push_ids("abc", r#""x""#);
    let got = w.read_body();
    assert!(got.contains(r#""data": "x""#), "{got}");
    s.wait_wait_closed(1);
    assert_eq!(s.cmd("online"), "abc 0\ndef 0\n");
    let again = wait(&s, "abc");
    assert_eq!(s.cmd("online"), "abc 1\ndef 0\n");
    // Still one online event per id.
    assert_eq!(s.cmd("watch 1"), "online 11:abc\nonline 12:def\n");
    drop(again);
}
