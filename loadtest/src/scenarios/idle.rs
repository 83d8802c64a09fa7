//! `idle`: N connections, each parked on its own id (or, with `--id-pool K`, on K ids). Reports the server's RSS per
//! connection (VmRSS of its process tree before and after), the connect rate, and the
//! RSS after each of `--cycles` close-all/reconnect-all cycles: the growth over the first
//! cycle (a one-off high-water mark) and the growth per cycle after it (a leak). Beside
//! RSS, the PSS of the server's tree (smaps_rollup: shared pages counted once over all its
//! processes) before and after, and both sampled against the open count while the first
//! connections open (`mem_samples`, the memory-against-connections curve).
//!
//! Uses: `worker::Pool` through `open_all`/`close_all`.

use super::{close_all, open_all, procs, Ctx, MemSampler};
use crate::stats::per_sec;
use crate::worker::Pool;
use serde_json::{json, Value};
use std::time::Duration;

pub fn run(ctx: &Ctx) -> Result<Value, String> {
    let n = ctx.opts.n;
    let mut pool = Pool::start(procs(n, ctx.opts.procs), ctx.exe).map_err(|e| e.to_string())?;
    let mut prog = ctx.progress("idle");
    ctx.target.settle(Duration::from_secs(2));
    let rss0 = ctx.target.rss();
    let mut mem = MemSampler::new(ctx.target, Duration::from_millis(500));
    let mem0 = mem.sample(0);
    let prefix = format!("{}i", ctx.tag);
    let first = open_all(&mut pool, ctx, n, None, &prefix, &mut prog, &mut mem)?;
    ctx.target.settle(Duration::from_secs(5));
    let rss1 = ctx.target.rss();
    let mem1 = mem.sample(first.parked);
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
    prog.finish(&format!(
        "{} parked, {} failed, RSS/conn {per_conn}, PSS/conn {pss_per_conn}",
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
        "mem_samples": mem.samples,
        "cycles": cycles, "rss_growth_first_cycle_per_conn": first_cycle,
        "rss_growth_per_conn_per_cycle": growth,
        "ok": first.parked == n as u64,
    }))
}
