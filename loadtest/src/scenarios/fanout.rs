//! `fanout`: N listeners on one id, then one push over a new IN connection. Reports the
//! first, median and last delivery time from the publisher's first byte (a server that
//! accepts a connection with its data can answer listeners before the publisher's
//! half-close call even returns), checks every payload, and measures the server CPU used
//! from just before the push until it is idle again.
//!
//! Uses: `worker::Pool`, `proto::push_request`.

use super::{open_all, procs, Ctx, MemSampler};
use crate::clock::now_ns;
use crate::proto;
use crate::stats::{cdf_ms, ms, per_sec, percentile, Summary};
use crate::worker::Pool;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

pub fn run(ctx: &Ctx) -> Result<Value, String> {
    let n = ctx.opts.n;
    let mut pool = Pool::start(procs(n, ctx.opts.procs), ctx.exe).map_err(|e| e.to_string())?;
    let mut prog = ctx.progress("fanout");
    let id = format!("{}fan", ctx.tag);
    let mut mem = MemSampler::new(ctx.target, Duration::from_secs(1));
    let opened = open_all(&mut pool, ctx, n, Some(&id), "", &mut prog, &mut mem)?;
    ctx.target.settle(Duration::from_secs(5));
    // The server's memory with every listener parked (before the push).
    let parked_mem = mem.sample(opened.parked);
    let payload = format!("\"fanout {} to {n}\"", ctx.tag);
    let timeout_ms = ctx.timeout().as_millis() as u64;
    for i in 0..pool.len() {
        pool.send(
            i,
            &json!({"op": "await", "payload": payload, "id": id, "timeout_ms": timeout_ms,
                    "transport": ctx.opts.transport.name()}),
        )
        .map_err(|e| e.to_string())?;
    }
    pool.collect("awaiting", Duration::from_secs(10), &mut prog)?;
    let cpu0 = ctx.target.cpu_ns();
    // One push, or with --push-each-in one to every IN address (several servers that
    // each hold a share of the listeners, e.g. floor servers past one process's
    // descriptor limit): all connected first, then written back to back.
    let ins = if ctx.opts.push_each_in {
        ctx.target.inn.clone()
    } else {
        vec![ctx.in_addr(0)]
    };
    let mut socks = Vec::new();
    for a in &ins {
        let s = TcpStream::connect(a).map_err(|e| format!("IN {a}: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        socks.push(s);
    }
    let request = proto::push_request(&[&id], payload.as_bytes());
    // Delivery times count from the publisher's first byte: the server may read the push
    // (it is accepted with its data) and answer the first listeners before the shutdown
    // below returns, so a clock read after it could come after the first delivery.
    let t0 = now_ns();
    for s in &mut socks {
        s.write_all(&request).map_err(|e| format!("IN: {e}"))?;
        s.shutdown(Shutdown::Write)
            .map_err(|e| format!("IN: {e}"))?;
    }
    let mut reply = Vec::new();
    for s in &mut socks {
        s.set_read_timeout(Some(ctx.timeout()))
            .map_err(|e| e.to_string())?;
        let _ = s.read_to_end(&mut reply);
    }
    let results = pool.collect(
        "delivered",
        ctx.timeout() + Duration::from_secs(10),
        &mut prog,
    )?;
    ctx.target.settle(Duration::from_secs(10));
    let cpu1 = ctx.target.cpu_ns();
    let mut lat: Vec<u64> = results
        .iter()
        .flat_map(|r| r["times"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_u64())
        .map(|t| t.saturating_sub(t0))
        .collect();
    let sum = |k: &str| {
        results
            .iter()
            .map(|r| r[k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    let (bad, failed, missing) = (sum("bad"), sum("failed"), sum("missing"));
    let summary = Summary::of(&mut lat);
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => json!(ms(b.saturating_sub(a))),
        _ => Value::Null,
    };
    let error = results
        .iter()
        .filter_map(|r| r["error"].as_str())
        .find(|e| !e.is_empty())
        .unwrap_or("");
    prog.finish(&format!(
        "{} of {} delivered, first {} ms, last {} ms, server CPU {cpu} ms",
        lat.len(),
        opened.parked,
        summary.min,
        summary.max
    ));
    Ok(json!({
        "n": n, "workers": pool.len(), "parked": opened.parked, "connect_failed": opened.failed,
        "transport": ctx.opts.transport.name(),
        "delivered": lat.len(), "bad_payload": bad, "failed": failed, "missing": missing,
        "error": error, "in_reply_bytes": reply.len(),
        "first_ms": summary.min, "median_ms": ms(percentile(&lat, 50.0)), "last_ms": summary.max,
        "latency": summary.to_json(), "cdf_ms": cdf_ms(&lat),
        "server_cpu_ms": cpu, "pushes_sent": ins.len(),
        "connect_s": opened.connect_ns as f64 / 1e9,
        "connects_per_s": per_sec(opened.parked, opened.connect_ns),
        "pss_parked": parked_mem.map(|m| m.0), "rss_parked": parked_mem.map(|m| m.1),
        "server_procs": ctx.target.procs(),
        "mem_samples": mem.samples,
        "ok": lat.len() as u64 == opened.parked && opened.parked == n as u64 && bad == 0,
    }))
}
