//! `stream`: the push rate that N streaming listeners keep up with. N SSE or WebSocket
//! listeners on one id (split over worker processes as `fanout`'s), then P pushes paced
//! at R per second (`stream_pub`); every listener checks it got each push exactly once
//! and in order and takes each one's lag, push sent -> received (`worker_stream`).
//!
//! A step keeps up when every message arrived exactly once (no stream closed, nothing
//! missing, duplicated, out of order or garbled, every push accepted), the p99 lag and
//! the last push's lag (until its last listener got it) are within `--lag-bound-ms`, and
//! the rate achieved is within 10% of R: the lag at the end is not growing past the
//! bound. One step at `--rate`/`--pushes`, or with `--find-rate` a search: double the
//! rate while it keeps up (halve while it does not), then one bisection step between the
//! highest rate that kept up and the lowest that did not; at most `MAX_STEPS` steps,
//! none started past `--timeout`. A step that did not deliver everything leaves its
//! listeners behind: the next one gets fresh listeners on a new id.
//!
//! Result: the figures of the step that counts (the one step, or the highest rate that
//! kept up; none when no rate did) at the top level, every step's in `steps`, `kept_up`.
//!
//! Uses: `worker::Pool` (the `stream` op), `stream_pub`, `lag::Hist`, `target::Target`.

use super::stream_pub::{self, Plan};
use super::{open_all, procs, Ctx, MemSampler};
use crate::clock::now_ns;
use crate::lag::Hist;
use crate::stats::{ms, per_sec, Progress};
use crate::worker::Pool;
use serde_json::{json, Value};
use std::time::Duration;

/// The search's bound in steps.
const MAX_STEPS: usize = 10;
/// Listener-push pairs a run may track (one bit each in the workers: 250 MB).
const MAX_PAIRS: u64 = 2_000_000_000;
/// Deliveries per second the default starting rate aims at (R = this / N).
const DEFAULT_DELIVERIES: f64 = 100_000.0;

/// The listeners: a pool of workers holding them, on id `<tag>st<gen>`.
struct Listeners {
    pool: Pool,
    gen: usize,
    parked: u64,
    failed: u64,
    connects_per_s: f64,
}

impl Listeners {
    fn id(&self, ctx: &Ctx) -> String {
        format!("{}st{}", ctx.tag, self.gen)
    }

    /// (Re)opens all N on a new id.
    fn open(&mut self, ctx: &Ctx, prog: &mut Progress) -> Result<(), String> {
        if self.gen > 0 {
            super::close_all(&mut self.pool, ctx, prog)?;
        }
        self.gen += 1;
        let id = self.id(ctx);
        let mut mem = MemSampler::new(ctx.target, Duration::from_secs(3600));
        let o = open_all(
            &mut self.pool,
            ctx,
            ctx.opts.n,
            Some(&id),
            "",
            prog,
            &mut mem,
        )?;
        self.parked = o.parked;
        self.failed = o.failed;
        self.connects_per_s = per_sec(o.parked, o.connect_ns);
        ctx.target.settle(Duration::from_secs(5));
        Ok(())
    }
}

