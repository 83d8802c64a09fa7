//! Log output in the original's format (spec 10.1), on top of `log` + `env_logger`.
//!
//! VERBOSITY 0 prints nothing; 1 prints `<message>`; 2 adds `[<ctime>] `; 3 (the default)
//! also appends the storage counters on a second line. Every line of the original is at
//! debug level or above, so VERBOSITY >= 1 enables debug; RUST_LOG overrides the filter.
//! Callers build the counters lazily through `rlog!`, so a disabled level costs one check.
//!
//! Output: a reactor thread batches its lines (`TurnBatch`) and writes them with one
//! `write` at the end of each loop turn (`flush_turn`, before the reactor waits; also past
//! 64 KiB and when the reactor returns or unwinds), so a push that logs four lines costs no
//! system call of its own and a line is never held while the reactor sleeps. (Holding lines
//! longer, say 20 ms, saved a few more percent but made the log lag behind what a client
//! just saw, which tests and operators that read the log right after an action rely on.)
//! Other threads write each record with one `write`. The ctime prefix is formatted once a
//! second; the counters suffix and peers are assembled on the stack (`Line`).
//!
//! Data: per thread, the batching flag, the pending bytes and the last (second, ctime).
//! Uses: storage (its `Counts`), httpdate.

use crate::storage::Counts;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Pending bytes past which a batching thread writes before its turn ends.
const BATCH_LIMIT: usize = 64 * 1024;

thread_local! {
    static BATCHING: Cell<bool> = const { Cell::new(false) };
    static PENDING: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static CTIME: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

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
    b.target(env_logger::Target::Pipe(Box::new(Out)));
    b.filter_level(log::LevelFilter::Trace);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    b.format(|out, record| {
        if self::verbosity() >= 2 {
            CTIME.with_borrow_mut(|(sec, text)| {
                let now = SystemTime::now();
                let s = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                if s != *sec {
                    *sec = s;
                    *text = crate::httpdate::ctime_local(now);
                }
                writeln!(out, "[{}] {}", text, record.args())
            })
        } else {
            writeln!(out, "{}", record.args())
        }
    });
    let _ = b.try_init();
    set_verbosity(verbosity);
}

/// Where records go: the thread's batch while it batches, else straight to standard output
/// (env_logger hands over a whole record in one `write_all`).
struct Out;

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if BATCHING.get() {
            let full = PENDING.with_borrow_mut(|p| {
                p.extend_from_slice(buf);
                p.len() >= BATCH_LIMIT
            });
            if full {
                flush_turn();
            }
            return Ok(buf.len());
        }
        write_stdout(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One `write_all` to descriptor 1, past Rust's line-buffered `Stdout` (which would split
/// a two-line record into two writes). A failed write (a closed pipe) drops the lines, as
/// a log on a closed terminal does.
#[cfg(not(test))]
fn write_stdout(buf: &[u8]) {
    use std::os::fd::FromRawFd;
    // SAFETY: descriptor 1 stays open for the process's life; ManuallyDrop never closes it.
    let mut f = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(1) });
    let _ = f.write_all(buf);
}

/// Unit tests: what would have been written, per thread, instead of the test's stdout.
#[cfg(test)]
fn write_stdout(buf: &[u8]) {
    tests::WRITTEN.with_borrow_mut(|w| w.push(buf.to_vec()));
}

/// Starts (`true`) or ends this thread's batching; ending writes what is pending.
pub fn batch_turns(on: bool) {
    if !on {
        flush_turn();
    }
    BATCHING.set(on);
}

/// Writes this thread's pending lines (the end of a loop turn).
pub fn flush_turn() {
    PENDING.with_borrow_mut(|p| {
        if !p.is_empty() {
            write_stdout(p);
            p.clear();
            if p.capacity() > 4 * BATCH_LIMIT {
                p.shrink_to(BATCH_LIMIT);
            }
        }
    });
}

/// Batches this thread's lines while alive; writes them and stops batching when dropped
/// (a return or an unwinding panic of the reactor).
pub struct TurnBatch;

impl TurnBatch {
    pub fn start() -> TurnBatch {
        batch_turns(true);
        TurnBatch
    }
}

impl Drop for TurnBatch {
    fn drop(&mut self) {
        batch_turns(false);
    }
}

/// The `\n  [pairs_by_fhs=...]` suffix, printed at VERBOSITY 3 only.
pub struct Suffix(pub Counts);

