//! The SNAPSHOT_FILE format: what a stopping worker writes and the next one loads (queues
//! with ids, cursors, limiters and bodies; the ids whose queues were cleaned; the WATCH
//! history; the last generated cursor and where the history starts).
//!
//! Layout (integers little-endian):
//! ```text
//! "RPLXSNAP" u32 version
//! record*          u8 tag, u32 length, payload
//! END record       tag 0xFF, payload u64 = number of records before it
//! u64 checksum     FNV-1a 64 of every byte before it
//! ```
//! Records: HEADER (last cursor, history start, written at in unix ms, the gap bound of
//! forgotten ids), MESSAGE (limiters, body: each shared body once; indexes count from 0 in
//! file order), QUEUE (id, CLEAN_ID_AFTER deadline in unix ms, newest dropped cursor, items
//! newest first as (cursor, message index)), CLEANED (hash of a forgotten id, its newest
//! dropped cursor), EVENTS (position of the first, then (kind, id)).
//! A cursor is u8 0 + u64 secs + u64 frac (generated) or u8 1 + string (a client's text);
//! a string is u32 length + UTF-8.
//!
//! Reading parses the whole file into an `Image` and checks everything (magic, version,
//! checksum, lengths, indexes, order, duplicates) before anything is applied; any fault is
//! a `Bad` naming what is wrong. Nothing here panics on input: all reads are bounds-checked.
//! Uses: cursor, storage (Message).

use crate::cursor::{is_decimal, Cursor};
use crate::storage::Message;
use std::collections::HashSet;
use std::io::{self, Write};
use std::rc::Rc;

pub const MAGIC: &[u8; 8] = b"RPLXSNAP";
pub const VERSION: u32 = 1;
const T_HEADER: u8 = 1;
const T_MESSAGE: u8 = 2;
const T_QUEUE: u8 = 3;
const T_CLEANED: u8 = 4;
const T_EVENTS: u8 = 5;
const T_END: u8 = 0xFF;
/// Generated cursors have 14 fractional digits.
const FRAC_UNITS: u64 = 100_000_000_000_000;

/// FNV-1a, 64 bits.
#[derive(Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn value(self) -> u64 {
        self.0
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// One queue as loaded.
#[derive(Debug)]
pub struct QueueImage {
    pub id: Box<str>,
    /// When CLEAN_ID_AFTER deletes it (unix ms).
    pub clean_at_ms: u64,
    /// The newest cursor dropped from it (gap signal).
    pub dropped: Option<Cursor>,
    /// Newest first.
    pub items: Vec<(Cursor, Rc<Message>)>,
}

/// The retained WATCH events: the position of the first, then (online?, id) oldest first.
pub type EventsImage = (u64, Vec<(bool, Box<str>)>);

/// Everything a snapshot holds, parsed and checked.
#[derive(Debug, Default)]
pub struct Image {
    pub last_cursor: Option<Cursor>,
    pub history_start: Option<Cursor>,
    pub written_at_ms: u64,
    pub forgotten: Option<Cursor>,
    pub messages: usize,
    pub queues: Vec<QueueImage>,
    pub cleaned: Vec<(u64, Cursor)>,
    pub events: Option<EventsImage>,
}

/// What is wrong with a snapshot file.
#[derive(Debug, PartialEq, Eq)]
pub struct Bad(pub String);

fn bad<T>(what: impl Into<String>) -> Result<T, Bad> {
    Err(Bad(what.into()))
}

// ----- writing ----------------------------------------------------------------------------

/// Streams records to `out`, keeping the checksum and record count.
pub struct Encoder<W: Write> {
    out: W,
    sum: Fnv,
    records: u64,
    pub messages: u32,
    pub bytes: u64,
    scratch: Vec<u8>,
}

pub fn put_u32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

pub fn put_u64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

pub fn put_str(v: &mut Vec<u8>, s: &[u8]) -> io::Result<()> {
    let n = u32::try_from(s.len()).map_err(|_| io::Error::other("string over 4 GB"))?;
    put_u32(v, n);
    v.extend_from_slice(s);
    Ok(())
}