pub fn run(ctx: &Ctx) -> Result<Value, String> {
    let o = ctx.opts;
    let n = o.n.max(1);
    let t0 = now_ns();
    let mut prog = ctx.progress("stream");
    let pool = Pool::start(procs(n, o.procs), ctx.exe).map_err(|e| e.to_string())?;
    let mut ls = Listeners {
        pool,
        gen: 0,
        parked: 0,
        failed: 0,
        connects_per_s: 0.0,
    };
    ls.open(ctx, &mut prog)?;
    let rate0 = if o.rate_given {
        o.rate
    } else {
        (DEFAULT_DELIVERIES / n as f64).floor().max(1.0)
    };
    let pushes_at = |rate: f64| -> u32 {
        if o.pushes_given && !o.find_rate {
            o.pushes.clamp(1, u32::MAX as usize) as u32
        } else {
            (rate * o.duration_s).ceil().clamp(5.0, u32::MAX as f64) as u32
        }
    };
    let bound_ns = o.lag_bound_ms.saturating_mul(1_000_000);
    let mut steps: Vec<Value> = Vec::new();
    let mut best: Option<usize> = None;
    if !o.find_rate {
        let p = pushes_at(rate0);
        // One run: wait for stragglers up to --timeout, so the counts are final.
        let drain = ctx.timeout().as_nanos() as u64;
        steps.push(step(ctx, &mut ls, 0, rate0, p, drain, bound_ns, &mut prog)?);
        best = Some(0).filter(|_| steps[0]["keeps_up"] == true);
    } else {
        // A step that keeps up has everything within the bound; past it the step has
        // failed whatever comes later.
        let drain = 2 * bound_ns + 1_000_000_000;
        let end = t0 + ctx.timeout().as_nanos() as u64;
        let (mut good, mut bad): (Option<f64>, Option<f64>) = (None, None);
        let mut rate = rate0;
        let mut bisected = false;
        while steps.len() < MAX_STEPS {
            let p = pushes_at(rate);
            let span = (f64::from(p) / rate * 1e9) as u64;
            if now_ns() + span + drain > end {
                break;
            }
            let k = steps.len();
            let s = step(ctx, &mut ls, k, rate, p, drain, bound_ns, &mut prog)?;
            let kept = s["keeps_up"] == true;
            let complete = s["complete"].as_u64() == Some(ls.parked) && s["closed"] == 0;
            steps.push(s);
            if kept {
                good = Some(rate);
                best = Some(k);
            } else {
                bad = Some(rate);
            }
            if bisected {
                break;
            }
            rate = match (good, bad) {
                (Some(g), None) => 2.0 * g,
                (None, Some(b)) if b / 2.0 >= 0.1 => b / 2.0,
                (Some(g), Some(b)) => {
                    bisected = true;
                    (g + b) / 2.0
                }
                _ => break,
            };
            if !complete {
                ls.open(ctx, &mut prog)?;
            }
        }
    }
    let chosen = best.or(if o.find_rate { None } else { Some(0) });
    let mut v = chosen
        .and_then(|k| steps.get(k).cloned())
        .unwrap_or_else(|| json!({}));
    let kept = best.is_some();
    prog.finish(&match chosen.and_then(|k| steps.get(k)) {
        Some(s) => format!(
            "{} listeners: {} pushes/s, {} messages/s delivered, lag p99 {} ms, {}",
            ls.parked,
            s["pushes_per_s"],
            s["delivered_per_s"],
            s["lag_p99_ms"],
            if kept { "kept up" } else { "did not keep up" }
        ),
        None => format!("{} listeners: no rate kept up", ls.parked),
    });
    if let Some(m) = v.as_object_mut() {
        let summaries: Vec<Value> = steps.iter().map(summary).collect();
        let exactly_once = m.get("exactly_once") == Some(&json!(true));
        m.insert("n".into(), json!(n));
        m.insert("workers".into(), json!(ls.pool.len()));
        m.insert("parked".into(), json!(ls.parked));
        m.insert("connect_failed".into(), json!(ls.failed));
        m.insert("connects_per_s".into(), json!(ls.connects_per_s));
        m.insert("transport".into(), json!(o.transport.name()));
        m.insert("api".into(), json!(o.api.name()));
        m.insert("lag_bound_ms".into(), json!(o.lag_bound_ms));
        m.insert("find_rate".into(), json!(o.find_rate));
        m.insert("kept_up".into(), json!(kept));
        m.insert("steps".into(), json!(summaries));
        m.insert("search_s".into(), json!(ms(now_ns() - t0) / 1e3));
        m.insert("server_procs".into(), json!(ctx.target.procs()));
        // A single run is ok when nothing was lost (its timing is a figure, not a
        // verdict). A search is ok when it ran and no step duplicated, reordered or garbled
        // a message, or had a push refused: at a rate it cannot keep up with, messages
        // still in flight at the step's end (`missing`) and streams the server closed for
        // not reading (`closed`) are the expected outcome, and `kept_up` says whether any
        // rate did.
        let ok = if o.find_rate {
            !steps.is_empty()
                && steps.iter().all(|s| {
                    ["duplicates", "out_of_order", "bad", "in_errors"]
                        .iter()
                        .all(|k| s[*k] == 0)
                })
        } else {
            exactly_once && ls.parked == n as u64
        };
        m.insert("ok".into(), json!(ok));
    }
    Ok(v)
}

/// A step's figures without the bulky parts.
fn summary(s: &Value) -> Value {
    let mut s = s.clone();
    if let Some(m) = s.as_object_mut() {
        m.remove("push_lag_cdf_ms");
    }
    s
}

/// One run of `pushes` pushes at `rate` on the listeners as they are.
#[allow(clippy::too_many_arguments)]
fn step(
    ctx: &Ctx,
    ls: &mut Listeners,
    k: usize,
    rate: f64,
    pushes: u32,
    drain_ns: u64,
    bound_ns: u64,
    prog: &mut Progress,
) -> Result<Value, String> {
    let listeners = ls.parked;
    if listeners.saturating_mul(u64::from(pushes)) > MAX_PAIRS {
        return Err(format!(
            "{listeners} listeners x {pushes} pushes is over {MAX_PAIRS} deliveries to track: \
             fewer pushes"
        ));
    }
    let id = ls.id(ctx);
    let prefix = format!("{}/{k}", ctx.tag);
    let span = (f64::from(pushes) / rate * 1e9) as u64;
    let t_start = now_ns() + 50_000_000;
    let end_ns = t_start + span + drain_ns;
    for i in 0..ls.pool.len() {
        let cmd = json!({"op": "stream", "id": id, "prefix": prefix, "pushes": pushes,
                         "end_ns": end_ns});
        ls.pool
            .send(i, &cmd)
            .map_err(|e| format!("worker {i}: {e}"))?;
    }
    ls.pool
        .collect("streaming", Duration::from_secs(10), prog)?;
    let cpu0 = ctx.target.cpu_ns();
    let ins = if ctx.opts.push_each_in {
        ctx.target.inn.clone()
    } else {
        vec![ctx.in_addr(0)]
    };
    let plan = Plan {
        id: &id,
        prefix: &prefix,
        rate,
        pushes,
        t_start,
    };
    let sent = stream_pub::paced(ctx, &ins, &plan, prog)?;
    let wait = Duration::from_nanos(end_ns.saturating_sub(now_ns())) + Duration::from_secs(10);
    let results = ls.pool.collect("streamed", wait, prog)?;
    ctx.target.settle(Duration::from_secs(5));
    let cpu1 = ctx.target.cpu_ns();
    Ok(merge(
        &results,
        &sent,
        listeners,
        rate,
        pushes,
        bound_ns,
        cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a)),
    ))
}

