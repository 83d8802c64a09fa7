//! Hardening, descriptor exhaustion: a worker with a small open-files limit runs out of
//! descriptors, pauses accepting without spinning or crashing, serves what it holds, and
//! accepts again once descriptors are freed.
//!
//! Data: registered and pending WAIT clients; the worker's CPU ticks from /proc. May use
//! `crate::util`, `super::round_trip` and std.

use super::round_trip;
use crate::util::*;
use std::io::Write;
use std::net::Shutdown;
use std::thread;
use std::time::{Duration, Instant};

/// utime + stime of a process, in clock ticks (USER_HZ, 100 on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // Fields 14 and 15 of the whole line are 12 and 13 after the name.
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

enum Outcome {
    Registered,
    Paused,
}

#[test]
fn descriptor_exhaustion_neither_crashes_nor_spins() {
    const NOFILE: u32 = 64;
    let mut s = Server::start_with_nofile("", NOFILE);
    s.wait_log(
        |m| {
            m.starts_with(&format!(
                "Starting. Opened files limit (ulimit -n): {NOFILE}."
            ))
        },
        LOG_TIMEOUT,
    );
    // Browsers stop at the reserve kept for publishers (issue 18 #3), before accept fails.
    let is_pause = |m: &str| {
        (m.starts_with("accept: ") && m.contains("pausing new connections"))
            || m.starts_with("WAIT: descriptor reserve reached")
    };
    // A publisher connected while descriptors are free; it sends its push later.
    let mut publisher = connect_raw(s.in_addr());
    let me = publisher.local_addr().expect("local");
    s.wait_log(
        |m| m.contains(&format!("{me}: DEBUG: connection opened")),
        LOG_TIMEOUT,
    );

    // Register WAIT clients one at a time until the server runs out of descriptors.
    let mut registered = Vec::new();
    let mut pending = Vec::new();
    for i in 0..2 * NOFILE as usize {
        let mut c = WaitClient::connect(s.wait_addr());
        c.send(format!("identifier=fd{i}\n").as_bytes());
        let reg = format!(":fd{i}] registered");
        let opened = format!("{}: DEBUG: connection opened", c.local());
        // Linux's accept() fails with EMFILE as soon as no descriptor is free, even with
        // nothing queued: the accept that took the last descriptor is followed by a pause
        // line in the same turn, and is told apart by its `connection opened` line.
        let out = s.wait_until(&format!("fd{i} registered or paused"), LOG_TIMEOUT, |es| {
            if es.iter().any(|e| e.msg.ends_with(&reg)) {
                Some(Outcome::Registered)
            } else if es.iter().any(|e| is_pause(&e.msg))
                && !es.iter().any(|e| e.msg.ends_with(&opened))
            {
                Some(Outcome::Paused)
            } else {
                None
            }
        });
        match out {
            Outcome::Registered => {
                c.expect_header();
                registered.push((i, c));
            }
            Outcome::Paused => pending.push((i, c)),
        }
        if pending.len() == 5 {
            break;
        }
    }
    assert_eq!(pending.len(), 5, "the server never ran out of descriptors");
    assert!(
        registered.len() >= 20,
        "only {} registered",
        registered.len()
    );
    for (_, c) in &pending {
        c.assert_silent();
    }

    // At the limit: no spin (the accept retry is every 100 ms), at most a warning a second.
    let pauses_before = s.entries().iter().filter(|e| is_pause(&e.msg)).count();
    let (t0, c0) = (Instant::now(), cpu_ticks(s.pid()));
    thread::sleep(Duration::from_millis(1500));
    let (dt, dc) = (t0.elapsed(), cpu_ticks(s.pid()) - c0);
    let pauses = s.entries().iter().filter(|e| is_pause(&e.msg)).count() - pauses_before;
    let cpu = dc as f64 / 100.0 / dt.as_secs_f64();
    eprintln!(
        "at the descriptor limit: CPU {:.1}% over {dt:?}, {pauses} warnings",
        cpu * 100.0
    );
    assert!(
        cpu < 0.2,
        "server CPU {:.0}% at the descriptor limit",
        cpu * 100.0
    );
    assert!(pauses <= 3, "{pauses} pause warnings in {dt:?}");
    assert!(s.is_running(), "server died at the descriptor limit");

    // It serves the connections it has: the publisher's push reaches every registered one,
    // and their closes free descriptors.
    let ids: Vec<String> = registered.iter().map(|(i, _)| format!("fd{i}")).collect();
    publisher
        .write_all(format!("X-Realplexor: identifier={}\r\n\r\n\"full\"", ids.join(",")).as_bytes())
        .expect("publish");
    publisher.shutdown(Shutdown::Write).expect("shutdown");
    assert_eq!(show(&read_to_eof(&mut publisher)), "");
    for (i, c) in registered {
        let got = c.read_body();
        assert!(
            got.contains(&format!("\"fd{i}\"")) && got.contains("\"full\""),
            "{got}"
        );
    }
    // It accepts again: the pending clients are registered, and served.
    for (_, c) in pending.iter_mut() {
        c.expect_header();
    }
    for (i, c) in pending {
        s.push_ids(&format!("fd{i}"), "\"again\"");
        assert!(c.read_body().contains("\"again\""));
    }
    round_trip(&s, "fresh");
    assert!(s.is_running());
}
