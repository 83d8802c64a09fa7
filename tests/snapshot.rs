//! SNAPSHOT_FILE: queues, cursors and WATCH positions across a graceful restart (SIGTERM,
//! the MAX_MEM_MB recycle); unusable files are reported and the server starts empty; the
//! cursors generated after a restart stay above the snapshot's even if the clock went back.

use crate::util::*;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static N: AtomicUsize = AtomicUsize::new(0);

/// A directory that outlives the servers of one test (each server has its own temp dir).
struct SnapDir(PathBuf);

impl SnapDir {
    fn new() -> SnapDir {
        let n = N.fetch_add(1, Ordering::SeqCst);
        let d = std::env::temp_dir().join(format!("rplx-snap-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("snapshot dir");
        SnapDir(d)
    }

    fn file(&self) -> PathBuf {
        self.0.join("snapshot")
    }

    fn conf(&self) -> String {
        format!("$CONFIG{{SNAPSHOT_FILE}} = '{}';\n", self.file().display())
    }
}

impl Drop for SnapDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// SIGTERM and wait for the exit (the worker writes its snapshot on the way out).
fn stop(mut s: Server) {
    s.signal(libc::SIGTERM);
    assert!(
        s.wait_exit(Duration::from_secs(30)).is_some(),
        "did not stop"
    );
    s.wait_log(|l| l.starts_with("snapshot: wrote "), LOG_TIMEOUT);
}

// ----- a hand-made file (the format of src/snapshot.rs) ----------------------------------

fn fnv(b: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &x in b {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A valid snapshot holding only a header: last cursor `secs.frac`, history start the same.
fn crafted(secs: u64, frac: u64) -> Vec<u8> {
    let mut f = b"RPLXSNAP".to_vec();
    f.extend_from_slice(&1u32.to_le_bytes());
    let mut h = Vec::new();
    for _ in 0..2 {
        h.push(0);
        h.extend_from_slice(&secs.to_le_bytes());
        h.extend_from_slice(&frac.to_le_bytes());
    }
    h.extend_from_slice(&0u64.to_le_bytes());
    h.push(0);
    f.push(1);
    f.extend_from_slice(&(h.len() as u32).to_le_bytes());
    f.extend_from_slice(&h);
    f.push(0xFF);
    f.extend_from_slice(&8u32.to_le_bytes());
    f.extend_from_slice(&1u64.to_le_bytes());
    let sum = fnv(&f);
    f.extend_from_slice(&sum.to_le_bytes());
    f
}

// ----- tests ----------------------------------------------------------------------------

#[test]
fn sigterm_then_start_keeps_every_message_with_its_cursor() {
    let dir = SnapDir::new();
    let s = Server::start(&dir.conf());
    s.push_ids("a,b", r#""shared""#);
    s.push_ids("a,*vip", r#""for vip""#);
    s.push_ids("7:b", r#""explicit""#);
    let req = b"identifier=0:a,0:vip,0:b\n";
    let before = WaitClient::register(&s, req).read_body();
    let plain_before = WaitClient::register(&s, b"identifier=0:a\n").read_body();
    assert_eq!(parse_ids(&before).len(), 3, "{before}");
    stop(s);

    let s = Server::start(&dir.conf());
    let line = s.wait_log(|l| l.starts_with("snapshot: loaded "), LOG_TIMEOUT);
    assert!(
        line.contains("loaded 2 ids, 4 messages (3 bodies)"),
        "{line}"
    );
    // Every message, the same cursors, the limiter still applied.
    assert_eq!(WaitClient::register(&s, req).read_body(), before);
    let plain = WaitClient::register(&s, b"identifier=0:a\n").read_body();
    assert_eq!(plain, plain_before);
    assert!(!plain.contains("for vip"));
    // A client reconnecting with the cursor it had: nothing again, then the next message.
    let last = parse_ids(&plain).last().unwrap()[0].1.clone();
    let w = WaitClient::register(&s, format!("identifier={last}:a\n").as_bytes());
    s.barrier();
    w.assert_silent();
    s.push_ids("a", r#""after""#);
    let got = w.read_body();
    assert!(parse_ids(&got)[0][0].1 > last, "{got}");
    // The file stays until the next snapshot replaces it.
    assert!(dir.file().exists());
}

#[test]
fn unusable_files_are_reported_and_the_server_starts_empty() {
    let good = crafted(1_700_000_000, 0);
    let mut edited = good.clone();
    edited[20] ^= 1;
    let mut foreign = good.clone();
    foreign[8] = 9;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("garbage", b"hello, world".to_vec(), "bad magic"),
        ("truncated", good[..good.len() - 3].to_vec(), "checksum"),
        ("foreign", foreign, "version 9"),
        ("edited", edited, "checksum"),
    ];
    for (name, bytes, why) in cases {
        let dir = SnapDir::new();
        std::fs::write(dir.file(), &bytes).expect("write");
        let s = Server::start(&dir.conf());
        let line = s.wait_log(|l| l.starts_with("snapshot: "), LOG_TIMEOUT);
        let want = format!("snapshot: {} is unusable (", dir.file().display());
        assert!(line.starts_with(&want), "{name}: {line}");
        assert!(
            line.contains(why) && line.ends_with("; starting empty"),
            "{name}: {line}"
        );
        // Empty, and serving.
        let w = WaitClient::register(&s, b"identifier=0:a\n");
        s.barrier();
        w.assert_silent();
        s.push_ids("a", "1");
        assert_eq!(parse_ids(&w.read_body()).len(), 1, "{name}");
    }
    let dir = SnapDir::new();
    let s = Server::start(&dir.conf());
    let line = s.wait_log(|l| l.starts_with("snapshot: "), LOG_TIMEOUT);
    assert!(line.ends_with("does not exist, starting empty"), "{line}");
}

#[test]
fn cursors_stay_above_the_snapshot_when_the_clock_went_back() {
    let dir = SnapDir::new();
    // The snapshot was written by a server whose clock was a day ahead.
    let ahead = now_secs() + 86_400;
    std::fs::write(dir.file(), crafted(ahead, 5)).expect("write");
    let s = Server::start(&dir.conf());
    s.wait_log(|l| l.starts_with("snapshot: loaded "), LOG_TIMEOUT);
    let w = WaitClient::register(&s, b"identifier=a\n");
    s.push_ids("a", "1");
    let got = w.read_body();
    let c = parse_ids(&got)[0][0].1.clone();
    assert!(
        c.as_str() > format!("{ahead}.00000000000005").as_str(),
        "{c} not above the snapshot's last cursor"
    );
}

#[test]
fn watch_positions_continue_after_a_restart() {
    let dir = SnapDir::new();
    let s = Server::start(&dir.conf());
    let w = WaitClient::register(&s, b"identifier=w1\n");
    assert_eq!(s.cmd("watch 0"), "FAKE 11:FAKE\n");
    drop(w);
    stop(s);
    let s = Server::start(&dir.conf());
    s.wait_log(|l| l.starts_with("snapshot: loaded "), LOG_TIMEOUT);
    // The history is back, and the next event is numbered after it: a watcher at 11 sees it.
    assert_eq!(s.cmd("watch 10"), "online 11:w1\n");
    let _w = WaitClient::register(&s, b"identifier=w2\n");
    assert_eq!(s.cmd("watch 11"), "online 12:w2\n");
}

#[test]
fn max_mem_mb_recycle_writes_the_snapshot_and_the_next_worker_loads_it() {
    let dir = SnapDir::new();
    let s = Server::start(&dir.conf());
    s.push_ids("a", r#""kept""#);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s.conf_path())
        .expect("conf");
    writeln!(f, "$CONFIG{{MAX_MEM_MB}} = 0.5;").expect("append");
    s.signal(libc::SIGHUP);
    s.wait_stderr(|l| l.ends_with("MB. Killing..."), LOG_TIMEOUT);
    s.wait_stderr(|l| l == "Normally terminated.", LOG_TIMEOUT);
    let wrote = s.wait_log(|l| l.starts_with("snapshot: wrote "), LOG_TIMEOUT);
    assert!(wrote.contains("wrote 1 ids, 1 messages"), "{wrote}");
    let loaded = s.wait_log(|l| l.starts_with("snapshot: loaded "), LOG_TIMEOUT);
    assert!(loaded.contains("loaded 1 ids, 1 messages"), "{loaded}");
}