/// The workers' counts and the publisher's times, as one step's figures.
fn merge(
    results: &[Value],
    sent: &stream_pub::Sent,
    listeners: u64,
    rate: f64,
    pushes: u32,
    bound_ns: u64,
    cpu_ns: Option<u64>,
) -> Value {
    let sum = |k: &str| {
        results
            .iter()
            .map(|r| r[k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let mut hist = Hist::new();
    let mut push_lag = vec![0u64; pushes as usize];
    for r in results {
        hist.merge_json(&r["hist"]);
        for (m, v) in push_lag
            .iter_mut()
            .zip(r["seq_lag_ns"].as_array().into_iter().flatten())
        {
            *m = (*m).max(v.as_u64().unwrap_or(0));
        }
    }
    let received = sum("received");
    let (missing, dups, ooo) = (sum("missing"), sum("duplicates"), sum("out_of_order"));
    let (bad, closed, complete) = (sum("bad"), sum("closed"), sum("complete"));
    let t_last = results
        .iter()
        .filter_map(|r| r["t_last"].as_u64())
        .max()
        .unwrap_or(0);
    let first = sent.times.first().copied().unwrap_or(0);
    let last = sent.times.last().copied().unwrap_or(0);
    let elapsed = t_last.saturating_sub(first);
    let achieved = if sent.times.len() > 1 {
        per_sec(sent.times.len() as u64 - 1, last.saturating_sub(first))
    } else {
        rate
    };
    // The lag of the last push (until its last listener got it), and how the per-push
    // lag moved from the first tenth of the run to the last.
    let last_push_lag = push_lag.last().copied().unwrap_or(0);
    let tenth = (push_lag.len() / 10).max(1);
    let mean = |s: &[u64]| s.iter().sum::<u64>() as f64 / s.len().max(1) as f64 / 1e6;
    let growth = mean(&push_lag[push_lag.len().saturating_sub(tenth)..])
        - mean(&push_lag[..tenth.min(push_lag.len())]);
    let exactly_once = received == listeners * u64::from(pushes)
        && missing == 0
        && dups == 0
        && ooo == 0
        && bad == 0
        && closed == 0
        && sent.errors == 0;
    let p99 = hist.percentile_ns(99.0);
    let mut why: Vec<String> = Vec::new();
    if !exactly_once {
        why.push(format!(
            "not exactly once: missing {missing}, duplicates {dups}, out of order {ooo}, \
             bad {bad}, streams closed {closed}, push errors {}",
            sent.errors
        ));
    }
    if p99 > bound_ns {
        why.push(format!("p99 lag {} ms", ms(p99)));
    }
    if last_push_lag > bound_ns || missing > 0 {
        why.push(format!("last push's lag {} ms", ms(last_push_lag)));
    }
    if achieved < 0.9 * rate {
        why.push(format!("pushed {achieved}/s of {rate}/s"));
    }
    let error = results
        .iter()
        .filter_map(|r| r["error"].as_str())
        .find(|e| !e.is_empty())
        .unwrap_or(&sent.error);
    let mut sorted = push_lag.clone();
    sorted.sort_unstable();
    json!({
        "rate": (rate * 100.0).round() / 100.0, "pushes": pushes, "listeners": listeners,
        "pushes_per_s": achieved, "delivered": received,
        "delivered_per_s": per_sec(received, elapsed), "elapsed_s": ms(elapsed) / 1e3,
        "lag_p50_ms": ms(hist.percentile_ns(50.0)), "lag_p99_ms": ms(p99),
        "lag_max_ms": ms(hist.max_ns()), "last_push_lag_ms": ms(last_push_lag),
        "push_lag_growth_ms": (growth * 1000.0).round() / 1000.0,
        "push_lag_cdf_ms": crate::stats::cdf_ms(&sorted),
        "missing": missing, "duplicates": dups, "out_of_order": ooo, "bad": bad,
        "closed": closed, "complete": complete, "in_errors": sent.errors,
        "server_cpu_ms": cpu_ns.map(ms),
        "server_cpu_per_delivery_us": cpu_ns
            .filter(|_| received > 0)
            .map(|c| (c as f64 / received as f64 / 1e3 * 100.0).round() / 100.0),
        "exactly_once": exactly_once, "keeps_up": why.is_empty(), "why_not": why.join("; "),
        "error": error,
    })
}
