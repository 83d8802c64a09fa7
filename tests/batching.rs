//! Deliveries per loop turn (issue 17): the pushes applied in one turn wake their
//! listeners together at its end, so a listener of several busy ids gets one reply with
//! every new message instead of one reply (and one reconnect) per push.

use crate::util::*;
use std::io::Write;
use std::net::{Shutdown, TcpStream};

fn send_push(s: &Server, ids: &str, data: &str) -> TcpStream {
    let mut p = in_stream(s);
    p.write_all(format!("X-Realplexor: identifier={ids}\r\n\r\n{data}").as_bytes())
        .expect("push");
    p.shutdown(Shutdown::Write).expect("half-close");
    p
}

#[test]
fn pushes_of_one_turn_reach_a_listener_in_one_reply() {
    let s = Server::start_foreground("");
    let w = WaitClient::register(&s, b"identifier=busy_a,busy_b\n");
    // Stopped, the worker finds both pushes queued at once when it resumes: one turn.
    s.signal(libc::SIGSTOP);
    let mut a = send_push(&s, "busy_a", "\"first\"");
    let mut b = send_push(&s, "busy_b", "\"second\"");
    s.signal(libc::SIGCONT);
    assert_eq!(show(&read_to_eof(&mut a)), "");
    assert_eq!(show(&read_to_eof(&mut b)), "");
    let got = mask_generated(&w.read_body());
    assert_eq!(
        got,
        body(&[
            block(&[("busy_a", GEN)], "\"first\""),
            block(&[("busy_b", GEN)], "\"second\""),
        ]),
        "both pushes in one reply"
    );
    // The log keeps the original's order per publisher: its push, the delivery, its close.
    s.wait_log_count(
        |m| m.starts_with("IN: ") && m.ends_with("connection closed"),
        2,
    );
    let es = s.entries();
    let at = |p: &dyn Fn(&str) -> bool| es.iter().position(|e| p(&e.msg)).expect("line");
    let sent = at(&|m| m.starts_with("<- sending 2 responses"));
    assert!(at(&|m| m.contains("added data for [busy_b]")) < sent);
    assert!(sent < at(&|m| m.starts_with("IN: ") && m.ends_with("connection closed")));
}
