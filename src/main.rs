//! The `realplexor` binary: command line, config, limits, bind, privilege drop, run.
//! The only place that turns errors into messages and exit codes.

use realplexor::{config, logging, reactor::Reactor, rlog, storage::Counts, sys};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "Usage: realplexor [-p PIDFILE] [OVERRIDE.conf]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = getopts::Options::new();
    opts.optopt("p", "pidfile", "write the process id to FILE", "FILE");
    opts.optflag("h", "help", "print this help");
    opts.optflag("V", "version", "print the version");
    let m = match opts.parse(&args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("realplexor: {e}\n{}", opts.usage(USAGE));
            return ExitCode::from(2);
        }
    };
    if m.opt_present("h") {
        print!("{}", opts.usage(USAGE));
        println!(
            "\nLoads the built-in defaults (the original dklab_realplexor.conf), then OVERRIDE.conf\n\
             (Perl syntax: $CONFIG{{KEY}} = value;). See README.md for the keys."
        );
        return ExitCode::SUCCESS;
    }
    if m.opt_present("V") {
        println!("realplexor {}", env!("CARGO_PKG_VERSION"));
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
    let loaded = match config::load(override_path.as_deref(), &install_dir) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("realplexor: config error: {e}");
            return ExitCode::from(1);
        }
    };
    let cfg = loaded.config;
    logging::init(cfg.verbosity);
    let zero = Counts::default();
    let limit = sys::raise_nofile_limit();
    rlog!(
        log::Level::Info,
        zero,
        "Starting. Opened files limit (ulimit -n): {limit}."
    );
    for note in &loaded.notes {
        rlog!(log::Level::Info, zero, "{note}");
    }
    let pidfile = m.opt_str("p").map(PathBuf::from);
    if let Some(p) = &pidfile {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            eprintln!("Cannot create {}: {e}", p.display());
            return ExitCode::from(1);
        }
    }
    let su_user = cfg.su_user.clone();
    let mut reactor = match Reactor::new(cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("realplexor: {e}");
            log::error!("{e}");
            return ExitCode::from(1);
        }
    };
    if !su_user.is_empty() && sys::is_root() {
        rlog!(
            log::Level::Info,
            zero,
            "Switching current user to unprivileged \"{su_user}\""
        );
        if let Err(e) = sys::switch_user(&su_user) {
            eprintln!("realplexor: {e}");
            return ExitCode::from(1);
        }
    }
    let result = reactor.run();
    if let Some(p) = &pidfile {
        let _ = std::fs::remove_file(p);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("realplexor: {e}");
            ExitCode::from(1)
        }
    }
}
