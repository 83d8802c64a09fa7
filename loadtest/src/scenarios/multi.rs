//! `multi`: N clients, each listening to K of M ids with a cursor per id (all `0` at
//! first, before anything is pushed). Pushes go to `--per-push` random ids each; a client
//! that gets a response re-parks at once with the cursors it received, and after every
//! push one random client also drops its parked connection and reconnects with its
//! cursors with probability `--reconnect`. After the pushes, the run drains (bounded) and
//! checks every client got every message pushed to any of its ids exactly once, in
//! cursor order, and that a message has one cursor everywhere. Also reports the WAIT replies
//! received (`replies`, one per re-park) and the server's CPU from the parked, idle server to
//! the settled end of the drain (`server_cpu_s`).
//!
//! Uses: `net::Net`, `proto`.

use super::{park_local, Ctx, Rng};
use crate::clock::now_ns;
use crate::net::{Ev, Net};
use crate::proto;
use crate::stats::per_sec;
use crate::wire::Listen;
use serde_json::{json, Value};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const IN_FLAG: u64 = 1 << 62;

struct Client {
    ids: Vec<usize>,
    cursors: Vec<String>,
    key: Option<usize>,
    got: HashSet<u64>,
    last: Option<String>,
}

fn request(c: &Client, prefix: &str, n: u64) -> Vec<u8> {
    let names: Vec<String> = c.ids.iter().map(|j| format!("{prefix}{j}")).collect();
    let pairs: Vec<(Option<&str>, &str)> = c
        .cursors
        .iter()
        .zip(&names)
        .map(|(cur, id)| (Some(cur.as_str()), id.as_str()))
        .collect();
    proto::wait_request(&pairs, n)
}

