//! The transport seam: what a parked listener is sent when data arrives, and whether its
//! connection stays open afterwards. Each transport is one file; the reactor only asks the
//! connection's `Transport` for its bytes and its verdict, so adding one (SSE, WebSocket)
//! is a new file and a new variant here, not edits across the loop.
//!
//! Structure: `Transport` is a one-byte tag kept on every WAIT connection. `head` gives the
//! bytes written at registration, `encode` serialises a delivery's blocks, `after_delivery`
//! says whether the connection closes. Equal block lists (`same_blocks`) serialise to equal
//! bytes, so a fan-out encodes each distinct reply once per transport.
//! Uses: storage (Block), config, http.

pub mod longpoll;
pub mod stream;

use crate::config::Config;
use crate::cursor::Cursor;
use crate::storage::Block;
use std::rc::Rc;

/// How a WAIT connection receives its messages.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// The original's: one reply, then close (the client reconnects with its cursors).
    #[default]
    LongPoll,
    /// Long-poll with JSONP (`callback=name`): the same reply body wrapped in `name(...);`
    /// and served as `application/javascript` (the name is kept by the reactor).
    Jsonp,
    /// Server-sent events: one event per block, the connection stays open.
    Sse,
    /// WebSocket: one text frame per block, the connection stays open.
    Ws,
}

/// What happens to a connection once a delivery has been written to it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum After {
    /// The reply was final: shut the connection down once it is flushed.
    Close,
    /// The connection stays parked for the next messages (its cursors moved on).
    Stay,
}

/// Whether `name` may be a JSONP callback: `[A-Za-z_$][A-Za-z0-9_$.]{0,63}`.
pub fn valid_callback(name: &[u8]) -> bool {
    let mut it = name.iter();
    let first_ok = it
        .next()
        .is_some_and(|&c| c.is_ascii_alphabetic() || c == b'_' || c == b'$');
    first_ok
        && name.len() <= 64
        && it.all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'.'))
}

/// `"a": "1", "b": "2"`: the (id, cursor) pairs of a block as every transport writes them.
pub fn id_pairs(pairs: &[(Rc<str>, crate::cursor::Cursor)], out: &mut Vec<u8>) {
    for (j, (id, cursor)) in pairs.iter().enumerate() {
        if j > 0 {
            out.extend_from_slice(b", ");
        }
        out.push(b'"');
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(b"\": \"");
        cursor.write_to(out);
        out.push(b'"');
    }
}

impl Transport {
    /// The bytes written when the listener registers, before any data: the configured
    /// header block, with CORS headers for an allowed origin.
    /// (A WebSocket's head is its `101` reply, built from the request's key: see
    /// `websocket::handshake`.)
    pub fn head(self, cfg: &Config, cors: Option<&[u8]>) -> Rc<[u8]> {
        let cors_lines = cors.map(crate::http::cors_headers).unwrap_or_default();
        match self {
            Transport::LongPoll => match cors {
                Some(_) => Rc::from(crate::http::with_headers(&cfg.wait_header, &cors_lines)),
                None => cfg.wait_header.clone(),
            },
            Transport::Jsonp => {
                let head = String::from_utf8_lossy(&cfg.wait_header).replacen(
                    "Content-Type: text/javascript",
                    "Content-Type: application/javascript",
                    1,
                );
                let head = head.into_bytes();
                match cors {
                    Some(_) => Rc::from(crate::http::with_headers(&head, &cors_lines)),
                    None => Rc::from(head),
                }
            }
            Transport::Sse => Rc::from(stream::sse_head(&cors_lines)),
            Transport::Ws => Rc::from(&[][..]),
        }
    }

    /// Appends the bytes that deliver `blocks` to `out`, after the gap notice for `gaps`
    /// ((id, cursor to continue from); empty unless the listener opted in).
    pub fn encode(self, blocks: &[Block], gaps: &[(Rc<str>, Cursor)], out: &mut Vec<u8>) {
        match self {
            Transport::LongPoll | Transport::Jsonp => longpoll::body(blocks, gaps, out),
            Transport::Sse => stream::sse_events(blocks, gaps, out),
            Transport::Ws => stream::ws_frames(blocks, gaps, out),
        }
    }

    /// Whether the connection closes after a delivery.
    pub fn after_delivery(self) -> After {
        match self {
            Transport::LongPoll | Transport::Jsonp => After::Close,
            Transport::Sse | Transport::Ws => After::Stay,
        }
    }

    /// Whether the connection stays open across deliveries (SSE, WebSocket).
    pub fn is_streaming(self) -> bool {
        self.after_delivery() == After::Stay
    }

    /// Appends a keep-alive ping (nothing for long-poll).
    pub fn ping(self, out: &mut Vec<u8>) {
        match self {
            Transport::LongPoll | Transport::Jsonp => {}
            Transport::Sse => crate::sse::comment(b"ping", out),
            Transport::Ws => crate::websocket::frame::ping(b"", out),
        }
    }
}

/// Whether two block lists serialise to the same bytes (same messages, ids and cursors).
pub fn same_blocks(a: &[Block], b: &[Block]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            std::rc::Rc::ptr_eq(&x.msg, &y.msg)
                && x.ids.len() == y.ids.len()
                && x.ids
                    .iter()
                    .zip(&y.ids)
                    .all(|((n1, c1), (n2, c2))| n1 == n2 && c1.same_text(c2))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Message;

    fn block(ids: &[(&str, &str)], data: &str) -> Block {
        let c = |s: &str| Cursor::parse_client(s.as_bytes()).unwrap();
        Block {
            msg: Rc::new(Message {
                data: data.as_bytes().into(),
                limiters: Box::new([]),
            }),
            cursor: c(ids[0].1),
            ids: ids.iter().map(|(n, s)| (Rc::from(*n), c(s))).collect(),
        }
    }

    #[test]
    fn same_blocks_compares_messages_ids_and_cursor_text() {
        let a = block(&[("abc", "15")], "x");
        let b = Block {
            msg: a.msg.clone(),
            cursor: a.cursor.clone(),
            ids: a.ids.clone(),
        };
        assert!(same_blocks(&[a], &[b]));
        let c = block(&[("abc", "15")], "x");
        let d = block(&[("abc", "15")], "x");
        assert!(
            !same_blocks(&[c], &[d]),
            "different messages with equal bytes"
        );
        let e = block(&[("abc", "015")], "x");
        let f = Block {
            msg: e.msg.clone(),
            cursor: e.cursor.clone(),
            ids: vec![(
                std::rc::Rc::from("abc"),
                Cursor::parse_client(b"15").unwrap(),
            )],
        };
        assert!(!same_blocks(&[e], &[f]), "cursor text differs");
    }
}
