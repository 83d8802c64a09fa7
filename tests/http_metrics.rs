//! `/metrics` of the HTTP API (issue 15), read by the real Prometheus text parser (Debian's
//! python3-prometheus-client), with values checked after known traffic.

use crate::http_api::{get, one_shot, publish, Api};
use crate::util::*;
use std::collections::BTreeMap;
use std::io::Write;

/// `name{label="v",...}` -> value, from the real Prometheus text parser.
fn scrape(s: &Server) -> BTreeMap<String, f64> {
    let mut api = Api::connect(s);
    let r = api.request(&get("/metrics", "Connection: close\r\n"));
    assert_eq!(r.status, 200);
    api.expect_eof();
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let script = r#"import sys
from prometheus_client.parser import text_string_to_metric_families
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        labels = ','.join('%s=%s' % kv for kv in sorted(s.labels.items()))
        print('%s{%s} %r' % (s.name, labels, s.value))
"#;
    let mut child = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(r.body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the scrape: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        r.body
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn metrics_parse_and_follow_traffic() {
    let s = Server::start("$CONFIG{MAX_DATA_FOR_ID} = 2;");
    let before = scrape(&s);
    let w0 = |k: &str| format!("{k}{{worker=0}}");
    for k in [
        "realplexor_pushes_total",
        "realplexor_parked_listeners",
        "realplexor_ids",
        "realplexor_online_ids",
        "realplexor_queued_messages",
        "realplexor_queued_bytes",
        "realplexor_reloads_total",
        "realplexor_accept_paused_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
        "process_start_time_seconds",
    ] {
        assert!(before.contains_key(&w0(k)), "{k} missing: {before:?}");
    }
    for reason in ["trim", "clean", "overflow", "in_timeout", "backpressure"] {
        let k = format!("realplexor_messages_dropped_total{{reason={reason},worker=0}}");
        assert_eq!(before.get(&k), Some(&0.0), "{k}");
    }
    let start = before[&w0("process_start_time_seconds")];
    assert!(
        (start - now_secs() as f64).abs() < 120.0,
        "start time {start}"
    );
    // Known traffic: 3 API pushes of 4 bytes to q (MAX_DATA_FOR_ID 2 trims one), 2 legacy
    // pushes to r, one parked listener on z that gets nothing.
    let w = WaitClient::register(&s, b"identifier=z\n");
    let mut api = Api::connect(&s);
    for i in 0..3 {
        assert_eq!(
            api.request(&publish("identifier=q", &format!("\"{i}\""), ""))
                .status,
            200
        );
    }
    s.push_ids("r", "\"12345\"");
    s.push_ids("r", "\"x\"");
    let after = scrape(&s);
    let d = |k: &str| after[&w0(k)] - before[&w0(k)];
    assert_eq!(d("realplexor_pushes_total"), 5.0);
    assert_eq!(after[&w0("realplexor_parked_listeners")], 1.0);
    assert_eq!(after[&w0("realplexor_online_ids")], 1.0);
    assert_eq!(after[&w0("realplexor_ids")], 3.0);
    assert_eq!(after[&w0("realplexor_queued_messages")], 4.0);
    assert_eq!(
        after[&w0("realplexor_queued_bytes")],
        (3 + 3 + 7 + 3) as f64
    );
    assert_eq!(
        after["realplexor_messages_dropped_total{reason=trim,worker=0}"],
        1.0
    );
    // The scrape's own connection and the keep-alive one are open; the WAIT client too.
    assert_eq!(
        after["realplexor_connections{line=wait,transport=longpoll,worker=0}"],
        1.0
    );
    assert_eq!(
        after["realplexor_connections{line=in,transport=http,worker=0}"],
        2.0
    );
    drop(w);
    drop(api);
    let big = format!(
        "POST /pub?identifier=q HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        1 << 30
    );
    let reply = show(&one_shot(&s, big.as_bytes()));
    assert!(reply.starts_with("HTTP/1.1 413 "), "{reply}");
    let last = scrape(&s);
    assert_eq!(
        last["realplexor_messages_dropped_total{reason=overflow,worker=0}"],
        1.0
    );
    assert_eq!(
        last["realplexor_deliveries_total{transport=longpoll,worker=0}"],
        0.0
    );
}

#[test]
fn a_push_cut_short_by_in_timeout_is_counted_as_dropped() {
    let s = Server::start("$CONFIG{IN_TIMEOUT} = 1;");
    let mut api = Api::connect(&s);
    api.send(b"POST /pub?identifier=t HTTP/1.1\r\nContent-Length: 10\r\n\r\n\"abc");
    api.expect_eof();
    let m = scrape(&s);
    assert_eq!(
        m["realplexor_messages_dropped_total{reason=in_timeout,worker=0}"],
        1.0
    );
    assert_eq!(m["realplexor_pushes_total{worker=0}"], 0.0);
}
