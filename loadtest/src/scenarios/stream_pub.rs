//! The paced publisher of `stream`: P pushes to one id at R per second, push `i` due at
//! `t_start + i / R` (a publisher that falls behind sends what is due at once, and the
//! rate it achieved is reported). Each push's payload carries its seq and the clock just
//! before it was sent (`worker_stream::payload`), so listeners take the lag themselves.
//!
//! Listeners check the order of the pushes, so the server must get them in the order they
//! were sent: `--api classic` opens a new IN connection per push and address (write,
//! half-close, expect the empty reply) and sends the next push only when the previous one
//! was answered (two connections in flight could be accepted in either order); `--api
//! http` pipelines `POST /pub?identifier=..` on one keep-alive connection per address
//! (`--pub-conns` is not used), at most `--concurrency` pushes unanswered, each reply
//! checked (200 JSON with a cursor). With several addresses (`--push-each-in`) every push
//! goes to each of them.
//!
//! Structure: one `net::Net` on the coordinator's thread, a bounded loop (every push sent
//! and answered, or the pushes' planned span plus `--timeout`).
//!
//! Uses: `net::Net`, `proto::push_request`, `wire::http`, `worker_stream::payload`.

use super::Ctx;
use crate::clock::now_ns;
use crate::net::{Ev, Net};
use crate::proto;
use crate::stats::Progress;
use crate::wire::{http, Api};
use crate::worker_stream::payload;
use std::net::SocketAddr;
use std::time::Duration;

/// `user` bit of a keep-alive publisher connection (the low bits: its index).
const PUB_FLAG: u64 = 1 << 61;

/// What the publisher did.
pub struct Sent {
    /// Send time of each push (the time in its payload), in seq order.
    pub times: Vec<u64>,
    /// Pushes refused, unanswered or failed.
    pub errors: u64,
    pub error: String,
}

/// One keep-alive publisher: its connection and its requests in flight.
struct Conn {
    key: Option<usize>,
    in_flight: usize,
}

/// What to send: `pushes` pushes to `id` at `rate` per second from `t_start`
/// (CLOCK_MONOTONIC ns), payloads named by `prefix`.
#[derive(Clone, Copy)]
pub struct Plan<'a> {
    pub id: &'a str,
    pub prefix: &'a str,
    pub rate: f64,
    pub pushes: u32,
    pub t_start: u64,
}

fn fail(sent: &mut Sent, n: u64, why: String) {
    sent.errors += n;
    if sent.error.is_empty() {
        sent.error = why;
    }
}

/// Sends `plan` to every address of `ins`.
pub fn paced(
    ctx: &Ctx,
    ins: &[SocketAddr],
    plan: &Plan,
    prog: &mut Progress,
) -> Result<Sent, String> {
    let Plan {
        id,
        prefix,
        rate,
        pushes,
        t_start,
    } = *plan;
    let mut net = Net::new(1000).map_err(|e| e.to_string())?;
    let api = ctx.opts.api;
    let mut conns: Vec<Conn> = match api {
        Api::Http => ins
            .iter()
            .enumerate()
            .map(|(j, a)| Conn {
                key: net.open_http(*a, PUB_FLAG | j as u64).ok(),
                in_flight: 0,
            })
            .collect(),
        Api::Classic => Vec::new(),
    };
    let interval = 1e9 / rate;
    let due = |i: u32| t_start + (f64::from(i) * interval) as u64;
    let deadline = due(pushes) + ctx.timeout().as_nanos() as u64;
    let mut sent = Sent {
        times: Vec::with_capacity(pushes as usize),
        errors: 0,
        error: String::new(),
    };
    let (mut seq, mut outstanding) = (0u32, 0usize);
    // Pushes unanswered at most, over every address.
    let window = match api {
        Api::Classic => 1,
        Api::Http => ctx.opts.concurrency.max(1),
    } * ins.len();
    let mut evs = Vec::new();
    while (seq < pushes || outstanding > 0) && now_ns() < deadline {
        while seq < pushes && now_ns() >= due(seq) && outstanding < window {
            let t = now_ns();
            let body = payload(prefix, seq, t);
            for (a, addr) in ins.iter().enumerate() {
                let ok = match api {
                    Api::Classic => net
                        .open(
                            *addr,
                            proto::push_request(&[id], body.as_bytes()),
                            false,
                            true,
                            u64::from(seq),
                        )
                        .is_ok(),
                    Api::Http => {
                        let c = conns.get_mut(a);
                        let r = http::pub_request(&[id], body.as_bytes());
                        match c {
                            Some(c) if c.key.is_some_and(|k| net.send(k, &r).is_ok()) => {
                                c.in_flight += 1;
                                true
                            }
                            _ => false,
                        }
                    }
                };
                if ok {
                    outstanding += 1;
                } else {
                    fail(&mut sent, 1, format!("push {seq} to {addr} not sent"));
                }
            }
            sent.times.push(t);
            seq += 1;
        }
        let wait = if seq < pushes && outstanding < window {
            due(seq).saturating_sub(now_ns()).min(5_000_000)
        } else {
            5_000_000
        };
        evs.clear();
        net.poll(Duration::from_nanos(wait), &mut evs)
            .map_err(|e| e.to_string())?;
        for ev in evs.drain(..) {
            match ev {
                Ev::Response { user, resp, .. } if user & PUB_FLAG != 0 => {
                    if let Some(c) = conns.get_mut((user & !PUB_FLAG) as usize) {
                        c.in_flight = c.in_flight.saturating_sub(1);
                    }
                    outstanding = outstanding.saturating_sub(1);
                    if !http::pub_reply_ok(&resp) {
                        fail(&mut sent, 1, format!("publish reply {resp:?}"));
                    }
                }
                Ev::Done { user, .. } | Ev::Failed { user, .. } if user & PUB_FLAG != 0 => {
                    // A keep-alive publisher gone: its requests in flight are lost.
                    if let Some(c) = conns.get_mut((user & !PUB_FLAG) as usize) {
                        let lost = std::mem::take(&mut c.in_flight);
                        c.key = None;
                        outstanding = outstanding.saturating_sub(lost);
                        fail(
                            &mut sent,
                            lost as u64,
                            "a publisher connection closed".into(),
                        );
                    }
                }
                Ev::Done { data, .. } => {
                    // The server answers a classic push with nothing, then closes.
                    outstanding = outstanding.saturating_sub(1);
                    if !data.is_empty() {
                        let text = String::from_utf8_lossy(&data).into_owned();
                        fail(&mut sent, 1, format!("IN reply {text:?}"));
                    }
                }
                Ev::Failed { err, .. } => {
                    outstanding = outstanding.saturating_sub(1);
                    fail(&mut sent, 1, format!("IN: {err}"));
                }
                Ev::Parked { .. } | Ev::Message { .. } | Ev::Response { .. } => {}
            }
        }
        prog.update(u64::from(seq), u64::from(seq), u64::from(seq));
    }
    if seq < pushes || outstanding > 0 {
        let left = u64::from(pushes - seq) + outstanding as u64;
        fail(
            &mut sent,
            left,
            format!("{left} pushes unsent or unanswered at the deadline"),
        );
    }
    net.close_all();
    Ok(sent)
}
