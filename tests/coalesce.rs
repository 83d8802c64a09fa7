//! The coalescing window (COALESCE_MS, issue 17): a long-poll request is answered no
//! earlier than COALESCE_MS after it registered, so pushes arriving meanwhile share one
//! reply; one parked longer is answered at once; 0 keeps the original's timing. A held
//! client stays parked like any other: nothing is lost when it leaves, times out or the
//! server stops.
//!
//! A push's IN connection reaches EOF only after the deliveries it caused were written,
//! so "the reply holds only the first push" is a check of order, not of time.

use crate::util::*;
use std::thread::sleep;
use std::time::{Duration, Instant};

fn conf(ms: u32) -> String {
    format!("$CONFIG{{COALESCE_MS}} = {ms};\n")
}

#[test]
fn two_pushes_10ms_apart_to_a_fresh_listener_arrive_in_one_reply() {
    let s = Server::start(&conf(200));
    let start = Instant::now();
    let w = WaitClient::register(&s, b"identifier=co_a,co_b\n");
    s.push_ids("co_a", "\"first\"");
    sleep(Duration::from_millis(10));
    s.push_ids("co_b", "\"second\"");
    let got = mask_generated(&w.read_body());
    assert_eq!(
        got,
        body(&[
            block(&[("co_a", GEN)], "\"first\""),
            block(&[("co_b", GEN)], "\"second\""),
        ]),
        "both pushes in one reply"
    );
    // Held until the window ended (a lower bound: the client started before the server
    // registered it).
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[test]
fn with_zero_the_first_push_is_answered_alone() {
    let s = Server::start(&conf(0));
    let w = WaitClient::register(&s, b"identifier=co_a,co_b\n");
    s.push_ids("co_a", "\"first\"");
    sleep(Duration::from_millis(10));
    s.push_ids("co_b", "\"second\"");
    assert_eq!(
        mask_generated(&w.read_body()),
        body(&[block(&[("co_a", GEN)], "\"first\"")]),
    );
    // The second push is the next request's reply.
    let again = WaitClient::register(&s, b"identifier=1:co_b\n");
    assert_eq!(
        mask_generated(&again.read_body()),
        body(&[block(&[("co_b", GEN)], "\"second\"")]),
    );
}

#[test]
fn a_listener_parked_longer_than_the_window_is_answered_at_once() {
    let s = Server::start(&conf(200));
    let w = WaitClient::register(&s, b"identifier=co_a,co_b\n");
    sleep(Duration::from_millis(400));
    s.push_ids("co_a", "\"first\"");
    s.push_ids("co_b", "\"second\"");
    assert_eq!(
        mask_generated(&w.read_body()),
        body(&[block(&[("co_a", GEN)], "\"first\"")]),
        "answered by the first push, before the second"
    );
}

#[test]
fn data_pending_at_registration_waits_for_the_window_too() {
    let s = Server::start(&conf(200));
    s.push_ids("co_a", "\"old\"");
    let start = Instant::now();
    let w = WaitClient::register(&s, b"identifier=1:co_a\n");
    s.push_ids("co_a", "\"new\"");
    let got = mask_generated(&w.read_body());
    assert_eq!(
        got,
        body(&[
            block(&[("co_a", GEN)], "\"old\""),
            block(&[("co_a", GEN)], "\"new\""),
        ])
    );
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[test]
fn nothing_is_lost_when_a_held_client_disconnects() {
    let s = Server::start(&conf(200));
    let w = WaitClient::register(&s, b"identifier=1:co_gone\n");
    s.push_ids("co_gone", "\"kept\"");
    drop(w);
    s.wait_log(
        |m| m.starts_with("WAIT: ") && m.ends_with("[1:co_gone] connection closed"),
        LOG_TIMEOUT,
    );
    // Its window ends with nobody there: the server carries on.
    sleep(Duration::from_millis(300));
    s.barrier();
    let back = WaitClient::register(&s, b"identifier=1:co_gone\n");
    assert_eq!(
        mask_generated(&back.read_body()),
        body(&[block(&[("co_gone", GEN)], "\"kept\"")]),
    );
}

#[test]
fn the_window_is_cut_to_half_of_wait_timeout_and_held_listeners_time_out_cleanly() {
    // COALESCE_MS 5000 with WAIT_TIMEOUT 1: held for 0.5 s, then answered, not timed out.
    let s = Server::start(&format!("{}$CONFIG{{WAIT_TIMEOUT}} = 1;\n", conf(5000)));
    let w = WaitClient::register(&s, b"identifier=1:co_slow\n");
    s.push_ids("co_slow", "\"later\"");
    assert_eq!(
        mask_generated(&w.read_body()),
        body(&[block(&[("co_slow", GEN)], "\"later\"")]),
    );
    // A listener with nothing to get: its window ends, then WAIT_TIMEOUT closes it.
    let idle = WaitClient::register(&s, b"identifier=co_idle\n");
    assert_eq!(idle.read_body(), "", "WAIT_TIMEOUT: the header block only");
    s.wait_log(
        |m| m.starts_with("WAIT: ") && m.ends_with(":co_idle] timeout"),
        LOG_TIMEOUT,
    );
    s.wait_wait_closed(2);
    assert!(!s.has_log(|m| m.ends_with("[1:co_slow] timeout")));
}

#[test]
fn held_listeners_close_cleanly_on_stop() {
    let mut s = Server::start(&conf(5000));
    let clients: Vec<WaitClient> = (0..3)
        .map(|i| WaitClient::register(&s, format!("identifier=co_stop{i}\n").as_bytes()))
        .collect();
    s.push_ids("co_stop0,co_stop1,co_stop2", "\"held\"");
    s.signal(libc::SIGTERM);
    for c in clients {
        assert_eq!(c.read_body(), "", "the timeout reply: header block only");
    }
    let st = s
        .wait_exit(Duration::from_secs(3))
        .expect("exits within 3 s");
    assert_eq!(st.code(), Some(0));
}
