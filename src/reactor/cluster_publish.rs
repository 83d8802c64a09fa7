//! Cluster mode's publishing side in one worker: an accepted push (the original protocol's
//! or a `POST /pub`) is appended to the shared log with XADD on the publisher link, and
//! its publisher waits (`State::Awaiting`, or an `ApiPending` for the JSON answer) until
//! Redis acknowledged it; a push the log cannot take is refused with a 503 that says why,
//! never accepted and dropped.
//!
//! Data: `ApiPending` per deferred HTTP API push (the ids for its JSON answer, keep-alive).
//! Uses: cluster (the links, `xadd_args`, `Tag`), http_api (`publish_json`,
//! `api_deferred_done`), close.

use super::cluster::Tag;
use super::*;
use crate::cluster::stream_id::StreamId;

/// What the JSON answer of a deferred `POST /pub` needs.
pub(super) struct ApiPending {
    owned: Vec<(Option<Cursor>, Box<str>)>,
    skipped: Vec<(Option<Cursor>, Box<str>)>,
    keep_alive: bool,
}

/// The reply a push gets when it cannot be kept (the PHP API raises on any status but 200).
pub(super) fn unavailable(why: &str) -> Vec<u8> {
    service_unavailable(&format!("Service Unavailable: the cluster log cannot take this push ({why}); nothing was queued, retry later\n"))
}

/// A 503 on the IN line with this text body.
pub(super) fn service_unavailable(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        body
    )
    .into_bytes()
}

impl Reactor {
    /// Whether this connection's request is with Redis: a classic push or ONLINE awaiting
    /// its reply, or HTTP API pushes or `/online` not answered yet.
    pub(super) fn awaits_redis(&self, id: ConnId) -> bool {
        let Some(c) = self.cluster.as_deref() else {
            return false;
        };
        self.conns
            .get(id.key as usize)
            .is_some_and(|conn| conn.state == State::Awaiting)
            || c.api_pending.contains_key(&id)
            || c.online_pending.contains_key(&id)
    }

    /// Appends an accepted push to the log; its publisher waits for the acknowledgement.
    pub(super) fn submit_to_cluster(&mut self, key: usize, p: Publication) {
        let Some(id) = self.id_of(key) else {
            return;
        };
        let Some(c) = self.cluster.as_deref_mut() else {
            return;
        };
        let args = c.xadd_args(&p);
        match c.publisher.send(Tag::Publish(id), &args) {
            Ok(()) => {
                c.publisher.flush();
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.state = State::Awaiting;
                }
            }
            Err((_, e)) => self.refuse_push(key, &e.to_string()),
        }
    }

    /// Appends an HTTP API push to the log; the answer is sent when Redis acknowledged it.
    pub(super) fn submit_api_to_cluster(
        &mut self,
        key: usize,
        p: Publication,
        owned: Vec<(Option<Cursor>, Box<str>)>,
        skipped: Vec<(Option<Cursor>, Box<str>)>,
        keep_alive: bool,
    ) -> Result<(), String> {
        let id = self.id_of(key).ok_or("connection gone")?;
        let c = self.cluster.as_deref_mut().ok_or("not in cluster mode")?;
        let args = c.xadd_args(&p);
        match c.publisher.send(Tag::ApiPublish(id), &args) {
            Ok(()) => {
                c.publisher.flush();
                c.api_pending.insert(
                    id,
                    ApiPending {
                        owned,
                        skipped,
                        keep_alive,
                    },
                );
                Ok(())
            }
            Err((_, e)) => {
                self.counters.dropped_unavailable += 1;
                Err(e.to_string())
            }
        }
    }

    /// The answer to a deferred HTTP API push: its JSON with the entry's cursor, or a 503.
    pub(super) fn api_publish_done(
        &mut self,
        id: ConnId,
        entry_id: Option<&[u8]>,
        why: &str,
        now: Instant,
    ) {
        let Some(p) = self
            .cluster
            .as_deref_mut()
            .and_then(|c| c.api_pending.remove(&id))
        else {
            return;
        };
        let key = id.key as usize;
        if self.id_of(key) != Some(id) {
            return;
        }
        let cursor = entry_id
            .and_then(|e| StreamId::parse(e).ok())
            .and_then(|e| e.cursor().ok());
        let reply = match cursor {
            Some(cursor) => crate::api::reply::Reply::json(super::http_api::publish_json(
                &p.owned,
                &p.skipped,
                Some(&cursor),
            )),
            None => {
                self.counters.dropped_unavailable += 1;
                crate::api::reply::Reply::error(
                    503,
                    &format!("the cluster log cannot take this push ({why}); nothing was queued"),
                )
            }
        };
        self.api_deferred_done(key, reply, p.keep_alive, false, now);
    }

    pub(super) fn refuse_push(&mut self, key: usize, why: &str) {
        rlog!(
            Warn,
            self.storage.counts(),
            "{}: ERROR: push refused, the cluster log is unavailable: {}",
            self.who(key),
            why
        );
        self.counters.dropped_unavailable += 1;
        if let Some(c) = self.conns.get_mut(key) {
            c.state = State::Reading;
        }
        self.reply_and_close(key, &unavailable(why));
    }
}