pub fn run(ctx: &Ctx) -> Result<Value, String> {
    let o = ctx.opts;
    let (n, m) = (o.n.max(1), o.ids.max(1));
    let (k, j) = (o.per_client.clamp(1, m), o.per_push.clamp(1, m));
    let total = o.pushes as u64;
    let prefix = format!("{}m", ctx.tag);
    let mut rng = Rng::new(now_ns());
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); m];
    let mut cs: Vec<Client> = (0..n)
        .map(|c| {
            let mut ids: Vec<usize> = Vec::with_capacity(k);
            while ids.len() < k {
                let x = rng.below(m);
                if !ids.contains(&x) {
                    ids.push(x);
                }
            }
            for &x in &ids {
                members[x].push(c);
            }
            Client {
                cursors: vec!["0".to_string(); k],
                ids,
                key: None,
                got: HashSet::new(),
                last: None,
            }
        })
        .collect();
    let mut net = Net::new(13).map_err(|e| e.to_string())?;
    let mut prog = ctx.progress("multi");
    let reqs: Vec<Vec<u8>> = cs.iter().map(|c| request(c, &prefix, 0)).collect();
    let mut req = |i: usize| Listen::longpoll(reqs.get(i).cloned().unwrap_or_default());
    let (keys, _, connect_failed) = park_local(&mut net, ctx, &mut req, n, &mut prog)?;
    for (c, key) in cs.iter_mut().zip(keys) {
        c.key = key;
    }
    // Server CPU of the push phase: from an idle, fully parked server to the end of the
    // drain (settled), so parking the clients is not counted.
    ctx.target.settle(Duration::from_secs(3));
    let cpu0 = ctx.target.cpu_ns();
    let mut replies = 0u64;
    let mut targets: Vec<Vec<usize>> = Vec::with_capacity(total as usize);
    let mut cursor_of: HashMap<u64, String> = HashMap::new();
    let (mut seq, mut in_flight, mut in_done) = (0u64, 0usize, 0u64);
    let (mut dups, mut out_of_order, mut unexpected, mut mismatch, mut bad) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut reconnects, mut in_errors, mut received) = (0u64, 0u64, 0u64);
    let mut expected_total = 0u64;
    let t0 = now_ns();
    let deadline = t0 + ctx.timeout().as_nanos() as u64;
    let mut drain_end: Option<u64> = None;
    let mut evs = Vec::new();
    // Past the deadline no new push starts (`total` shrinks to what was sent), and the run
    // drains what is in flight like a finished one, so `lost` counts only real losses.
    let (mut total, mut timed_out) = (total, false);
    loop {
        let now = now_ns();
        if now > deadline && !timed_out {
            timed_out = true;
            total = seq;
        }
        if in_done >= total {
            if received >= expected_total {
                break;
            }
            let end = *drain_end.get_or_insert(now + 5_000_000_000);
            if now > end {
                break;
            }
        }
        while in_flight < o.concurrency.max(1) && seq < total {
            let mut ids: Vec<usize> = Vec::with_capacity(j);
            while ids.len() < j {
                let x = rng.below(m);
                if !ids.contains(&x) {
                    ids.push(x);
                }
            }
            let names: Vec<String> = ids.iter().map(|x| format!("{prefix}{x}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let body = format!("\"m{seq}\"");
            let listeners: HashSet<usize> = ids
                .iter()
                .flat_map(|&x| members[x].iter().copied())
                .collect();
            expected_total += listeners.len() as u64;
            match net.open(
                ctx.in_addr(seq as usize),
                proto::push_request(&refs, body.as_bytes()),
                false,
                true,
                IN_FLAG | seq,
            ) {
                Ok(_) => in_flight += 1,
                Err(_) => {
                    in_errors += 1;
                    in_done += 1;
                }
            }
            targets.push(ids);
            seq += 1;
            if rng.unit() < o.reconnect {
                let c = rng.below(n);
                if let Some(cl) = cs.get_mut(c) {
                    if let Some(key) = cl.key.take() {
                        net.close(key);
                        if let Ok(key) = net.open(
                            ctx.wait_addr(c),
                            request(cl, &prefix, seq),
                            true,
                            false,
                            c as u64,
                        ) {
                            cl.key = Some(key);
                        }
                        reconnects += 1;
                    }
                }
            }
        }
        evs.clear();
        net.poll(Duration::from_millis(1), &mut evs)
            .map_err(|e| e.to_string())?;
        for ev in evs.drain(..) {
            let (user, data, ok) = match ev {
                Ev::Parked { .. } | Ev::Message { .. } | Ev::Response { .. } => continue,
                Ev::Done { user, data, .. } => (user, data, true),
                Ev::Failed { user, .. } => (user, Vec::new(), false),
            };
            if user & IN_FLAG != 0 {
                in_flight = in_flight.saturating_sub(1);
                in_done += 1;
                if !ok || !data.is_empty() {
                    in_errors += 1;
                }
                continue;
            }
            let c = user as usize;
            let Some(cl) = cs.get_mut(c) else { continue };
            cl.key = None;
            replies += 1;
            match proto::parse_wait_response(&data) {
                Ok(blocks) => {
                    for b in blocks {
                        let Some(s) = b
                            .data
                            .strip_prefix("\"m")
                            .and_then(|x| x.strip_suffix('"'))
                            .and_then(|x| x.parse::<u64>().ok())
                        else {
                            bad += 1;
                            continue;
                        };
                        let cur = b.cursor().unwrap_or("").to_string();
                        match cursor_of.get(&s) {
                            Some(prev) if *prev != cur => mismatch += 1,
                            Some(_) => {}
                            None => {
                                cursor_of.insert(s, cur.clone());
                            }
                        }
                        let mine = targets
                            .get(s as usize)
                            .is_some_and(|t| t.iter().any(|x| cl.ids.contains(x)));
                        if !mine {
                            unexpected += 1;
                        } else if !cl.got.insert(s) {
                            dups += 1;
                        } else {
                            received += 1;
                        }
                        if let Some(last) = &cl.last {
                            if proto::cmp_cursor(&cur, last) != Ordering::Greater {
                                out_of_order += 1;
                            }
                        }
                        cl.last = Some(cur);
                        for (id, cursor) in &b.ids {
                            let Some(x) = id
                                .strip_prefix(&prefix)
                                .and_then(|x| x.parse::<usize>().ok())
                            else {
                                continue;
                            };
                            if let Some(p) = cl.ids.iter().position(|&y| y == x) {
                                if proto::cmp_cursor(cursor, &cl.cursors[p]) == Ordering::Greater {
                                    cl.cursors[p] = cursor.clone();
                                }
                            }
                        }
                    }
                }
                Err(_) => bad += 1,
            }
            if let Ok(key) = net.open(
                ctx.wait_addr(c),
                request(cl, &prefix, seq),
                true,
                false,
                c as u64,
            ) {
                cl.key = Some(key);
            }
        }
        prog.update(net.len() as u64, received, received);
    }
    let elapsed = now_ns() - t0;
    ctx.target.settle(Duration::from_secs(5));
    let cpu1 = ctx.target.cpu_ns();
    net.close_all();
    let cpu_s = match (cpu0, cpu1) {
        (Some(a), Some(b)) => json!((b.saturating_sub(a) as f64 / 1e9 * 1000.0).round() / 1000.0),
        _ => Value::Null,
    };
    let lost = expected_total.saturating_sub(received);
    prog.finish(&format!("{received}/{expected_total} delivered, lost {lost}, duplicates {dups}, out of order {out_of_order}, {replies} replies, server CPU {cpu_s} s"));
    Ok(json!({
        "clients": n, "ids": m, "ids_per_client": k, "ids_per_push": j, "pushes": seq,
        "connect_failed": connect_failed, "reconnects": reconnects, "in_errors": in_errors,
        "expected_deliveries": expected_total, "delivered": received, "lost": lost,
        "duplicates": dups, "out_of_order": out_of_order, "unexpected": unexpected,
        "cursor_mismatch": mismatch, "bad_blocks": bad,
        "pushes_per_s": per_sec(seq, elapsed), "timed_out": timed_out,
        "replies": replies, "server_cpu_s": cpu_s, "elapsed_s": elapsed as f64 / 1e9,
        "ok": lost == 0 && dups == 0 && out_of_order == 0 && unexpected == 0 && bad == 0
              && connect_failed == 0 && in_errors == 0 && mismatch == 0,
    }))
}
