//! The helpers themselves, on fixed inputs (no server needed).
//!
//! Data: literal log lines, stats lines and reply bodies. May use the sibling modules.

use super::log::parse_entries;
use super::*;

/// The helpers themselves, on fixed inputs (no server needed).
#[test]
fn harness_helpers() {
    assert_eq!(http_date(1_407_363_695), "Wed,  6 Aug 2014 22:21:35 GMT");
    assert_eq!(http_date(0), "Thu,  1 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(
        parse_stats("  [pairs_by_fhs=1 data_to_send=2 connected_fhs=3 online_timers=4 cleanup_timers=5 events=6]"),
        Some((1, 2, 3, 4, 5))
    );
    assert_eq!(parse_stats("[abc] is now offline"), None);
    assert!(has_ctime_prefix("[Mon Nov  3 02:18:55 2026] x"));
    assert!(!has_ctime_prefix("[abc] is now offline"));
    let es = parse_entries(&[
        "[Mon Nov 23 02:18:55 2026] WAIT: 127.0.0.1:5555: DEBUG: [1795400405.96369000100000:abc,(and 1 more)] registered".to_string(),
        "  [pairs_by_fhs=1 data_to_send=0 connected_fhs=2 online_timers=2 cleanup_timers=0 events=2]".to_string(),
        "[Mon Nov 23 02:18:55 2026] <- sending 1 responses (77 bytes) from [abc, def] (print=1, shutdown=1)".to_string(),
    ]);
    assert_eq!(es.len(), 2);
    assert_eq!(es[0].stats, Some((1, 0, 2, 2, 0)));
    assert_eq!(es[1].stats, None);
    assert_eq!(
        norm(&es[0].msg),
        "WAIT: DEBUG: [*:abc,(and 1 more)] registered"
    );
    assert_eq!(
        norm(&es[1].msg),
        "<- sending 1 responses (<N> bytes) from [abc, def] (print=1, shutdown=1)"
    );
    assert_eq!(
        norm("IN: [::1]:80: DEBUG: read 12 bytes"),
        "IN: DEBUG: read <N> bytes"
    );
    assert_eq!(
        norm("WAIT: listening 127.0.0.1:8088"),
        "WAIT: listening 127.0.0.1:8088"
    );
    assert_eq!(
        norm("Starting. Opened files limit (ulimit -n): 1024."),
        "Starting."
    );
    assert_eq!(
        norm("CONFIG: appending configuration from /tmp/x.conf"),
        "CONFIG: appending configuration from ***"
    );
    let b = r#"{ "abc": "1795400405.96369000100000", "d": "12345.678" }"#;
    assert_eq!(
        mask_generated(b),
        r#"{ "abc": <cursor>, "d": "12345.678" }"#
    );
    assert_eq!(
        block(&[("abc", GEN), ("def", "5")], "\"a\""),
        "  {\n    \"ids\": { \"abc\": <cursor>, \"def\": \"5\" },\n    \"data\": \"a\"\n  }"
    );
    assert_eq!(
        body(&[block(&[("abc", "15")], "\"aaa\"")]),
        "[\n  {\n    \"ids\": { \"abc\": \"15\" },\n    \"data\": \"aaa\"\n  }\n]"
    );
    assert_eq!(
        parse_ids(&body(&[block(&[("a", "1"), ("b", "2.5")], "1\n2")])),
        vec![vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2.5".to_string())
        ]]
    );
}
