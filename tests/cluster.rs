//! Cluster mode (issue 13) against a real redis-server started here: two "hosts" (two
//! server instances) share ids through one Redis log, with the same cursor bytes; a worker
//! restarted rebuilds its queues from the log; a push Redis cannot take gets a 503.

use crate::util::*;

pub(crate) fn conf(r: &Redis, prefix: &str) -> String {
    format!(
        "$CONFIG{{CLUSTER_REDIS}} = '127.0.0.1:{}';\n$CONFIG{{CLUSTER_PREFIX}} = '{prefix}';\n",
        r.port
    )
}

/// The (id, cursor) pairs and data of a long-poll reply with one block.
fn one_block(body: &str) -> (Vec<(String, String)>, String) {
    let ids = parse_ids(body);
    assert_eq!(ids.len(), 1, "{body}");
    let data = body
        .lines()
        .find_map(|l| l.strip_prefix("    \"data\": "))
        .unwrap_or_default()
        .to_string();
    (ids[0].clone(), data)
}

#[test]
fn a_push_on_one_host_reaches_listeners_on_both_with_the_same_cursor() {
    let r = Redis::start(&[]);
    let a = Server::start(&conf(&r, "two_hosts"));
    let b = Server::start(&conf(&r, "two_hosts"));
    let wa = WaitClient::register(&a, b"identifier=shared\n");
    let wb = WaitClient::register(&b, b"identifier=shared\n");
    // Answered (with the original's empty reply) once Redis has it.
    a.push_ids("shared", "\"hello\"");
    let (ids_a, data_a) = one_block(&wa.read_body());
    let (ids_b, data_b) = one_block(&wb.read_body());
    assert_eq!(data_a, "\"hello\"");
    assert_eq!(data_b, "\"hello\"");
    assert_eq!(ids_a, ids_b, "the same cursor bytes on both hosts");
    assert!(is_generated_cursor(&ids_a[0].1), "{ids_a:?}");
    // A client that reconnects to the other host with its cursor gets exactly what follows.
    b.push_ids("shared", "\"second\"");
    let wa = WaitClient::register(&a, format!("identifier={}:shared\n", ids_a[0].1).as_bytes());
    let (_, d) = one_block(&wa.read_body());
    assert_eq!(d, "\"second\"");
}

#[test]
fn a_restarted_server_rebuilds_its_queues_from_the_log() {
    let r = Redis::start(&[]);
    let c = conf(&r, "rebuild");
    let a = Server::start(&c);
    a.push_ids("kept", "\"one\"");
    a.push_ids("kept", "\"two\"");
    drop(a);
    // A fresh process (nothing in memory) serves the old messages to a client's cursor.
    let b = Server::start(&c);
    b.wait_log(
        |m| m.contains("caught up with the message log"),
        LOG_TIMEOUT,
    );
    let w = WaitClient::register(&b, b"identifier=0:kept\n");
    let body = w.read_body();
    assert!(
        body.contains("\"one\"") && body.contains("\"two\""),
        "{body}"
    );
}

