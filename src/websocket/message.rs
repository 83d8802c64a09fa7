//! Client messages from client frames (RFC 6455 sections 5.4, 5.5 and 8.1): fragments
//! joined, UTF-8 checked across fragment boundaries, control frames passed through even
//! between the fragments of a message, close payloads checked.
//!
//! Data shape: one `Assembler` per connection. Between messages it holds no heap buffer
//! (an empty `Vec` and a few bytes of state, 32 bytes in all); during a fragmented text
//! message it holds the fragments so far, at most `max_payload` bytes. `push(frame)` takes
//! one decoded frame; `next_message(buf)` decodes and pushes whole frames from `buf` until a
//! message completes. Only text messages are accepted: this is a command channel, so a
//! binary message closes with 1003.
//! Uses: websocket::frame.

use super::frame::{self, code, Close, Frame, Opcode};

/// A complete message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A whole text message (valid UTF-8): a command for `commands::parse`.
    Text(String),
    /// Answer with `frame::pong(&payload, ..)`.
    Ping(Vec<u8>),
    /// The client answered a ping (or sent an unsolicited pong): proof of life, nothing else.
    Pong(Vec<u8>),
    /// The client is closing, with its status code if it sent one (already checked to be one
    /// a peer may send). Answer with `frame::close(code, "", ..)` (echoing the code) or
    /// `frame::close_empty` when there was none, then close the connection.
    Close(Option<u16>),
}

const UNEXPECTED_CONTINUATION: Close =
    Close::new(code::PROTOCOL_ERROR, "continuation frame outside a message");
const INTERLEAVED: Close = Close::new(
    code::PROTOCOL_ERROR,
    "new message before the last one ended",
);
const BINARY: Close = Close::new(code::UNSUPPORTED_DATA, "binary messages are not accepted");
const NOT_UTF8: Close = Close::new(code::INVALID_PAYLOAD, "text is not UTF-8");
const MESSAGE_TOO_BIG: Close = Close::new(code::TOO_BIG, "message too big");
const SHORT_CLOSE: Close = Close::new(code::PROTOCOL_ERROR, "close payload of one byte");
const BAD_CLOSE_CODE: Close = Close::new(code::PROTOCOL_ERROR, "invalid close code");
const CLOSE_REASON_NOT_UTF8: Close = Close::new(code::INVALID_PAYLOAD, "close reason is not UTF-8");

