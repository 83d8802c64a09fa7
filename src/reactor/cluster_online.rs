//! ONLINE in cluster mode, asked of Redis at request time: no worker keeps a copy of the
//! ids online elsewhere (see `cluster_presence`), so the text command on the IN line and
//! `GET /online` of the HTTP API wait for Redis, as a push does.
//!
//! Flow: `ZRANGE <p>:workers` on the publishing link (the live workers, and those not yet
//! reaped: as long as the reaper has not taken a worker's ids offline, they are online),
//! then one `HSCAN <p>:n:<uid> cursor COUNT ..` per worker, pipelined, each continued until
//! its cursor is back to 0. Every step is a short command, so Redis serves publishers in
//! between (a Lua script walking every hash would block them all). The ids that pass the
//! prefix and login filter are collected with their worker, then sorted, deduplicated (a
//! scan may return a field twice) and summed per id into the list `commands::answer_with`
//! turns into the original's reply, byte for byte. The list lives until the reply is
//! written (`reply_job` slices a large one), then it is freed. If Redis cannot answer
//! (down, error reply, reply timeout), the text command gets a 503 that says so and
//! `/online` a JSON 503: never an empty list that looks like "nobody is online".
//!
//! Structure: `Cluster::online_pending: ConnId -> Query { cmd, login, via, filter, keys,
//! owed, found: [(id, worker, count)] }`; the connection waits in `State::Awaiting`.
//! Uses: cluster (links, tags), commands (Filter, answer_with, json), reply_job, http_api.

use super::cluster::Tag;
use super::*;
use crate::api::reply::Reply as ApiReply;
use crate::cluster::resp::Value;
use crate::commands::{json, Filter};

/// The COUNT hint of one HSCAN (a reply holds about twice as many elements; the link
/// takes replies of up to 2^20).
const SCAN_COUNT: &str = "10000";

/// Where the answer goes.
#[derive(Clone, Copy, Debug)]
pub(super) enum Via {
    /// The text command on the IN line (the connection closes after it).
    Text,
    /// `GET /online` (or `HEAD`) of the HTTP API.
    Api {
        keep_alive: bool,
        head_only: bool,
        counters: bool,
    },
}

/// An ONLINE waiting for Redis.
pub(super) struct Query {
    cmd: Command,
    login: Option<String>,
    via: Via,
    filter: Filter,
    /// The counts hash of each worker, by the index in `Tag::OnlineScan`.
    keys: Vec<Vec<u8>>,
    /// Scans not finished yet.
    owed: usize,
    /// (id, worker index, listeners there) for the ids that pass the filter.
    found: Vec<(Rc<str>, u32, usize)>,
}

/// The IN line's reply when ONLINE cannot be answered.
fn text_unavailable(why: &str) -> Vec<u8> {
    super::cluster_publish::service_unavailable(&format!(
        "Service Unavailable: ONLINE asks the cluster's Redis, which cannot answer ({why}); retry later\n"
    ))
}

fn api_unavailable(why: &str) -> ApiReply {
    ApiReply::error(
        503,
        &format!("ONLINE asks the cluster's Redis, which cannot answer ({why}); retry later"),
    )
}

impl Reactor {
    /// The text ONLINE in cluster mode: asked of Redis, answered when it replies.
    pub(super) fn online_text(&mut self, key: usize, cmd: Command, login: Option<String>) {
        match self.ask_online(key, cmd, login, Via::Text) {
            Ok(()) => {
                if let Some(c) = self.conns.get_mut(key) {
                    c.state = State::Awaiting;
                }
            }
            Err(why) => self.online_text_refused(key, &why),
        }
    }

    /// The text ONLINE cannot be answered (Redis unreachable or refusing): say so, logged.
    fn online_text_refused(&mut self, key: usize, why: &str) {
        rlog!(
            Warn,
            self.storage.counts(),
            "{}: ERROR: ONLINE cannot be answered: {}",
            self.who(key),
            why
        );
        self.reply_and_close(key, &text_unavailable(why));
    }

