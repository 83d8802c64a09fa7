//! `idle`: N connections, each parked on its own id (or, with `--id-pool K`, on K ids). Reports the server's RSS per
//! connection (VmRSS of its process tree before and after), the connect rate, and the
//! RSS after each of `--cycles` close-all/reconnect-all cycles: the growth over the first
//! cycle (a one-off high-water mark) and the growth per cycle after it (a leak). Beside
//! RSS, the PSS of the server's tree (smaps_rollup: shared pages counted once over all its
//! processes), sampled against the open count while the first connections open
//! (`mem_samples`, the memory-against-connections curve).
//!
//! The first connections open in three steps, the server left to settle after each and
//! sampled then (`settled` samples): a warm-up step (100 connections per server process,
//! at most N/10), then up to N/2, then up to N. `pss_per_conn_marginal` is the slope
//! between the last two (what one more connection costs once every worker is warm);
//! `pss_warm` is the fixed cost after warm-up (each worker's first connections touch its
//! read buffer, tables, Redis link buffers and allocator arenas once). `pss_per_conn` is
//! `(after - before) / N`, which counts all of that warm-up as per-connection cost; it is
//! kept beside the others.
//!
//! Uses: `worker::Pool` through `open_range`/`close_all`.

use super::{close_all, open_all, open_range, procs, Ctx, MemSampler, Opened};
use crate::stats::per_sec;
use crate::worker::Pool;
use serde_json::{json, Value};
use std::time::Duration;

/// Connections per server process in the warm-up step.
const WARM_PER_PROC: usize = 100;
/// How long the server gets to settle after each step.
const SETTLE: Duration = Duration::from_secs(10);

/// The ends of the three steps: (warm-up, half, all); a step that would be empty (small
/// N) has the previous one's end.
pub fn steps(n: usize, server_procs: usize) -> (usize, usize, usize) {
    let warm = (WARM_PER_PROC * server_procs.max(1)).min(n / 10);
    let half = (n / 2).max(warm);
    (warm, half, n)
}

/// (PSS after - PSS at half) / (connections after - connections at half), bytes.
pub fn marginal(half: (u64, u64), all: (u64, u64)) -> Option<f64> {
    let dn = all.0.checked_sub(half.0).filter(|&d| d > 0)?;
    Some((all.1 as f64 - half.1 as f64) / dn as f64)
}