/// Whether a peer may send `c` in a close frame: 1000-1003, 1007-1014 (1012-1014 are
/// registered with IANA since RFC 6455), and the 3000-4999 ranges for libraries and
/// applications. 1004-1006 and 1015 are reserved or never sent on the wire.
pub fn is_valid_close_code(c: u16) -> bool {
    matches!(c, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// An incremental UTF-8 check (Unicode's table 3-7 of well-formed byte sequences):
/// bytes may arrive in any pieces; a code point split between pieces is carried over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8 {
    /// Continuation bytes still owed by the code point in progress.
    need: u8,
    /// The range the next continuation byte must fall in.
    lo: u8,
    hi: u8,
}

impl Default for Utf8 {
    fn default() -> Utf8 {
        Utf8 {
            need: 0,
            lo: 0x80,
            hi: 0xBF,
        }
    }
}

impl Utf8 {
    /// Takes the next piece; `false` as soon as the bytes cannot be UTF-8.
    pub fn feed(&mut self, mut bytes: &[u8]) -> bool {
        loop {
            // Between code points: let the standard library run over the easy part.
            if self.need == 0 {
                match std::str::from_utf8(bytes) {
                    Ok(_) => return true,
                    Err(e) if e.error_len().is_some() => return false,
                    Err(e) => bytes = bytes.get(e.valid_up_to()..).unwrap_or_default(),
                }
            }
            let Some((&b, rest)) = bytes.split_first() else {
                return true;
            };
            bytes = rest;
            if !self.byte(b) {
                return false;
            }
        }
    }

    fn byte(&mut self, b: u8) -> bool {
        if self.need > 0 {
            if b < self.lo || b > self.hi {
                return false;
            }
            self.need -= 1;
            (self.lo, self.hi) = (0x80, 0xBF);
            return true;
        }
        let (need, lo, hi) = match b {
            0x00..=0x7F => return true,
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
            0xED => (2, 0x80, 0x9F),
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            0xF4 => (3, 0x80, 0x8F),
            _ => return false,
        };
        *self = Utf8 { need, lo, hi };
        true
    }

    /// Whether the bytes so far end on a code point boundary.
    pub fn is_complete(&self) -> bool {
        self.need == 0
    }
}

/// Joins one connection's frames into messages.
#[derive(Debug, Default)]
pub struct Assembler {
    /// The fragments of the text message in progress (empty, unallocated, between messages).
    buf: Vec<u8>,
    utf8: Utf8,
    in_text: bool,
}

impl Assembler {
    pub fn new() -> Assembler {
        Assembler::default()
    }

    /// Whether a fragmented message has started and not yet ended.
    pub fn in_message(&self) -> bool {
        self.in_text
    }

    /// Takes one decoded frame; `Ok(Some(message))` when it completes one. `max_payload`
    /// bounds a whole message, all fragments together.
    pub fn push(&mut self, f: Frame, max_payload: usize) -> Result<Option<Message>, Close> {
        match f.opcode {
            Opcode::Ping => Ok(Some(Message::Ping(f.payload))),
            Opcode::Pong => Ok(Some(Message::Pong(f.payload))),
            Opcode::Close => close_message(&f.payload).map(Some),
            Opcode::Binary if self.in_text => Err(INTERLEAVED),
            Opcode::Binary => Err(BINARY),
            Opcode::Text if self.in_text => Err(INTERLEAVED),
            Opcode::Text if f.fin => text(f.payload).map(Some),
            Opcode::Text => {
                if f.payload.len() > max_payload {
                    return Err(MESSAGE_TOO_BIG);
                }
                self.utf8 = Utf8::default();
                if !self.utf8.feed(&f.payload) {
                    return Err(NOT_UTF8);
                }
                self.buf = f.payload;
                self.in_text = true;
                Ok(None)
            }
            Opcode::Continuation if !self.in_text => Err(UNEXPECTED_CONTINUATION),
            Opcode::Continuation => {
                let total = self.buf.len().checked_add(f.payload.len());
                if total.is_none_or(|t| t > max_payload) {
                    return Err(MESSAGE_TOO_BIG);
                }
                if !self.utf8.feed(&f.payload) {
                    return Err(NOT_UTF8);
                }
                self.buf.extend_from_slice(&f.payload);
                if !f.fin {
                    return Ok(None);
                }
                let complete = self.utf8.is_complete();
                let whole = std::mem::take(&mut self.buf);
                self.in_text = false;
                self.utf8 = Utf8::default();
                if !complete {
                    return Err(NOT_UTF8);
                }
                text(whole).map(Some)
            }
        }
    }

    /// Decodes and takes whole frames from the start of `buf` until one completes a message
    /// or no whole frame is left. Returns how many bytes were used (the caller drops them and
    /// keeps the rest for when more arrive) and the message, if one completed; call again
    /// while it returns one.
    pub fn next_message(
        &mut self,
        buf: &[u8],
        max_payload: usize,
    ) -> Result<(usize, Option<Message>), Close> {
        let mut used = 0usize;
        while let Some((f, n)) = frame::decode(buf.get(used..).unwrap_or_default(), max_payload)? {
            used = used.saturating_add(n);
            if let Some(m) = self.push(f, max_payload)? {
                return Ok((used, Some(m)));
            }
        }
        Ok((used, None))
    }
}

fn text(bytes: Vec<u8>) -> Result<Message, Close> {
    String::from_utf8(bytes)
        .map(Message::Text)
        .map_err(|_| NOT_UTF8)
}

fn close_message(payload: &[u8]) -> Result<Message, Close> {
    match payload {
        [] => Ok(Message::Close(None)),
        [_] => Err(SHORT_CLOSE),
        [hi, lo, reason @ ..] => {
            let c = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_close_code(c) {
                return Err(BAD_CLOSE_CODE);
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(CLOSE_REASON_NOT_UTF8);
            }
            Ok(Message::Close(Some(c)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::frame::tests::client;

    const M: [u8; 4] = [0xA1, 0xB2, 0xC3, 0xD4];
    const MAX: usize = 64;

    fn frame(b0: u8, payload: &[u8]) -> Frame {
        frame::decode(&client(b0, payload, M, 0), usize::MAX)
            .unwrap()
            .unwrap()
            .0
    }

    /// Pushes frames; the messages, or the first error's code.
    fn run(frames: &[(u8, &[u8])]) -> Result<Vec<Message>, u16> {
        let mut a = Assembler::new();
        let mut out = Vec::new();
        for (b0, p) in frames {
            if let Some(m) = a.push(frame(*b0, p), MAX).map_err(|c| c.code)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    fn t(s: &str) -> Message {
        Message::Text(s.into())
    }

    #[test]
    fn whole_and_fragmented_text_with_control_frames_between() {
        assert_eq!(run(&[(0x81, b"hi")]), Ok(vec![t("hi")]));
        assert_eq!(
            run(&[
                (0x01, b"He"),
                (0x89, b"p"),
                (0x00, b""),
                (0x8A, b""),
                (0x80, b"llo")
            ]),
            Ok(vec![
                Message::Ping(b"p".to_vec()),
                Message::Pong(vec![]),
                t("Hello")
            ])
        );
        assert_eq!(run(&[(0x81, b"")]), Ok(vec![t("")]));
    }

    #[test]
    fn a_code_point_split_at_every_byte_across_fragments() {
        let s = "aé€😀κόσμε";
        let b = s.as_bytes();
        for i in 0..=b.len() {
            for j in i..=b.len() {
                let got = run(&[(0x01, &b[..i]), (0x00, &b[i..j]), (0x80, &b[j..])]);
                assert_eq!(got, Ok(vec![t(s)]), "split at {i}, {j}");
            }
        }
    }

    #[test]
    fn invalid_utf8_is_1007_and_found_early() {
        for bad in [
            &[0xC0, 0x80][..],         // overlong
            &[0xE0, 0x80, 0x80],       // overlong
            &[0xED, 0xA0, 0x80],       // surrogate
            &[0xF4, 0x90, 0x80, 0x80], // over U+10FFFF
            &[0xF5],
            &[0xFF],
            &[0x80],
            &[0xE2, 0x82], // cut at the end of the message
            &[b'a', 0xCE],
        ] {
            assert_eq!(run(&[(0x81, bad)]), Err(1007), "{bad:x?}");
            let (x, y) = bad.split_at(bad.len() / 2);
            assert_eq!(run(&[(0x01, x), (0x80, y)]), Err(1007), "{bad:x?}");
        }
        // Refused at the first bad fragment, before the message ends.
        assert_eq!(run(&[(0x01, b"ok"), (0x00, &[0xE2, 0x28])]), Err(1007));
        assert_eq!(
            run(&[(0x01, &[0xF0, 0x9F]), (0x00, &[0x98, 0x41])]),
            Err(1007)
        );
        // Cut code point at the end of a fragmented message.
        assert_eq!(run(&[(0x01, b"a"), (0x80, &[0xF0, 0x9F, 0x98])]), Err(1007));
    }

    #[test]
    fn sequence_errors_binary_and_size() {
        assert_eq!(run(&[(0x80, b"x")]), Err(1002)); // continuation first
        assert_eq!(run(&[(0x00, b"x")]), Err(1002));
        assert_eq!(run(&[(0x01, b"x"), (0x81, b"y")]), Err(1002));
        assert_eq!(run(&[(0x01, b"x"), (0x02, b"y")]), Err(1002));
        assert_eq!(run(&[(0x82, b"x")]), Err(1003));
        assert_eq!(run(&[(0x02, b"x")]), Err(1003));
        let half = [b'a'; MAX / 2];
        assert!(run(&[(0x01, &half), (0x80, &half)]).is_ok());
        assert_eq!(
            run(&[(0x01, &half), (0x00, &half), (0x80, b"!")]),
            Err(1009)
        );
        assert_eq!(run(&[(0x01, &[b'a'; MAX + 1])]), Err(1009));
        // After a message, a continuation is out of place again.
        assert_eq!(run(&[(0x01, b"a"), (0x80, b"b"), (0x80, b"c")]), Err(1002));
    }

    #[test]
    fn close_payloads() {
        assert_eq!(run(&[(0x88, b"")]), Ok(vec![Message::Close(None)]));
        assert_eq!(run(&[(0x88, &[0x03])]), Err(1002));
        for c in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1014, 3000, 4999,
        ] {
            let p = c.to_be_bytes();
            assert_eq!(run(&[(0x88, &p)]), Ok(vec![Message::Close(Some(c))]), "{c}");
        }
        for c in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert_eq!(run(&[(0x88, &c.to_be_bytes())]), Err(1002), "{c}");
        }
        assert_eq!(
            run(&[(0x88, &[0x03, 0xE8, b'o', b'k'])]),
            Ok(vec![Message::Close(Some(1000))])
        );
        assert_eq!(run(&[(0x88, &[0x03, 0xE8, 0xFF])]), Err(1007));
    }

    #[test]
    fn next_message_over_a_stream_split_at_every_offset() {
        let stream = [
            client(0x01, "ab€".as_bytes().get(..3).unwrap(), M, 0),
            client(0x89, b"!", M, 0),
            client(0x80, "ab€".as_bytes().get(3..).unwrap(), M, 0),
            client(0x81, b"{}", M, 0),
            client(0x88, &[0x03, 0xE8], M, 0),
        ]
        .concat();
        let want = vec![
            Message::Ping(b"!".to_vec()),
            t("ab€"),
            t("{}"),
            Message::Close(Some(1000)),
        ];
        for cut in 0..=stream.len() {
            let mut a = Assembler::new();
            let mut got = Vec::new();
            let mut pending = stream[..cut].to_vec();
            for more in [&stream[cut..], &[][..]] {
                loop {
                    let (used, m) = a.next_message(&pending, MAX).unwrap();
                    pending.drain(..used);
                    match m {
                        Some(m) => got.push(m),
                        None => break,
                    }
                }
                pending.extend_from_slice(more);
            }
            assert_eq!(got, want, "cut at {cut}");
            assert!(!a.in_message() && a.buf.capacity() == 0);
        }
    }

    #[test]
    fn utf8_checker_agrees_with_std_on_random_pieces() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet: &[u8] = &[
            b'a', 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xE1, 0xED,
            0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF,
        ];
        for _ in 0..100_000 {
            let r = next();
            let n = (r % 7) as usize;
            let bytes: Vec<u8> = (0..n)
                .map(|k| alphabet[((r >> (8 + 5 * k)) % alphabet.len() as u64) as usize])
                .collect();
            let cut = (next() as usize) % (n + 1);
            let mut u = Utf8::default();
            let ok = u.feed(&bytes[..cut]) && u.feed(&bytes[cut..]) && u.is_complete();
            assert_eq!(
                ok,
                std::str::from_utf8(&bytes).is_ok(),
                "{bytes:x?} cut {cut}"
            );
        }
        assert!(std::mem::size_of::<Assembler>() <= 32);
    }
}
