//! Cluster-wide presence for one worker: reports its local online/offline transitions and
//! listener counts to Redis, keeps its heartbeat, reaps dead workers, and replays the
//! cluster's online/offline events into storage's bounded event chains (WATCH's history).
//! ONLINE is answered from Redis at request time (`cluster_online`): no worker keeps a
//! copy of the ids online elsewhere, so an id costs memory only in the workers where it
//! has listeners (plus its entries in the bounded WATCH history).
//!
//! Cost: a transition (an id's first local listener, or OFFLINE_TIMEOUT over after its
//! last) is one EVAL (which also adds or removes the id in this worker's counts hash
//! `<p>:n:<uid>`); a long-poll reconnect inside OFFLINE_TIMEOUT is none. Counts go in one
//! HSET every 100 ms for the ids whose count changed (a fan-out to 100k listeners is one
//! batch, not 100k commands). After the publishing link (re)connects, every local online
//! id is reported again (idempotent in Redis: no event where it is online there already),
//! which repairs what a Redis restart lost or a reaping during a long outage removed. A
//! worker silent for 5 s (kill -9, power off) is reaped by any other: its ids go offline
//! with the events its listeners would have produced, and its counts hash is deleted; if it
//! was alive after all (frozen), its next heartbeat finds its ids missing and it reports
//! them again.
//!
//! Structure: `Presence { uid, prefix, counts_key, next_batch, next_heartbeat, resync }`:
//! nothing per id. The events replay into storage's `Events` with the cluster's positions
//! (`push_at`), bounded by EVENT_CHAIN_LEN.
//! Uses: cluster::scripts, storage (SharedPresence, events), cluster (the links).

use super::cluster::Tag;
use super::*;
use crate::cluster::resp::Value;
use crate::cluster::scripts;
use crate::storage::events::EventKind;

/// How often changed counts are sent and the heartbeat checked (a batch only when
/// something changed, or the heartbeat is due).
const BATCH_EVERY: Duration = Duration::from_millis(100);
/// How often the heartbeat (and the reaping of dead workers) runs.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// A worker whose heartbeat is older than this is gone.
pub(super) const DEAD_AFTER_MS: u64 = 5000;
/// Transitions or count changes kept while Redis is away before they are compacted.
const PENDING_BOUND: usize = 1 << 16;
/// Most id/count pairs in one HSET (a resync after a reconnect is split).
const HSET_PAIRS: usize = 1000;
/// Positions of the cluster's events start where a fresh server's do.
const POS_BASE: u64 = 10;

pub(super) struct Presence {
    uid: Rc<str>,
    prefix: String,
    /// `<p>:n:<uid>`: this worker's online ids and their listener counts.
    counts_key: String,
    next_batch: Instant,
    next_heartbeat: Instant,
    /// The publishing link (re)connected: report every local online id again.
    pub(super) resync: bool,
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
            counts_key: format!("{prefix}:n:{uid}"),
            uid: Rc::from(uid),
            prefix: prefix.to_string(),
            next_batch: now,
            next_heartbeat: now,
            resync: false,
        }
    }
}

impl Reactor {
    /// Each turn: sends local transitions at once, changed counts every 100 ms, the
    /// heartbeat every second, and everything again after a reconnect.
    pub(super) fn presence_turn(&mut self, now: Instant) {
        let Some(c) = self.cluster.as_deref() else {
            return;
        };
        let ready = c.publisher.is_ready();
        let Some(pr) = c.presence.as_ref() else {
            return;
        };
        let resync = ready && pr.resync;
        let due = now >= pr.next_batch || resync;
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
        let ms = now_ms().to_string();
        // After a (re)connect: every id online here, as a transition and in the batch.
        let again: Vec<ChannelId> = if resync {
            self.storage.online_channel_ids()
        } else {
            Vec::new()
        };
        let Some(c) = self.cluster.as_deref_mut() else {
            return;
        };
        let Some(pr) = c.presence.as_mut() else {
            return;
        };
        // The turn's transitions (and, after a reconnect, every id online here again), in
        // calls of at most TRANSITIONS_PER_CALL.
        let mut pairs: Vec<(&str, &str)> = transitions
            .iter()
            .map(|(kind, id)| (kind.name(), &**id))
            .collect();
        pairs.extend(
            again
                .iter()
                .filter_map(|&id| self.storage.channel_name(id))
                .map(|name| (EventKind::Online.name(), &**name)),
        );
        for batch in pairs.chunks(scripts::TRANSITIONS_PER_CALL) {
            let mut args: Vec<&str> = Vec::with_capacity(7 + 2 * batch.len());
            args.extend([
                "EVAL",
                scripts::TRANSITION,
                "0",
                &pr.prefix,
                &pr.uid,
                &chain,
                &ms,
            ]);
            for &(kind, id) in batch {
                args.push(kind);
                args.push(id);
            }
            if let Err((_, e)) = c.publisher.send(Tag::Presence, &args) {
                log::warn!(
                    "cluster: presence of {} id(s) not reported: {e}",
                    batch.len()
                );
            }
        }
        if !due {
            c.publisher.flush();
            return;
        }
        pr.next_batch = now + BATCH_EVERY;
        pr.resync = false;
        let mut ids = match self.storage.shared_presence.as_deref_mut() {
            Some(p) => std::mem::take(&mut p.count_changed),
            None => Vec::new(),
        };
        ids.extend(again);
        ids.sort_unstable();
        ids.dedup();
        // HSET key id n id n ...: only ids online here (one gone offline was removed from
        // the hash by its transition, sent before this batch on the same link).
        let mut pairs: Vec<(Rc<str>, String)> = Vec::new();
        for id in ids {
            if !self.storage.is_online(id) {
                continue;
            }
            let Some(name) = self.storage.channel_name(id) else {
                continue;
            };
            pairs.push((name.clone(), self.storage.local_count(id).to_string()));
        }
        let beat = now >= pr.next_heartbeat;
        if beat {
            pr.next_heartbeat = now + HEARTBEAT_EVERY;
            let dead = DEAD_AFTER_MS.to_string();
            // Every transition so far was sent above: Redis should hold this many ids.
            let online = self.storage.counts().online_timers.to_string();
            let hb: [&str; 9] = [
                "EVAL",
                scripts::HEARTBEAT,
                "0",
                &pr.prefix,
                &pr.uid,
                &ms,
                &dead,
                &chain,
                &online,
            ];
            let _ = c.publisher.send(Tag::Heartbeat, &hb);
        }
        for chunk in pairs.chunks(HSET_PAIRS) {
            let mut args: Vec<&str> = Vec::with_capacity(2 + 2 * chunk.len());
            args.extend(["HSET", &pr.counts_key]);
            for (name, n) in chunk {
                args.extend([&**name, n.as_str()]);
            }
            let _ = c.publisher.send(Tag::Presence, &args);
        }
        c.publisher.flush();
    }

