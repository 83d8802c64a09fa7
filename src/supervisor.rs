//! The watchdog: runs the worker (this same binary, re-executed with `--worker`, so no
//! process with threads ever forks), restarts it one second after it exits, and restarts it
//! when its memory exceeds MAX_MEM_MB, as the original's watchdog does (spec 9.6).
//!
//! SIGHUP is forwarded to the worker (and MAX_MEM_MB re-read); SIGINT/SIGTERM stop the
//! worker gracefully (SIGINT, then SIGKILL after a second, or after `SNAPSHOT_GRACE` when
//! the worker writes a snapshot) and end the supervisor. The MAX_MEM_MB recycle stops the
//! worker the same way, so its snapshot is written and the next worker loads it.
//! The first worker reports through a pipe (`ready`) once it is listening: only then does
//! the supervisor call `on_ready` (which writes the pid file); if the first worker cannot
//! start, the supervisor prints its error and exits 1 instead of restarting it forever.
//! Structure: a plain loop over 100 ms steps; signal handlers only set atomic flags.
//! Uses: sys, ready.

use crate::ready::{self, Pipe, Report};
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
/// (after `--worker`); `watch` reads MAX_MEM_MB and whether SNAPSHOT_FILE is on;
/// `on_ready` runs once, when the first worker listens (an error stops everything).
/// Returns 1 if the first worker cannot start.
pub fn run(
    worker_args: &[String],
    watch: &dyn Fn() -> Watch,
    on_ready: &mut dyn FnMut() -> Result<(), String>,
) -> i32 {
    install_handlers();
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("realplexor: cannot find own executable: {e}");
            return 1;
        }
    };
    let mut first = match Pipe::new() {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("realplexor: pipe: {e}");
            return 1;
        }
    };
    let mut conf = watch();
    loop {
        let ready_fd = first.as_ref().and_then(Pipe::write_fd);
        let mut child = match spawn(&exe, worker_args, ready_fd) {
            Ok(c) => c,
            Err(e) if first.is_some() => {
                eprintln!("realplexor: cannot start the worker: {e}");
                return 1;
            }
            Err(e) => {
                eprintln!("fork() failed: {e}");
                if sleep_unless_stopped(Duration::from_secs(1)) {
                    return 0;
                }
                continue;
            }
        };
        if let Some(mut pipe) = first.take() {
            pipe.close_write();
            match await_first(&mut child, &mut pipe) {
                Some(Report::Ready) => {
                    if let Err(e) = on_ready() {
                        eprintln!("realplexor: {e}");
                        stop(&mut child, conf.grace());
                        return 1;
                    }
                    ready::notify_systemd("READY=1");
                }
                Some(Report::Failed(msg)) => {
                    let status = child.wait();
                    if msg.is_empty() {
                        let how = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                        eprintln!("realplexor: the worker exited during startup ({how})");
                    } else {
                        eprintln!("realplexor: {msg}");
                    }
                    return 1;
                }
                Some(Report::Pending) | None => {
                    stop(&mut child, conf.grace());
                    return 0;
                }
            }
        }
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

fn spawn(exe: &Path, args: &[String], ready_fd: Option<i32>) -> std::io::Result<Child> {
    let mut cmd = Command::new(exe);
    cmd.arg("--worker")
        .args(args)
        .env(PARENT_ENV, std::process::id().to_string())
        // The supervisor is the process systemd knows: it tells READY=1 itself.
        .env_remove("NOTIFY_SOCKET");
    match ready_fd {
        Some(fd) => cmd.env(ready::READY_ENV, fd.to_string()),
        None => cmd.env_remove(ready::READY_ENV),
    };
    cmd.spawn()
}

/// Waits for the first worker's report; `None` if SIGINT/SIGTERM came first.
fn await_first(child: &mut Child, pipe: &mut Pipe) -> Option<Report> {
    loop {
        let sig = PENDING.load(Ordering::SeqCst);
        if sig == libc::SIGINT || sig == libc::SIGTERM {
            return None;
        }
        match pipe.poll(Duration::from_millis(100)) {
            Report::Pending => {}
            report => return Some(report),
        }
        // A worker that died without closing the pipe (it always does) is caught by EOF;
        // this is a safety net for a descriptor leaked to a grandchild.
        if let Ok(Some(_)) = child.try_wait() {
            return Some(pipe.finish());
        }
    }
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