    /// `GET /online` in cluster mode: deferred until Redis replies.
    pub(super) fn online_api(
        &mut self,
        key: usize,
        cmd: Command,
        login: Option<String>,
        via: Via,
    ) -> ApiReply {
        match self.ask_online(key, cmd, login, via) {
            Ok(()) => ApiReply::deferred(),
            Err(why) => api_unavailable(&why),
        }
    }

    /// Sends the first step (the live workers); Err when Redis cannot be asked.
    fn ask_online(
        &mut self,
        key: usize,
        cmd: Command,
        login: Option<String>,
        via: Via,
    ) -> Result<(), String> {
        let id = self.id_of(key).ok_or("connection gone")?;
        let c = self.cluster.as_deref_mut().ok_or("not in cluster mode")?;
        let workers = format!("{}:workers", c.prefix);
        c.publisher
            .send(Tag::OnlineWorkers(id), &["ZRANGE", &workers, "0", "-1"])
            .map_err(|(_, e)| e.to_string())?;
        c.publisher.flush();
        let filter = Filter::online(&cmd, login.as_deref());
        c.online_pending.insert(
            id,
            Query {
                cmd,
                login,
                via,
                filter,
                keys: Vec::new(),
                owed: 0,
                found: Vec::new(),
            },
        );
        Ok(())
    }

    /// An error reply from Redis ends the query with it (the asker gets the 503).
    fn online_failed(&mut self, id: ConnId, v: &Value, now: Instant) -> bool {
        let Some(t) = v.error_text() else {
            return false;
        };
        let why = String::from_utf8_lossy(t).into_owned();
        self.online_done(id, Err(why), now);
        true
    }

