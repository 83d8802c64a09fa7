//! Cluster-wide presence for one worker: reports its local online/offline transitions and
//! listener counts to Redis, keeps its heartbeat, reaps dead workers, and keeps a replica
//! of the cluster's online ids, event history and counts, from which ONLINE and WATCH are
//! answered the same on every worker and host.
//!
//! Cost: a transition (an id's first local listener, or OFFLINE_TIMEOUT over after its
//! last) is one EVAL; a long-poll reconnect inside OFFLINE_TIMEOUT is none. Counts go in
//! one XADD every 100 ms for the ids whose count changed (a fan-out to 100k listeners is
//! one batch, not 100k commands), plus every worker's full counts every 30 s so a new
//! worker converges. A worker silent for 5 s (kill -9, power off) is reaped by any other:
//! its ids go offline with the events its listeners would have produced.
//!
//! Structure: `Presence { uid, online: HashSet<id>, counts: id -> [(uid, n)], next_* }`;
//! the events replay into storage's `Events` with the cluster's positions (`push_at`).
//! Uses: cluster::scripts, storage (SharedPresence, events), cluster (the links).

use super::cluster::Tag;
use super::*;
use crate::cluster::resp::Value;
use crate::cluster::scripts;
use crate::storage::events::EventKind;
use std::collections::{HashMap, HashSet};

/// How often changed counts are sent and the heartbeat refreshed (a batch only when
/// something changed, or the heartbeat is due).
const BATCH_EVERY: Duration = Duration::from_millis(100);
/// How often the heartbeat (and the reaping of dead workers) runs.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How often a worker sends all its counts again.
const FULL_EVERY: Duration = Duration::from_secs(30);
/// A worker whose heartbeat is older than this is gone.
pub(super) const DEAD_AFTER_MS: u64 = 5000;
/// Transitions or count changes kept while Redis is away before they are compacted.
const PENDING_BOUND: usize = 1 << 16;
/// Positions of the cluster's events start where a fresh server's do.
const POS_BASE: u64 = 10;

pub(super) struct Presence {
    uid: Rc<str>,
    prefix: String,
    online: HashSet<Rc<str>>,
    counts: HashMap<Rc<str>, Vec<(Rc<str>, u32)>>,
    next_batch: Instant,
    next_full: Instant,
    next_heartbeat: Instant,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Presence {
    pub(super) fn new(prefix: &str) -> Presence {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let uid = format!("{}:{}:{}", host.trim(), std::process::id(), now_ms());
        let now = Instant::now();
        Presence {
            uid: Rc::from(uid),
            prefix: prefix.to_string(),
            online: HashSet::new(),
            counts: HashMap::new(),
            next_batch: now,
            next_full: now + FULL_EVERY,
            next_heartbeat: now,
        }
    }

    /// ONLINE's view: every id online anywhere, with its count summed over the workers.
    pub(super) fn online_list(&self) -> Vec<(Rc<str>, usize)> {
        let mut v: Vec<(Rc<str>, usize)> = self
            .online
            .iter()
            .map(|id| {
                let n = self
                    .counts
                    .get(id)
                    .map_or(0, |w| w.iter().map(|(_, n)| *n as usize).sum());
                (id.clone(), n)
            })
            .collect();
        v.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        v
    }

    fn set_count(&mut self, id: &str, uid: &Rc<str>, n: u32) {
        let entry = self.counts.entry(Rc::from(id)).or_default();
        entry.retain(|(w, _)| w != uid);
        if n > 0 {
            entry.push((uid.clone(), n));
        }
        if entry.is_empty() {
            self.counts.remove(id);
        }
    }

    fn drop_worker(&mut self, uid: &str) {
        self.counts.retain(|_, v| {
            v.retain(|(w, _)| &**w != uid);
            !v.is_empty()
        });
    }
}

impl Reactor {
    /// Each turn: sends local transitions at once, counts and the heartbeat once a second.
    pub(super) fn presence_turn(&mut self, now: Instant) {
        let due = self
            .cluster
            .as_deref()
            .and_then(|c| c.presence.as_ref())
            .is_some_and(|pr| now >= pr.next_batch);
        let ready = self
            .cluster
            .as_deref()
            .is_some_and(|c| c.publisher.is_ready());
        let transitions = match self.storage.shared_presence.as_deref_mut() {
            // Most turns have nothing to report: no formatting, no command.
            Some(p) if p.transitions.is_empty() && !due => return,
            // Redis is away: keep what is to be reported (compacted to the latest state of
            // each id past a bound) and send it once the link is back.
            Some(p) if !ready => {
                p.compact(PENDING_BOUND);
                return;
            }
            Some(p) => std::mem::take(&mut p.transitions),
            None => return,
        };
        let chain = (self.cfg.event_chain_len.max(1) * 3).to_string();
        let Some(c) = self.cluster.as_deref_mut() else {
            return;
        };
        let Some(pr) = c.presence.as_mut() else {
            return;
        };
        let ms = now_ms().to_string();
        for (kind, id) in transitions {
            let args: [&str; 9] = [
                "EVAL",
                scripts::TRANSITION,
                "0",
                &pr.prefix,
                &pr.uid,
                kind.name(),
                &id,
                &chain,
                &ms,
            ];
            if let Err((_, e)) = c.publisher.send(Tag::Presence, &args) {
                log::warn!("cluster: presence of [{id}] not reported: {e}");
            }
        }
        if now < pr.next_batch || !c.publisher.is_ready() {
            c.publisher.flush();
            return;
        }
        pr.next_batch = now + BATCH_EVERY;
        let full = now >= pr.next_full;
        if full {
            pr.next_full = now + FULL_EVERY;
        }
        let changed = match self.storage.shared_presence.as_deref_mut() {
            Some(p) => std::mem::take(&mut p.count_changed),
            None => Vec::new(),
        };
        let mut ids: Vec<ChannelId> = if full {
            self.storage.online_channel_ids()
        } else {
            changed
        };
        ids.sort_unstable();
        ids.dedup();
        let mut d = String::new();
        for id in ids {
            let Some(name) = self.storage.channel_name(id) else {
                continue;
            };
            if !d.is_empty() {
                d.push(',');
            }
            let _ = write!(d, "{}={}", name, self.storage.local_count(id));
        }
        let Some(c) = self.cluster.as_deref_mut() else {
            return;
        };
        let Some(pr) = c.presence.as_mut() else {
            return;
        };
        let beat = now >= pr.next_heartbeat;
        if beat {
            pr.next_heartbeat = now + HEARTBEAT_EVERY;
        }
        let dead = DEAD_AFTER_MS.to_string();
        let hb: [&str; 8] = [
            "EVAL",
            scripts::HEARTBEAT,
            "0",
            &pr.prefix,
            &pr.uid,
            &ms,
            &dead,
            &chain,
        ];
        if beat {
            let _ = c.publisher.send(Tag::Presence, &hb);
        }
        if !d.is_empty() {
            let key = format!("{}:counts", pr.prefix);
            let args: [&str; 10] = [
                "XADD", &key, "MAXLEN", "~", "100000", "*", "w", &pr.uid, "d", &d,
            ];
            let _ = c.publisher.send(Tag::Presence, &args);
        }
        c.publisher.flush();
    }