#[test]
fn a_push_redis_cannot_take_gets_503_and_delivery_resumes_by_itself() {
    let mut r = Redis::start(&[]);
    let s = Server::start(&conf(&r, "down"));
    let w = WaitClient::register(&s, b"identifier=d\n");
    r.kill();
    let reply = show(&s.push(b"identifier=d\n\n\"lost?\""));
    assert!(
        reply.starts_with("HTTP/1.0 503 Service Unavailable\r\n"),
        "{reply}"
    );
    r.launch();
    // The link comes back by itself; the next push is delivered to the parked client.
    let deadline = std::time::Instant::now() + LOG_TIMEOUT;
    loop {
        let reply = s.push(b"identifier=d\n\n\"back\"");
        if reply.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never came back");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let body = w.read_body();
    assert!(
        body.contains("\"back\"") && !body.contains("lost?"),
        "{body}"
    );
}

#[test]
fn workers_without_cluster_redis_is_a_startup_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_realplexor"))
        .arg("--help")
        .output()
        .expect("run");
    assert!(out.status.success());
    let dir = std::env::temp_dir().join(format!("rp-workers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let conf = dir.join("w.conf");
    std::fs::write(&conf, "$CONFIG{WORKERS} = 2;\n$CONFIG{WAIT_ADDR} = ['127.0.0.1:0'];\n$CONFIG{IN_ADDR} = ['127.0.0.1:0'];\nreturn 1;\n").expect("conf");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_realplexor"))
        .arg(&conf)
        .output()
        .expect("run");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("WORKERS") && text.contains("CLUSTER_REDIS"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Polls `f` until it holds or the deadline passes.
pub(crate) fn eventually(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn online_and_watch_on_one_host_show_listeners_of_another() {
    let r = Redis::start(&[]);
    let c = conf(&r, "presence") + "$CONFIG{OFFLINE_TIMEOUT} = 1;\n";
    let a = Server::start(&c);
    let b = Server::start(&c);
    let wb = WaitClient::register(&b, b"identifier=on_b\n");
    eventually("A sees on_b online", 5, || {
        a.cmd("ONLINE").contains("on_b 1")
    });
    let watch = a.cmd("WATCH 0.0");
    assert!(
        watch
            .lines()
            .any(|l| l.starts_with("online ") && l.ends_with(":on_b")),
        "{watch}"
    );
    // The same answer on B (positions from one cluster-wide counter).
    eventually("B's WATCH equals A's", 5, || b.cmd("WATCH 0.0") == watch);
    drop(wb);
    eventually("A sees on_b offline", 8, || {
        !a.cmd("ONLINE").contains("on_b")
    });
    let watch = a.cmd("WATCH 0.0");
    assert!(
        watch
            .lines()
            .any(|l| l.starts_with("offline ") && l.ends_with(":on_b")),
        "{watch}"
    );
}

#[test]
fn a_host_killed_without_warning_has_its_ids_go_offline() {
    let r = Redis::start(&[]);
    let c = conf(&r, "dead_host");
    let a = Server::start(&c);
    let mut b = Server::start_foreground(&c);
    let _w = WaitClient::register(&b, b"identifier=on_dead\n");
    eventually("A sees on_dead online", 5, || {
        a.cmd("ONLINE").contains("on_dead 1")
    });
    b.signal(libc::SIGKILL);
    let _ = b.wait_exit(std::time::Duration::from_secs(5));
    // Reaped by A once the heartbeat is 5 s old.
    eventually("A sees on_dead offline", 12, || {
        !a.cmd("ONLINE").contains("on_dead")
    });
    let watch = a.cmd("WATCH 0.0");
    assert!(
        watch
            .lines()
            .any(|l| l.starts_with("offline ") && l.ends_with(":on_dead")),
        "{watch}"
    );
}

#[test]
fn redis_restarted_with_aof_keeps_every_acknowledged_push() {
    let mut r = Redis::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let c = conf(&r, "aof");
    let s = Server::start(&c);
    let w = WaitClient::register(&s, b"identifier=aof\n");
    s.push_ids("aof", "\"before\"");
    assert!(w.read_body().contains("\"before\""));
    r.kill();
    // While Redis is down: refused loudly, never accepted then lost.
    let reply = show(&s.push(b"identifier=aof\n\n\"during\""));
    assert!(reply.starts_with("HTTP/1.0 503 "), "{reply}");
    r.launch();
    eventually("pushes accepted again", 10, || {
        s.push(b"identifier=aof\n\n\"after\"").is_empty()
    });
    // A fresh server reads the whole log back: both acknowledged pushes, not the refused one.
    let fresh = Server::start(&c);
    fresh.wait_log(
        |m| m.contains("caught up with the message log"),
        LOG_TIMEOUT,
    );
    let body = WaitClient::register(&fresh, b"identifier=0:aof\n").read_body();
    assert!(
        body.contains("\"before\"") && body.contains("\"after\""),
        "{body}"
    );
    assert!(!body.contains("during"), "{body}");
}

#[test]
fn unreachable_redis_is_reported_without_a_busy_loop() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let s = Server::start_foreground(&format!("$CONFIG{{CLUSTER_REDIS}} = '127.0.0.1:{port}';\n"));
    s.wait_log(
        |m| m.contains("Redis") && m.contains("refused"),
        LOG_TIMEOUT,
    );
    // Pushes are refused with the reason; the worker idles meanwhile.
    let reply = show(&s.push(b"identifier=x\n\n\"y\""));
    assert!(reply.starts_with("HTTP/1.0 503 "), "{reply}");
    let ticks = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let rest = &stat[stat.rfind(')').expect(")") + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
    };
    let before = ticks(s.pid());
    std::thread::sleep(std::time::Duration::from_secs(2));
    let used = ticks(s.pid()) - before;
    assert!(used < 50, "{used} ticks in 2 s while Redis is down");
}

/// A loadtest scenario against a server with `workers` workers on `r`.
fn run_loadtest(r: &Redis, workers: usize, scenario: &str, extra: &[&str]) -> serde_json::Value {
    use realplexor_loadtest::{args, run_scenario};
    let cmd = format!("'{}' {{conf}}", env!("CARGO_BIN_EXE_realplexor"));
    let conf = format!(
        "$CONFIG{{CLUSTER_REDIS}} = '127.0.0.1:{}';\n$CONFIG{{CLUSTER_PREFIX}} = 'lt_{scenario}';\n$CONFIG{{WORKERS}} = {workers};",
        r.port
    );
    let mut argv: Vec<String> = [
        scenario,
        "--server-cmd",
        &cmd,
        "--conf-extra",
        &conf,
        "--quiet",
        "--timeout",
        "60",
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect();
    if !extra.contains(&"-n") {
        argv.extend(["-n".to_string(), "200".to_string()]);
    }
    let opts = args::parse(&argv).expect("arguments");
    run_scenario(&opts, None).unwrap_or_else(|e| panic!("{scenario}: {e}"))
}

#[test]
fn four_workers_behind_one_port_deliver_every_message_exactly_once_in_order() {
    let r = Redis::start(&[]);
    let v = run_loadtest(&r, 4, "multi", &["--pushes", "300", "--reconnect", "0.3"]);
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["lost"], 0, "{v:#}");
    assert_eq!(v["duplicates"], 0, "{v:#}");
    assert_eq!(v["out_of_order"], 0, "{v:#}");
    assert!(v["reconnects"].as_u64().unwrap_or(0) > 0, "{v:#}");
    let v = run_loadtest(
        &r,
        4,
        "churn",
        &["--rate", "100", "--duration", "2", "--lifetime-ms", "300"],
    );
    // Every client's online and offline event is seen through any worker; ONLINE's counts
    // may lag by up to a second in cluster mode, so churn's 100 ms count check is not the
    // rule here.
    assert!(v["parked"].as_u64().unwrap_or(0) >= 150, "{v:#}");
    assert_eq!(v["watch_online_seen"], v["parked"], "{v:#}");
    assert_eq!(
        v["watch_offline_seen"], v["watch_offline_expected"],
        "{v:#}"
    );
    assert_eq!(v["failed"], 0, "{v:#}");
}

#[test]
fn http_publish_in_cluster_mode_answers_once_redis_has_it_with_the_entry_cursor() {
    use std::io::{Read, Write};
    let r = Redis::start(&[]);
    let s = Server::start(&conf(&r, "http_pub"));
    let w = WaitClient::register(&s, b"identifier=hp\n");
    let mut c = connect_raw(s.in_addr());
    // Two pipelined pushes on one keep-alive connection: answered in order, each with the
    // cursor of its log entry.
    let req = |body: &str| {
        format!(
            "POST /pub?identifier=hp HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    c.write_all(format!("{}{}", req("\"one\""), req("\"two\"")).as_bytes())
        .expect("pushes");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let cursors = loop {
        let n = c.read(&mut buf).expect("reply");
        assert!(n > 0, "closed: {}", show(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        let bodies: Vec<&str> = text
            .split("HTTP/1.1 200 OK\r\n")
            .filter_map(|r| r.split_once("\r\n\r\n").map(|(_, b)| b))
            .filter(|b| b.ends_with('}'))
            .collect();
        if bodies.len() == 2 {
            break bodies
                .iter()
                .map(|b| {
                    let v: serde_json::Value = serde_json::from_str(b).expect("json");
                    v["cursor"].as_str().expect("cursor").to_string()
                })
                .collect::<Vec<_>>();
        }
    };
    assert!(cursors[0] < cursors[1], "{cursors:?}");
    let body = w.read_body();
    assert!(
        body.contains(&format!("\"hp\": \"{}\"", cursors[0])),
        "{body} {cursors:?}"
    );
}

#[test]
fn presence_changes_while_redis_is_away_are_reported_once_it_is_back() {
    let mut r = Redis::start(&[]);
    let c = conf(&r, "presence_outage");
    let a = Server::start(&c);
    let b = Server::start(&c);
    for s in [&a, &b] {
        s.wait_log(
            |m| m.contains("caught up with the message log"),
            LOG_TIMEOUT,
        );
    }
    r.kill();
    // Goes online on A while Redis is down: kept, and reported once the link is back.
    let _w = WaitClient::register(&a, b"identifier=during_outage\n");
    r.launch();
    eventually("B sees during_outage online", 15, || {
        online_or_unavailable(&b, "ONLINE").is_some_and(|o| o.contains("during_outage 1"))
    });
}

/// ONLINE's body, or None for the 503 a server answers while its Redis link is not back
/// (anything else fails the test).
fn online_or_unavailable(s: &Server, raw: &str) -> Option<String> {
    let reply = s.push(raw.as_bytes());
    if reply.starts_with(b"HTTP/1.0 503 ") {
        let body = text_body(&reply, "503 Service Unavailable");
        assert!(body.contains("ONLINE asks the cluster's Redis"), "{body}");
        return None;
    }
    Some(ok_body(&reply))
}

/// ONLINE on one host lists the ids listened on another, with the listener counts summed
/// over the hosts, filtered by prefix and by the login rule, in the text command and in
/// `GET /online`; answered from Redis (no host keeps a copy of the other's ids).
#[test]
fn online_on_one_host_sums_the_counts_of_every_host_with_prefixes_and_logins() {
    let r = Redis::start(&[]);
    let c = conf(&r, "online_sum");
    let users = format!(
        "$CONFIG{{USERS_FILE}} = '{}/tests/fixtures/non_anonymous.htpasswd';\n",
        env!("CARGO_MANIFEST_DIR")
    );
    let a = Server::start(&(c.clone() + &users));
    let b = Server::start(&c);
    let mut clients = Vec::new();
    for (s, id) in [
        (&a, "sum_a"),
        (&b, "sum_b"),
        (&b, "sum_b"),
        (&a, "sum_both"),
        (&b, "sum_both"),
        (&b, "sum_both"),
        (&b, "other_x"),
        (&a, "user_a"),
        (&b, "user_b"),
        (&b, "user_b"),
    ] {
        clients.push(WaitClient::register(
            s,
            format!("identifier={id}\n").as_bytes(),
        ));
    }
    let on_a =
        |what: &str| ok_body(&a.push(format!("identifier=user:password@\n\n{what}").as_bytes()));
    // A's login sees only its own prefixes; the counts are summed over A and B.
    eventually("A's ONLINE for user_ sums both hosts", 10, || {
        on_a("online user_ sum_") == "user_a 1\nuser_b 2\n"
    });
    // The guest on B: every id, sorted by bytes, and prefix filtering.
    eventually("B's ONLINE lists every id", 10, || {
        b.cmd("ONLINE") == "other_x 1\nsum_a 1\nsum_b 2\nsum_both 3\nuser_a 1\nuser_b 2\n"
    });
    assert_eq!(b.cmd("ONLINE sum_b"), "sum_b 2\nsum_both 3\n");
    assert_eq!(b.cmd("ONLINE sum_a other"), "other_x 1\nsum_a 1\n");
    assert_eq!(b.cmd("ONLINE nothing_"), "");
    assert_eq!(on_a("online other_"), "");
    // The HTTP API on A, with the login's credentials, and on B as the guest.
    let mut api = crate::http_api::Api::connect(&a);
    let got = api.request(&crate::http_api::get(
        "/online?identifier=user:password@&prefix=user_,sum_&counters=1",
        "",
    ));
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(got.json(), serde_json::json!({"user_a": 1, "user_b": 2}));
    let mut api = crate::http_api::Api::connect(&b);
    let got = api.request(&crate::http_api::get("/online?prefix=sum_&counters=1", ""));
    assert_eq!(
        got.json(),
        serde_json::json!({"sum_a": 1, "sum_b": 2, "sum_both": 3})
    );
    // Keep-alive: the next request on the same connection is served after the deferred one.
    let got = api.request(&crate::http_api::get("/online?prefix=other_", ""));
    assert_eq!(got.json(), serde_json::json!(["other_x"]));
    // The listeners leave: the counts follow (OFFLINE_TIMEOUT keeps the ids online at 0).
    clients.retain(|_| false);
    eventually("the counts drop to 0", 10, || {
        b.cmd("ONLINE sum_b") == "sum_b 0\nsum_both 0\n"
    });
}

/// While Redis is down ONLINE cannot be answered in cluster mode: the text command gets a
/// 503 that says so and `GET /online` a JSON 503, never an empty list; once Redis is back
/// (restarted empty) the ids online here are reported again and listed.
#[test]
fn online_while_redis_is_down_is_an_error_not_an_empty_list() {
    let mut r = Redis::start(&[]);
    let s = Server::start(&conf(&r, "online_down"));
    let _w = WaitClient::register(&s, b"identifier=still_here\n");
    eventually("ONLINE lists still_here", 10, || {
        s.cmd("ONLINE") == "still_here 1\n"
    });
    r.kill();
    let reply = s.push(b"ONLINE");
    let body = text_body(&reply, "503 Service Unavailable");
    assert!(body.contains("ONLINE asks the cluster's Redis"), "{body}");
    let mut api = crate::http_api::Api::connect(&s);
    let got = api.request(&crate::http_api::get("/online", ""));
    assert_eq!(got.status, 503, "{got:?}");
    assert!(got.body.contains("Redis"), "{got:?}");
    // Redis restarted without its data: the listener's id is reported again.
    r.launch();
    eventually("ONLINE lists still_here again", 15, || {
        online_or_unavailable(&s, "ONLINE").is_some_and(|o| o == "still_here 1\n")
    });
}

/// A worker frozen for longer than the heartbeat's dead-after (SIGSTOP: its Redis links stay
/// up) is reaped by another, its ids going offline; once it runs again, its next heartbeat
/// finds its ids missing in Redis and it reports them again.
#[test]
fn a_worker_reaped_while_frozen_reports_its_ids_again() {
    let r = Redis::start(&[]);
    let c = conf(&r, "frozen");
    let a = Server::start_foreground(&c);
    let b = Server::start(&c);
    let _w = WaitClient::register(&a, b"identifier=frozen_x\n");
    eventually("B sees frozen_x online", 10, || {
        b.cmd("ONLINE").contains("frozen_x 1")
    });
    a.signal(libc::SIGSTOP);
    eventually("B reaps the frozen worker", 15, || {
        !b.cmd("ONLINE").contains("frozen_x")
    });
    a.signal(libc::SIGCONT);
    eventually("B sees frozen_x online again", 15, || {
        b.cmd("ONLINE").contains("frozen_x 1")
    });
    let watch = b.cmd("WATCH 0.0");
    assert!(
        watch.ends_with(":frozen_x\n")
            && watch
                .lines()
                .last()
                .is_some_and(|l| l.starts_with("online ")),
        "{watch}"
    );
}