pub fn put_cursor(v: &mut Vec<u8>, c: &Cursor) -> io::Result<()> {
    match c {
        Cursor::Gen { secs, frac } => {
            v.push(0);
            put_u64(v, *secs);
            put_u64(v, *frac);
            Ok(())
        }
        Cursor::Client { .. } => {
            // A client's cursor is stored as its text, whatever form it was held in.
            v.push(1);
            let mut text = Vec::with_capacity(40);
            c.write_to(&mut text);
            put_str(v, &text)
        }
        Cursor::Text(t) => {
            v.push(1);
            put_str(v, t.as_bytes())
        }
    }
}

pub fn put_opt_cursor(v: &mut Vec<u8>, c: Option<&Cursor>) -> io::Result<()> {
    match c {
        Some(c) => {
            v.push(1);
            put_cursor(v, c)
        }
        None => {
            v.push(0);
            Ok(())
        }
    }
}

impl<W: Write> Encoder<W> {
    pub fn new(mut out: W) -> io::Result<Encoder<W>> {
        let mut sum = Fnv::default();
        let mut head = MAGIC.to_vec();
        put_u32(&mut head, VERSION);
        out.write_all(&head)?;
        sum.update(&head);
        Ok(Encoder {
            out,
            sum,
            records: 0,
            messages: 0,
            bytes: head.len() as u64,
            scratch: Vec::new(),
        })
    }

    fn raw(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.sum.update(b);
        self.bytes += b.len() as u64;
        Ok(())
    }

    /// Writes one record whose payload `fill` builds.
    fn record(
        &mut self,
        tag: u8,
        fill: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut p = std::mem::take(&mut self.scratch);
        p.clear();
        let r = fill(&mut p);
        let len = u32::try_from(p.len()).map_err(|_| io::Error::other("record over 4 GB"));
        let r = r.and(len).and_then(|len| {
            let mut head = vec![tag];
            put_u32(&mut head, len);
            self.raw(&head)?;
            self.raw(&p)
        });
        self.scratch = p;
        self.records += 1;
        r
    }

    pub fn header(
        &mut self,
        last: &Cursor,
        start: &Cursor,
        now_ms: u64,
        forgotten: Option<&Cursor>,
    ) -> io::Result<()> {
        self.record(T_HEADER, |p| {
            put_cursor(p, last)?;
            put_cursor(p, start)?;
            put_u64(p, now_ms);
            put_opt_cursor(p, forgotten)
        })
    }

    /// Writes a message body; returns its index.
    pub fn message(&mut self, m: &Message) -> io::Result<u32> {
        self.record(T_MESSAGE, |p| {
            let n = u32::try_from(m.limiters.len()).map_err(io::Error::other)?;
            put_u32(p, n);
            for l in m.limiters.iter() {
                put_str(p, l.as_bytes())?;
            }
            put_str(p, &m.data)
        })?;
        self.messages += 1;
        Ok(self.messages - 1)
    }

    /// `items`: (cursor, message index), newest first.
    pub fn queue(
        &mut self,
        id: &str,
        clean_at_ms: u64,
        dropped: Option<&Cursor>,
        items: &[(&Cursor, u32)],
    ) -> io::Result<()> {
        self.record(T_QUEUE, |p| {
            put_str(p, id.as_bytes())?;
            put_u64(p, clean_at_ms);
            put_opt_cursor(p, dropped)?;
            put_u32(p, u32::try_from(items.len()).map_err(io::Error::other)?);
            for (c, i) in items {
                put_cursor(p, c)?;
                put_u32(p, *i);
            }
            Ok(())
        })
    }

    pub fn cleaned(&mut self, key: u64, c: &Cursor) -> io::Result<()> {
        self.record(T_CLEANED, |p| {
            put_u64(p, key);
            put_cursor(p, c)
        })
    }

