//! `publish`: L ids with one parked listener each; pushes go over a new IN connection
//! each (connect, write, half-close, as the PHP client does), or with `--api http` over
//! keep-alive `POST /pub` connections (`pushers`), at most `--concurrency` in flight, each
//! to an id whose listener is parked and has nothing pending. `-n 0`: no listeners
//! (`pushers::run_push_only`). A listener
//! that got its message re-parks at once with the cursor it received. Reports pushes/s,
//! push-to-delivery latency (from the publisher's connect) and server CPU per push.
//!
//! Uses: `net::Net`, `proto`.

use super::pushers::{run_push_only, Pushers};
use super::{park_local, Ctx};
use crate::clock::now_ns;
use crate::net::{Ev, Net};
use crate::proto;
use crate::stats::{per_sec, Summary};
use serde_json::{json, Value};
use std::time::Duration;

/// `user` bit marking an IN connection (the low bits are the listener's index).
const IN_FLAG: u64 = 1 << 62;

struct Listener {
    parked: bool,
    cursor: Option<String>,
    /// (seq, push start) of the push this listener is waiting for.
    pending: Option<(u64, u64)>,
}

pub fn run(ctx: &Ctx) -> Result<Value, String> {
    if ctx.opts.n == 0 {
        return run_push_only(ctx);
    }
    let (l, total) = (ctx.opts.n, ctx.opts.pushes as u64);
    let conc = ctx.opts.concurrency.max(1);
    let mut net = Net::new(7).map_err(|e| e.to_string())?;
    let mut prog = ctx.progress("publish");
    let id = |i: usize| format!("{}p{i}", ctx.tag);
    let mut req = |i: usize| proto::wait_request(&[(None, &id(i))], i as u64);
    let (keys, _, failed) = park_local(&mut net, ctx, &mut req, l, &mut prog)?;
    let mut ls: Vec<Listener> = keys
        .iter()
        .map(|k| Listener {
            parked: k.is_some(),
            cursor: None,
            pending: None,
        })
        .collect();
    let mut pushers = Pushers::new(&mut net, ctx, conc)?;
    ctx.target.settle(Duration::from_secs(3));
    let cpu0 = ctx.target.cpu_ns();
    let t_start = now_ns();
    let deadline = t_start + ctx.timeout().as_nanos() as u64;
    let (mut seq, mut delivered, mut rr) = (0u64, 0u64, 0usize);
    let (mut in_errors, mut bad, mut reparks) = (0u64, 0u64, 0u64);
    let mut lat = Vec::with_capacity(total as usize);
    let mut evs = Vec::new();
    while delivered + bad < total && now_ns() < deadline {
        let mut scanned = 0;
        while pushers.can_send() && seq < total && scanned < l {
            let i = rr % l;
            rr += 1;
            scanned += 1;
            let Some(ls_i) = ls.get_mut(i) else { continue };
            if !ls_i.parked || ls_i.pending.is_some() {
                continue;
            }
            let body = format!("\"s{seq}\"");
            let t = now_ns();
            match pushers.send(
                &mut net,
                ctx,
                seq,
                &[&id(i)],
                body.as_bytes(),
                IN_FLAG | i as u64,
            ) {
                Ok(()) => ls_i.pending = Some((seq, t)),
                Err(_) => in_errors += 1,
            }
            seq += 1;
        }
        evs.clear();
        net.poll(Duration::from_millis(1), &mut evs)
            .map_err(|e| e.to_string())?;
        for ev in evs.drain(..) {
            let (key, user, t_data, data, ok) = match ev {
                Ev::Parked { user, .. } => {
                    if let Some(x) = ls.get_mut(user as usize) {
                        x.parked = true;
                    }
                    continue;
                }
                Ev::Done {
                    key,
                    user,
                    t_data,
                    data,
                } => (key, user, t_data, data, true),
                Ev::Failed { key, user, .. } => (key, user, 0, Vec::new(), false),
            };
            if user & IN_FLAG != 0 {
                // Legacy: nothing, then EOF (spec 6.5); http: a 200 reply.
                if !pushers.on_event(key, &data, ok) {
                    in_errors += 1;
                }
                continue;
            }
            let i = user as usize;
            let Some(x) = ls.get_mut(i) else { continue };
            x.parked = false;
            let parsed = proto::parse_wait_response(&data);
            match (ok, parsed, x.pending) {
                (true, Ok(b), Some((s, t))) if b.len() == 1 && b[0].data == format!("\"s{s}\"") => {
                    lat.push(t_data.saturating_sub(t));
                    delivered += 1;
                    x.cursor = b[0].cursor().map(str::to_string);
                }
                _ => bad += 1,
            }
            x.pending = None;
            let r = proto::wait_request(&[(x.cursor.as_deref(), &id(i))], seq);
            if net.open(ctx.wait_addr(i), r, true, false, i as u64).is_ok() {
                reparks += 1;
            }
        }
        prog.update(net.len() as u64, delivered, delivered);
    }
    let elapsed = now_ns() - t_start;
    ctx.target.settle(Duration::from_secs(5));
    let cpu1 = ctx.target.cpu_ns();
    net.close_all();
    let summary = Summary::of(&mut lat);
    let cpu_per_push = match (cpu0, cpu1) {
        (Some(a), Some(b)) if delivered > 0 => {
            json!((b.saturating_sub(a) as f64 / delivered as f64 / 1e3 * 10.0).round() / 10.0)
        }
        _ => Value::Null,
    };
    let rate = per_sec(delivered, elapsed);
    prog.finish(&format!(
        "{delivered} pushes delivered, {rate}/s, p99 {} ms, CPU/push {cpu_per_push} us",
        summary.p99
    ));
    Ok(json!({
        "listeners": l, "api": ctx.opts.api, "listeners_failed": failed, "pushes": total, "concurrency": conc,
        "delivered": delivered, "bad": bad, "in_errors": in_errors, "reparks": reparks,
        "pushes_per_s": rate, "latency": summary.to_json(), "p50_ms": summary.p50,
        "p99_ms": summary.p99, "max_ms": summary.max,
        "server_cpu_per_push_us": cpu_per_push,
        "ok": delivered == total && bad == 0 && in_errors == 0,
    }))
}
