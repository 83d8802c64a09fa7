//! The six scenarios. Each is bounded in count and in time (`--timeout` per phase),
//! prints a live progress line on stderr and returns its result as JSON.
//!
//! * `idle`: N parked connections on their own ids; server RSS per connection, connect rate,
//!   and RSS growth over close/reconnect cycles (worker pool).
//! * `fanout`: N listeners on one id, one push; delivery-time distribution, payloads
//!   verified, server CPU for the push (worker pool).
//! * `stream`: N SSE or WebSocket listeners on one id, pushes paced at a rate (or the
//!   highest rate that keeps up, `--find-rate`); exactly-once and in-order check, lag,
//!   messages delivered per second (worker pool; publisher: `stream_pub`).
//! * `publish`: pushes (new IN connections, or `--api http` keep-alive requests) to ids
//!   with one listener each, re-parking or streaming (in-process).
//! * `churn`: clients arriving, parking and leaving at a rate while ONLINE and WATCH are
//!   polled (in-process).
//! * `multi`: clients on K of M ids, pushes to several ids, reconnects with cursors;
//!   exactly-once and in-order check (in-process).
//!
//! `idle`, `fanout` and `publish` listeners wait over `--transport` (long-poll, SSE or
//! WebSocket, see `wire`), `stream`'s over SSE or WebSocket; `churn` and `multi` are
//! long-poll only.
//!
//! Uses: `worker::Pool` (idle, fanout, stream), `net::Net` (the others), `target::Target`,
//! `wire`.

pub mod churn;
pub mod fanout;
pub mod idle;
pub mod multi;
pub mod publish;
pub mod stream;
pub mod stream_pub;

use crate::args::Opts;
use crate::clock::now_ns;
use crate::net::{Ev, Net};
use crate::stats::Progress;
use crate::target::Target;
use crate::wire::Listen;
use crate::worker::Pool;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Everything a scenario needs.
pub struct Ctx<'a> {
    pub target: &'a Target,
    pub opts: &'a Opts,
    /// Prefix of every id this run uses, so runs against a long-lived server never see
    /// each other's queues.
    pub tag: String,
    /// The loadtest binary, for worker processes; `None` runs workers as threads.
    pub exe: Option<&'a Path>,
}

impl Ctx<'_> {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.opts.timeout_s.max(1))
    }

    pub fn progress(&self, label: &str) -> Progress {
        Progress::new(&format!("{} {label}", self.target.name), self.opts.quiet)
    }

    /// The IN address for the `i`-th push.
    pub fn in_addr(&self, i: usize) -> SocketAddr {
        let a = &self.target.inn;
        a.get(i % a.len().max(1))
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 10010)))
    }

    pub fn wait_addr(&self, i: usize) -> SocketAddr {
        let a = &self.target.wait;
        a.get(i % a.len().max(1))
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8088)))
    }
}

/// Extra conf lines for a server the loadtest starts for `scenario`.
pub fn extra_conf(scenario: &str) -> &'static str {
    match scenario {
        // Offline events within the run's bounded time.
        "churn" => "$CONFIG{OFFLINE_TIMEOUT} = 1;\n",
        // Measure the server, not the queue cap: a slow client must not lose messages.
        "multi" => "$CONFIG{MAX_DATA_FOR_ID} = 1000;\n",
        _ => "",
    }
}

/// Runs one scenario by name.
pub fn run(name: &str, ctx: &Ctx) -> Result<Value, String> {
    let mut v = match name {
        "idle" => idle::run(ctx)?,
        "fanout" => fanout::run(ctx)?,
        "stream" => stream::run(ctx)?,
        "publish" => publish::run(ctx)?,
        "churn" => churn::run(ctx)?,
        "multi" => multi::run(ctx)?,
        _ => return Err(format!("unknown scenario {name}")),
    };
    if let Some(o) = v.as_object_mut() {
        o.insert("scenario".into(), json!(name));
        o.insert("server".into(), json!(ctx.target.name));
    }
    Ok(v)
}