    pub fn events<'a>(
        &mut self,
        first_pos: u64,
        events: impl Iterator<Item = (bool, &'a str)>,
    ) -> io::Result<()> {
        self.record(T_EVENTS, |p| {
            put_u64(p, first_pos);
            let at = p.len();
            put_u32(p, 0);
            let mut n = 0u32;
            for (online, id) in events {
                p.push(u8::from(online));
                put_str(p, id.as_bytes())?;
                n = n.saturating_add(1);
            }
            if let Some(slot) = p.get_mut(at..at + 4) {
                slot.copy_from_slice(&n.to_le_bytes());
            }
            Ok(())
        })
    }

    /// Writes the END record and the checksum; returns the writer and the file's size.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        let n = self.records;
        self.record(T_END, |p| {
            put_u64(p, n);
            Ok(())
        })?;
        let sum = self.sum.0.to_le_bytes();
        self.out.write_all(&sum)?;
        self.bytes += 8;
        self.out.flush()?;
        Ok((self.out, self.bytes))
    }
}

// ----- reading ----------------------------------------------------------------------------

/// A bounds-checked reader over one payload.
struct Rd<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Bad> {
        let end = self.at.checked_add(n);
        match end.and_then(|e| self.b.get(self.at..e)) {
            Some(s) => {
                self.at += n;
                Ok(s)
            }
            None => bad(format!("truncated {what}")),
        }
    }

    fn u8(&mut self, what: &str) -> Result<u8, Bad> {
        Ok(self.take(1, what)?.first().copied().unwrap_or(0))
    }

    fn u32(&mut self, what: &str) -> Result<u32, Bad> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4, what)?);
        Ok(u32::from_le_bytes(a))
    }

    fn u64(&mut self, what: &str) -> Result<u64, Bad> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(a))
    }

    fn bytes(&mut self, what: &str) -> Result<&'a [u8], Bad> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }

    fn text(&mut self, what: &str) -> Result<&'a str, Bad> {
        std::str::from_utf8(self.bytes(what)?).or_else(|_| bad(format!("{what} is not UTF-8")))
    }

    fn id(&mut self, what: &str) -> Result<Box<str>, Bad> {
        let s = self.text(what)?;
        if s.is_empty() || s.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return bad(format!("invalid {what} {s:?}"));
        }
        Ok(Box::from(s))
    }

    fn cursor(&mut self, what: &str) -> Result<Cursor, Bad> {
        match self.u8(what)? {
            0 => {
                let secs = self.u64(what)?;
                let frac = self.u64(what)?;
                if frac >= FRAC_UNITS {
                    return bad(format!("invalid {what}"));
                }
                Ok(Cursor::Gen { secs, frac })
            }
            1 => {
                let t = self.bytes(what)?;
                if t.len() > 1024 || !is_decimal(t) {
                    return bad(format!("invalid {what}"));
                }
                Cursor::parse_client(t).map_or_else(|| bad(format!("invalid {what}")), Ok)
            }
            k => bad(format!("unknown {what} kind {k}")),
        }
    }

    fn opt_cursor(&mut self, what: &str) -> Result<Option<Cursor>, Bad> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => self.cursor(what).map(Some),
            _ => bad(format!("invalid {what} flag")),
        }
    }

    fn done(&self, what: &str) -> Result<(), Bad> {
        if self.at == self.b.len() {
            Ok(())
        } else {
            bad(format!(
                "{} stray bytes after {what}",
                self.b.len() - self.at
            ))
        }
    }
}

