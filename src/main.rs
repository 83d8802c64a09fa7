//! The `realplexor` binary: command line, then either the supervisor (default) or the
//! worker (`--foreground`, or `--worker` when the supervisor starts it). The worker loads
//! the config, raises limits, binds, drops privileges and runs the reactor. This is the
//! only place that turns errors into messages and exit codes.
//!
//! `--foreground` with WORKERS > 1 runs the supervisor after all (it stays in the
//! foreground; several workers need one), so a systemd unit's main process is the
//! supervisor then. Startup is reported once the worker listens (`Startup::ready`), never
//! before: only then is the pid file written (by the supervisor once every first worker
//! listens, or by the `--foreground` worker) and the supervisor told. A first worker that
//! cannot start makes the whole process exit 1 with its error.

use realplexor::reactor::{self, ConfigSource, Exit, Reactor};
use realplexor::{config, logging, ready, rlog, storage::Counts, supervisor, sys, worker_id};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "Usage: realplexor [-p PIDFILE] [--foreground] [OVERRIDE.conf]";

/// Exit code of a worker that asks its supervisor for a fresh start (EX_TEMPFAIL).
const RESTART_CODE: u8 = 75;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = getopts::Options::new();
    opts.optopt("p", "pidfile", "write the process id to FILE", "FILE");
    opts.optflag(
        "f",
        "foreground",
        "run the worker directly, without the restarting supervisor (systemd, containers)",
    );
    opts.optflag("", "worker", "(internal) run as the supervisor's worker");
    opts.optflag("h", "help", "print this help");
    opts.optflag("V", "version", "print the version");
    let m = match opts.parse(&args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("realplexor: {e}\n{}", opts.usage(USAGE));
            return ExitCode::from(2);
        }
    };
    // Written without println!, which panics when stdout is a closed pipe (`| head`).
    if m.opt_present("h") {
        let _ = write!(
            std::io::stdout(),
            "{}\nLoads the built-in defaults (the original dklab_realplexor.conf), then OVERRIDE.conf\n\
             (Perl syntax: $CONFIG{{KEY}} = value;). SIGHUP reloads, SIGTERM/SIGINT stop.\n\
             See README.md for the keys.\n",
            opts.usage(USAGE)
        );
        return ExitCode::SUCCESS;
    }
    if m.opt_present("V") {
        let _ = writeln!(
            std::io::stdout(),
            "realplexor {}",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    if m.free.len() > 1 {
        eprintln!("realplexor: one config file at most\n{}", opts.usage(USAGE));
        return ExitCode::from(2);
    }
    let install_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("."));
    let override_path = m.free.first().map(PathBuf::from);
    let pidfile = m.opt_str("p").map(PathBuf::from);

    if m.opt_present("worker") {
        let ppid = std::env::var(supervisor::PARENT_ENV)
            .ok()
            .and_then(|v| v.parse().ok());
        if let Some(ppid) = ppid {
            sys::die_with_parent(ppid);
        }
        let mut startup = Startup::new(None);
        return worker(override_path, install_dir, ppid, &mut startup);
    }
    let mut wrote_pidfile = false;
    // A config that does not load leaves the decision to the worker, which reports it.
    let several =
        || config::load(override_path.as_deref(), &install_dir).is_ok_and(|l| l.config.workers > 1);
    let code = if m.opt_present("foreground") && !several() {
        let mut startup = Startup::new(pidfile.clone());
        let code = worker(override_path, install_dir, None, &mut startup);
        wrote_pidfile = startup.wrote_pidfile;
        code
    } else {
        // The supervisor checks the config once, silently, as the original's watchdog.
        if let Err(e) = config::load(override_path.as_deref(), &install_dir) {
            eprintln!("realplexor: config error: {e}");
            return ExitCode::from(1);
        }
        let worker_args: Vec<String> = m.free.clone();
        let (ov, dir) = (override_path.clone(), install_dir.clone());
        let watch = move || {
            config::load(ov.as_deref(), &dir)
                .ok()
                .map(|l| supervisor::Watch {
                    max_mem_mb: l.config.max_mem_mb,
                    // A worker that writes a snapshot gets time to finish it.
                    snapshot: reactor::snapshot_path(&l.config).is_some(),
                    workers: l.config.workers,
                })
        };
        let mut on_ready = || match &pidfile {
            Some(p) => write_pidfile(p).map(|()| wrote_pidfile = true),
            None => Ok(()),
        };
        let code = supervisor::run(&worker_args, &watch, &mut on_ready);
        ExitCode::from(code.clamp(0, 255) as u8)
    };
    // Only a pid file this process wrote: a failed start must not remove a running one's.
    if let Some(p) = pidfile.filter(|_| wrote_pidfile) {
        let _ = std::fs::remove_file(p);
    }
    code
}

