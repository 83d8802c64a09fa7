//! WORKERS (issue 13), the process side: the supervisor runs N workers that all listen on
//! every WAIT_ADDR and IN_ADDR (SO_REUSEPORT), restarts a killed one while the others keep
//! serving, stops them all on SIGTERM, reports ready (pid file) only once each listens,
//! follows a WORKERS change on SIGHUP, and refuses WORKERS > 1 without CLUSTER_REDIS.
//!
//! Data: confs with fixed loopback ports below the ephemeral range (the workers must share
//! one port, so `:0` will not do) and a CLUSTER_REDIS naming a real `redis-server` that
//! each test starts on a free port and kills by PID. What a worker is and holds is read
//! from /proc: the supervisor's children, their sockets (`/proc/<pid>/fd`, matched with
//! the listening head of `/proc/net/tcp`) and their REALPLEXOR_WORKER index
//! (`/proc/<pid>/environ`).
//! May use `crate::util`, std, libc and redis-server.

use crate::util::*;
use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// The LISTEN state in `/proc/net/tcp`.
const LISTEN: &str = "0A";

/// A loopback port that is free now, below the ephemeral range (no client socket of a
/// parallel test takes it meanwhile).
fn quiet_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 500) as u16 * 20;
    for _ in 0..2_000 {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 10_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port");
}

/// Polls `f` every 20 ms until it returns Some, for up to `LOG_TIMEOUT`.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + LOG_TIMEOUT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server conf for `workers` workers on fixed ports.
struct Ports {
    wait: u16,
    inp: u16,
}

impl Ports {
    fn new() -> Ports {
        Ports {
            wait: quiet_port(),
            inp: quiet_port(),
        }
    }

    fn conf(&self, redis: &Redis, workers: usize) -> String {
        format!(
            "$CONFIG{{WAIT_ADDR}} = [ '127.0.0.1:{}' ];\n\
             $CONFIG{{IN_ADDR}} = [ '127.0.0.1:{}' ];\n\
             $CONFIG{{CLUSTER_REDIS}} = '127.0.0.1:{}';\n\
             $CONFIG{{WORKERS}} = {workers};",
            self.wait, self.inp, redis.port
        )
    }

    fn wait_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.wait))
    }
}

/// The live (not zombie) children of `parent`.
fn children(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: comm may hold spaces, so split after its ')'.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let mut f = rest.split_whitespace();
        let (state, ppid) = (f.next(), f.next().and_then(|p| p.parse::<u32>().ok()));
        if ppid == Some(parent) && state != Some("Z") {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
        st.rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            != Some("Z")
    })
}

/// The socket inodes `pid` holds.
fn sockets_of(pid: u32) -> HashSet<u64> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    dir.flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// The inodes of the IPv4 TCP sockets listening on `port`. The kernel lists listening
/// sockets first: reading stops at the first other one, so that the (possibly huge) rest of
/// /proc/net/tcp, other tests' connections, is never generated.
fn listening_inodes(port: u16) -> HashSet<u64> {
    let file = fs::File::open("/proc/net/tcp").expect("/proc/net/tcp");
    let want = format!(":{port:04X}");
    let mut out = HashSet::new();
    for line in BufReader::new(file).lines().skip(1) {
        let Ok(line) = line else { break };
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() <= 9 || f[3] != LISTEN {
            break;
        }
        if f[1].ends_with(&want) {
            out.extend(f[9].parse::<u64>().ok());
        }
    }
    out
}

/// Whether `pid` has a listening socket on `port`.
fn listens(pid: u32, port: u16) -> bool {
    !sockets_of(pid).is_disjoint(&listening_inodes(port))
}

/// The REALPLEXOR_WORKER index the supervisor gave `pid`.
fn index_of(pid: u32) -> Option<usize> {
    let env = fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"REALPLEXOR_WORKER="))
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
}

