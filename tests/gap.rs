//! The gap signal (README "Gap signal"): a listener that opted in with `gap=1` and whose
//! cursor is below what the server dropped gets one `"gap": true` block first; without
//! the opt-in the bytes are the original's.

use crate::util::*;

/// The gap block as the long-poll body writes it.
fn gap_block(ids: &[(&str, &str)]) -> String {
    let pairs: Vec<String> = ids
        .iter()
        .map(|(i, c)| format!("\"{i}\": \"{c}\""))
        .collect();
    format!(
        "  {{\n    \"ids\": {{ {} }},\n    \"gap\": true\n  }}",
        pairs.join(", ")
    )
}

/// A browser-like request that opts in (before the marker, as the JS client sends it).
fn opt_in(list: &str) -> Vec<u8> {
    format!("GET /?gap=1&identifier={list} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

fn plain(list: &str) -> Vec<u8> {
    format!("GET /?identifier={list} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

/// Pushes `data` to `id` and returns the cursor it got (read by a listener without one).
fn push_cursor(s: &Server, id: &str, data: &str) -> String {
    let w = WaitClient::register(s, format!("identifier={id}\n").as_bytes());
    s.push_ids(id, data);
    let got = w.read_body();
    let ids = parse_ids(&got);
    ids[0][0].1.clone()
}

#[test]
fn gap_after_trim_opt_in_bytes_exact_and_old_bytes_unchanged() {
    let s = Server::start("$CONFIG{MAX_DATA_FOR_ID} = 2;");
    let c1 = push_cursor(&s, "a", "1");
    let c2 = push_cursor(&s, "a", "2");
    let c3 = push_cursor(&s, "a", "3");
    let c4 = push_cursor(&s, "a", "4");
    // Queue: 3, 4; 1 and 2 were trimmed. A listener at c1 missed 2.
    let data = [block(&[("a", &c3)], "3"), block(&[("a", &c4)], "4")];
    let got = WaitClient::register(&s, &opt_in(&format!("{c1}:a"))).read_body();
    let mut want = vec![gap_block(&[("a", &c2)])];
    want.extend(data.iter().cloned());
    assert_eq!(got, body(&want));
    // Without the opt-in: exactly the original's bytes.
    let got = WaitClient::register(&s, &plain(&format!("{c1}:a"))).read_body();
    assert_eq!(got, body(&data));
    // At the newest dropped cursor nothing is missing: no gap.
    let got = WaitClient::register(&s, &opt_in(&format!("{c2}:a"))).read_body();
    assert_eq!(got, body(&data));
}

#[test]
fn gap_after_clean_names_the_newest_cleaned_cursor() {
    let s = Server::start("$CONFIG{CLEAN_ID_AFTER} = 1;");
    let c1 = push_cursor(&s, "a", "1");
    let c2 = push_cursor(&s, "a", "2");
    s.wait_log(|l| l.contains("[a] cleaned"), LOG_TIMEOUT);
    // Nothing left to deliver, but the listener learns at once that it missed data.
    let got = WaitClient::register(&s, &opt_in(&format!("{c1}:a,{c1}:other"))).read_body();
    assert_eq!(got, body(&[gap_block(&[("a", &c2)])]));
    // Not opted in, or up to date: parked as before.
    let w = WaitClient::register(&s, &plain(&format!("{c1}:a")));
    let w2 = WaitClient::register(&s, &opt_in(&format!("{c2}:a")));
    s.barrier();
    w.assert_silent();
    w2.assert_silent();
    s.push_ids("a", "3");
    assert_eq!(parse_ids(&w2.read_body()).len(), 1);
}

#[test]
fn gap_after_a_restart_without_snapshot() {
    let s = Server::start("");
    let c1 = push_cursor(&s, "a", "1");
    drop(s);
    let s = Server::start("");
    let got = WaitClient::register(&s, &opt_in(&format!("{c1}:a"))).read_body();
    let ids = parse_ids(&got);
    assert_eq!(
        mask_generated(&got),
        body(&[gap_block(&[("a", "X")])]).replace("\"X\"", GEN)
    );
    let start = &ids[0][0].1;
    assert!(
        start > &c1,
        "history start {start} above the old cursor {c1}"
    );
    // Continuing from the gap's cursor: no gap, and the next message arrives.
    let w = WaitClient::register(&s, &opt_in(&format!("{start}:a")));
    s.barrier();
    w.assert_silent();
    s.push_ids("a", "2");
    let got = w.read_body();
    assert_eq!(mask_generated(&got), body(&[block(&[("a", GEN)], "2")]));
    assert!(parse_ids(&got)[0][0].1.as_str() > start.as_str());
}

#[test]
fn no_gap_for_fresh_clients_zero_cursors_or_ids_without_messages() {
    let s = Server::start("$CONFIG{MAX_DATA_FOR_ID} = 1;");
    let c1 = push_cursor(&s, "a", "1");
    let c2 = push_cursor(&s, "a", "2");
    let _ = c2;
    // No cursor: listens from now. Cursor 0: whatever is kept. An id that never had a
    // message, with a cursor this server gave out: nothing was dropped.
    let fresh = WaitClient::register(&s, &opt_in("a"));
    let never = WaitClient::register(&s, &opt_in(&format!("{c1}:never")));
    let zero = WaitClient::register(&s, &opt_in("0:a")).read_body();
    assert_eq!(mask_generated(&zero), body(&[block(&[("a", GEN)], "2")]));
    s.barrier();
    fresh.assert_silent();
    never.assert_silent();
}