fn write_pidfile(p: &Path) -> Result<(), String> {
    std::fs::write(p, format!("{}\n", std::process::id()))
        .map_err(|e| format!("Cannot create {}: {e}", p.display()))
}

/// A bind error (`<addr>: <why>`) with the config key that asked for the address in
/// front: `WAIT_ADDR 127.0.0.1:8088: Address already in use`.
fn with_key(err: String, listen: &[(&str, Vec<String>)]) -> String {
    for (key, addrs) in listen {
        if addrs.iter().any(|a| err.starts_with(&format!("{a}: "))) {
            return format!("{key} {err}");
        }
    }
    err
}

/// The end of the worker's startup: the report to the supervisor or systemd, and the pid
/// file of `--foreground -p FILE`.
struct Startup {
    notifier: ready::Notifier,
    pidfile: Option<PathBuf>,
    wrote_pidfile: bool,
}

impl Startup {
    fn new(pidfile: Option<PathBuf>) -> Startup {
        Startup {
            notifier: ready::Notifier::from_env(),
            pidfile,
            wrote_pidfile: false,
        }
    }

    /// A startup error: handed to the supervisor (which prints it and exits 1), or printed.
    fn fail(&mut self, msg: &str) -> ExitCode {
        if !self.notifier.failed(msg) {
            eprintln!("realplexor: {msg}");
        }
        ExitCode::from(1)
    }

    /// Listening (and running as SU_USER): the pid file, then the report.
    fn ready(&mut self) -> Result<(), String> {
        if let Some(p) = &self.pidfile {
            write_pidfile(p)?;
            self.wrote_pidfile = true;
        }
        self.notifier.ready();
        Ok(())
    }
}

/// The worker: config, limits, bind, privileges, event loop. `supervisor`: the pid of the
/// supervisor that started it, if any.
fn worker(
    override_path: Option<PathBuf>,
    install_dir: PathBuf,
    supervisor: Option<libc::pid_t>,
    startup: &mut Startup,
) -> ExitCode {
    let loaded = match config::load(override_path.as_deref(), &install_dir) {
        Ok(l) => l,
        Err(e) => return startup.fail(&format!("config error: {e}")),
    };
    let cfg = loaded.config;
    logging::init(cfg.verbosity);
    let zero = Counts::default();
    let limit = sys::raise_nofile_limit();
    let (index, count) = (worker_id::worker_index(), worker_id::worker_count());
    let which = if count > 1 {
        format!(" worker {index} of {count}")
    } else {
        String::new()
    };
    rlog!(
        log::Level::Info,
        zero,
        "Starting{which}. Opened files limit (ulimit -n): {limit}."
    );
    for note in &loaded.notes {
        rlog!(log::Level::Info, zero, "{note}");
    }
    let su_user = cfg.su_user.clone();
    let listen = [
        ("WAIT_ADDR", cfg.wait_addr.clone()),
        ("IN_ADDR", cfg.in_addr.clone()),
    ];
    let mut reactor = match Reactor::new(cfg) {
        Ok(r) => r,
        Err(e) => {
            let e = with_key(e, &listen);
            log::error!("{e}");
            return startup.fail(&e);
        }
    };
    // Bound but not serving yet: the snapshot is in place before the first request.
    reactor.load_snapshot();
    if let Err(e) = reactor.handle_signals(ConfigSource {
        override_path,
        install_dir,
    }) {
        return startup.fail(&e);
    }
    if !su_user.is_empty() && sys::is_root() {
        rlog!(
            log::Level::Info,
            zero,
            "Switching current user to unprivileged \"{su_user}\""
        );
        if let Err(e) = sys::switch_user(&su_user) {
            log::error!("{e}");
            return startup.fail(&e);
        }
        // The kernel clears the parent-death signal when credentials change: set it again,
        // or a killed supervisor would leave this worker running as an orphan.
        if let Some(ppid) = supervisor {
            sys::die_with_parent(ppid);
        }
    }
    if let Err(e) = startup.ready() {
        return startup.fail(&e);
    }
    let result = reactor.run();
    // Whatever ended the loop, keep what is queued for the next worker.
    reactor.save_snapshot();
    match result {
        Ok(Exit::Stop) => ExitCode::SUCCESS,
        Ok(Exit::Restart) => ExitCode::from(RESTART_CODE),
        Err(e) => {
            eprintln!("realplexor: {e}");
            ExitCode::from(1)
        }
    }
}