/// Waits until the supervisor has exactly `n` workers, each listening on both ports.
fn listening_workers(s: &Server, ports: &Ports, n: usize) -> Vec<u32> {
    wait_for(&format!("{n} listening workers"), || {
        let pids = children(s.pid());
        let all = pids
            .iter()
            .all(|p| listens(*p, ports.wait) && listens(*p, ports.inp));
        (pids.len() == n && all).then_some(pids)
    })
}

fn append_conf(s: &Server, text: &str) {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(s.conf_path())
        .expect("open conf");
    writeln!(f, "{text}").expect("append conf");
}

#[test]
fn two_workers_accept_on_the_same_wait_port() {
    let redis = Redis::start(&[]);
    let ports = Ports::new();
    let s = Server::start(&ports.conf(&redis, 2));
    let pids = listening_workers(&s, &ports, 2);
    let mut indexes: Vec<_> = pids.iter().map(|p| index_of(*p)).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, [Some(0), Some(1)]);
    s.wait_log_count(|l| l.starts_with("Starting worker "), 2);
    assert!(s.has_log(|l| l.starts_with("Starting worker 0 of 2. Opened files limit")));
    assert!(s.has_log(|l| l.starts_with("Starting worker 1 of 2. Opened files limit")));

    // Both workers have their Redis links and serve WAIT (no socket of theirs opens later).
    s.wait_log_count(|l| l.contains("caught up with the message log"), 2);
    // The kernel spreads connections over both listeners: 40 registered clients all on one
    // worker would happen once in 2^39 runs.
    let before: Vec<HashSet<u64>> = pids.iter().map(|p| sockets_of(*p)).collect();
    let clients: Vec<_> = (0..40)
        .map(|n| {
            WaitClient::register_at(ports.wait_addr(), format!("identifier=c{n}\n").as_bytes())
        })
        .collect();
    // Nothing else opens sockets meanwhile: a worker's new ones are its clients.
    let per_worker: Vec<usize> = pids
        .iter()
        .zip(&before)
        .map(|(p, old)| sockets_of(*p).difference(old).count())
        .collect();
    assert!(per_worker.iter().all(|n| *n > 0), "{per_worker:?}");
    assert_eq!(
        per_worker.iter().sum::<usize>(),
        clients.len(),
        "{per_worker:?}"
    );
}

#[test]
fn a_killed_worker_is_restarted_while_the_other_serves() {
    let redis = Redis::start(&[]);
    let ports = Ports::new();
    let s = Server::start_with_args(&ports.conf(&redis, 2), &["-p", "@DIR@/rp.pid"]);
    // Past startup: the supervisor writes the pid file once every worker reported ready
    // (a worker killed between binding and that report fails the whole start, by design).
    let pidfile = s.dir().join("rp.pid");
    wait_for("the pid file", || {
        fs::read_to_string(&pidfile)
            .unwrap_or_default()
            .ends_with('\n')
            .then_some(())
    });
    let pids = listening_workers(&s, &ports, 2);
    let (victim, survivor) = (pids[0], pids[1]);
    let k = index_of(victim).expect("victim index");
    // SAFETY: kill on a child of the server this test started, not yet reaped.
    unsafe {
        libc::kill(i32::try_from(victim).expect("pid"), libc::SIGKILL);
    }
    // Connections queued on the victim's listener when it dies are reset (SO_REUSEPORT
    // gives each listener its own queue): wait until its descriptors are gone.
    wait_for("the killed worker to go", || (!alive(victim)).then_some(()));
    // The kernel drops the dead listener from the port's group as the process is torn
    // down; a connect in that instant can still be refused (clients retry).
    wait_for("the port to take connections", || {
        std::net::TcpStream::connect(ports.wait_addr()).ok()
    });
    // Right away, before the restart pause is over, the other worker serves every line.
    for n in 0..5 {
        let _ = WaitClient::register_at(ports.wait_addr(), format!("identifier=k{n}\n").as_bytes());
    }
    s.barrier();
    let now = listening_workers(&s, &ports, 2);
    assert!(now.contains(&survivor), "{now:?} lost {survivor}");
    assert!(!now.contains(&victim), "{now:?}");
    let fresh = now
        .iter()
        .find(|p| **p != survivor)
        .expect("restarted worker");
    assert_eq!(index_of(*fresh), Some(k));
    s.wait_log_count(|l| l.starts_with(&format!("Starting worker {k} of 2.")), 2);
    let _ = WaitClient::register_at(ports.wait_addr(), b"identifier=after\n");
}

