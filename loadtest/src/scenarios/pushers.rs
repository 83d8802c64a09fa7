//! The publisher side of `publish`, for either protocol (`--api`):
//!
//! * `legacy`: a new IN connection per push (connect, write, half-close, as the PHP client
//!   does), at most `--concurrency` in flight; the server's EOF acknowledges it;
//! * `http`: `--concurrency` keep-alive connections to `POST /pub` (issue 15), each with
//!   one push in flight; the `200` JSON reply acknowledges it.
//!
//! Also `run_push_only` (`publish -n 0`): pushes to ids nobody listens to, so that the
//! server's CPU per push is the publish path alone, without the listeners' re-parking.
//!
//! Uses: `net::Net` (keep-alive connections), `proto`.

use super::Ctx;
use crate::clock::now_ns;
use crate::net::{Ev, Net};
use crate::proto;
use crate::stats::per_sec;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::io;
use std::time::Duration;

pub struct Pushers {
    http: bool,
    conc: usize,
    /// http: connections without a push in flight, and those with one.
    idle: Vec<usize>,
    busy: HashSet<usize>,
    in_flight: usize,
}

impl Pushers {
    pub fn new(net: &mut Net, ctx: &Ctx, conc: usize) -> Result<Pushers, String> {
        let http = ctx.opts.api == "http";
        let mut idle = Vec::new();
        if http {
            for j in 0..conc {
                let key = net
                    .open_keepalive(ctx.in_addr(j), 0)
                    .map_err(|e| format!("keep-alive connection: {e}"))?;
                idle.push(key);
            }
        }
        Ok(Pushers {
            http,
            conc,
            idle,
            busy: HashSet::new(),
            in_flight: 0,
        })
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether another push may start now.
    pub fn can_send(&self) -> bool {
        if self.http {
            !self.idle.is_empty()
        } else {
            self.in_flight < self.conc
        }
    }

    /// Starts push number `seq`; its acknowledgement comes as an event with `user`.
    pub fn send(
        &mut self,
        net: &mut Net,
        ctx: &Ctx,
        seq: u64,
        ids: &[&str],
        body: &[u8],
        user: u64,
    ) -> io::Result<()> {
        if self.http {
            let key = self
                .idle
                .pop()
                .ok_or_else(|| io::Error::from(io::ErrorKind::WouldBlock))?;
            net.send(key, &proto::http_push_request(ids, body), user)?;
            self.busy.insert(key);
        } else {
            let req = proto::push_request(ids, body);
            net.open(ctx.in_addr(seq as usize), req, false, true, user)?;
        }
        self.in_flight += 1;
        Ok(())
    }

    /// A push's connection event (`Done`: `ok`, or `Failed`): whether the server accepted
    /// the push (legacy: an empty reply then EOF; http: a 200).
    pub fn on_event(&mut self, key: usize, data: &[u8], ok: bool) -> bool {
        self.in_flight = self.in_flight.saturating_sub(1);
        if !self.http {
            return ok && data.is_empty();
        }
        if self.busy.remove(&key) && ok {
            self.idle.push(key);
        }
        ok && proto::http_status(data) == Some(200)
    }
}

/// `publish -n 0`: `--pushes` pushes to ids without listeners, `--concurrency` in flight.
pub fn run_push_only(ctx: &Ctx) -> Result<Value, String> {
    let total = ctx.opts.pushes as u64;
    let conc = ctx.opts.concurrency.max(1);
    let mut net = Net::new(7).map_err(|e| e.to_string())?;
    let mut prog = ctx.progress("publish (no listeners)");
    let mut pushers = Pushers::new(&mut net, ctx, conc)?;
    ctx.target.settle(Duration::from_secs(3));
    let cpu0 = ctx.target.cpu_ns();
    let t_start = now_ns();
    let deadline = t_start + ctx.timeout().as_nanos() as u64;
    let (mut seq, mut acked, mut errors) = (0u64, 0u64, 0u64);
    let mut evs = Vec::new();
    while acked + errors < total && now_ns() < deadline {
        while pushers.can_send() && seq < total {
            let id = format!("{}q{}", ctx.tag, seq % 1000);
            let body = format!("\"s{seq}\"");
            if pushers
                .send(&mut net, ctx, seq, &[&id], body.as_bytes(), seq)
                .is_err()
            {
                errors += 1;
            }
            seq += 1;
        }
        if pushers.in_flight() == 0 && !pushers.can_send() {
            return Err("every keep-alive connection failed".into());
        }
        evs.clear();
        net.poll(Duration::from_millis(5), &mut evs)
            .map_err(|e| e.to_string())?;
        for ev in evs.drain(..) {
            let (key, data, ok) = match ev {
                Ev::Parked { .. } => continue,
                Ev::Done { key, data, .. } => (key, data, true),
                Ev::Failed { key, .. } => (key, Vec::new(), false),
            };
            if pushers.on_event(key, &data, ok) {
                acked += 1;
            } else {
                errors += 1;
            }
        }
        prog.update(net.len() as u64, acked, acked);
    }
    let elapsed = now_ns() - t_start;
    ctx.target.settle(Duration::from_secs(5));
    let cpu1 = ctx.target.cpu_ns();
    net.close_all();
    let cpu_per_push = match (cpu0, cpu1) {
        (Some(a), Some(b)) if acked > 0 => {
            json!((b.saturating_sub(a) as f64 / acked as f64 / 1e3 * 10.0).round() / 10.0)
        }
        _ => Value::Null,
    };
    let rate = per_sec(acked, elapsed);
    prog.finish(&format!(
        "{acked} pushes acknowledged ({}), {rate}/s, CPU/push {cpu_per_push} us",
        ctx.opts.api
    ));
    Ok(json!({
        "listeners": 0, "api": ctx.opts.api, "pushes": total, "concurrency": conc,
        "acknowledged": acked, "errors": errors, "pushes_per_s": rate,
        "server_cpu_per_push_us": cpu_per_push,
        "ok": acked == total && errors == 0,
    }))
}
