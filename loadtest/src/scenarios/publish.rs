//! `publish`: L ids with one parked listener each; pushes go, at most `--concurrency` in
//! flight, each to an id whose listener is parked and has nothing pending. Reports
//! pushes/s, push-to-delivery latency (from the push's first byte queued) and server CPU
//! per push.
//!
//! Publishers (`--api`): `classic`, a new IN connection per push (connect, write,
//! half-close, as the PHP client does); `http`, `POST /pub?identifier=..` requests over
//! `--pub-conns` keep-alive HTTP/1.1 connections to the IN address, pipelined (each
//! connection's replies are matched to its requests in order; a reply must be 200 JSON
//! with a cursor). The requests one pass of the send loop gives a connection go out in one
//! write, as a pipelining client sends what it has; with as many connections as pushes in
//! flight, each connection carries one request at a time. Listeners (`--transport`): `longpoll` re-parks at once with the cursor
//! it received; `sse` and `ws` keep their connection and count one delivery per message
//! (a stream the server closes is reopened with its cursor, counted in `reparks`).
//!
//! `-n 0`: no listeners, the publish path alone. Pushes go round-robin to 1,000 ids
//! nobody listens to; a push counts when the server has answered it (classic: its close
//! with an empty reply; http: its 200), and the latency is that round trip.
//!
//! Uses: `net::Net`, `proto`, `wire`.

use super::{park_local, Ctx};
use crate::clock::now_ns;
use crate::net::{Ev, Net};
use crate::proto;
use crate::stats::{per_sec, Summary};
use crate::wire::{self, http, Api};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::Duration;

/// `user` bit marking a classic IN connection (the low bits are the listener's index).
const IN_FLAG: u64 = 1 << 62;
/// `user` bit marking a keep-alive publisher (the low bits are its index).
const PUB_FLAG: u64 = 1 << 61;

struct Listener {
    parked: bool,
    cursor: Option<String>,
    /// (seq, push start) of the push this listener is waiting for.
    pending: Option<(u64, u64)>,
}

/// A keep-alive publisher: its connection and the listeners its requests in flight are for.
struct Publisher {
    key: Option<usize>,
    /// Per request in flight: the listener's index, or with `-n 0` the push's sequence.
    queue: VecDeque<usize>,
}

/// Ids the pushes of `-n 0` go to, round-robin.
const NO_LISTENER_IDS: u64 = 1000;

