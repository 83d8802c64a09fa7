//! The watchdog: runs WORKERS workers (this same binary, re-executed with `--worker`, so no
//! process with threads ever forks), restarts each one second after it exits, and restarts
//! one when its memory exceeds MAX_MEM_MB, as the original's watchdog does (spec 9.6). Each
//! worker gets its index and the count in `worker_id`'s environment variables; with more
//! than one they share the listening ports through SO_REUSEPORT (issue 13).
//!
//! SIGHUP is forwarded to every worker (and MAX_MEM_MB and WORKERS re-read; a config that
//! no longer loads keeps the old values). A changed WORKERS starts or stops workers to
//! match, the highest indexes first; going up from one worker restarts that worker too,
//! because its sockets were bound without SO_REUSEPORT. SIGINT/SIGTERM stop every worker
//! gracefully (SIGINT, then SIGKILL after 2 s, or after `SNAPSHOT_GRACE` when workers write
//! a snapshot) and end the supervisor. The MAX_MEM_MB recycle stops that worker the same
//! way, so its snapshot is written and the next worker loads it; the others keep serving.
//! The first workers report through one pipe each (`ready`) once they listen: only when all
//! have does the supervisor call `on_ready` (which writes the pid file) and tell systemd;
//! if one cannot start, the supervisor stops the others, prints its error and exits 1
//! instead of restarting it forever.
//!
//! Structure: `Slot { index, state: Running | Stopping | Idle, retire }` per worker, driven
//! by a plain loop over 100 ms steps that never blocks on one worker (except the restart of
//! a lone worker when WORKERS goes up); signal handlers only set atomic flags.
//! Uses: sys, ready, worker_id.

use crate::ready::{self, Pipe, Report};
use crate::sys;
use crate::worker_id::{COUNT_ENV, INDEX_ENV};
use std::path::{Path, PathBuf};
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

fn stop_requested() -> bool {
    let sig = PENDING.load(Ordering::SeqCst);
    sig == libc::SIGINT || sig == libc::SIGTERM
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
    /// WORKERS (0 reads as 1).
    pub workers: usize,
}

/// How long a worker that writes a snapshot may take to stop.
pub const SNAPSHOT_GRACE: Duration = Duration::from_secs(60);

/// The original's pause before every restart.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

impl Watch {
    fn grace(&self) -> Duration {
        if self.snapshot {
            SNAPSHOT_GRACE
        } else {
            Duration::from_secs(2)
        }
    }

    fn count(&self) -> usize {
        self.workers.max(1)
    }
}

enum State {
    Running(Child),
    /// Sent SIGINT; SIGKILL at the deadline.
    Stopping(Child, Instant),
    /// No process; (re)started at the instant.
    Idle(Instant),
}

struct Slot {
    index: usize,
    state: State,
    /// WORKERS went below this index: once stopped, the slot goes away.
    retire: bool,
}

struct Supervisor<'a> {
    exe: PathBuf,
    args: &'a [String],
    conf: Watch,
    slots: Vec<Slot>,
    last_mem_check: Instant,
}

