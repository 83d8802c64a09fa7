//! The WebSocket and SSE input side of the WAIT line: a client byte stream through
//! `websocket::message::Assembler::next_message` (so `frame::decode` and the assembler) and
//! each text message through `websocket::commands::parse`; the replies a transport would
//! send encoded with `frame::{pong, close}`. The same bytes also go through
//! `websocket::handshake::check` and `sse::sse_request` as a request head.
//!
//! Input: byte 0 picks the size limit (0, 16, 125 or 5120 bytes), byte 1 the size of the
//! reads the stream arrives in (0 = all at once); the rest is the stream.
//! Check beyond "no panic": the stream read in pieces gives the same messages, commands,
//! close verdict and leftover bytes as the stream read at once; frames never use more bytes
//! than they have nor carry more than the limit; commands name at most MAX_IDS valid ids.
#![no_main]

use libfuzzer_sys::fuzz_target;
use realplexor::sse;
use realplexor::websocket::commands::{self, Command};
use realplexor::websocket::frame;
use realplexor::websocket::handshake::{self, Handshake};
use realplexor::websocket::message::{Assembler, Message};

const LIMITS: [usize; 4] = [0, 16, 125, 5120];

/// Reads `stream` in pieces of `piece` bytes as a transport would; what came out, in order.
/// The leftover count is `None` after a close verdict (the rest of the stream is moot).
fn run(stream: &[u8], max: usize, piece: usize) -> (Vec<String>, Option<usize>) {
    let mut a = Assembler::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for chunk in stream.chunks(piece.max(1)) {
        pending.extend_from_slice(chunk);
        loop {
            match a.next_message(&pending, max) {
                Ok((used, m)) => {
                    assert!(used <= pending.len());
                    pending.drain(..used);
                    let Some(m) = m else { break };
                    match &m {
                        Message::Text(t) => {
                            assert!(t.len() <= max);
                            match commands::parse(t) {
                                Ok(Command::Subscribe(v)) => {
                                    assert!(v.len() <= commands::MAX_IDS);
                                    assert!(v.iter().all(|(id, _)| commands::is_id(id)));
                                }
                                Ok(Command::Unsubscribe(v)) => {
                                    assert!(v.len() <= commands::MAX_IDS);
                                    assert!(v.iter().all(|id| commands::is_id(id)));
                                }
                                Err(e) => {
                                    frame::close(e.code, &e.message, &mut out);
                                }
                            }
                        }
                        Message::Ping(p) => frame::pong(p, &mut out),
                        Message::Pong(p) => assert!(p.len() <= frame::MAX_CONTROL),
                        Message::Close(Some(c)) => frame::close(*c, "", &mut out),
                        Message::Close(None) => frame::close_empty(&mut out),
                    }
                    seen.push(format!("{m:?}"));
                }
                Err(close) => {
                    frame::close(close.code, close.reason, &mut out);
                    seen.push(format!("{close:?}"));
                    return (seen, None);
                }
            }
        }
    }
    (seen, Some(pending.len()))
}

fuzz_target!(|data: &[u8]| {
    if let Handshake::Upgrade { accept, .. } = handshake::check(data) {
        let mut out = Vec::new();
        handshake::switching_protocols(&accept, b"", &mut out);
    } else if let Handshake::Reject(r) = handshake::check(data) {
        handshake::reject_reply(r, b"", &mut Vec::new());
    }
    if let Some(r) = sse::sse_request(data) {
        sse::event(r.last_event_id, Some(b"gap"), data, &mut Vec::new());
    }
    let [limit, piece, stream @ ..] = data else {
        return;
    };
    let max = LIMITS[usize::from(*limit & 3)];
    if let Ok(Some((f, used))) = frame::decode(stream, max) {
        assert!(used <= stream.len() && f.payload.len() <= max);
    }
    let whole = run(stream, max, stream.len());
    if *piece != 0 {
        assert_eq!(run(stream, max, usize::from(*piece)), whole);
    }
});