pub fn run(ctx: &Ctx) -> Result<Value, String> {
    let alone = ctx.opts.n == 0;
    let (l, total) = (ctx.opts.n, ctx.opts.pushes as u64);
    let conc = ctx.opts.concurrency.max(1);
    let (transport, api) = (ctx.opts.transport, ctx.opts.api);
    let mut net = Net::new(7).map_err(|e| e.to_string())?;
    let mut prog = ctx.progress("publish");
    let id = |i: usize| format!("{}p{i}", ctx.tag);
    let mut req = |i: usize| wire::listen(transport, &[(None, &id(i))], i as u64);
    let (keys, _, failed) = park_local(&mut net, ctx, &mut req, l, &mut prog)?;
    let mut ls: Vec<Listener> = keys
        .iter()
        .map(|k| Listener {
            parked: k.is_some(),
            cursor: None,
            pending: None,
        })
        .collect();
    let n_pubs = if api == Api::Http {
        ctx.opts.pub_conns.max(1)
    } else {
        0
    };
    let mut pubs: Vec<Publisher> = (0..n_pubs)
        .map(|j| Publisher {
            key: net.open_http(ctx.in_addr(j), PUB_FLAG | j as u64).ok(),
            queue: VecDeque::new(),
        })
        .collect();
    let mut pub_reopens = 0usize;
    ctx.target.settle(Duration::from_secs(3));
    let cpu0 = ctx.target.cpu_ns();
    let t_start = now_ns();
    let deadline = t_start + ctx.timeout().as_nanos() as u64;
    let (mut seq, mut delivered, mut in_flight, mut rr) = (0u64, 0u64, 0usize, 0usize);
    let (mut in_errors, mut bad, mut reparks) = (0u64, 0u64, 0u64);
    let mut lat = Vec::with_capacity(total as usize);
    // `-n 0`: when each push was sent, by sequence.
    let mut sent_at: Vec<u64> = Vec::new();
    let mut evs = Vec::new();
    while delivered + bad + in_errors < total && now_ns() < deadline {
        let mut scanned = 0;
        while in_flight < conc && seq < total && (alone || scanned < l) {
            // With listeners: the next parked one with nothing pending. Alone: the
            // sequence stands in for the listener's index (no listener state is kept).
            let i = if alone { seq as usize } else { rr % l.max(1) };
            rr += 1;
            scanned += 1;
            let mut none = Listener {
                parked: true,
                cursor: None,
                pending: None,
            };
            let ls_i = if alone {
                &mut none
            } else {
                let Some(x) = ls.get_mut(i) else { continue };
                x
            };
            if !ls_i.parked || ls_i.pending.is_some() {
                continue;
            }
            let target = if alone {
                format!("{}q{}", ctx.tag, seq % NO_LISTENER_IDS)
            } else {
                id(i)
            };
            let body = format!("\"s{seq}\"");
            let t = now_ns();
            let sent = match api {
                Api::Classic => net
                    .open(
                        ctx.in_addr(seq as usize),
                        proto::push_request(&[&target], body.as_bytes()),
                        false,
                        true,
                        IN_FLAG | i as u64,
                    )
                    .is_ok(),
                Api::Http => {
                    // The live publisher with the fewest requests in flight.
                    let best = pubs
                        .iter_mut()
                        .filter(|p| p.key.is_some())
                        .min_by_key(|p| p.queue.len());
                    match best {
                        Some(p) => {
                            let r = http::pub_request(&[&target], body.as_bytes());
                            let ok = p.key.is_some_and(|k| net.queue(k, &r).is_ok());
                            if ok {
                                p.queue.push_back(i);
                            }
                            ok
                        }
                        None => false,
                    }
                }
            };
            if sent {
                ls_i.pending = Some((seq, t));
                in_flight += 1;
                if alone {
                    sent_at.push(t);
                }
            } else {
                in_errors += 1;
            }
            seq += 1;
        }
        for p in pubs.iter_mut() {
            if let Some(k) = p.key {
                if net.flush_out(k).is_err() {
                    // Its requests are lost; the connection's Done/Failed event reopens it.
                    in_errors += p.queue.len() as u64;
                    in_flight = in_flight.saturating_sub(p.queue.len());
                    p.queue.clear();
                }
            }
        }
        if api == Api::Http && pubs.iter().all(|p| p.key.is_none()) {
            return Err("every --api http publisher connection failed".into());
        }
        evs.clear();
        net.poll(Duration::from_millis(1), &mut evs)
            .map_err(|e| e.to_string())?;
        for ev in evs.drain(..) {
            let user = match &ev {
                Ev::Parked { user, .. }
                | Ev::Message { user, .. }
                | Ev::Response { user, .. }
                | Ev::Done { user, .. }
                | Ev::Failed { user, .. } => *user,
            };
            if user & PUB_FLAG != 0 {
                let j = (user & !PUB_FLAG) as usize;
                let Some(p) = pubs.get_mut(j) else { continue };
                match ev {
                    Ev::Response { resp, t, .. } => {
                        let front = p.queue.pop_front();
                        if front.is_some() {
                            in_flight = in_flight.saturating_sub(1);
                        }
                        if !http::pub_reply_ok(&resp) {
                            in_errors += 1;
                        } else if alone {
                            answered(&mut lat, &mut delivered, &sent_at, front, t);
                        }
                    }
                    Ev::Done { .. } | Ev::Failed { .. } => {
                        // Its requests in flight are lost; reopen within a budget.
                        let lost = p.queue.len();
                        p.queue.clear();
                        in_errors += lost as u64;
                        in_flight = in_flight.saturating_sub(lost);
                        p.key = None;
                        if pub_reopens < 4 * n_pubs {
                            pub_reopens += 1;
                            p.key = net.open_http(ctx.in_addr(j), user).ok();
                        }
                    }
                    _ => {}
                }
                continue;
            }
            if user & IN_FLAG != 0 {
                // The server answers a classic push with nothing, then closes (spec 6.5).
                if let Ev::Done { data, .. } = &ev {
                    if !data.is_empty() {
                        in_errors += 1;
                    } else if alone {
                        let s = (user & !IN_FLAG) as usize;
                        answered(&mut lat, &mut delivered, &sent_at, Some(s), now_ns());
                    }
                } else if let Ev::Failed { .. } = &ev {
                    in_errors += 1;
                } else {
                    continue;
                }
                in_flight = in_flight.saturating_sub(1);
                continue;
            }
            let i = user as usize;
            let Some(x) = ls.get_mut(i) else { continue };
            let (t_data, parsed, closed) = match ev {
                Ev::Parked { .. } => {
                    x.parked = true;
                    continue;
                }
                Ev::Response { .. } => continue,
                Ev::Message { t, data, .. } => {
                    (t, proto::parse_message(&data).map(|b| vec![b]), false)
                }
                Ev::Done { t_data, data, .. } if !transport.is_stream() => {
                    (t_data, proto::parse_wait_response(&data), true)
                }
                Ev::Done { .. } | Ev::Failed { .. } => (0, Err(proto::ParseError::NoHeader), true),
            };
            if closed {
                x.parked = false;
            }
            if !(transport.is_stream() && closed && x.pending.is_none()) {
                match (parsed, x.pending) {
                    (Ok(b), Some((s, t))) if b.len() == 1 && b[0].data == format!("\"s{s}\"") => {
                        lat.push(t_data.saturating_sub(t));
                        delivered += 1;
                        x.cursor = b[0].cursor().map(str::to_string);
                    }
                    _ => bad += 1,
                }
                x.pending = None;
            }
            if closed {
                let r = wire::listen(transport, &[(x.cursor.as_deref(), &id(i))], seq);
                if net.open_listen(ctx.wait_addr(i), r, i as u64).is_ok() {
                    reparks += 1;
                }
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
        "listeners": l, "listeners_failed": failed, "pushes": total, "concurrency": conc,
        "transport": transport.name(), "api": api.name(), "pub_conns": n_pubs,
        "pub_reopens": pub_reopens,
        "delivered": delivered, "bad": bad, "in_errors": in_errors, "reparks": reparks,
        "pushes_per_s": rate, "latency": summary.to_json(), "p50_ms": summary.p50,
        "p99_ms": summary.p99, "max_ms": summary.max,
        "server_cpu_per_push_us": cpu_per_push,
        "ok": delivered == total && bad == 0 && in_errors == 0,
    }))
}

/// `-n 0`: push `seq` was answered at `t`; its round trip is its latency.
fn answered(lat: &mut Vec<u64>, done: &mut u64, sent_at: &[u64], seq: Option<usize>, t: u64) {
    if let Some(&t0) = seq.and_then(|s| sent_at.get(s)) {
        lat.push(t.saturating_sub(t0));
        *done += 1;
    }
}
