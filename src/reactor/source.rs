//! The message source seam: where an accepted push goes before it is applied, and the one
//! place generated cursors come from.
//!
//! Today there is one source, `Source::Local`: a push is stamped with "now" and applied to
//! this worker's storage at once. The cluster mode adds a source that appends the push to
//! Redis first and applies it when it reads it back, with a cursor derived from the log
//! entry; the IN path does not change, it only calls `submit`.
//!
//! Structure: `Publication` (in `in_line`) carries the targets with their explicit cursors
//! (None = "generate"), the limiters and the body. `apply_publication` interns the ids,
//! gives every cursor-less id the same generated cursor, and calls `apply_message`.
//! Uses: cursor, storage, in_line (Publication), logging.

use super::*;

/// Where accepted pushes go.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(super) enum Source {
    /// This process's storage, at once (the embedded mode).
    #[default]
    Local,
    /// The cluster log: appended first, applied when read back (see `cluster`).
    Cluster,
}

impl Reactor {
    /// Hands a push accepted on IN connection `key` to the message source. Returns the
    /// cursor generated for its cursor-less ids, when the source knows it at once.
    pub(super) fn submit(&mut self, key: usize, p: Publication, now: Instant) -> Option<Cursor> {
        match self.msg_source {
            Source::Local => {
                // "Now" is taken here, when the message is applied, not when its marker was
                // read: two publishers whose requests overlap must get cursors in the order
                // their messages reach the queues, or a listener that already moved past
                // the later cursor would never see the earlier-stamped message (spec 5.1:
                // one "now" per request, shared by its cursor-less ids).
                let stamp = p.needs_stamp().then(|| self.stamp());
                let who = log::log_enabled!(Debug).then(|| self.who(key).to_string());
                self.apply_publication(p, stamp.clone(), now, who.as_deref());
                stamp
            }
            Source::Cluster => {
                self.submit_to_cluster(key, p);
                None
            }
        }
    }

    /// The next generated cursor: strictly above every cursor this worker generated.
    pub(super) fn stamp(&mut self) -> Cursor {
        self.cursors.next(SystemTime::now())
    }

    /// Applies a publication: ids without a cursor of their own get `stamp`. `who` names the
    /// publisher in the debug log (None when not logged).
    pub(super) fn apply_publication(
        &mut self,
        p: Publication,
        stamp: Option<Cursor>,
        now: Instant,
        who: Option<&str>,
    ) {
        let mut targets: Vec<(Cursor, ChannelId)> = Vec::with_capacity(p.targets.len());
        for (cursor, id) in &p.targets {
            let Some(cursor) = cursor.clone().or_else(|| stamp.clone()) else {
                // INVARIANT: the caller stamps every publication that needs it.
                debug_assert!(false, "publication applied without its stamp");
                continue;
            };
            targets.push((cursor, self.storage.intern(id)));
        }
        if targets.is_empty() {
            return;
        }
        let names = who.map(|w| {
            let ids: Vec<&str> = p.targets.iter().map(|t| &*t.1).collect();
            (w.to_string(), ids.join(","))
        });
        let msg = Rc::new(Message {
            data: p.body,
            limiters: p.limiters,
        });
        self.apply_message(now, msg, targets, |counts| {
            if let Some((who, names)) = names {
                rlog!(Debug, counts, "{}: DEBUG: added data for [{}]", who, names);
            }
        });
    }
}