    /// Replays entries of the events stream: the cluster-wide online set and WATCH history.
    pub(super) fn apply_events(&mut self, entries: &[Value]) -> Option<String> {
        let mut last = None;
        let chain = self.cfg.event_chain_len;
        for e in entries {
            let Some((id, fields)) = entry_parts(e) else {
                continue;
            };
            last = Some(id);
            let (Some(k), Some(i), Some(p)) = (
                field(fields, b"k"),
                field(fields, b"i"),
                field(fields, b"p"),
            ) else {
                continue;
            };
            let Some(pos) = std::str::from_utf8(p)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let name = String::from_utf8_lossy(i);
            let kind = if k == b"online" {
                EventKind::Online
            } else {
                EventKind::Offline
            };
            if let Some(pr) = self
                .cluster
                .as_deref_mut()
                .and_then(|c| c.presence.as_mut())
            {
                match kind {
                    EventKind::Online => {
                        pr.online.insert(Rc::from(&*name));
                    }
                    EventKind::Offline => {
                        pr.online.remove(&*name);
                    }
                }
            }
            self.storage
                .events_mut()
                .push_at(pos.saturating_add(POS_BASE), kind, &name, chain);
            rlog!(
                Debug,
                self.storage.counts(),
                "[{}] is now {} in the cluster",
                name,
                kind.name()
            );
        }
        last
    }

    /// Replays entries of the counts stream into the replica.
    pub(super) fn apply_counts(&mut self, entries: &[Value]) -> Option<String> {
        let mut last = None;
        let pr = self
            .cluster
            .as_deref_mut()
            .and_then(|c| c.presence.as_mut())?;
        for e in entries {
            let Some((id, fields)) = entry_parts(e) else {
                continue;
            };
            last = Some(id);
            let (Some(w), Some(d)) = (field(fields, b"w"), field(fields, b"d")) else {
                continue;
            };
            let uid: Rc<str> = Rc::from(&*String::from_utf8_lossy(w));
            if d == b"*" {
                pr.drop_worker(&uid);
                continue;
            }
            for item in d.split(|&c| c == b',') {
                let mut kv = item.splitn(2, |&c| c == b'=');
                let (Some(k), Some(v)) = (kv.next(), kv.next()) else {
                    continue;
                };
                let Some(n) = std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                else {
                    continue;
                };
                pr.set_count(&String::from_utf8_lossy(k), &uid, n);
            }
        }
        last
    }
}

/// `[id, [field, value, ...]]` of a stream entry.
fn entry_parts(e: &Value) -> Option<(String, &[Value])> {
    let a = e.as_array()?;
    let id = String::from_utf8_lossy(a.first()?.as_bytes()?).into_owned();
    Some((id, a.get(1)?.as_array()?))
}

fn field<'a>(fields: &'a [Value], name: &[u8]) -> Option<&'a [u8]> {
    fields
        .chunks(2)
        .find(|p| p.first().and_then(Value::as_bytes) == Some(name))
        .and_then(|p| p.get(1))
        .and_then(Value::as_bytes)
}

use std::fmt::Write as _;
