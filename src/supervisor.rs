//! The watchdog: runs the worker (this same binary, re-executed with `--worker`, so no
//! process with threads ever forks), restarts it one second after it exits, and restarts it
//! when its memory exceeds MAX_MEM_MB, as the original's watchdog does (spec 9.6).
//!
//! SIGHUP is forwarded to the worker (and MAX_MEM_MB re-read); SIGINT/SIGTERM stop the
//! worker gracefully (SIGINT, then SIGKILL after a second, or after `SNAPSHOT_GRACE` when
//! the worker writes a snapshot) and end the supervisor. The MAX_MEM_MB recycle stops the
//! worker the same way, so its snapshot is written and the next worker loads it.
//! Structure: a plain loop over 100 ms steps; signal handlers only set atomic flags.
//! Uses: sys, config.

use crate::sys;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

static PENDING: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    PENDING.store(sig, Ordering::SeqCst);
}

fn install_handlers() {
    for s in sys::HANDLED {
        // SAFETY: the handler only performs an atomic store.
        unsafe {
            libc::signal(s, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// Environment variable that tells the worker its supervisor's pid (for PDEATHSIG).
pub const PARENT_ENV: &str = "REALPLEXOR_SUPERVISOR_PID";

/// What the supervisor reads from the config (again on SIGHUP).
#[derive(Clone, Copy, Debug, Default)]
pub struct Watch {
    /// MAX_MEM_MB (0 disables the check).
    pub max_mem_mb: f64,
    /// SNAPSHOT_FILE is on: a stopping worker writes it, so it gets `SNAPSHOT_GRACE`
    /// before SIGKILL instead of the original's second.
    pub snapshot: bool,
}

/// How long a worker that writes a snapshot may take to stop.
pub const SNAPSHOT_GRACE: Duration = Duration::from_secs(60);

impl Watch {
    fn grace(&self) -> Duration {
        if self.snapshot {
            SNAPSHOT_GRACE
        } else {
            Duration::from_secs(2)
        }
    }
}

/// Runs the supervisor until SIGINT/SIGTERM. `worker_args` are the arguments of the worker
/// (after `--worker`); `watch` reads MAX_MEM_MB and whether SNAPSHOT_FILE is on.
pub fn run(worker_args: &[String], watch: &dyn Fn() -> Watch) -> i32 {
    install_handlers();
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("realplexor: cannot find own executable: {e}");
            return 1;
        }
    };
    let mut conf = watch();
    loop {
        let mut child = match spawn(&exe, worker_args) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("fork() failed: {e}");
                if sleep_unless_stopped(Duration::from_secs(1)) {
                    return 0;
                }
                continue;
            }
        };
        let mut last_check = Instant::now();
        loop {
            match PENDING.swap(0, Ordering::SeqCst) {
                0 => {}
                libc::SIGHUP => {
                    conf = watch();
                    signal(&child, libc::SIGHUP);
                }
                sig => {
                    let _ = sig;
                    stop(&mut child, conf.grace());
                    return 0;
                }
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            let limit = conf.max_mem_mb;
            if limit > 0.0 && last_check.elapsed() >= Duration::from_secs(1) {
                last_check = Instant::now();
                let mb = sys::rss_bytes(child.id()).unwrap_or(0) as f64 / (1024.0 * 1024.0);
                if mb > limit {
                    eprintln!(
                        "Daemon process uses {mb:.6} MB of memory which is larger than {limit:.6} MB. Killing..."
                    );
                    // SIGINT then a wait, never a bare SIGKILL: the worker writes its
                    // snapshot, and the next one loads it before serving.
                    stop(&mut child, conf.grace());
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The original pauses a second before every restart.
        if sleep_unless_stopped(Duration::from_secs(1)) {
            return 0;
        }
    }
}

fn spawn(exe: &Path, args: &[String]) -> std::io::Result<Child> {
    Command::new(exe)
        .arg("--worker")
        .args(args)
        .env(PARENT_ENV, std::process::id().to_string())
        .spawn()
}

fn signal(child: &Child, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill with a pid we spawned and still own (not yet reaped).
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// SIGINT, up to `grace` (2 s, or the snapshot's time), then SIGKILL (the original's
/// wording on stderr).
fn stop(child: &mut Child, grace: Duration) {
    signal(child, libc::SIGINT);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            eprintln!("Normally terminated.");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    eprintln!("Killed the child using a heavy SIGKILL.");
}

/// Sleeps, returning true early if SIGINT/SIGTERM arrived (SIGHUP is kept for later).
fn sleep_unless_stopped(d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        let sig = PENDING.load(Ordering::SeqCst);
        if sig == libc::SIGINT || sig == libc::SIGTERM {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
