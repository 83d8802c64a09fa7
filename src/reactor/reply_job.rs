//! Command replies written in slices: a large ONLINE or STATS answer is measured (for its
//! Content-Length) and then written a slice of pieces per loop turn, only while the socket
//! takes it, so other connections are served in between and no more than a slice of text
//! exists at once. A small answer (one slice or less) goes out at once, as before.
//!
//! Structure: `Reactor::jobs` holds `(ConnId, Job)`; a job's connection is in
//! `State::Streaming` (its EOF or a flushed write does not close it) until the last slice
//! is out, then it is finished like any final reply.
//! Uses: commands (Reply), in_line (the reply head), conn.

use super::*;
use crate::commands::Reply;

/// Pieces measured or written per step.
const SLICE: usize = 2048;

pub(super) struct Job {
    reply: Reply,
    /// Next piece to measure or write.
    next: usize,
    /// Measuring: bytes so far; None once the head went out.
    measured: Option<usize>,
    /// Steps taken and body bytes, for the closing log line.
    steps: usize,
    bytes: usize,
}

impl Reactor {
    /// Sends a command's 200 reply: at once when small, else as a job run by `run_jobs`.
    pub(super) fn send_reply(&mut self, key: usize, reply: Reply) {
        if reply.pieces() <= SLICE {
            let body = reply.to_bytes();
            let out = in_line::ok_text(&body);
            self.reply_and_close(key, &out);
            return;
        }
        let Some(id) = self.id_of(key) else {
            return;
        };
        if let Some(c) = self.conns.get_mut(key) {
            c.state = State::Streaming;
            c.buf = Vec::new();
        }
        self.jobs.push((
            id,
            Job {
                reply,
                next: 0,
                measured: Some(0),
                steps: 0,
                bytes: 0,
            },
        ));
    }

    /// Whether some job can make progress now (then the loop must not sleep).
    pub(super) fn jobs_runnable(&self) -> bool {
        self.jobs.iter().any(|(id, _)| {
            self.conns
                .get(id.key as usize)
                .is_some_and(|c| c.gen == id.gen && c.out.is_none())
        })
    }

    /// One step of every job whose socket has room: measure or write one slice.
    pub(super) fn run_jobs(&mut self) {
        let mut i = 0;
        let mut scratch = Vec::new();
        while i < self.jobs.len() {
            let Some((id, job)) = self.jobs.get_mut(i) else {
                break;
            };
            let id = *id;
            let key = id.key as usize;
            let alive = self
                .conns
                .get(key)
                .filter(|c| c.gen == id.gen && c.state == State::Streaming);
            let Some(conn) = alive else {
                self.jobs.swap_remove(i);
                continue;
            };
            if conn.out.is_some() {
                // The socket is full: wait for WRITABLE (flushed by on_writable).
                i += 1;
                continue;
            }
            job.steps += 1;
            let total = job.reply.pieces();
            let end = job.next.saturating_add(SLICE).min(total);
            scratch.clear();
            let mut done = false;
            match job.measured {
                Some(len) => {
                    job.reply.write_range(job.next, end, &mut scratch);
                    let len = len.saturating_add(scratch.len());
                    job.next = end;
                    job.measured = Some(len);
                    scratch.clear();
                    if end == total {
                        job.bytes = len;
                        job.measured = None;
                        job.next = 0;
                        scratch.extend_from_slice(&in_line::ok_head(len));
                    }
                }
                None => {
                    job.reply.write_range(job.next, end, &mut scratch);
                    job.next = end;
                    done = end == total;
                }
            }
            if done {
                let (steps, bytes) = (job.steps, job.bytes);
                rlog!(
                    Debug,
                    self.storage.counts(),
                    "{}: DEBUG: reply of {} bytes sent in {} steps",
                    self.who(key),
                    bytes,
                    steps
                );
                if let Some(c) = self.conns.get_mut(key) {
                    c.state = State::Closing;
                }
                self.jobs.swap_remove(i);
                if self.write_or_close(key, &scratch) == Ok(true) {
                    self.finish(key);
                }
                continue;
            }
            if !scratch.is_empty() && self.write_or_close(key, &scratch).is_err() {
                self.jobs.swap_remove(i);
                continue;
            }
            i += 1;
        }
    }
}