impl fmt::Display for Suffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if verbosity() < 3 {
            return Ok(());
        }
        // Assembled on the stack and written once: this is on every logged line.
        let c = &self.0;
        let mut line = Line::default();
        for (label, n) in [
            (&b"\n  [pairs_by_fhs="[..], c.pairs_by_fhs),
            (b" data_to_send=", c.data_to_send),
            (b" connected_fhs=", c.connected_fhs),
            (b" online_timers=", c.online_timers),
            (b" cleanup_timers=", c.cleanup_timers),
            (b" events=", c.events),
        ] {
            line.push(label);
            line.num(n as u64);
        }
        line.push(b"]");
        f.write_str(line.as_str())
    }
}

/// A short line built on the stack from ASCII pieces and decimal numbers (what the log's
/// hot parts need, without `core::fmt`'s per-argument machinery). Bytes past its 160 are
/// dropped, never a panic.
pub struct Line {
    buf: [u8; 160],
    len: usize,
}

impl Default for Line {
    fn default() -> Line {
        Line {
            buf: [0; 160],
            len: 0,
        }
    }
}

impl Line {
    /// Appends ASCII bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        let room = self.buf.len() - self.len;
        let n = bytes.len().min(room);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + n), bytes.get(..n)) {
            dst.copy_from_slice(src);
            self.len += n;
        }
    }

    /// Appends `v` in decimal.
    pub fn num(&mut self, mut v: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            if let Some(d) = digits.get_mut(i) {
                *d = b'0' + (v % 10) as u8;
            }
            v /= 10;
            if v == 0 || i == 0 {
                break;
            }
        }
        self.push(digits.get(i..).unwrap_or_default());
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever pushed.
        std::str::from_utf8(self.buf.get(..self.len).unwrap_or_default()).unwrap_or("")
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

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Each `write` this thread made.
        pub(super) static WRITTEN: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    fn writes() -> Vec<Vec<u8>> {
        WRITTEN.with_borrow_mut(std::mem::take)
    }

    fn pending() -> Vec<u8> {
        PENDING.with_borrow(|p| p.clone())
    }

    #[test]
    fn a_batching_thread_keeps_its_lines_until_the_turn_ends() {
        let batch = TurnBatch::start();
        let mut out = Out;
        out.write_all(b"first line\n  [counts]\n").expect("write");
        out.write_all(b"second line\n").expect("write");
        out.flush().expect("flush");
        assert_eq!(pending(), b"first line\n  [counts]\nsecond line\n");
        assert!(writes().is_empty());
        // The turn ends: both records in one write.
        flush_turn();
        assert_eq!(
            writes(),
            [b"first line\n  [counts]\nsecond line\n".to_vec()]
        );
        flush_turn();
        assert!(writes().is_empty(), "nothing pending, nothing written");
        out.write_all(b"third line\n").expect("write");
        drop(batch);
        // Ending the batch writes what is pending and stops batching.
        assert_eq!(writes(), [b"third line\n".to_vec()]);
        assert!(!BATCHING.get());
        // Not batching: each record is one write of its own.
        out.write_all(b"fourth\n  [counts]\n").expect("write");
        assert_eq!(writes(), [b"fourth\n  [counts]\n".to_vec()]);
    }

    #[test]
    fn line_writes_numbers_and_pieces_and_drops_what_does_not_fit() {
        let mut l = Line::default();
        for v in [0u64, 7, 10, 65535, u64::MAX] {
            l.push(b" ");
            l.num(v);
        }
        assert_eq!(l.as_str(), " 0 7 10 65535 18446744073709551615");
        let mut l = Line::default();
        for _ in 0..100 {
            l.push(b"abc");
        }
        assert_eq!(l.as_str().len(), 160);
        let c = Counts {
            pairs_by_fhs: 1,
            data_to_send: 22,
            connected_fhs: 333,
            online_timers: 0,
            cleanup_timers: 5,
            events: 60,
        };
        set_verbosity(3);
        assert_eq!(
            Suffix(c).to_string(),
            "\n  [pairs_by_fhs=1 data_to_send=22 connected_fhs=333 online_timers=0 cleanup_timers=5 events=60]"
        );
    }

    #[test]
    fn a_full_batch_is_written_before_the_turn_ends() {
        let _batch = TurnBatch::start();
        let mut out = Out;
        let line = [b'x'; 1000];
        for _ in 0..=(BATCH_LIMIT / 1000) {
            out.write_all(&line).expect("write");
        }
        assert!(pending().len() < BATCH_LIMIT);
        assert_eq!(writes().len(), 1, "written once past the limit");
    }
}