    /// The live workers: one scan of each one's counts hash.
    pub(super) fn on_online_workers(&mut self, id: ConnId, v: &Value, now: Instant) {
        if self.online_failed(id, v, now) {
            return;
        }
        let Some(c) = self.cluster.as_deref_mut() else {
            return;
        };
        let Some(q) = c.online_pending.get_mut(&id) else {
            return;
        };
        q.keys = v
            .as_array()
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_bytes)
            .map(|uid| {
                let mut k = format!("{}:n:", c.prefix).into_bytes();
                k.extend_from_slice(uid);
                k
            })
            .collect();
        q.owed = q.keys.len();
        let mut failed = None;
        for (i, k) in q.keys.iter().enumerate() {
            let Ok(n) = u32::try_from(i) else {
                failed = Some("too many workers".to_string());
                break;
            };
            let args: [&[u8]; 5] = [b"HSCAN", k, b"0", b"COUNT", SCAN_COUNT.as_bytes()];
            if let Err((_, e)) = c.publisher.send(Tag::OnlineScan(id, n), &args) {
                failed = Some(e.to_string());
                break;
            }
        }
        c.publisher.flush();
        if let Some(why) = failed {
            self.online_done(id, Err(why), now);
        } else if q.owed == 0 {
            self.online_done(id, Ok(()), now);
        }
    }

    /// One HSCAN reply: `[cursor, [id, n, id, n, ...]]`; continues the scan until the
    /// cursor is 0, and answers once every scan is done.
    pub(super) fn on_online_scan(&mut self, id: ConnId, worker: u32, v: &Value, now: Instant) {
        if self.online_failed(id, v, now) {
            return;
        }
        let Some(c) = self.cluster.as_deref_mut() else {
            return;
        };
        let Some(q) = c.online_pending.get_mut(&id) else {
            return;
        };
        let parts = v.as_array().unwrap_or_default();
        let (Some(cursor), Some(items)) = (
            parts.first().and_then(Value::as_bytes),
            parts.get(1).and_then(Value::as_array),
        ) else {
            return self.online_done(id, Err("unexpected reply to HSCAN".into()), now);
        };
        for pair in items.chunks(2) {
            let (Some(name), Some(n)) = (
                pair.first().and_then(Value::as_bytes),
                pair.get(1).and_then(Value::as_bytes),
            ) else {
                continue;
            };
            let Some(n) = std::str::from_utf8(n)
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
            else {
                continue;
            };
            // Only ids the server could have written (and so no byte that breaks a line).
            let Some(name) = std::str::from_utf8(name)
                .ok()
                .filter(|s| crate::ident::is_id(s.as_bytes()))
            else {
                continue;
            };
            if q.filter.matches(name) {
                q.found.push((Rc::from(name), worker, n));
            }
        }
        if cursor == b"0" {
            q.owed = q.owed.saturating_sub(1);
            if q.owed == 0 {
                self.online_done(id, Ok(()), now);
            }
            return;
        }
        let Some(k) = q.keys.get(worker as usize) else {
            return self.online_done(id, Err("scan of an unknown worker".into()), now);
        };
        let args: [&[u8]; 5] = [b"HSCAN", k, cursor, b"COUNT", SCAN_COUNT.as_bytes()];
        match c.publisher.send(Tag::OnlineScan(id, worker), &args) {
            Ok(()) => c.publisher.flush(),
            Err((_, e)) => self.online_done(id, Err(e.to_string()), now),
        }
    }

    /// Answers a waiting ONLINE (once: later replies of its scans find no query).
    pub(super) fn online_done(&mut self, id: ConnId, result: Result<(), String>, now: Instant) {
        let Some(q) = self
            .cluster
            .as_deref_mut()
            .and_then(|c| c.online_pending.remove(&id))
        else {
            return;
        };
        let key = id.key as usize;
        if self.id_of(key) != Some(id)
            || self
                .conns
                .get(key)
                .is_none_or(|c| c.state != State::Awaiting)
        {
            return;
        }
        let answer = result.map(|()| {
            commands::answer_with(
                &q.cmd,
                &self.storage,
                q.login.as_deref(),
                Some(merge(q.found)),
            )
        });
        match (q.via, answer) {
            (Via::Text, Ok(answer)) => self.send_answer(key, answer),
            (Via::Text, Err(why)) => self.online_text_refused(key, &why),
            (
                Via::Api {
                    keep_alive,
                    head_only,
                    counters,
                },
                answer,
            ) => {
                let reply = match answer {
                    Ok(commands::Answer::Text { reply, .. }) => {
                        ApiReply::json(json::online(&reply, counters))
                    }
                    Ok(commands::Answer::Nothing) => api_unavailable("no answer"),
                    Err(why) => api_unavailable(&why),
                };
                self.api_deferred_done(key, reply, keep_alive, head_only, now);
            }
        }
    }
}

/// Sorts the scanned (id, worker, count) entries by id bytes and sums each id's counts
/// over the workers (a field a scan returned twice counts once).
fn merge(mut found: Vec<(Rc<str>, u32, usize)>) -> Vec<(Rc<str>, usize)> {
    found.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(&b.1)));
    found.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    let mut out: Vec<(Rc<str>, usize)> = Vec::with_capacity(found.len());
    for (id, _, n) in found {
        match out.last_mut() {
            Some(last) if last.0 == id => last.1 = last.1.saturating_add(n),
            _ => out.push((id, n)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_sums_over_workers_sorted_by_bytes_and_counts_a_repeat_once() {
        let e = |id: &str, w: u32, n: usize| (Rc::<str>::from(id), w, n);
        let got = merge(vec![
            e("b", 1, 2),
            e("a_x", 0, 1),
            e("b", 0, 3),
            e("B", 2, 0),
            e("b", 1, 2),
            e("a", 1, 0),
        ]);
        let got: Vec<(&str, usize)> = got.iter().map(|(i, n)| (&**i, *n)).collect();
        assert_eq!(got, [("B", 0), ("a", 0), ("a_x", 1), ("b", 5)]);
    }
}
