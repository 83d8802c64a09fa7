//! Hardening, memory: ids and connections are forgotten (every storage counter returns
//! to zero), and RSS returns near its baseline after many distinct ids are cleaned.
//!
//! Data: the server's stats lines and its VmRSS from /proc. May use `crate::util`,
//! `super::round_trip` and std.

use super::round_trip;
use crate::util::*;
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn distinct_ids_and_connections_are_forgotten() {
    // Bounded version of scripts/reliability's memory figures: after pushes to many
    // distinct ids and many connects, every storage counter returns to zero.
    const N: usize = 2000;
    let s = Server::start("$CONFIG{CLEAN_ID_AFTER} = 1;\n$CONFIG{OFFLINE_TIMEOUT} = 1;\n");
    for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
        let ids: Vec<String> = chunk.iter().map(|i| format!("many{i}")).collect();
        s.push_ids(&ids.join(","), "\"m\"");
    }
    for i in 0..200 {
        let w = WaitClient::register(&s, format!("identifier=conn{i}\n").as_bytes());
        w.shutdown_write();
        drop(w);
    }
    s.wait_until(
        "every id cleaned and offline",
        Duration::from_secs(20),
        |es| {
            let cleaned = es
                .iter()
                .filter(|e| e.msg.contains("] cleaned, because"))
                .count();
            let offline = es
                .iter()
                .filter(|e| e.msg.ends_with("is now offline"))
                .count();
            (cleaned >= N && offline >= 200).then_some(())
        },
    );
    s.barrier();
    s.wait_in_closed(N / 500 + 1);
    assert_eq!(s.last_stats(), (0, 0, 0, 0, 0));
    let stats = s.push(b"stats");
    assert!(
        show(&stats).ends_with(
            "\r\n\r\n[data_to_send]\n\n[connected_fhs]\n\n[online_timers]\n\n[cleanup_timers]\n\n[pairs_by_fhs]\n"
        ),
        "{}",
        show(&stats)
    );
}

/// VmRSS of a process, in kB.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("/proc status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// The memory figure, bounded: after pushes to many distinct ids have all been
/// cleaned, RSS is back within 10% of the baseline (the server's housekeeping shrinks its
/// indexes and trims the heap at most every 5 s after a large cleanup).
#[test]
fn memory_returns_after_many_distinct_ids() {
    const N: usize = 100_000;
    let s = Server::start_foreground("$CONFIG{CLEAN_ID_AFTER} = 1;\n$CONFIG{VERBOSITY} = 1;\n");
    round_trip(&s, "warm");
    let base = rss_kb(s.pid());
    for b in 0..N / 1000 {
        let ids: Vec<String> = (b * 1000..(b + 1) * 1000)
            .map(|i| format!("m{i}"))
            .collect();
        s.push_ids(&ids.join(","), "\"m\"");
    }
    let peak = rss_kb(s.pid());
    let empty = "\r\n\r\n[data_to_send]\n\n[connected_fhs]\n\n[online_timers]\n\n[cleanup_timers]\n\n[pairs_by_fhs]\n";
    let deadline = Instant::now() + Duration::from_secs(60);
    while !show(&s.push(b"stats")).ends_with(empty) {
        assert!(Instant::now() < deadline, "ids were never cleaned");
        thread::sleep(Duration::from_millis(500));
    }
    // Housekeeping runs within about 5 s of the cleanup.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut after = rss_kb(s.pid());
    while after * 10 > base * 11 + 5120 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(250));
        after = rss_kb(s.pid());
    }
    eprintln!("RSS: baseline {base} kB, peak {peak} kB, after cleaning {after} kB");
    assert!(
        after * 10 <= base * 11 + 5120,
        "RSS {after} kB after cleaning vs baseline {base} kB (peak {peak} kB)"
    );
}
