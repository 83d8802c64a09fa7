//! `churn`: clients arrive at `--rate` per second for `--duration` seconds, each parks on
//! its own id and leaves after about `--lifetime-ms` (0.5x to 1.5x). Every `--poll-ms`
//! the publisher side asks ONLINE and WATCH (over new IN connections, as the PHP client
//! does) and the answers are checked against what the clients know:
//! * presence accuracy: the share of clients parked for the whole ONLINE round trip
//!   that ONLINE lists with a count >= 1; `stale`: clients that left more than 100 ms
//!   before the request but are still listed with a count >= 1;
//! * WATCH: an `online` event for every client that parked, an `offline` event for every
//!   client that left more than OFFLINE_TIMEOUT + 1.5 s before the last WATCH answer.
//!
//! When the arrivals stop, every client leaves, and the polls go on for two seconds more
//! than OFFLINE_TIMEOUT (`--offline-timeout`; a server the loadtest starts gets
//! OFFLINE_TIMEOUT = 1), so every client's offline event is due before the last WATCH.
//!
//! Uses: `net::Net`, `proto`.

use super::{Ctx, Rng};
use crate::clock::now_ns;
use crate::net::{Ev, Net};
use crate::proto;
use crate::stats::per_sec;
use serde_json::{json, Value};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::time::Duration;

const ONLINE: u64 = 1 << 62;
const WATCH: u64 = 1 << 61;

#[derive(Default, Clone)]
struct Client {
    key: Option<usize>,
    parked_at: u64,
    left_at: u64,
}