/// Parses and checks a whole snapshot file.
pub fn decode(file: &[u8]) -> Result<Image, Bad> {
    if file.len() < MAGIC.len() || file.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return bad("not a realplexor snapshot (bad magic)");
    }
    let mut top = Rd { b: file, at: 8 };
    let version = top.u32("version")?;
    if version != VERSION {
        return bad(format!("version {version}, this server reads {VERSION}"));
    }
    let Some(body_len) = file.len().checked_sub(8) else {
        return bad("truncated file");
    };
    let (body, sum) = file.split_at(body_len);
    let mut fnv = Fnv::default();
    fnv.update(body);
    let mut want = [0u8; 8];
    want.copy_from_slice(sum);
    if body_len < 12 || fnv.0 != u64::from_le_bytes(want) {
        return bad("checksum mismatch (truncated or edited)");
    }
    let mut top = Rd { b: body, at: 12 };
    let mut img = Image::default();
    let mut messages: Vec<Rc<Message>> = Vec::new();
    let mut seen: HashSet<Box<str>> = HashSet::new();
    let mut records = 0u64;
    loop {
        let tag = top.u8("record tag")?;
        let payload = top.bytes("record")?;
        let mut p = Rd { b: payload, at: 0 };
        match tag {
            T_HEADER if records == 0 => {
                img.last_cursor = Some(p.cursor("last cursor")?);
                img.history_start = Some(p.cursor("history start")?);
                img.written_at_ms = p.u64("time")?;
                img.forgotten = p.opt_cursor("forgotten bound")?;
            }
            _ if records == 0 => return bad("the first record is not the header"),
            T_HEADER => return bad("a second header"),
            T_MESSAGE => {
                let n = p.u32("limiter count")?;
                let mut lims: Vec<Box<str>> = Vec::new();
                for _ in 0..n {
                    let l = p.id("limiter")?;
                    if lims
                        .last()
                        .is_some_and(|prev| prev.as_bytes() >= l.as_bytes())
                    {
                        return bad("limiters not sorted");
                    }
                    lims.push(l);
                }
                let data = p.bytes("message body")?;
                messages.push(Rc::new(Message {
                    data: data.into(),
                    limiters: lims.into_boxed_slice(),
                }));
            }
            T_QUEUE => {
                let id = p.id("queue id")?;
                if !seen.insert(id.clone()) {
                    return bad(format!("queue {id:?} twice"));
                }
                let clean_at_ms = p.u64("queue deadline")?;
                let dropped = p.opt_cursor("dropped cursor")?;
                let n = p.u32("item count")?;
                let mut items: Vec<(Cursor, Rc<Message>)> = Vec::new();
                for _ in 0..n {
                    let c = p.cursor("item cursor")?;
                    let i = p.u32("message index")? as usize;
                    let Some(m) = messages.get(i) else {
                        return bad(format!("queue {id:?} names message {i} not yet defined"));
                    };
                    if items.last().is_some_and(|(prev, _)| c.is_after(prev)) {
                        return bad(format!("queue {id:?} not newest first"));
                    }
                    items.push((c, m.clone()));
                }
                img.queues.push(QueueImage {
                    id,
                    clean_at_ms,
                    dropped,
                    items,
                });
            }
            T_CLEANED => {
                let key = p.u64("cleaned id")?;
                let c = p.cursor("cleaned cursor")?;
                img.cleaned.push((key, c));
            }
            T_EVENTS if img.events.is_none() => {
                let first = p.u64("event position")?;
                let n = p.u32("event count")?;
                let mut evs = Vec::new();
                for _ in 0..n {
                    let online = match p.u8("event kind")? {
                        0 => false,
                        1 => true,
                        _ => return bad("invalid event kind"),
                    };
                    evs.push((online, Box::from(p.text("event id")?)));
                }
                if first.checked_add(u64::from(n)).is_none() {
                    return bad("event positions overflow");
                }
                img.events = Some((first, evs));
            }
            T_EVENTS => return bad("a second event history"),
            T_END => {
                let n = p.u64("record count")?;
                p.done("the end record")?;
                if n != records {
                    return bad(format!("{records} records, the end record says {n}"));
                }
                top.done("the end record")?;
                break;
            }
            t => return bad(format!("unknown record type {t}")),
        }
        p.done(&format!("record type {tag}"))?;
        records += 1;
    }
    img.messages = messages.len();
    Ok(img)
}

#[cfg(test)]
mod tests;