/// Worker count: `--procs`, or one per 9,500 connections.
pub fn procs(n: usize, asked: usize) -> usize {
    if asked > 0 {
        asked
    } else {
        n.div_ceil(9_500).max(1)
    }
}

/// Samples the server's memory (PSS and RSS of its process tree) against the number of
/// open connections while `open_all` runs, at most once per `every`, and shows the latest
/// figures on the progress line.
pub struct MemSampler<'a> {
    target: &'a Target,
    every_ns: u64,
    last: u64,
    t0: u64,
    /// `{"t_s", "open", "pss", "rss"}` in bytes, in order.
    pub samples: Vec<Value>,
}

impl<'a> MemSampler<'a> {
    pub fn new(target: &'a Target, every: Duration) -> MemSampler<'a> {
        MemSampler {
            target,
            every_ns: every.as_nanos() as u64,
            last: 0,
            t0: now_ns(),
            samples: Vec::new(),
        }
    }

    /// Takes a sample now; returns (PSS, RSS).
    pub fn sample(&mut self, open: u64) -> Option<(u64, u64)> {
        self.sample_as(open, false)
    }

    /// Takes a sample of a server that has settled (idle after the connections it was
    /// given): these are the points per-connection figures are taken from. The others,
    /// taken while connections open, lag behind the open count (the server still has
    /// accepted connections to read and, in cluster mode, Redis replies to apply).
    pub fn sample_settled(&mut self, open: u64) -> Option<(u64, u64)> {
        self.sample_as(open, true)
    }

    fn sample_as(&mut self, open: u64, settled: bool) -> Option<(u64, u64)> {
        let (pss, rss) = self.target.mem()?;
        // The time after the read: at scale, reading every process takes a while.
        let now = now_ns();
        self.last = now;
        self.samples
            .push(json!({"t_s": (now - self.t0) as f64 / 1e9, "open": open,
                                 "pss": pss, "rss": rss, "settled": settled}));
        Some((pss, rss))
    }

    /// Takes a sample if `every` has passed since the last one.
    pub fn tick(&mut self, open: u64, prog: &mut Progress) {
        if now_ns().saturating_sub(self.last) < self.every_ns {
            return;
        }
        if let Some((pss, rss)) = self.sample(open) {
            prog.set_extra(format!(
                ", server PSS {:.1} MB, RSS {:.1} MB",
                pss as f64 / 1e6,
                rss as f64 / 1e6
            ));
        }
    }
}

/// What `open_all` reports.
pub struct Opened {
    pub parked: u64,
    pub failed: u64,
    pub connect_ns: u64,
    pub errors: Vec<Value>,
}

/// Splits `n` WAIT connections over the pool's workers (ids `<prefix><i>`, or all on
/// `shared`) and waits until all are parked.
pub fn open_all(
    pool: &mut Pool,
    ctx: &Ctx,
    n: usize,
    shared: Option<&str>,
    prefix: &str,
    prog: &mut Progress,
    mem: &mut MemSampler,
) -> Result<Opened, String> {
    open_range(pool, ctx, 0, 0, n, shared, prefix, prog, mem)
}

/// `open_all` for connections `from..from + n` (connection g on id `<prefix><g>`, or
/// `g % --id-pool`), on top of `held` already open (so the memory samples are taken
/// against the whole count).
#[allow(clippy::too_many_arguments)]
pub fn open_range(
    pool: &mut Pool,
    ctx: &Ctx,
    held: u64,
    from: usize,
    n: usize,
    shared: Option<&str>,
    prefix: &str,
    prog: &mut Progress,
    mem: &mut MemSampler,
) -> Result<Opened, String> {
    let k = pool.len();
    let wait: Vec<String> = ctx.target.wait.iter().map(|a| a.to_string()).collect();
    let mut first = from;
    for i in 0..k {
        let share = n / k + usize::from(i < n % k);
        let mut cmd = json!({"op": "open", "n": share, "first": first, "wait": wait,
            "prefix": prefix, "id_pool": ctx.opts.id_pool, "window": ctx.opts.window, "source": i,
            "transport": ctx.opts.transport.name(),
            "timeout_ms": ctx.timeout().as_millis() as u64});
        if let Some(id) = shared {
            cmd["id"] = json!(id);
        }
        pool.send(i, &cmd).map_err(|e| format!("worker {i}: {e}"))?;
        first += share;
    }
    let ready = pool.collect_with(
        "ready",
        ctx.timeout() + Duration::from_secs(10),
        prog,
        // Until each worker has reported once, its count is 0: never below what was held.
        &mut |open, prog| mem.tick(open.max(held), prog),
    )?;
    let sum = |k: &str| {
        ready
            .iter()
            .map(|r| r[k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let t0 = ready
        .iter()
        .filter_map(|r| r["t_first"].as_u64())
        .min()
        .unwrap_or(0);
    let t1 = ready
        .iter()
        .filter_map(|r| r["t_last"].as_u64())
        .max()
        .unwrap_or(0);
    Ok(Opened {
        parked: sum("parked"),
        failed: sum("failed"),
        connect_ns: t1.saturating_sub(t0),
        errors: ready
            .iter()
            .flat_map(|r| r["errors"].as_array().cloned().unwrap_or_default())
            .collect(),
    })
}

/// Closes every worker's connections (within `--timeout`, at least 30 s: a million
/// closes on a loaded machine take a while).
pub fn close_all(pool: &mut Pool, ctx: &Ctx, prog: &mut Progress) -> Result<(), String> {
    for i in 0..pool.len() {
        pool.send(i, &json!({"op": "close"}))
            .map_err(|e| e.to_string())?;
    }
    pool.collect("closed", ctx.timeout().max(Duration::from_secs(30)), prog)
        .map(|_| ())
}

/// Opens `n` in-process WAIT connections (`user` = index) and waits until all are
/// parked; returns their keys (None for those that failed) and the connect time.
pub fn park_local(
    net: &mut Net,
    ctx: &Ctx,
    reqs: &mut dyn FnMut(usize) -> Listen,
    n: usize,
    prog: &mut Progress,
) -> Result<(Vec<Option<usize>>, u64, u64), String> {
    let mut keys = vec![None; n];
    let (mut next, mut pending, mut parked, mut failed) = (0usize, 0usize, 0usize, 0u64);
    let t0 = now_ns();
    let deadline = t0 + ctx.timeout().as_nanos() as u64;
    let mut evs = Vec::new();
    while parked + (failed as usize) < n && now_ns() < deadline {
        while next < n && pending < ctx.opts.window {
            match net.open_listen(ctx.wait_addr(next), reqs(next), next as u64) {
                Ok(_) => pending += 1,
                Err(_) => failed += 1,
            }
            next += 1;
        }
        evs.clear();
        net.poll(Duration::from_millis(5), &mut evs)
            .map_err(|e| e.to_string())?;
        for ev in evs.drain(..) {
            match ev {
                Ev::Parked { key, user, .. } => {
                    if let Some(k) = keys.get_mut(user as usize) {
                        *k = Some(key);
                    }
                    pending = pending.saturating_sub(1);
                    parked += 1;
                }
                Ev::Message { .. } | Ev::Response { .. } => {}
                Ev::Done { user, .. } | Ev::Failed { user, .. } => {
                    if let Some(k) = keys.get_mut(user as usize) {
                        if k.take().is_some() {
                            parked = parked.saturating_sub(1);
                        } else {
                            pending = pending.saturating_sub(1);
                        }
                    }
                    failed += 1;
                }
            }
        }
        prog.update(parked as u64, 0, parked as u64);
    }
    Ok((keys, now_ns() - t0, failed))
}

/// A small deterministic xorshift generator (no rand crate needed).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procs_split() {
        assert_eq!(procs(200, 0), 1);
        assert_eq!(procs(9_500, 0), 1);
        assert_eq!(procs(19_000, 0), 2);
        assert_eq!(procs(19_000, 4), 4);
    }

    #[test]
    fn rng_ranges() {
        let mut r = Rng::new(42);
        for _ in 0..1000 {
            assert!(r.below(7) < 7);
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(r.below(0), 0);
    }
}