#[test]
fn sigterm_stops_every_worker_in_the_foreground_too() {
    let redis = Redis::start(&[]);
    let ports = Ports::new();
    // --foreground with WORKERS > 1 runs the supervisor: the started process has the workers.
    let mut s = Server::start_with_args(&ports.conf(&redis, 2), &["--foreground"]);
    let pids = listening_workers(&s, &ports, 2);
    s.signal(libc::SIGTERM);
    let st = s
        .wait_exit(Duration::from_secs(10))
        .expect("the supervisor exits");
    assert_eq!(st.code(), Some(0), "{st}");
    for p in &pids {
        assert!(!alive(*p), "worker {p} outlived SIGTERM");
    }
    s.wait_log_count(|l| l.contains("SIGINT received"), 2);
    let stopped = s
        .stderr_text()
        .lines()
        .filter(|l| *l == "Normally terminated.")
        .count();
    assert_eq!(stopped, 2, "stderr: {}", s.stderr_text());
}

#[test]
fn pid_file_is_written_once_every_worker_listens() {
    let redis = Redis::start(&[]);
    let ports = Ports::new();
    let mut s = Server::start_with_args(&ports.conf(&redis, 2), &["-p", "@DIR@/rp.pid"]);
    let pidfile = s.dir().join("rp.pid");
    let text = wait_for("the pid file", || {
        let t = fs::read_to_string(&pidfile).unwrap_or_default();
        t.ends_with('\n').then_some(t)
    });
    // Read at once: both workers listen on both lines already.
    let pids = children(s.pid());
    assert_eq!(pids.len(), 2, "{pids:?}");
    for p in &pids {
        assert!(
            listens(*p, ports.wait) && listens(*p, ports.inp),
            "worker {p}"
        );
    }
    assert_eq!(
        text,
        format!("{}\n", s.pid()),
        "the pid file names the supervisor"
    );
    s.signal(libc::SIGTERM);
    assert_eq!(
        s.wait_exit(Duration::from_secs(10))
            .and_then(|st| st.code()),
        Some(0)
    );
    assert!(!pidfile.exists(), "the pid file outlived the server");
}

#[test]
fn two_workers_without_cluster_redis_do_not_start() {
    for args in [&["-p", "@DIR@/rp.pid"][..], &["--foreground"]] {
        let run = run_to_exit("$CONFIG{WORKERS} = 2;", args, Duration::from_secs(5));
        assert_eq!(run.status.and_then(|s| s.code()), Some(1), "{args:?}");
        assert!(
            run.stderr.starts_with("realplexor: config error: ")
                && run.stderr.contains("WORKERS: 2 workers need CLUSTER_REDIS"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            !run.stdout.contains("listening"),
            "{args:?} bound something"
        );
        assert!(!run.dir().join("rp.pid").exists());
    }
}

#[test]
fn a_first_worker_that_cannot_bind_fails_the_start() {
    let redis = Redis::start(&[]);
    let ports = Ports::new();
    // Held without SO_REUSEPORT: no worker may join it.
    let _held = TcpListener::bind(("127.0.0.1", ports.inp)).expect("hold the IN port");
    let run = run_to_exit(
        &ports.conf(&redis, 2),
        &["-p", "@DIR@/rp.pid"],
        Duration::from_secs(5),
    );
    assert_eq!(run.status.and_then(|s| s.code()), Some(1));
    let want = format!(
        "realplexor: IN_ADDR 127.0.0.1:{}: Address already in use",
        ports.inp
    );
    assert!(
        run.stderr.lines().filter(|l| l.starts_with(&want)).count() == 1,
        "stderr: {}",
        run.stderr
    );
    assert!(!run.dir().join("rp.pid").exists(), "a pid file was written");
}

#[test]
fn sighup_starts_and_stops_workers_to_match() {
    let redis = Redis::start(&[]);
    let ports = Ports::new();
    let s = Server::start(&ports.conf(&redis, 1));
    let first = listening_workers(&s, &ports, 1);
    assert!(s.has_log(|l| l.starts_with("Starting. Opened files limit")));

    // From one worker: it is restarted too (its sockets have no SO_REUSEPORT).
    append_conf(&s, "$CONFIG{WORKERS} = 3;");
    s.signal(libc::SIGHUP);
    let three = listening_workers(&s, &ports, 3);
    assert!(!three.contains(&first[0]), "{three:?}");
    s.wait_log_count(|l| l.starts_with("Starting worker 2 of 3."), 1);

    // Down to two: the highest index goes, the others stay.
    append_conf(&s, "$CONFIG{WORKERS} = 2;");
    s.signal(libc::SIGHUP);
    let two = listening_workers(&s, &ports, 2);
    let mut indexes: Vec<_> = two.iter().map(|p| index_of(*p)).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, [Some(0), Some(1)]);
    assert!(
        two.iter().all(|p| three.contains(p)),
        "{two:?} vs {three:?}"
    );
    let _ = WaitClient::register_at(ports.wait_addr(), b"identifier=abc\n");
}

