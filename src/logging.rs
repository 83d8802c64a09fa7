//! Log output in the original's format (spec 10.1), on top of `log` + `env_logger`.
//!
//! VERBOSITY 0 prints nothing; 1 prints `<message>`; 2 adds `[<ctime>] `; 3 (the default)
//! also appends the storage counters on a second line. Every line of the original is at
//! debug level or above, so VERBOSITY >= 1 enables debug; RUST_LOG overrides the filter.
//! Callers build the counters lazily through `rlog!`, so a disabled level costs one check.
//!
//! Uses: storage (its `Counts`), httpdate.

use crate::storage::Counts;
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

static VERBOSITY: AtomicU8 = AtomicU8::new(3);

pub fn verbosity() -> u8 {
    VERBOSITY.load(Ordering::Relaxed)
}

/// Applies a (new) VERBOSITY.
pub fn set_verbosity(v: u8) {
    VERBOSITY.store(v, Ordering::Relaxed);
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(if v == 0 {
            log::LevelFilter::Off
        } else {
            log::LevelFilter::Debug
        });
    }
}

/// Installs the logger (once per process).
pub fn init(verbosity: u8) {
    let mut b = env_logger::Builder::new();
    b.target(env_logger::Target::Stdout);
    b.filter_level(log::LevelFilter::Trace);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    b.format(|out, record| {
        if self::verbosity() >= 2 {
            writeln!(
                out,
                "[{}] {}",
                crate::httpdate::ctime_local(std::time::SystemTime::now()),
                record.args()
            )
        } else {
            writeln!(out, "{}", record.args())
        }
    });
    let _ = b.try_init();
    set_verbosity(verbosity);
}

/// The `\n  [pairs_by_fhs=...]` suffix, printed at VERBOSITY 3 only.
pub struct Suffix(pub Counts);

impl fmt::Display for Suffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if verbosity() < 3 {
            return Ok(());
        }
        let c = &self.0;
        write!(
            f,
            "\n  [pairs_by_fhs={} data_to_send={} connected_fhs={} online_timers={} cleanup_timers={} events={}]",
            c.pairs_by_fhs, c.data_to_send, c.connected_fhs, c.online_timers, c.cleanup_timers, c.events
        )
    }
}

/// `rlog!(level, counts_expr, "fmt", args...)`: formats only when the level is enabled, and
/// evaluates `counts_expr` only then.
#[macro_export]
macro_rules! rlog {
    ($lvl:expr, $counts:expr, $($arg:tt)+) => {
        if log::log_enabled!($lvl) {
            log::log!($lvl, "{}{}", format_args!($($arg)+), $crate::logging::Suffix($counts));
        }
    };
}
