//! realplexor-loadtest: the load generator and benchmark for Realplexor-compatible
//! servers (this one, the original C++/Perl Realplexor, anything speaking its WAIT and IN
//! lines).
//!
//! # Layout
//! * `args`: the command line, raw then typed (`Opts`).
//! * `net`: the single-threaded mio client engine; sockets bound to 127.x.y.z sources.
//! * `proto`: requests and response parsers (WAIT data blocks, ONLINE, WATCH), cursor order.
//! * `wire`: the other WAIT transports (`sse`, `ws`) and the `--api http` publisher
//!   (`http`): requests, incremental decoders, framing.
//! * `worker`: WAIT-side workers (processes or threads) for `idle`, `fanout` and
//!   `stream`; `worker_stream`: their `stream` op (exactly-once, in-order and lag count).
//! * `lag`: a mergeable lag histogram (`stream`'s millions of deliveries).
//! * `scenarios`: `idle`, `fanout`, `stream`, `publish`, `churn`, `multi`; each returns JSON.
//! * `target`: the server under test (started with an override conf, or attached) and its
//!   RSS/CPU from /proc.
//! * `suite`: the standard benchmark run (`suite/mod.rs`) and its report:
//!   `bench/results.json`, read back by `suite/results.rs`, rendered to `results.md` by
//!   `suite/report.rs` (kernel-floor paragraphs: `suite/notes.rs`) and to `chart.svg` by
//!   `suite/chart.rs`.
//! * `stats`: percentiles, summaries, the live progress line.
//! * `floor`: `floor-server`, the least a server must do for the publish exchange (the
//!   kernel's share of CPU per push, as a reference in the suite's report); `--fanout`:
//!   the same for a fan-out.
//!
//! Every load loop is bounded in count and in time, and all traffic goes to 127.0.0.0/8.

pub mod args;
pub mod floor;
pub mod lag;
pub mod net;
pub mod proto;
pub mod scenarios;
pub mod stats;
pub mod suite;
pub mod target;
pub mod wire;
pub mod worker;
pub mod worker_stream;

use serde_json::Value;
use std::path::Path;

/// The one clock every process agrees on: CLOCK_MONOTONIC in nanoseconds (worker
/// processes report delivery times in it).
pub mod clock {
    pub fn now_ns() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the timespec we own.
        unsafe {
            libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
        }
        (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
    }
}

/// Raises the soft open-file limit to the hard one (workers hold thousands of sockets).
pub fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we own.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

/// Runs one scenario as `opts` says: starts the server (`--server-cmd`) or attaches to
/// it (`--wait`/`--in`). `exe` is the loadtest binary for worker processes (`None`:
/// threads).
pub fn run_scenario(opts: &args::Opts, exe: Option<&Path>) -> Result<Value, String> {
    raise_nofile();
    let scenario = opts.command.as_str();
    let mut opts = opts.clone();
    let target = match &opts.server_cmd {
        Some(cmd) => {
            if !opts.offline_given {
                // scenarios::extra_conf sets OFFLINE_TIMEOUT = 1 for churn.
                opts.offline_timeout_s = 1.0;
            }
            let extra = format!("{}{}\n", scenarios::extra_conf(scenario), opts.conf_extra);
            target::Target::spawn(&opts.name, cmd, &extra)?
        }
        None => target::Target::attach(
            &opts.name,
            opts.wait.clone(),
            opts.inn.clone(),
            opts.server_pid,
        ),
    };
    let ctx = scenarios::Ctx {
        target: &target,
        opts: &opts,
        tag: format!("t{}x", clock::now_ns() % 1_000_000_007),
        exe,
    };
    scenarios::run(scenario, &ctx)
}
