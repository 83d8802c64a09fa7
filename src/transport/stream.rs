//! The streaming transports' bytes: SSE events and WebSocket text frames, one per message
//! block, each holding the block as one JSON object `{"ids": {"id": "cursor", ...},
//! "data": <data>}` (the data inserted raw, as long-poll does).
//!
//! Event ids (SSE `id:`): what a browser sends back as `Last-Event-ID` when it reconnects.
//! When every id of the block carries the same cursor (always for generated cursors, which
//! are strictly increasing across all ids), the id is that cursor: resuming every listed
//! id from it loses nothing (everything newer has a higher cursor) and repeats nothing
//! (everything sent had a cursor at or below it, blocks go out in cursor order). When a
//! push gave its ids different explicit cursors, the id is the identifier list
//! `cursor:id,cursor:id` of the block, so each of those ids resumes from its own cursor
//! (`resume_cursors` reads both forms).
//! Structure: pure functions into a caller's `Vec<u8>`, so one encoding serves every
//! listener of a fan-out.
//! Uses: storage (Block), cursor, sse, websocket::frame, ident.

use crate::cursor::Cursor;
use crate::storage::Block;
use std::rc::Rc;

/// How long a browser waits before reconnecting a dropped event stream, in ms.
pub const SSE_RETRY_MS: u32 = 2000;

/// The SSE response head (with the caller's CORS lines) and the one `retry:` line.
pub fn sse_head(cors_lines: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    crate::sse::response_head(cors_lines, &mut out);
    crate::sse::retry(SSE_RETRY_MS, &mut out);
    out.push(b'\n');
    out
}

/// Appends the block as its JSON object.
pub fn block_json(b: &Block, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"ids\": {");
    super::id_pairs(&b.ids, out);
    out.extend_from_slice(b"}, \"data\": ");
    out.extend_from_slice(&b.msg.data);
    out.push(b'}');
}

/// The SSE event id of a block (see the module doc).
pub fn event_id(b: &Block, out: &mut Vec<u8>) {
    let uniform = b.ids.iter().all(|(_, c)| c.same_text(&b.cursor));
    if uniform {
        b.cursor.write_to(out);
        return;
    }
    for (j, (id, cursor)) in b.ids.iter().enumerate() {
        if j > 0 {
            out.push(b',');
        }
        cursor.write_to(out);
        out.push(b':');
        out.extend_from_slice(id.as_bytes());
    }
}

/// Appends the gap notice object: `{"ids": {"id": "cursor", ...}, "gap": true}`, the cursors
/// being where each id's kept history now begins (continue from them).
pub fn gap_json(gaps: &[(Rc<str>, Cursor)], out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"ids\": {");
    super::id_pairs(gaps, out);
    out.extend_from_slice(b"}, \"gap\": true}");
}

/// One SSE event per block, after an event of type `gap` when history was cut. The gap
/// event has no id: the browser's Last-Event-ID stays the last message it got.
pub fn sse_events(blocks: &[Block], gaps: &[(Rc<str>, Cursor)], out: &mut Vec<u8>) {
    let mut json = Vec::new();
    let mut id = Vec::new();
    if !gaps.is_empty() {
        gap_json(gaps, &mut json);
        crate::sse::event(None, Some(b"gap"), &json, out);
    }
    for b in blocks {
        json.clear();
        id.clear();
        block_json(b, &mut json);
        event_id(b, &mut id);
        crate::sse::event(Some(&id), None, &json, out);
    }
}

/// One WebSocket text frame per block, after a frame holding the gap notice when history
/// was cut. A text frame must be UTF-8: data that is not gets its invalid bytes replaced
/// (U+FFFD), as a browser's SSE decoder would.
pub fn ws_frames(blocks: &[Block], gaps: &[(Rc<str>, Cursor)], out: &mut Vec<u8>) {
    let mut json = Vec::new();
    if !gaps.is_empty() {
        gap_json(gaps, &mut json);
        crate::websocket::frame::text(&json, out);
    }
    for b in blocks {
        json.clear();
        block_json(b, &mut json);
        match std::str::from_utf8(&json) {
            Ok(_) => crate::websocket::frame::text(&json, out),
            Err(_) => {
                let fixed = String::from_utf8_lossy(&json).into_owned();
                crate::websocket::frame::text(fixed.as_bytes(), out);
            }
        }
    }
}