pub fn run(ctx: &Ctx) -> Result<Value, String> {
    let n = ctx.opts.n;
    let mut pool = Pool::start(procs(n, ctx.opts.procs), ctx.exe).map_err(|e| e.to_string())?;
    let mut prog = ctx.progress("idle");
    ctx.target.settle(Duration::from_secs(2));
    let rss0 = ctx.target.rss();
    let mut mem = MemSampler::new(ctx.target, Duration::from_millis(500));
    let mem0 = mem.sample_settled(0);
    let prefix = format!("{}i", ctx.tag);
    let (warm, half, _) = steps(n, ctx.target.procs());
    let mut first = Opened {
        parked: 0,
        failed: 0,
        connect_ns: 0,
        errors: Vec::new(),
    };
    // (open, PSS) after each step, settled.
    let mut points: Vec<(u64, Option<u64>)> = Vec::new();
    let mut from = 0;
    let mut mem1 = mem0;
    for end in [warm, half, n] {
        if end <= from {
            continue;
        }
        let held = first.parked;
        let o = open_range(
            &mut pool,
            ctx,
            held,
            from,
            end - from,
            None,
            &prefix,
            &mut prog,
            &mut mem,
        )?;
        first.parked += o.parked;
        first.failed += o.failed;
        first.connect_ns += o.connect_ns;
        first.errors.extend(o.errors);
        from = end;
        ctx.target.settle(SETTLE);
        mem1 = mem.sample_settled(first.parked);
        points.push((first.parked, mem1.map(|m| m.0)));
    }
    let rss1 = ctx.target.rss();
    let server_procs = ctx.target.procs();
    let mut cycles = Vec::new();
    let mut last = rss1;
    for c in 0..ctx.opts.cycles {
        close_all(&mut pool, ctx, &mut prog)?;
        ctx.target.settle(Duration::from_secs(5));
        let closed = ctx.target.rss();
        let mut again = MemSampler::new(ctx.target, Duration::from_secs(3600));
        let o = open_all(&mut pool, ctx, n, None, &prefix, &mut prog, &mut again)?;
        ctx.target.settle(Duration::from_secs(5));
        last = ctx.target.rss();
        cycles.push(
            json!({"cycle": c + 1, "rss_closed": closed, "rss_open": last,
                           "parked": o.parked, "failed": o.failed}),
        );
    }
    close_all(&mut pool, ctx, &mut prog)?;
    let per_conn = match (rss0, rss1) {
        (Some(a), Some(b)) if first.parked > 0 => {
            json!((b as f64 - a as f64) / first.parked as f64)
        }
        _ => Value::Null,
    };
    // Growth per cycle in the steady state: from the end of the first cycle to the last
    // one (the first close/reconnect sets the allocator's high-water mark once).
    let first_open = cycles.first().and_then(|c| c["rss_open"].as_u64());
    let parked = first.parked.max(1) as f64;
    let first_cycle = match (rss1, first_open) {
        (Some(a), Some(b)) => json!((b as f64 - a as f64) / parked),
        _ => Value::Null,
    };
    let growth = match (first_open, last) {
        (Some(a), Some(b)) if ctx.opts.cycles > 1 => {
            json!((b as f64 - a as f64) / (parked * (ctx.opts.cycles - 1) as f64))
        }
        _ => Value::Null,
    };
    let pss_per_conn = match (mem0, mem1) {
        (Some((a, _)), Some((b, _))) if first.parked > 0 => {
            json!((b as f64 - a as f64) / first.parked as f64)
        }
        _ => Value::Null,
    };
    let point = |i: usize| points.get(i).and_then(|&(o, p)| Some((o, p?)));
    let last = points.len().checked_sub(1);
    let (pss_warm, warm_open) = match (warm > 0 && points.len() == 3).then(|| point(0)) {
        Some(Some((o, p))) => (json!(p), json!(o)),
        _ => (Value::Null, Value::Null),
    };
    let marginal_pss = match (last.and_then(|l| l.checked_sub(1)), last) {
        (Some(h), Some(l)) => point(h)
            .zip(point(l))
            .and_then(|(a, b)| marginal(a, b))
            .map_or(Value::Null, |m| json!(m)),
        _ => Value::Null,
    };
    // The fixed cost the slope implies: PSS at N less N times the marginal cost.
    let fixed_implied = match (marginal_pss.as_f64(), mem1) {
        (Some(m), Some((p, _))) => json!(p as f64 - m * first.parked as f64),
        _ => Value::Null,
    };
    prog.finish(&format!(
        "{} parked, {} failed, RSS/conn {per_conn}, PSS/conn {pss_per_conn}, \
         marginal PSS/conn {marginal_pss}, PSS after warm-up {pss_warm}",
        first.parked, first.failed
    ));
    Ok(json!({
        "n": n, "workers": pool.len(), "parked": first.parked, "failed": first.failed,
        "id_pool": ctx.opts.id_pool,
        "transport": ctx.opts.transport.name(),
        "errors": first.errors,
        "connect_s": first.connect_ns as f64 / 1e9,
        "connects_per_s": per_sec(first.parked, first.connect_ns),
        "rss_before": rss0, "rss_after": rss1, "rss_per_conn": per_conn,
        "pss_before": mem0.map(|m| m.0), "pss_after": mem1.map(|m| m.0),
        "tree_rss_before": mem0.map(|m| m.1), "tree_rss_after": mem1.map(|m| m.1),
        "pss_per_conn": pss_per_conn, "server_procs": server_procs,
        "pss_per_conn_marginal": marginal_pss, "pss_fixed_implied": fixed_implied,
        "pss_warm": pss_warm, "warm_open": warm_open,
        "steps": points.iter().map(|&(o, p)| json!({"open": o, "pss": p})).collect::<Vec<_>>(),
        "mem_samples": mem.samples,
        "cycles": cycles, "rss_growth_first_cycle_per_conn": first_cycle,
        "rss_growth_per_conn_per_cycle": growth,
        "ok": first.parked == n as u64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_warm_up_then_halves() {
        // A million on 57 processes: 5,700 to warm up, then 500,000, then all.
        assert_eq!(steps(1_000_000, 57), (5_700, 500_000, 1_000_000));
        // Small runs: the warm-up step is at most a tenth.
        assert_eq!(steps(20_000, 3), (300, 10_000, 20_000));
        assert_eq!(steps(1_000, 57), (100, 500, 1_000));
        assert_eq!(steps(5, 2), (0, 2, 5));
        assert_eq!(steps(0, 2), (0, 0, 0));
    }

    #[test]
    fn marginal_is_the_slope_of_the_second_half() {
        assert_eq!(marginal((500, 1_000_000), (1_000, 1_200_000)), Some(400.0));
        // Memory returned between the points gives a negative slope, not an error.
        assert_eq!(marginal((10, 2_000), (20, 1_000)), Some(-100.0));
        assert_eq!(marginal((10, 2_000), (10, 3_000)), None);
        assert_eq!(marginal((20, 2_000), (10, 3_000)), None);
    }
}