#[test]
fn max_mem_mb_recycles_each_worker_on_its_own() {
    let redis = Redis::start(&[]);
    let ports = Ports::new();
    let s = Server::start(&format!(
        "{}\n$CONFIG{{MAX_MEM_MB}} = 0.5;",
        ports.conf(&redis, 2)
    ));
    for k in 0..2 {
        s.wait_log_count(|l| l.starts_with(&format!("Starting worker {k} of 2.")), 2);
    }
    let line = s.wait_stderr(|l| l.starts_with("Daemon process uses "), LOG_TIMEOUT);
    assert!(
        line.ends_with("larger than 0.500000 MB. Killing..."),
        "{line}"
    );
    // Each recycled worker was stopped gracefully, never killed.
    assert!(
        !s.stderr_text().contains("heavy SIGKILL"),
        "{}",
        s.stderr_text()
    );
}

/// Issue 13: kill -9 one worker of two after pushes: the supervisor restarts it, and it
/// rebuilds its queues from the shared log, so a client that reconnects with its cursor
/// to whichever worker gets every message, exactly once.
#[test]
fn a_worker_killed_mid_stream_rebuilds_from_the_log_and_loses_nothing() {
    let redis = Redis::start(&[]);
    let ports = Ports::new();
    let s = Server::start(&ports.conf(&redis, 2));
    let pids = listening_workers(&s, &ports, 2);
    s.wait_log_count(|l| l.contains("caught up with the message log"), 2);
    for i in 0..10 {
        let reply = s.push(format!("identifier=kept\n\n\"m{i}\"").as_bytes());
        assert!(reply.is_empty(), "{}", show(&reply));
    }
    // SIGKILL: no snapshot, no goodbye; its replacement starts from nothing but the log.
    let victim = pids[0];
    unsafe {
        libc::kill(victim as i32, libc::SIGKILL);
    }
    wait_for("the replacement worker", || {
        let now = children(s.pid());
        (now.len() == 2 && !now.contains(&victim)).then_some(())
    });
    s.wait_log_count(|l| l.contains("caught up with the message log"), 3);
    for i in 10..15 {
        let reply = s.push(format!("identifier=kept\n\n\"m{i}\"").as_bytes());
        assert!(reply.is_empty(), "{}", show(&reply));
    }
    // Clients land on either worker (the kernel spreads them): each gets all 15, once.
    for _ in 0..8 {
        let body = WaitClient::register_at(ports.wait_addr(), b"identifier=0:kept\n").read_body();
        for i in 0..15 {
            assert_eq!(
                body.matches(&format!("\"m{i}\"")).count(),
                1,
                "m{i} in {body}"
            );
        }
    }
}
