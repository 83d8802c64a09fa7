//! `floor-server --fanout` against the loadtest itself and by hand: the fan-out floor must
//! really do the exchange (every parked listener gets the one body, once) or the suite's
//! "fan-out vs kernel floor" would compare against nothing. In-process (the floor runs on
//! a thread, the workers as threads), small, on 127.0.0.1 only, every wait bounded.

use realplexor_loadtest::{args, floor, proto, run_scenario, target};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// Starts a floor server on two free ports; returns (wait, in) addresses.
fn start_floor(fanout: bool) -> (String, String) {
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("free port")
        })
        .collect();
    let dir = std::env::temp_dir().join(format!(
        "realplexor-floor-fanout-{}-{}",
        std::process::id(),
        ports[0]
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let conf = dir.join("floor.conf");
    std::fs::write(&conf, target::override_conf(ports[0], ports[1], "")).expect("conf");
    let path = conf.to_string_lossy().into_owned();
    // Serves until the test process exits.
    std::thread::spawn(move || floor::serve_with(&path, fanout));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", ports[1])).is_err() {
        assert!(Instant::now() < deadline, "floor server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (
        format!("127.0.0.1:{}", ports[0]),
        format!("127.0.0.1:{}", ports[1]),
    )
}

#[test]
fn fanout_scenario_runs_against_the_fanout_floor() {
    let (w, i) = start_floor(true);
    let argv: Vec<String> = [
        "fanout",
        "--wait",
        &w,
        "--in",
        &i,
        "-n",
        "300",
        "--quiet",
        "--timeout",
        "30",
        "--name",
        "kernel-floor",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let opts = args::parse(&argv).expect("arguments");
    let v = run_scenario(&opts, None).expect("fanout");
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["delivered"], 300);
    assert_eq!(v["bad_payload"], 0);
}

fn park(wait: &str, id: &str) -> TcpStream {
    let mut s = TcpStream::connect(wait).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(&proto::wait_request(&[(None, id)], 1))
        .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while realplexor_loadtest::net::find(&got, proto::HEADER_END).is_none() {
        let n = s.read(&mut buf).expect("header block");
        assert!(n > 0, "closed before parking");
        got.extend_from_slice(&buf[..n]);
    }
    s
}

fn push(inn: &str, id: &str, body: &[u8]) {
    let mut s = TcpStream::connect(inn).expect("connect IN");
    s.write_all(&proto::push_request(&[id], body))
        .expect("write");
    s.shutdown(Shutdown::Write).expect("half-close");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = s.read_to_end(&mut Vec::new());
}

/// What a parked socket receives until the server closes it (header block already read).
fn rest(mut s: TcpStream) -> Vec<u8> {
    let mut out = proto::HEADER_END.to_vec();
    s.read_to_end(&mut out).expect("read to EOF");
    out
}

#[test]
fn a_listener_leaving_early_leaves_the_others_their_push() {
    let (w, i) = start_floor(true);
    let ls: Vec<TcpStream> = (0..4).map(|_| park(&w, "grp")).collect();
    let other = park(&w, "solo");
    let mut ls = ls.into_iter();
    let first = ls.next().expect("four");
    // The first one leaves: the last one takes its slot in the list.
    drop(first);
    std::thread::sleep(Duration::from_millis(100));
    push(&i, "grp", b"\"hello\"");
    for s in ls {
        let blocks = proto::parse_wait_response(&rest(s)).expect("one block");
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].data, "\"hello\"");
        assert_eq!(blocks[0].ids[0].0, "grp");
    }
    // Another id's listener is untouched by that push and gets its own.
    push(&i, "solo", b"2");
    let blocks = proto::parse_wait_response(&rest(other)).expect("one block");
    assert_eq!(blocks[0].data, "2");
}