    /// The heartbeat's reply: `{reaped, missing}`; ids missing in Redis are reported again.
    pub(super) fn on_heartbeat(&mut self, v: &Value) {
        if let Some(t) = v.error_text() {
            log::warn!("cluster: heartbeat failed: {}", String::from_utf8_lossy(t));
            return;
        }
        let missing = match v.as_array().and_then(|a| a.get(1)) {
            Some(Value::Int(n)) => *n,
            _ => 0,
        };
        if missing <= 0 {
            return;
        }
        log::warn!(
            "cluster: Redis misses {missing} of the ids online on this worker (reaped while alive, or Redis lost them): reporting them again"
        );
        if let Some(pr) = self
            .cluster
            .as_deref_mut()
            .and_then(|c| c.presence.as_mut())
        {
            pr.resync = true;
        }
    }

    /// Replays entries of the events stream into WATCH's history.
    pub(super) fn apply_events(&mut self, entries: &[Value]) -> Option<String> {
        replay_events(&mut self.storage, entries, self.cfg.event_chain_len)
    }
}

/// Replays events stream entries into storage's bounded event chains (nothing else: an
/// id online elsewhere gets no channel, no set entry, nothing here); returns the last
/// entry's ID, where reading resumes.
fn replay_events(storage: &mut Storage, entries: &[Value], chain: usize) -> Option<String> {
    let mut last = None;
    for e in entries {
        // Reading resumes after any entry with an ID, even one that cannot be used.
        let a = e.as_array().unwrap_or_default();
        if let Some(id) = a.first().and_then(Value::as_bytes) {
            last = Some(String::from_utf8_lossy(id).into_owned());
        }
        let Some(fields) = a.get(1).and_then(Value::as_array) else {
            continue;
        };
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
        if !crate::ident::is_id(i) {
            continue;
        }
        let name = String::from_utf8_lossy(i);
        let kind = if k == b"online" {
            EventKind::Online
        } else {
            EventKind::Offline
        };
        storage
            .events_mut()
            .push_at(pos.saturating_add(POS_BASE), kind, &name, chain);
        rlog!(
            Debug,
            storage.counts(),
            "[{}] is now {} in the cluster",
            name,
            kind.name()
        );
    }
    last
}

fn field<'a>(fields: &'a [Value], name: &[u8]) -> Option<&'a [u8]> {
    fields
        .chunks(2)
        .find(|p| p.first().and_then(Value::as_bytes) == Some(name))
        .and_then(|p| p.get(1))
        .and_then(Value::as_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64, kind: &str, id: &str) -> Value {
        let b = |s: &str| Value::Bulk(s.as_bytes().to_vec());
        Value::Array(vec![
            b(&format!("{n}-0")),
            Value::Array(vec![
                b("k"),
                b(kind),
                b("i"),
                b(id),
                b("p"),
                b(&n.to_string()),
            ]),
        ])
    }

    /// Memory: ids online on other workers leave nothing here but WATCH's bounded history.
    #[test]
    fn remote_ids_cost_nothing_but_the_bounded_history() {
        let mut storage = Storage::new();
        let chain = 100;
        let entries: Vec<Value> = (1..=20_000u64)
            .map(|n| {
                event(
                    n,
                    if n % 3 == 0 { "offline" } else { "online" },
                    &format!("remote_{n}"),
                )
            })
            .collect();
        let last = replay_events(&mut storage, &entries, chain);
        assert_eq!(last.as_deref(), Some("20000-0"));
        assert_eq!(storage.channel_count(), 0, "no channel for a remote id");
        assert!(storage.online().is_empty());
        assert!(
            storage.events().len() <= 3 * (chain + 1),
            "history bounded: {}",
            storage.events().len()
        );
        assert_eq!(storage.events().last_pos(), 20_000 + POS_BASE);
        // Presence itself holds no collection at all.
        assert!(std::mem::size_of::<Presence>() <= 128);
    }

    #[test]
    fn hostile_event_entries_are_skipped() {
        let mut storage = Storage::new();
        let entries = vec![
            Value::Bulk(b"x".to_vec()),
            event(1, "online", "bad id\nline"),
            event(2, "online", "good"),
            Value::Array(vec![Value::Bulk(b"3-0".to_vec()), Value::Nil]),
        ];
        let last = replay_events(&mut storage, &entries, 10);
        assert_eq!(last.as_deref(), Some("3-0"));
        assert_eq!(storage.events().iter().count(), 1);
    }
}