/// Runs the supervisor until SIGINT/SIGTERM. `worker_args` are the arguments of the workers
/// (after `--worker`); `watch` reads MAX_MEM_MB, WORKERS and whether SNAPSHOT_FILE is on
/// (None: the config does not load); `on_ready` runs once, when every first worker listens
/// (an error stops everything). Returns 1 if a first worker cannot start.
pub fn run(
    worker_args: &[String],
    watch: &dyn Fn() -> Option<Watch>,
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
    let mut sup = Supervisor {
        exe,
        args: worker_args,
        conf: watch().unwrap_or_default(),
        slots: Vec::new(),
        last_mem_check: Instant::now(),
    };
    if let Err(code) = sup.start_first(on_ready) {
        return code;
    }
    loop {
        match PENDING.swap(0, Ordering::SeqCst) {
            0 => {}
            libc::SIGHUP => {
                let new = watch();
                sup.signal_running(libc::SIGHUP);
                if let Some(new) = new {
                    let old = sup.conf.count();
                    sup.conf = new;
                    if new.count() != old {
                        sup.resize(old, new.count());
                    }
                }
            }
            _ => {
                sup.stop_all();
                return 0;
            }
        }
        sup.tick(Instant::now());
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Supervisor<'_> {
    /// Starts the first generation and waits until each one listens. Err: the exit code.
    fn start_first(&mut self, on_ready: &mut dyn FnMut() -> Result<(), String>) -> Result<(), i32> {
        let n = self.conf.count();
        let mut pipes = Vec::with_capacity(n);
        for index in 0..n {
            // One pipe at a time: its write end is inherited by this worker only.
            let mut pipe = match Pipe::new() {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("realplexor: pipe: {e}");
                    self.stop_all();
                    return Err(1);
                }
            };
            match self.spawn(index, pipe.write_fd()) {
                Ok(child) => {
                    pipe.close_write();
                    pipes.push(pipe);
                    self.slots.push(Slot {
                        index,
                        state: State::Running(child),
                        retire: false,
                    });
                }
                Err(e) => {
                    eprintln!("realplexor: cannot start the worker: {e}");
                    self.stop_all();
                    return Err(1);
                }
            }
        }
        let mut ready = vec![false; n];
        while ready.iter().any(|r| !r) {
            if stop_requested() {
                self.stop_all();
                return Err(0);
            }
            for (i, pipe) in pipes.iter_mut().enumerate() {
                if ready[i] {
                    continue;
                }
                let report = match pipe.poll(Duration::ZERO) {
                    // A worker that died without closing the pipe (it always does) is
                    // caught by EOF; this is a safety net for a descriptor leaked to a
                    // grandchild.
                    Report::Pending if self.exited(i) => pipe.finish(),
                    report => report,
                };
                match report {
                    Report::Pending => {}
                    Report::Ready => ready[i] = true,
                    Report::Failed(msg) => {
                        let status = self.reap(i);
                        if msg.is_empty() {
                            eprintln!("realplexor: the worker exited during startup ({status})");
                        } else {
                            eprintln!("realplexor: {msg}");
                        }
                        self.stop_all();
                        return Err(1);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Err(e) = on_ready() {
            eprintln!("realplexor: {e}");
            self.stop_all();
            return Err(1);
        }
        ready::notify_systemd("READY=1");
        Ok(())
    }

    /// Whether the first-generation worker in slot `i` has exited.
    fn exited(&mut self, i: usize) -> bool {
        match &mut self.slots[i].state {
            State::Running(c) | State::Stopping(c, _) => matches!(c.try_wait(), Ok(Some(_))),
            State::Idle(_) => true,
        }
    }

    /// Waits for the worker in slot `i` (which has exited or is exiting), leaving the slot
    /// idle; returns how it ended.
    fn reap(&mut self, i: usize) -> String {
        let now = Instant::now();
        match std::mem::replace(&mut self.slots[i].state, State::Idle(now)) {
            State::Running(mut c) | State::Stopping(mut c, _) => {
                c.wait().map_or_else(|e| e.to_string(), |s| s.to_string())
            }
            State::Idle(_) => "not running".to_string(),
        }
    }

    fn spawn(&self, index: usize, ready_fd: Option<i32>) -> std::io::Result<Child> {
        spawn(&self.exe, self.args, index, self.conf.count(), ready_fd)
    }

    fn signal_running(&mut self, sig: libc::c_int) {
        for slot in &mut self.slots {
            if let State::Running(c) = &mut slot.state {
                signal(c, sig);
            }
        }
    }

    /// One step: reaps exited workers, recycles those over MAX_MEM_MB, kills those past
    /// their stop deadline, and starts those whose pause is over.
    fn tick(&mut self, now: Instant) {
        let limit = self.conf.max_mem_mb;
        let check_mem = limit > 0.0 && now.duration_since(self.last_mem_check) >= RESTART_PAUSE;
        if check_mem {
            self.last_mem_check = now;
        }
        let grace = self.conf.grace();
        for i in 0..self.slots.len() {
            let state = std::mem::replace(&mut self.slots[i].state, State::Idle(now));
            self.slots[i].state = match state {
                State::Running(mut c) => {
                    if let Ok(Some(_)) = c.try_wait() {
                        State::Idle(now + RESTART_PAUSE)
                    } else if check_mem && over_limit(&c, limit) {
                        // SIGINT then a wait, never a bare SIGKILL: the worker writes its
                        // snapshot, and the next one loads it before serving.
                        signal(&mut c, libc::SIGINT);
                        State::Stopping(c, now + grace)
                    } else {
                        State::Running(c)
                    }
                }
                State::Stopping(mut c, deadline) => {
                    if finish_stop(&mut c, deadline, now) {
                        State::Idle(now + RESTART_PAUSE)
                    } else {
                        State::Stopping(c, deadline)
                    }
                }
                State::Idle(at) if at <= now && !self.slots[i].retire => {
                    match self.spawn(self.slots[i].index, None) {
                        Ok(c) => State::Running(c),
                        Err(e) => {
                            eprintln!("fork() failed: {e}");
                            State::Idle(now + RESTART_PAUSE)
                        }
                    }
                }
                idle => idle,
            };
        }
        self.slots
            .retain(|s| !(s.retire && matches!(s.state, State::Idle(_))));
    }

    /// WORKERS changed from `old` to `new` on SIGHUP.
    fn resize(&mut self, old: usize, new: usize) {
        let now = Instant::now();
        if old == 1 {
            // The lone worker's sockets have no SO_REUSEPORT: the new ones could not bind
            // beside it. Stop it first, then start all at once.
            self.stop_all();
            for slot in &mut self.slots {
                slot.state = State::Idle(now);
            }
        }
        let grace = self.conf.grace();
        for index in 0..old.max(new) {
            match self.slots.iter_mut().find(|s| s.index == index) {
                Some(slot) if index < new => slot.retire = false,
                Some(slot) => {
                    slot.retire = true;
                    let state = std::mem::replace(&mut slot.state, State::Idle(now));
                    slot.state = match state {
                        State::Running(mut c) => {
                            signal(&mut c, libc::SIGINT);
                            State::Stopping(c, now + grace)
                        }
                        other => other,
                    };
                }
                None if index < new => self.slots.push(Slot {
                    index,
                    state: State::Idle(now),
                    retire: false,
                }),
                None => {}
            }
        }
    }

    /// Stops every worker: SIGINT to all, then waits until each has exited or reached its
    /// deadline (SIGKILL). Leaves every slot idle.
    fn stop_all(&mut self) {
        let deadline = Instant::now() + self.conf.grace();
        for slot in &mut self.slots {
            let state = std::mem::replace(&mut slot.state, State::Idle(deadline));
            slot.state = match state {
                State::Running(mut c) => {
                    signal(&mut c, libc::SIGINT);
                    State::Stopping(c, deadline)
                }
                other => other,
            };
        }
        loop {
            let now = Instant::now();
            let mut busy = false;
            for slot in &mut self.slots {
                if let State::Stopping(c, at) = &mut slot.state {
                    if finish_stop(c, *at, now) {
                        slot.state = State::Idle(now);
                    } else {
                        busy = true;
                    }
                }
            }
            if !busy {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether the worker's resident memory exceeds `limit` MB (then says so on stderr).
/// Memory that cannot be read (the worker hidden by /proc's hidepid once it runs as
/// SU_USER) is said once per supervisor, and counts as within the limit.
fn over_limit(c: &Child, limit: f64) -> bool {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let Some(bytes) = sys::rss_bytes(c.id()) else {
        if !SAID.swap(true, Ordering::Relaxed) {
            eprintln!(
                "realplexor: cannot read the memory of worker {} in /proc: MAX_MEM_MB is not applied",
                c.id()
            );
        }
        return false;
    };
    let mb = bytes as f64 / (1024.0 * 1024.0);
    if mb > limit {
        eprintln!(
            "Daemon process uses {mb:.6} MB of memory which is larger than {limit:.6} MB. Killing..."
        );
    }
    mb > limit
}

/// A stopping worker: true once it has exited (by itself, or SIGKILL at `deadline`), with
/// the original's wording on stderr.
fn finish_stop(c: &mut Child, deadline: Instant, now: Instant) -> bool {
    if let Ok(Some(_)) = c.try_wait() {
        eprintln!("Normally terminated.");
        return true;
    }
    if now < deadline {
        return false;
    }
    let _ = c.kill();
    let _ = c.wait();
    eprintln!("Killed the child using a heavy SIGKILL.");
    true
}

fn spawn(
    exe: &Path,
    args: &[String],
    index: usize,
    count: usize,
    ready_fd: Option<i32>,
) -> std::io::Result<Child> {
    let mut cmd = Command::new(exe);
    cmd.arg("--worker")
        .args(args)
        .env(PARENT_ENV, std::process::id().to_string())
        .env(INDEX_ENV, index.to_string())
        .env(COUNT_ENV, count.to_string())
        // The supervisor is the process systemd knows: it tells READY=1 itself.
        .env_remove("NOTIFY_SOCKET");
    match ready_fd {
        Some(fd) => cmd.env(ready::READY_ENV, fd.to_string()),
        None => cmd.env_remove(ready::READY_ENV),
    };
    cmd.spawn()
}

/// Sends `sig` to a worker that has not been reaped (so its pid is still ours).
fn signal(child: &mut Child, sig: libc::c_int) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill with a pid we spawned and have not reaped.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}
