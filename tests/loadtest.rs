//! End-to-end runs of every loadtest scenario, small (200 connections, a few seconds),
//! against the real binary: the loadtest starts it with its own override conf, drives
//! the scenario with in-process workers and must report `"ok": true` (every connection
//! parked, every payload delivered and verified, presence exact, no loss or duplicate).
//! These check the loadtest and the server together; they assert no timing figure.

use realplexor_loadtest::{args, run_scenario};
use serde_json::Value;

fn run(scenario: &str, extra: &[&str]) -> Value {
    let cmd = format!("'{}' {{conf}}", env!("CARGO_BIN_EXE_realplexor"));
    let mut argv: Vec<String> = [scenario, "--server-cmd", &cmd, "--quiet", "--timeout", "30"]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
    if !extra.contains(&"-n") {
        argv.extend(["-n".to_string(), "200".to_string()]);
    }
    let opts = args::parse(&argv).expect("arguments");
    let v = run_scenario(&opts, None).unwrap_or_else(|e| panic!("{scenario}: {e}"));
    assert_eq!(v["ok"], true, "{scenario}: {v:#}");
    v
}

#[test]
fn loadtest_idle_reports_rss_per_connection() {
    let v = run("idle", &["--cycles", "1"]);
    assert_eq!(v["parked"], 200);
    assert!(v["rss_per_conn"].is_number(), "{v:#}");
    assert_eq!(v["cycles"][0]["parked"], 200);
}

#[test]
fn loadtest_fanout_delivers_every_payload() {
    let v = run("fanout", &[]);
    assert_eq!(v["delivered"], 200);
    assert_eq!(v["bad_payload"], 0);
    assert_eq!(v["cdf_ms"].as_array().map(Vec::len), Some(101));
}

#[test]
fn loadtest_stream_delivers_every_push_once_in_order_on_both_transports() {
    // A few dozen paced pushes to a few hundred SSE, then WebSocket, listeners: every
    // listener must count each push exactly once and in order (the figures of the run,
    // rate and lag, are not asserted).
    for (transport, api) in [("sse", "classic"), ("ws", "http")] {
        let v = run(
            "stream",
            &[
                "-n",
                "300",
                "--transport",
                transport,
                "--api",
                api,
                "--pushes",
                "40",
                "--rate",
                "50",
            ],
        );
        assert_eq!(v["transport"], transport);
        assert_eq!(v["parked"], 300);
        assert_eq!(v["pushes"], 40);
        assert_eq!(v["delivered"], 300 * 40, "{v:#}");
        assert_eq!(v["complete"], 300);
        for k in [
            "missing",
            "duplicates",
            "out_of_order",
            "bad",
            "closed",
            "in_errors",
        ] {
            assert_eq!(v[k], 0, "{transport} {k}: {v:#}");
        }
        assert_eq!(v["exactly_once"], true);
        assert!(v["lag_p99_ms"].is_number() && v["delivered_per_s"].is_number());
    }
}

#[test]
fn loadtest_publish_with_reparking_listeners() {
    let v = run("publish", &["--pushes", "500"]);
    assert_eq!(v["delivered"], 500);
    assert_eq!(v["reparks"], 500);
}

#[test]
fn loadtest_publish_over_the_http_api() {
    let v = run("publish", &["--pushes", "500", "--api", "http"]);
    assert_eq!(v["delivered"], 500);
    assert_eq!(v["in_errors"], 0);
    assert_eq!(v["api"], "http");
}

#[test]
fn loadtest_publish_without_listeners_counts_answered_pushes() {
    for api in ["classic", "http"] {
        let v = run(
            "publish",
            &[
                "-n",
                "0",
                "--pushes",
                "300",
                "--api",
                api,
                "--pub-conns",
                "2",
            ],
        );
        assert_eq!(v["listeners"], 0, "{api}");
        assert_eq!(v["delivered"], 300, "{api}");
        assert_eq!(v["in_errors"], 0, "{api}");
        assert_eq!(v["latency"]["n"], 300, "{api}");
    }
}

#[test]
fn loadtest_churn_presence_is_exact() {
    let v = run(
        "churn",
        &["--rate", "100", "--duration", "2", "--lifetime-ms", "300"],
    );
    assert!(v["parked"].as_u64().unwrap_or(0) >= 150, "{v:#}");
    assert_eq!(v["watch_offline_seen"], v["parked"]);
}

#[test]
fn loadtest_multi_exactly_once_in_order() {
    let v = run("multi", &["--pushes", "300", "--reconnect", "0.3"]);
    assert_eq!(v["lost"], 0);
    assert_eq!(v["duplicates"], 0);
    assert!(v["reconnects"].as_u64().unwrap_or(0) > 0, "{v:#}");
}

#[test]
fn loadtest_multi_stopped_by_its_timeout_drains_and_counts_no_false_loss() {
    // Far more pushes than 2 s allow: past the deadline the run stops pushing and drains
    // what is in flight, so `lost` stays a real count (it once counted in-flight pushes).
    let v = run(
        "multi",
        &[
            "--pushes",
            "10000000",
            "--reconnect",
            "0.3",
            "--timeout",
            "2",
        ],
    );
    assert_eq!(v["timed_out"], true, "{v:#}");
    assert_eq!(v["lost"], 0);
    assert!(v["pushes"].as_u64().unwrap_or(0) > 0, "{v:#}");
}

#[test]
fn loadtest_floor_server_serves_the_publish_exchange() {
    // The suite's kernel-floor reference must really do the exchange: every push arrives.
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("free port")
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("realplexor-floor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let conf = dir.join("floor.conf");
    std::fs::write(
        &conf,
        realplexor_loadtest::target::override_conf(ports[0], ports[1], ""),
    )
    .expect("conf");
    let path = conf.to_string_lossy().into_owned();
    // Serves until the test process exits.
    std::thread::spawn(move || realplexor_loadtest::floor::serve(&path));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", ports[1])).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "floor server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (w, i) = (
        format!("127.0.0.1:{}", ports[0]),
        format!("127.0.0.1:{}", ports[1]),
    );
    let argv: Vec<String> = [
        "publish",
        "--wait",
        &w,
        "--in",
        &i,
        "-n",
        "50",
        "--pushes",
        "300",
        "--quiet",
        "--timeout",
        "30",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let opts = args::parse(&argv).expect("arguments");
    let v = run_scenario(&opts, None).expect("publish");
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["delivered"], 300);
    assert_eq!(v["bad"], 0);
}