/// Resume cursors from a `Last-Event-ID` (or `last_event_id=`) value: `All(c)` for one
/// cursor (every listed id without its own cursor starts from it), `PerId` for the list
/// form (those ids from their cursors, the other listed ids from the smallest of them, so
/// nothing is lost). None for anything else (ignored: the ids start from "now").
#[derive(Debug, Clone)]
pub enum Resume {
    All(Cursor),
    PerId(Vec<(Box<str>, Cursor)>, Cursor),
}

/// Longest `Last-Event-ID` value read (longer ones are ignored).
const MAX_RESUME: usize = 4096;

pub fn resume_cursors(value: &[u8]) -> Option<Resume> {
    if value.is_empty() || value.len() > MAX_RESUME {
        return None;
    }
    if !value.contains(&b':') {
        return Cursor::parse_client(value).map(Resume::All);
    }
    let mut pairs: Vec<(Box<str>, Cursor)> = Vec::new();
    let mut min: Option<Cursor> = None;
    for item in value.split(|&c| c == b',') {
        let mut parts = item.splitn(2, |&c| c == b':');
        let (Some(c), Some(id)) = (parts.next(), parts.next()) else {
            return None;
        };
        let cursor = Cursor::parse_client(c)?;
        if !crate::ident::is_id(id) {
            return None;
        }
        let id: Box<str> = String::from_utf8_lossy(id).into();
        if min.as_ref().is_none_or(|m| m.is_after(&cursor)) {
            min = Some(cursor.clone());
        }
        pairs.push((id, cursor));
    }
    min.map(|m| Resume::PerId(pairs, m))
}

impl Resume {
    /// The cursor an id without its own cursor resumes from.
    pub fn cursor_for(&self, id: &[u8]) -> Cursor {
        match self {
            Resume::All(c) => c.clone(),
            Resume::PerId(pairs, min) => pairs
                .iter()
                .find(|(n, _)| n.as_bytes() == id)
                .map_or_else(|| min.clone(), |(_, c)| c.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Message;

    fn c(s: &str) -> Cursor {
        Cursor::parse_client(s.as_bytes()).unwrap()
    }

    fn block(ids: &[(&str, &str)], data: &str) -> Block {
        let mut min = c(ids[0].1);
        for (_, s) in ids {
            if min.is_after(&c(s)) {
                min = c(s);
            }
        }
        Block {
            msg: Rc::new(Message {
                data: data.as_bytes().into(),
                limiters: Box::new([]),
            }),
            cursor: min,
            ids: ids.iter().map(|(n, s)| (Rc::from(*n), c(s))).collect(),
        }
    }

    #[test]
    fn sse_event_bytes() {
        let mut out = Vec::new();
        sse_events(
            &[block(&[("a", "15"), ("b", "15")], "{\"x\":\n1}")],
            &[],
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id: 15\ndata: {\"ids\": {\"a\": \"15\", \"b\": \"15\"}, \"data\": {\"x\":\ndata: 1}}\n\n"
        );
    }

    #[test]
    fn mixed_cursors_give_a_list_id() {
        let mut out = Vec::new();
        event_id(&block(&[("a", "5"), ("b", "7")], "1"), &mut out);
        assert_eq!(out, b"5:a,7:b");
        let r = resume_cursors(b"5:a,7:b").unwrap();
        assert!(r.cursor_for(b"a").same_text(&c("5")));
        assert!(r.cursor_for(b"b").same_text(&c("7")));
        assert!(r.cursor_for(b"z").same_text(&c("5")));
        assert!(resume_cursors(b"12.5")
            .unwrap()
            .cursor_for(b"q")
            .same_text(&c("12.5")));
    }

    #[test]
    fn hostile_resume_values_are_ignored() {
        for v in [
            &b""[..],
            b":",
            b"a:",
            b":a",
            b"1:a b",
            b"x",
            b"1:a,,",
            b"1:\xff",
        ] {
            assert!(resume_cursors(v).is_none(), "{v:?}");
        }
        assert!(resume_cursors(&[b'1'; 5000]).is_none());
    }

    #[test]
    fn ws_frame_holds_the_block_object() {
        let mut out = Vec::new();
        ws_frames(&[block(&[("a", "1")], "\"hi\"")], &[], &mut out);
        let json = b"{\"ids\": {\"a\": \"1\"}, \"data\": \"hi\"}";
        assert_eq!(out[0], 0x81);
        assert_eq!(out[1] as usize, json.len());
        assert_eq!(&out[2..], json);
    }
}