pub fn run(ctx: &Ctx) -> Result<Value, String> {
    let o = ctx.opts;
    let dur = (o.duration_s * 1e9) as u64;
    let max_clients = ((o.rate * o.duration_s).ceil() as usize).max(1);
    let offline_ns = (o.offline_timeout_s * 1e9) as u64;
    let prefix = format!("{}c", ctx.tag);
    let mut net = Net::new(11).map_err(|e| e.to_string())?;
    let mut prog = ctx.progress("churn");
    let mut rng = Rng::new(now_ns());
    let mut cs: Vec<Client> = Vec::with_capacity(max_clients);
    let mut leaving: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let (mut parked, mut failed, mut server_closed) = (0u64, 0u64, 0u64);
    let (mut present_ok, mut present_missing, mut stale, mut online_polls) =
        (0u64, 0u64, 0u64, 0u64);
    let (mut online_seen, mut offline_seen) = (HashSet::new(), HashSet::new());
    let (mut watch_pos, mut watch_polls, mut last_watch) = (1u64, 0u64, 0u64);
    let (mut online_sent, mut watch_sent) = (None::<u64>, None::<u64>);
    let (mut next_online, mut next_watch) = (0u64, 0u64);
    let poll_ns = o.poll_ms.max(10) * 1_000_000;
    let t0 = now_ns();
    let end = t0 + dur;
    // After the arrivals stop, everyone leaves and the polls go on until their offline
    // events are due; then the last answers are awaited, bounded.
    let tail_end = end + offline_ns + 2_000_000_000;
    let hard_end = tail_end + 3_000_000_000;
    let mut everyone_left = false;
    let mut evs = Vec::new();
    loop {
        let now = now_ns();
        if now >= hard_end || (now >= tail_end && online_sent.is_none() && watch_sent.is_none()) {
            break;
        }
        if now < end {
            let due = ((now - t0) as f64 / 1e9 * o.rate) as usize;
            while cs.len() < due.min(max_clients) {
                let k = cs.len();
                let req = proto::wait_request(&[(None, &format!("{prefix}{k}"))], k as u64);
                let mut c = Client::default();
                match net.open(ctx.wait_addr(k), req, true, false, k as u64) {
                    Ok(key) => c.key = Some(key),
                    Err(_) => failed += 1,
                }
                cs.push(c);
            }
        } else if !everyone_left {
            everyone_left = true;
            for c in cs.iter_mut() {
                if let Some(key) = c.key.take() {
                    net.close(key);
                    c.left_at = now_ns();
                }
            }
        }
        while let Some(&Reverse((t, k))) = leaving.peek() {
            if t > now {
                break;
            }
            leaving.pop();
            if let Some(c) = cs.get_mut(k) {
                if let Some(key) = c.key.take() {
                    net.close(key);
                    c.left_at = now_ns();
                }
            }
        }
        if now < tail_end {
            if online_sent.is_none() && now >= next_online {
                let r = proto::command_request(&format!("online {prefix}"));
                if net.open(ctx.in_addr(0), r, false, true, ONLINE).is_ok() {
                    online_sent = Some(now_ns());
                }
                next_online = now + poll_ns;
            }
            if watch_sent.is_none() && now >= next_watch {
                let r = proto::command_request(&format!("watch {watch_pos} {prefix}"));
                if net.open(ctx.in_addr(1), r, false, true, WATCH).is_ok() {
                    watch_sent = Some(now_ns());
                }
                next_watch = now + poll_ns;
            }
        }
        evs.clear();
        net.poll(Duration::from_millis(1), &mut evs)
            .map_err(|e| e.to_string())?;
        for ev in evs.drain(..) {
            match ev {
                // Long-poll only: no streams, no keep-alive replies.
                Ev::Message { .. } | Ev::Response { .. } => {}
                Ev::Parked { user, t, .. } => {
                    let k = user as usize;
                    if let Some(c) = cs.get_mut(k) {
                        c.parked_at = t;
                        parked += 1;
                        let life = (o.lifetime_ms as f64 * (0.5 + rng.unit()) * 1e6) as u64;
                        leaving.push(Reverse((t + life, k)));
                    }
                }
                Ev::Done {
                    user: ONLINE, data, ..
                } => {
                    let (sent, recv) = (online_sent.take().unwrap_or(0), now_ns());
                    online_polls += 1;
                    let listed: HashSet<String> = proto::in_reply_body(&data)
                        .map(proto::parse_online)
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|(_, n)| *n >= 1)
                        .map(|(id, _)| id)
                        .collect();
                    for (k, c) in cs.iter().enumerate() {
                        let here = listed.contains(&format!("{prefix}{k}"));
                        if c.parked_at > 0
                            && c.parked_at < sent
                            && (c.left_at == 0 || c.left_at > recv)
                        {
                            if here {
                                present_ok += 1;
                            } else {
                                present_missing += 1;
                            }
                        } else if c.left_at > 0 && c.left_at + 100_000_000 < sent && here {
                            stale += 1;
                        }
                    }
                }
                Ev::Done {
                    user: WATCH, data, ..
                } => {
                    watch_sent = None;
                    watch_polls += 1;
                    last_watch = now_ns();
                    let events = proto::in_reply_body(&data)
                        .map(proto::parse_watch)
                        .unwrap_or_default();
                    for e in events {
                        watch_pos = watch_pos.max(e.pos);
                        let Some(k) =
                            e.id.strip_prefix(&prefix)
                                .and_then(|s| s.parse::<usize>().ok())
                        else {
                            continue;
                        };
                        match e.kind.as_str() {
                            "online" => online_seen.insert(k),
                            "offline" => offline_seen.insert(k),
                            _ => false,
                        };
                    }
                }
                Ev::Failed { user: ONLINE, .. } => online_sent = None,
                Ev::Failed { user: WATCH, .. } => watch_sent = None,
                Ev::Done { user, .. } | Ev::Failed { user, .. } => {
                    if let Some(c) = cs.get_mut(user as usize) {
                        if c.key.take().is_some() {
                            c.left_at = now_ns();
                            if c.parked_at > 0 {
                                server_closed += 1;
                            } else {
                                failed += 1;
                            }
                        }
                    }
                }
            }
        }
        prog.update(net.len() as u64, parked, parked);
    }
    net.close_all();
    let offline_expected = cs
        .iter()
        .filter(|c| {
            c.left_at > 0 && c.parked_at > 0 && c.left_at + offline_ns + 1_500_000_000 < last_watch
        })
        .count();
    let offline_ok = cs
        .iter()
        .enumerate()
        .filter(|(k, c)| {
            c.left_at > 0
                && c.parked_at > 0
                && c.left_at + offline_ns + 1_500_000_000 < last_watch
                && offline_seen.contains(k)
        })
        .count();
    let checked = present_ok + present_missing;
    let accuracy = if checked == 0 {
        Value::Null
    } else {
        json!(present_ok as f64 / checked as f64)
    };
    let rate = per_sec(parked, dur);
    prog.finish(&format!(
        "{parked} parked, {rate}/s, presence accuracy {accuracy}, stale {stale}"
    ));
    Ok(json!({
        "rate_target": o.rate, "duration_s": o.duration_s, "clients": cs.len(), "parked": parked,
        "failed": failed, "server_closed": server_closed, "connects_per_s": rate,
        "online_polls": online_polls, "presence_checked": checked, "presence_missing": present_missing,
        "presence_accuracy": accuracy, "stale": stale,
        "watch_polls": watch_polls, "watch_online_seen": online_seen.len(),
        "watch_offline_expected": offline_expected, "watch_offline_seen": offline_ok,
        "ok": failed == 0 && present_missing == 0 && stale == 0 && online_seen.len() as u64 == parked
              && offline_ok == offline_expected,
    }))
}
